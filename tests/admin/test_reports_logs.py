"""Reports match services.reports.summary; audit log filters; connections: sync now, retry, disconnect;
users and API keys."""

from __future__ import annotations

import re

from refstage.adapters.db import models as m
from refstage.domain.tenants import hash_api_key
from refstage.services import reports, rewards, tenants
from tests.admin.conftest import ADMIN, post, qualified_referral, sign_in



def _cells(html: str, metric: str) -> list[str]:
    return re.findall(rf'<td class="num" data-metric="{metric}">([^<]*)</td>', html)


def test_reports_render_the_summary_numbers(admin_client, reviewer_client, rt, world, clock):
    _, found = qualified_referral(rt, world, clock)
    qualified_referral(rt, world, clock, email="gina@prospect.test", advocate_email="bo@customer.test")
    rewards.issue_reward(rt, world.tenant.id, found["adv"].id, ADMIN, "P-1")
    expected = reports.summary(rt, world.tenant.id, reports.ReportFilter(program_id=world.program.id), group_by="program", period="week")
    html = reviewer_client.get(f"/admin/reports?group_by=program&period=week&program={world.program.id}").get_data(as_text=True)
    row = expected["rows"][0]
    assert _cells(html, "enrolments") == [str(row["enrolments"])] == ["2"]
    assert _cells(html, "captured") == [str(row["captured"])] and _cells(html, "qualified") == [str(row["qualified"])]
    assert _cells(html, "rewards_issued") == ["1"] and _cells(html, "qualification_rate") == ["100.0%"]
    assert "$100.00" in html and "100.00 USD" not in html  # money formatted for people
    assert html.count("<svg") == 5 and 'role="img"' in html and 'data-value="2"' in html
    by_period = reports.summary(rt, world.tenant.id, reports.ReportFilter(), group_by="period", period="day")
    html = admin_client.get("/admin/reports?group_by=period&period=day").get_data(as_text=True)
    assert [g for g in re.findall(r'<tr data-group="([^"]+)">', html)] == [r["group"] for r in by_period["rows"]]
    # The owner filter narrows referrals to one CRM owner (the FakeCrm assigns 005000000000001AAA).
    assert '<option value="005000000000001AAA"' in html
    mine = admin_client.get("/admin/reports?group_by=owner&owner=005000000000001AAA").get_data(as_text=True)
    assert _cells(mine, "captured") == ["2"]
    nobody = admin_client.get("/admin/reports?group_by=period&owner=005NOBODY").get_data(as_text=True)
    expected = reports.summary(rt, world.tenant.id, reports.ReportFilter(owner_id="005NOBODY"), group_by="period")
    assert _cells(nobody, "captured") == [str(r["captured"]) for r in expected["rows"]]
    assert all(c == "0" for c in _cells(nobody, "captured"))
    # The report updates when a reward is issued.
    rewards.issue_reward(rt, world.tenant.id, found["friend"].id, ADMIN)
    again = admin_client.get(f"/admin/reports?group_by=program&program={world.program.id}").get_data(as_text=True)
    assert _cells(again, "rewards_issued") == ["2"]


def test_audit_log_filters(admin_client, rt, world, clock):
    _, found = qualified_referral(rt, world, clock)
    rewards.issue_reward(rt, world.tenant.id, found["adv"].id, ADMIN, "P-9")
    everything = admin_client.get("/admin/audit").get_data(as_text=True)
    kinds = set(re.findall(r'data-entity="([^"]+)"', everything))
    assert {"program", "referral", "reward"} <= kinds
    only = admin_client.get("/admin/audit?entity_type=reward").get_data(as_text=True)
    assert set(re.findall(r'data-entity="([^"]+)"', only)) == {"reward"}
    sync_rows = admin_client.get("/admin/audit?actor_kind=sync").get_data(as_text=True)
    assert set(re.findall(r'data-actor="([^"]+)"', sync_rows)) == {"sync"}
    one = admin_client.get(f"/admin/audit?entity_id={found['adv'].id}").get_data(as_text=True)
    assert "status:issued" in one and "P-9" in one
    assert "No entries match" in admin_client.get("/admin/audit?since=2030-01-01").get_data(as_text=True)
    # The clock of the test runtime is 2026-11-02; the database stores when it happened.
    day = admin_client.get("/admin/audit?since=2026-11-02&until=2026-11-02").get_data(as_text=True)
    assert "audit-row" in day


def test_connections_status_sync_now_log_and_retry(admin_client, rt, world, clock):
    page = admin_client.get("/admin/connections").get_data(as_text=True)
    assert "Acme org" in page and "active" in page and "never" in page
    assert post(admin_client, f"/admin/connections/{world.connection.id}/sync").status_code == 302
    assert ("sync_connection", {"tenant_id": world.tenant.id, "connection_id": world.connection.id}) in rt.jobs.jobs
    # A sync run and a failed record write show in the log; retry re-queues it.
    from refstage.services import sync
    from refstage.services.ports import WriteResult

    _, found = qualified_referral(rt, world, clock)
    rewards.issue_reward(rt, world.tenant.id, found["adv"].id, ADMIN, "P-2")  # queues the mirrors again
    world.crm.mirror = lambda referrals, rewards_, states=None: WriteResult(failed={r[0].id: "FIELD_CUSTOM_VALIDATION_EXCEPTION: nope" for r in referrals})
    clock.advance(minutes=1)
    sync.run_sync(rt, world.tenant.id, world.connection.id)
    log = admin_client.get(f"/admin/connections/{world.connection.id}/log").get_data(as_text=True)
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in log and "succeeded" in log
    with rt.uow(world.tenant.id) as uow:
        failed = [r for r in uow.session.query(m.PendingWriteRow).filter_by(connection_id=world.connection.id) if r.attempts]
    assert failed
    resp = post(admin_client, f"/admin/connections/{world.connection.id}/retry", {"scope": "all"}, follow_redirects=True)
    assert f"{len(failed)} failed write(s) queued again." in resp.get_data(as_text=True)
    with rt.uow(world.tenant.id) as uow:
        assert all(r.attempts == 0 for r in uow.session.query(m.PendingWriteRow).filter_by(connection_id=world.connection.id))
    assert ("write_back", {"tenant_id": world.tenant.id, "connection_id": world.connection.id}) in rt.jobs.jobs


def test_reconnect_required_is_shown_and_sync_refused(admin_client, rt, world):
    from refstage.services.referrals import mark_reconnect_required

    mark_reconnect_required(rt, world.tenant.id, world.connection.id, "syncing")
    page = admin_client.get("/admin/connections").get_data(as_text=True)
    assert "Reconnect required" in page and "An admin must connect again" in page
    resp = post(admin_client, f"/admin/connections/{world.connection.id}/sync", follow_redirects=True)
    assert "connect it first" in resp.get_data(as_text=True)


def test_disconnect_asks_first_then_calls_the_connector_service(admin_client, rt, world):
    url = f"/admin/connections/{world.connection.id}/disconnect"
    for ask in (admin_client.get(url), post(admin_client, url)):  # no confirm=yes: the question, nothing revoked
        page = ask.get_data(as_text=True)
        assert ask.status_code == 200 and "Disconnect " in page and world.program.name in page and "Yes, disconnect" in page
    with rt.uow(world.tenant.id) as uow:
        assert uow.connections.get(world.connection.id).status.value == "active"
    assert post(admin_client, url, {"confirm": "yes"}).status_code == 302
    with rt.uow(world.tenant.id) as uow:
        assert uow.connections.get(world.connection.id).status.value == "disconnected"
    # flagged everywhere: the banner on every page names the live program; it cannot go live again
    page = admin_client.get("/admin/programs").get_data(as_text=True)
    assert "CRM not connected" in page and world.program.name in page and "CRM disconnected" in page


def test_users_and_api_keys(admin_client, app, rt, world, people):
    resp = post(admin_client, "/admin/users", {"email": "new@acme.test", "role": "reviewer", "password": "short"})
    assert resp.status_code == 400 and "at least 8 characters" in resp.get_data(as_text=True)
    resp = post(admin_client, "/admin/users", {"email": "new@acme.test", "role": "reviewer", "password": ""})
    assert "set a password, or link a Salesforce identity" in resp.get_data(as_text=True)
    assert post(admin_client, "/admin/users", {"email": "new@acme.test", "role": "reviewer", "password": "long enough pw"}).status_code == 302
    assert post(admin_client, "/admin/users", {"email": "new@acme.test", "role": "reviewer", "password": "long enough pw"}).status_code == 400
    assert sign_in(app.test_client(), "new@acme.test", "long enough pw").status_code == 302
    assert post(admin_client, "/admin/users", {"email": "sf@acme.test", "role": "admin", "sf_org_id": "00D000000000001AAA",
                                               "sf_user_id": "005000000000009AAA"}).status_code == 302
    with rt.uow() as uow:
        assert len(uow.directory.users_for_salesforce_identity("00D000000000001AAA", "005000000000009AAA")) == 1

    resp = post(admin_client, "/admin/api-keys", {"name": "Zapier"})
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
    key = re.search(r'id="new-api-key">([^<]+)<', resp.get_data(as_text=True)).group(1)
    assert tenants.resolve_api_key(rt, key)[0] == world.tenant.id
    with rt.uow(world.tenant.id) as uow:
        stored_id, stored_hash = uow.session.query(m.ApiKeyRow.id, m.ApiKeyRow.key_hash).one()
    assert stored_hash == hash_api_key(key) and key not in admin_client.get("/admin/users").get_data(as_text=True)
    assert post(admin_client, f"/admin/api-keys/{stored_id}/revoke").status_code == 302
    assert tenants.resolve_api_key(rt, key) is None
    assert "revoked" in admin_client.get("/admin/users").get_data(as_text=True)
