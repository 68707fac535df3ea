"""Referrals and Advocates pages: search and filters, a referral's timeline with CRM links and the
qualification evidence, an advocate's page (link, QR code, share links), CSV exports (every cell
quoted, formulas neutralised), a program's overview; another tenant's ids are 404s."""

from __future__ import annotations

import csv
import io

from refstage.domain.referrals import AdvocateSource
from refstage.services import enrolment, referrals
from refstage.services.referrals import FriendInput
from tests.admin.conftest import ADMIN, qualified_referral


def test_referrals_list_search_filters_and_timeline(admin_client, rt, world, clock):
    with rt.uow(world.tenant.id) as uow:
        conn = uow.connections.get(world.connection.id)
        conn.instance_url = "https://acme.my.salesforce.com"
        uow.connections.save(conn)
        uow.commit()
    ref_id, rewards = qualified_referral(rt, world, clock)
    adv = enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Bea Booster", email="bea@customer.test",
                                   source=AdvocateSource.API, actor=ADMIN)[0]
    other = referrals.capture_referral(rt, adv.code, FriendInput("Gus Guest", "gus@elsewhere.test", "=HYPERLINK(1)", None, True))

    page = admin_client.get("/admin/referrals").get_data(as_text=True)
    assert "Fred Friend" in page and "Gus Guest" in page and "2 found" in page
    found = admin_client.get("/admin/referrals?q=booster").get_data(as_text=True)  # the advocate's name finds her referrals
    assert "Gus Guest" in found and "Fred Friend" not in found
    qualified = admin_client.get("/admin/referrals?status=qualified").get_data(as_text=True)
    assert "Fred Friend" in qualified and "Gus Guest" not in qualified
    later = admin_client.get("/admin/referrals?since=2999-01-01").get_data(as_text=True)
    assert "No referral matches these filters" in later
    bad = admin_client.get("/admin/referrals?since=yesterday")
    assert bad.status_code == 400 and "a date as YYYY-MM-DD" in bad.get_data(as_text=True)
    assert admin_client.get("/admin/referrals?q=%25").status_code == 200  # LIKE wildcards are literal

    detail = admin_client.get(f"/admin/referrals/{ref_id}").get_data(as_text=True)
    for text in ("Captured", "Routed to the CRM", "Qualified", "Qualification evidence", "Opportunity", "https://acme.my.salesforce.com/lightning/r/Opportunity/"):
        assert text in detail, text
    assert "$" in detail and "{'amount'" not in detail  # money for people
    assert "CRM value: <code>Closed Won</code>" in detail and "All of (met)" in detail  # the evidence, as evaluated

    exported = admin_client.get("/admin/referrals.csv")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    body = exported.get_data(as_text=True)
    assert body.startswith('"referral_id","captured_at"')  # every cell quoted
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {r["friend_name"] for r in rows} == {"Fred Friend", "Gus Guest"}
    assert [r["friend_company"] for r in rows if r["friend_name"] == "Gus Guest"] == ["'=HYPERLINK(1)"]
    assert other.id in body


def test_advocate_page_link_qr_share_and_csv(admin_client, rt, world, clock):
    qualified_referral(rt, world, clock)
    listing = admin_client.get("/admin/advocates?q=ada").get_data(as_text=True)
    assert "Ada" in listing and "1 found" in listing
    with rt.uow(world.tenant.id) as uow:
        adv = uow.advocates.by_email(world.program.id, "ada@customer.test")
    page = admin_client.get(f"/admin/advocates/{adv.id}").get_data(as_text=True)
    assert f"/r/{adv.code}" in page and "<svg" in page and "QR code" in page
    for network in ("linkedin.com/sharing", "x.com/intent/post", "wa.me/?text=", "mailto:?subject="):
        assert network in page, network
    assert "Fred Friend" in page and "api" in page  # its referral and its enrolment source
    body = admin_client.get("/admin/advocates.csv").get_data(as_text=True)
    assert body.startswith('"advocate_id","name"') and adv.code in body


def test_program_overview_funnel(admin_client, rt, world, clock):
    qualified_referral(rt, world, clock)
    page = admin_client.get(f"/admin/programs/{world.program.id}/overview").get_data(as_text=True)
    assert "Funnel" in page and "Advocates enrolled" in page and "Qualified" in page and "Fred Friend" in page


def test_another_tenants_ids_are_404(other_client, rt, world, clock):
    ref_id, _ = qualified_referral(rt, world, clock)
    with rt.uow(world.tenant.id) as uow:
        adv_id = uow.referrals.get(ref_id).advocate_id
    for url in (f"/admin/referrals/{ref_id}", f"/admin/advocates/{adv_id}", f"/admin/programs/{world.program.id}/overview"):
        assert other_client.get(url).status_code == 404, url
    assert "Fred Friend" not in other_client.get("/admin/referrals").get_data(as_text=True)


def test_reviewer_reads_the_lists(reviewer_client, rt, world, clock):
    qualified_referral(rt, world, clock)
    assert "Fred Friend" in reviewer_client.get("/admin/referrals").get_data(as_text=True)
