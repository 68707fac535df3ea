"""Finding 5: the Salesforce connect callback was not bound to the admin's browser session. Tenant B's
admin starts connecting, sends the Salesforce approval link to another org's admin, who approves; the
callback then completed with no cookies and tenant B held tokens for that org. A callback must come
from the console session that started the flow (same tenant, same session): from a browser with no
cookies, or signed in to another workspace, it is refused and changes nothing. Pipedrive's connect
and "Sign in with Salesforce" are held to the same rule."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from refstage_devkit.emulators.salesforce.consent import browser_consent
from refstage.services import tenants
from tests.salesforce.conftest import emu, settings, sf_emulator  # noqa: F401 - the emulated org fixtures
from tests.security.support_identity import csrf, side_effects, sign_in

PASSWORD = "correct horse battery"


@pytest.fixture
def people(rt):
    attacker_tenant = tenants.create_tenant(rt, "Tenant B", "tenant-b")
    victim_tenant = tenants.create_tenant(rt, "Tenant A", "tenant-a")
    tenants.add_user(rt, attacker_tenant.id, "admin@b.test", "admin", PASSWORD)
    tenants.add_user(rt, victim_tenant.id, "admin@a.test", "admin", PASSWORD)
    return attacker_tenant, victim_tenant


def _callback_query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_a_salesforce_approval_completed_elsewhere_is_refused(app, rt, emu, people):
    attacker_tenant, _ = people
    attacker = app.test_client()
    sign_in(attacker, "admin@b.test", PASSWORD)
    started = attacker.post("/admin/connections/connect", data={"login_host": emu.base_url, "csrf_token": csrf(attacker)})
    assert started.status_code == 302 and started.headers["Location"].startswith(emu.base_url)
    # The other org's admin approves the link they were sent; their browser comes back to Refstage.
    query = _callback_query(browser_consent(started.headers["Location"]))
    before = side_effects(rt)
    no_cookies = app.test_client()
    refused = no_cookies.get("/salesforce/oauth/callback", query_string=query, headers={"Accept": "application/json"})
    victim = app.test_client()
    sign_in(victim, "admin@a.test", PASSWORD)
    also_refused = victim.get("/salesforce/oauth/callback", query_string=query, headers={"Accept": "application/json"})
    assert refused.status_code in (400, 403) and also_refused.status_code in (400, 403)
    assert side_effects(rt) == before
    with rt.uow(attacker_tenant.id) as uow:
        (conn,) = uow.connections.list()
        assert conn.status.value == "pending" and conn.external_org_id is None
        assert uow.connections.credentials(conn.id) is None
    # The session that started it can still finish it: the refusals spent nothing.
    finished = attacker.get("/salesforce/oauth/callback", query_string=query, headers={"Accept": "application/json"})
    assert finished.status_code == 200, finished.get_data(as_text=True)


def test_sign_in_with_salesforce_needs_the_session_that_started_it(app, rt, emu, people):
    attacker = app.test_client()
    attacker.get("/admin/login")
    started = attacker.post("/admin/login/salesforce", data={"login_host": emu.base_url, "csrf_token": csrf(attacker)})
    assert started.status_code == 302
    query = _callback_query(browser_consent(started.headers["Location"]))
    before = side_effects(rt)
    other = app.test_client()
    refused = other.get("/admin/login/salesforce/callback", query_string=query)
    assert refused.status_code in (400, 401, 403)
    with other.session_transaction() as s:
        assert "admin_user_id" not in s
    assert side_effects(rt) == before


def test_a_pipedrive_callback_from_another_session_or_tenant_changes_nothing(rt, people):
    """The same rule in the Pipedrive connect service: refused before the code is exchanged (the OAuth host
    here is unreachable on purpose: reaching it would fail differently)."""
    from refstage.domain.audit import Actor
    from refstage.services import pipedrive_connect
    from refstage.services.connections import ConnectFailed, FlowOwner

    attacker_tenant, victim_tenant = people
    rt.settings.extra.update({"pipedrive_client_id": "app", "pipedrive_client_secret": "platform-secret"})
    owner = FlowOwner.browser(attacker_tenant.id, "the starting session's secret")
    started = pipedrive_connect.start_connect(rt, attacker_tenant.id, actor=Actor.system("b admin"), owner=owner)
    before = side_effects(rt)
    for stranger in (FlowOwner.browser(victim_tenant.id, "the starting session's secret"),
                     FlowOwner.browser(attacker_tenant.id, "another session"), FlowOwner.terminal()):
        with pytest.raises(ConnectFailed):
            pipedrive_connect.finish_connect(rt, "code-from-the-victim", started.state, owner=stranger)
    assert side_effects(rt) == before
    with rt.uow(attacker_tenant.id) as uow:
        assert uow.connections.get(started.connection_id).settings.get("oauth_pending")  # not spent


def test_the_api_hands_out_the_console_link_not_a_state(app, rt, emu, people):
    """An API key has no browser session: it gets a pending connection and the console's authorize page,
    which only a signed-in admin of that workspace can turn into a Salesforce approval link."""
    from refstage.domain.audit import Actor

    attacker_tenant, _ = people
    key = tenants.create_api_key(rt, attacker_tenant.id, "b", Actor.system("b admin"))
    api = app.test_client()
    started = api.post("/salesforce/connections", json={"login_host": emu.base_url}, headers={"Authorization": f"Bearer {key}"})
    assert started.status_code == 201
    link = started.get_json()["authorize_url"]
    path = urlsplit(link).path
    assert link == f"{rt.settings.base_url}{path}" and path.endswith("/authorize") and "state" not in link
    assert app.test_client().get(path).status_code == 302  # nobody signed in: to the sign-in page
    assert "/admin/login" in app.test_client().get(path).headers["Location"]
    victim = app.test_client()
    sign_in(victim, "admin@a.test", PASSWORD)
    assert victim.get(path).status_code == 404  # another workspace's connection
    admin = app.test_client()
    sign_in(admin, "admin@b.test", PASSWORD)
    to_salesforce = admin.get(path)
    assert to_salesforce.status_code == 302 and to_salesforce.headers["Location"].startswith(emu.base_url)
    query = _callback_query(browser_consent(to_salesforce.headers["Location"]))
    assert admin.get("/salesforce/oauth/callback", query_string=query, headers={"Accept": "application/json"}).status_code == 200


def test_a_flow_started_in_the_terminal_finishes_only_there(app, rt, emu, people, monkeypatch):
    from click.testing import CliRunner

    from refstage.services import connection_cli

    attacker_tenant, _ = people
    monkeypatch.setattr(connection_cli, "_runtime", lambda: rt)
    runner = CliRunner()
    started = runner.invoke(connection_cli.connection, ["add-salesforce", "tenant-b", "--login-host", emu.base_url])
    assert started.exit_code == 0, started.output
    authorize_url = next(line for line in started.output.splitlines() if line.startswith(emu.base_url))
    location = browser_consent(authorize_url)
    signed_in = app.test_client()
    sign_in(signed_in, "admin@b.test", PASSWORD)  # even the workspace's own admin, in a browser
    before = side_effects(rt)
    web = signed_in.get("/salesforce/oauth/callback", query_string=_callback_query(location), headers={"Accept": "application/json"})
    assert web.status_code in (400, 403) and side_effects(rt) == before
    finished = runner.invoke(connection_cli.connection, ["finish", location])
    assert finished.exit_code == 0 and "connected" in finished.output, finished.output


def test_a_cookie_captured_before_sign_out_cannot_finish_the_flow(app, rt, emu, people):
    """The console's server-side session (finding 7) guards OAuth callbacks too: a copy of the cookie
    taken while the admin was signed in, replayed after they signed out, finishes nothing."""
    attacker_tenant, _ = people
    admin = app.test_client()
    sign_in(admin, "admin@b.test", PASSWORD)
    started = admin.post("/admin/connections/connect", data={"login_host": emu.base_url, "csrf_token": csrf(admin)})
    assert started.status_code == 302
    query = _callback_query(browser_consent(started.headers["Location"]))
    captured = admin.get_cookie("session").value
    admin.post("/admin/logout", data={"csrf_token": csrf(admin)})
    before = side_effects(rt)
    thief = app.test_client()
    thief.set_cookie("session", captured)
    refused = thief.get("/salesforce/oauth/callback", query_string=query, headers={"Accept": "application/json"})
    assert refused.status_code in (400, 403), refused.get_data(as_text=True)
    assert side_effects(rt) == before
    with rt.uow(attacker_tenant.id) as uow:
        (conn,) = uow.connections.list()
        assert conn.status.value == "pending" and uow.connections.credentials(conn.id) is None
