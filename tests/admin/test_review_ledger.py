"""Review queue (single and bulk, rewards and duplicates), ledger CSV with formula escaping, mark paid."""

from __future__ import annotations

import csv
import io

from refstage.domain.referrals import AdvocateSource
from refstage.services import admin_queries, enrolment, referrals, rewards
from refstage.services.referrals import FriendInput
from tests.admin.conftest import ADMIN, post, qualified_referral



def _status(rt, world, reward_id):
    with rt.uow(world.tenant.id) as uow:
        return uow.rewards.get(reward_id)


def test_queue_shows_reasons_evidence_and_rule_explanation(admin_client, rt, world, clock, needs_review):
    _, found = qualified_referral(rt, world, clock)
    page = admin_client.get("/admin/review").get_data(as_text=True)
    assert "Rewards waiting for review (1)" in page
    assert "over amount threshold" in page and "<dt>Threshold</dt><dd>$60.00</dd>" in page  # reason and its evidence, for people
    assert "{'amount'" not in page
    assert "Opportunity.StageName == &#39;Closed Won&#39;" in page and "CRM value: <code>Closed Won</code>" in page
    assert found["adv"].id in page and found["friend"].id not in page  # 50 USD friend reward passed


def test_approve_and_reject_single(admin_client, reviewer_client, rt, world, clock, needs_review):
    _, first = qualified_referral(rt, world, clock)
    _, second = qualified_referral(rt, world, clock, email="gina@prospect.test")
    a, b = first["adv"].id, second["adv"].id
    assert post(reviewer_client, "/admin/review/rewards", {"decide": f"approve:{a}", f"comment_{a}": "known customer"}).status_code == 302
    got = _status(rt, world, a)
    assert got.status.value == "approved" and got.decided_by == "reviewer@acme.test" and got.decision_comment == "known customer"
    # A rejection needs a reason: refused with a message, nothing changes.
    page = post(admin_client, "/admin/review/rewards", {"decide": f"reject:{b}"}, follow_redirects=True).get_data(as_text=True)
    assert "a rejection needs a reason" in page and _status(rt, world, b).status.value == "pending_review"
    post(admin_client, "/admin/review/rewards", {"decide": f"reject:{b}", f"comment_{b}": "self-dealing"})
    assert _status(rt, world, b).status.value == "rejected"


def test_bulk_approve_and_reject(admin_client, rt, world, clock, needs_review):
    ids = [qualified_referral(rt, world, clock, email=f"f{i}@prospect.test")[1]["adv"].id for i in range(3)]
    resp = post(admin_client, "/admin/review/rewards", {"decide": "reject:selected", "reward_id": ids[:2]}, follow_redirects=True)
    assert "a rejection needs a reason" in resp.get_data(as_text=True)
    page = post(admin_client, "/admin/review/rewards", {"decide": "approve:selected", "reward_id": ids[:2], "comment": "batch ok"},
                follow_redirects=True).get_data(as_text=True)
    assert "2 reward(s) approved." in page
    assert [_status(rt, world, i).status.value for i in ids] == ["approved", "approved", "pending_review"]
    page = post(admin_client, "/admin/review/rewards", {"decide": "reject:selected", "reward_id": ids, "comment": "fraud ring"},
                follow_redirects=True).get_data(as_text=True)
    assert "1 reward(s) rejected. 2 could not be changed." in page
    assert _status(rt, world, ids[2]).status.value == "rejected"


def _duplicate(rt, world, email):
    world.crm.touch("Contact", f"003EXIST{abs(hash(email)) % 10**10:010d}", Email=email, AccountId="001X")
    adv = enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Ada", email=f"ada.{email.split('@')[0]}@customer.test",
                                   source=AdvocateSource.API, actor=ADMIN)[0]
    ref = referrals.capture_referral(rt, adv.code, FriendInput("Dup", email, None, None, True))
    referrals.route_referral(rt, world.tenant.id, ref.id)
    return ref.id


def test_duplicates_accept_and_reject(admin_client, rt, world):
    a = _duplicate(rt, world, "dup1@prospect.test")
    b = _duplicate(rt, world, "dup2@prospect.test")
    page = admin_client.get("/admin/review").get_data(as_text=True)
    assert "Referrals held as duplicates (2)" in page and "<dt>Object</dt><dd>Contact</dd>" in page
    page = post(admin_client, "/admin/review/duplicates", {"decide": f"accept:{a}"}, follow_redirects=True).get_data(as_text=True)
    assert "say why" in page
    post(admin_client, "/admin/review/duplicates", {"decide": f"accept:{a}", f"dup_comment_{a}": "new buying centre"})
    assert ("route_referral", {"tenant_id": world.tenant.id, "referral_id": a, "attach": True}) in rt.jobs.jobs
    post(admin_client, "/admin/review/duplicates", {"decide": "reject:selected", "referral_id": [b], "dup_comment": "same person"})
    assert referrals.get_referral(rt, world.tenant.id, b).status.value == "rejected"


def test_ledger_filters_csv_escaping_and_mark_paid(admin_client, reviewer_client, rt, world, clock, needs_review):
    _, found = qualified_referral(rt, world, clock)
    # A friend whose name a spreadsheet would run as a formula.
    _, evil = qualified_referral(rt, world, clock, email="eve@prospect.test")
    with rt.uow(world.tenant.id) as uow:
        from refstage.adapters.db import models as m

        row = uow.session.get(m.ReferralRow, evil["adv"].referral_id)
        row.friend_name = '=HYPERLINK("http://evil.test","x")'
        uow.commit()
    rewards.approve_reward(rt, world.tenant.id, evil["adv"].id, ADMIN, "-1+2 @SUM(A1)")
    rewards.approve_reward(rt, world.tenant.id, found["adv"].id, ADMIN)
    page = admin_client.get("/admin/ledger?status=approved").get_data(as_text=True)
    assert page.count("Mark as paid") == 4
    resp = reviewer_client.get(f"/admin/ledger.csv?status=approved&program={world.program.id}")
    assert resp.status_code == 200 and resp.mimetype == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert len(rows) == 4
    bad = next(r for r in rows if r["reward_id"] == evil["adv"].id)
    assert bad["friend_name"] == '\'=HYPERLINK("http://evil.test","x")'
    assert bad["decision_comment"] == "'-1+2 @SUM(A1)"
    assert all(not v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())
    assert admin_queries.csv_safe("+1") == "'+1" and admin_queries.csv_safe("@x") == "'@x" and admin_queries.csv_safe("ok") == "ok"

    adv_id = found["adv"].id
    assert post(reviewer_client, f"/admin/ledger/{adv_id}/paid", {"payout_reference": "PAY-1"}).status_code == 403
    # No reference: refused with a message. A reference: a confirmation page first, nothing paid yet.
    empty = post(admin_client, f"/admin/ledger/{adv_id}/paid", {"payout_reference": "  "}, follow_redirects=True)
    assert "Enter the payout reference" in empty.get_data(as_text=True) and _status(rt, world, adv_id).status.value == "approved"
    ask = post(admin_client, f"/admin/ledger/{adv_id}/paid", {"payout_reference": "PAY-1"})
    assert ask.status_code == 200 and "Yes, mark as paid" in ask.get_data(as_text=True) and "PAY-1" in ask.get_data(as_text=True)
    assert "$" in ask.get_data(as_text=True) and _status(rt, world, adv_id).status.value == "approved"
    post(admin_client, f"/admin/ledger/{adv_id}/paid", {"payout_reference": "PAY-1", "confirm": "yes"})
    paid = _status(rt, world, adv_id)
    assert paid.status.value == "issued" and paid.payout_reference == "PAY-1"
    assert referrals.get_referral(rt, world.tenant.id, paid.referral_id).status.value == "rewarded"
    # A second click is harmless.
    assert post(admin_client, f"/admin/ledger/{adv_id}/paid", {"payout_reference": "PAY-2", "confirm": "yes"}).status_code == 302
    assert _status(rt, world, adv_id).payout_reference == "PAY-1"
    issued = admin_client.get("/admin/ledger?status=issued").get_data(as_text=True)
    assert "ref PAY-1" in issued and "Mark as paid" not in issued
    assert '<span class="badge issued">paid</span>' in issued  # reads "paid", not "issued"
