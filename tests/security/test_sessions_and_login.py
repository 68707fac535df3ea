"""Findings 6 and 7: no login throttling (40 wrong passwords in 5 s, then the right one worked) and
sessions that survived sign-out (a cookie captured before logout still opened /admin/users)."""

from __future__ import annotations

from sqlalchemy import select

from refstage.adapters.db import models as m
from refstage.services import sign_in
from tests.admin.conftest import PASSWORD, csrf, post, sign_in as form_sign_in


def _cookie(client) -> str:
    return client.get_cookie("session").value


def _replay(app, cookie: str):
    """A fresh browser (the attacker's) carrying only the captured cookie."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief


def test_a_cookie_captured_before_logout_opens_nothing_afterwards(app, admin_client, rt):
    captured = _cookie(admin_client)
    assert _replay(app, captured).get("/admin/users").status_code == 200  # the capture works while signed in
    assert post(admin_client, "/admin/logout").status_code == 302
    resp = _replay(app, captured).get("/admin/users")
    assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"]
    with rt.session_factory() as session:
        assert session.scalars(select(m.AdminSessionRow)).all() == []


def test_a_password_change_ends_every_other_session(app, people, rt):
    laptop, phone = app.test_client(), app.test_client()
    assert form_sign_in(laptop, "admin@acme.test").status_code == 302
    assert form_sign_in(phone, "admin@acme.test").status_code == 302
    captured = _cookie(phone)
    resp = post(laptop, "/admin/account/password", {"current_password": PASSWORD, "new_password": "a new long secret"})
    assert resp.status_code == 302
    assert laptop.get("/admin/users").status_code == 200  # the browser that changed it keeps a fresh session
    assert phone.get("/admin/users").status_code == 302
    assert _replay(app, captured).get("/admin/users").status_code == 302
    assert form_sign_in(app.test_client(), "admin@acme.test", PASSWORD).status_code == 401
    assert form_sign_in(app.test_client(), "admin@acme.test", "a new long secret").status_code == 302


def test_a_wrong_current_password_changes_nothing(admin_client, people, rt):
    resp = post(admin_client, "/admin/account/password", {"current_password": "not it at all", "new_password": "another secret"})
    assert resp.status_code == 422
    assert admin_client.get("/admin/users").status_code == 200
    assert form_sign_in(admin_client.application.test_client(), "admin@acme.test", PASSWORD).status_code == 302


def test_forty_wrong_passwords_then_the_right_one_is_refused_while_locked(client, people, rt, clock):
    for _ in range(40):
        clock.advance(seconds=0.1)
        resp = form_sign_in(client, "admin@acme.test", "wrong password!")
        assert resp.status_code in (401, 429)
    resp = form_sign_in(client, "admin@acme.test", PASSWORD)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
    assert b"Too many failed attempts" in resp.data
    assert client.get("/admin/users").status_code == 302  # not signed in
    with rt.uow(people.admin.tenant_id) as uow:
        locked = [e for e in uow.audit.list(entity_type="user", entity_id=people.admin.id) if e.action == "sign_in_locked"]
    assert locked and locked[0].after["failures"] >= sign_in.ACCOUNT_FREE_FAILURES
    # From another address the account is still locked; after the lock runs out the right password works.
    other = client.application.test_client()
    assert form_sign_in(other, "admin@acme.test", PASSWORD).status_code == 429
    clock.advance(seconds=sign_in.MAX_LOCK_SECONDS + 1)
    assert form_sign_in(other, "admin@acme.test", PASSWORD).status_code == 302


def test_backoff_doubles_and_one_address_is_throttled_across_accounts(client, people, rt, clock):
    assert sign_in.lock_seconds(4, 5) == 0
    assert [sign_in.lock_seconds(n, 5) for n in (5, 6, 7)] == [30, 60, 120]
    assert sign_in.lock_seconds(40, 5) == sign_in.MAX_LOCK_SECONDS
    # One address spraying many accounts: each account stays under its own allowance, the address does not.
    statuses = []
    for i in range(sign_in.ADDRESS_FREE_FAILURES):
        clock.advance(seconds=1)
        statuses.append(form_sign_in(client, f"someone{i}@acme.test", "wrong password!").status_code)
    assert set(statuses) == {401}  # the last of these set the address's lock
    assert form_sign_in(client, "admin@acme.test", PASSWORD).status_code == 429


def test_login_is_checked_before_any_password_while_locked(client, people, rt, clock, monkeypatch):
    for _ in range(sign_in.ACCOUNT_FREE_FAILURES):
        form_sign_in(client, "admin@acme.test", "wrong password!")
    calls = []
    monkeypatch.setattr(sign_in.tenants, "authenticate", lambda *a: calls.append(a))
    assert form_sign_in(client, "admin@acme.test", PASSWORD).status_code == 429
    assert calls == []
    assert csrf(client)
