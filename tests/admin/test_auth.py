"""Sign-in, sign-out, session fixation, roles, CSRF and tenant isolation."""

from __future__ import annotations

import pytest

from tests.admin.conftest import csrf, post, sign_in



def test_login_page_and_redirect_when_signed_out(client, people):
    resp = client.get("/admin/programs")
    assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"]
    page = client.get("/admin/login")
    assert page.status_code == 200 and b"Sign in with Salesforce" in page.data


def test_good_password_signs_in_and_bad_password_does_not(client, people):
    bad = sign_in(client, "admin@acme.test", "wrong password!")
    assert bad.status_code == 401 and b"do not match" in bad.data
    assert client.get("/admin/programs").status_code == 302
    unknown = sign_in(client, "nobody@acme.test")
    assert unknown.status_code == 401
    good = sign_in(client, "admin@acme.test")
    assert good.status_code == 302 and good.headers["Location"].endswith("/admin/")
    assert client.get("/admin/programs").status_code == 200


def test_next_is_followed_only_inside_the_console(client, people):
    client.get("/admin/login")
    resp = client.post("/admin/login", data={"email": "admin@acme.test", "password": "correct horse battery",
                                             "csrf_token": csrf(client), "next": "/admin/ledger?status=approved"})
    assert resp.headers["Location"] == "/admin/ledger?status=approved"
    client.get("/admin/login")
    resp = client.post("/admin/login", data={"email": "admin@acme.test", "password": "correct horse battery",
                                             "csrf_token": csrf(client), "next": "https://evil.test/x"})
    assert resp.headers["Location"].endswith("/admin/")


def test_session_is_replaced_on_sign_in(client, people):
    client.get("/admin/login")
    with client.session_transaction() as s:
        s["planted"] = "by an attacker"
        before = s["_csrf"]
    sign_in(client, "admin@acme.test")
    with client.session_transaction() as s:
        assert "planted" not in s and s["_csrf"] != before and s["admin_user_id"] == people.admin.id


def test_logout_clears_the_session(admin_client):
    resp = post(admin_client, "/admin/logout")
    assert resp.status_code == 302
    with admin_client.session_transaction() as s:
        assert "admin_user_id" not in s
    assert admin_client.get("/admin/review").status_code == 302


def test_missing_or_wrong_csrf_is_400(admin_client, world):
    assert admin_client.post("/admin/logout").status_code == 400
    assert admin_client.post(f"/admin/programs/{world.program.id}/status", data={"status": "paused", "csrf_token": "nope"}).status_code == 400
    assert admin_client.post("/admin/login", data={"email": "admin@acme.test", "password": "x"}).status_code == 400


@pytest.mark.parametrize("method,url", [
    ("get", "/admin/programs"), ("get", "/admin/programs/new"), ("post", "/admin/programs/new"),
    ("get", "/admin/users"), ("post", "/admin/users"), ("post", "/admin/api-keys"),
    ("get", "/admin/connections"), ("get", "/admin/audit"),
])
def test_reviewer_cannot_edit_programs_or_manage_users(reviewer_client, method, url):
    resp = getattr(reviewer_client, method)(url, data={"csrf_token": csrf(reviewer_client)} if method == "post" else None)
    assert resp.status_code == 403


def test_reviewer_sees_review_ledger_and_reports(reviewer_client, world):
    for url in ("/admin/review", "/admin/ledger", "/admin/ledger.csv", "/admin/reports", "/admin/dashboard"):
        assert reviewer_client.get(url).status_code == 200, url
    assert reviewer_client.get("/admin/").headers["Location"].endswith("/admin/dashboard")  # everyone starts at home
    page = reviewer_client.get("/admin/ledger").data
    assert b"Mark as paid" not in page and b">Programs<" not in page
    assert post(reviewer_client, f"/admin/programs/{world.program.id}/status", {"status": "paused"}).status_code == 403


def test_tenant_b_gets_404_for_tenant_a_ids(other_client, world, rt, clock, needs_review):
    from tests.admin.conftest import qualified_referral

    _, found = qualified_referral(rt, world, clock)
    reward_id = found["adv"].id
    c = other_client
    assert c.get(f"/admin/programs/{world.program.id}").status_code == 404
    assert post(c, f"/admin/programs/{world.program.id}", {"name": "stolen"}).status_code == 404
    assert post(c, f"/admin/programs/{world.program.id}/status", {"status": "paused"}).status_code == 404
    assert post(c, f"/admin/ledger/{reward_id}/paid", {"payout_reference": "x"}).status_code == 404
    assert post(c, "/admin/review/rewards", {"decide": f"approve:{reward_id}"}).status_code == 404
    assert c.get(f"/admin/connections/{world.connection.id}/log").status_code == 404
    assert post(c, f"/admin/connections/{world.connection.id}/sync").status_code == 404
    assert post(c, f"/admin/connections/{world.connection.id}/retry", {"scope": "all"}).status_code == 404
    assert c.get(f"/admin/reports?program={world.program.id}").status_code == 404
    assert c.get(f"/admin/ledger?program={world.program.id}").status_code == 404
    # Bulk decisions on foreign ids change nothing and reveal nothing.
    resp = post(c, "/admin/review/rewards", {"decide": "approve:selected", "reward_id": [reward_id]}, follow_redirects=True)
    assert resp.status_code == 200
    from refstage.services import rewards

    assert rewards.list_rewards(rt, world.tenant.id, status="pending_review")[0].id == reward_id
    # Their own lists are empty.
    assert b"Fred" not in c.get("/admin/ledger").data and b"Customers" not in c.get("/admin/programs").data
