"""Disconnect → reconnect against the emulated org: the same org comes back as the same connection
(tokens replaced, programs kept), whether the admin presses Reconnect on the card or Connect again
from scratch; no orphan "pending" rows; no 500 on the (tenant, kind, org) unique key; the CLI says
what is missing instead of a traceback; a program on a disconnected CRM cannot go live."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from refstage.domain.audit import Actor
from refstage.domain.errors import InvalidInput
from refstage.services import connections, programs, salesforce_connect
from tests.oauth_support import console_session
from tests.salesforce.helpers import browser_consent, callback_query, setup_world

ACTOR = Actor.system("test")
HTML = {"Accept": "text/html"}


def _rows(rt, tenant_id):
    with rt.uow(tenant_id) as uow:
        return uow.connections.list()


def _tokens(rt, tenant_id, connection_id):
    with rt.uow(tenant_id) as uow:
        sealed = uow.connections.credentials(connection_id)
    return rt.vault.open(sealed) if sealed else None


def _consent_and_callback(rt, client, started, headers=None):
    q = callback_query(browser_consent(started.authorize_url))
    return client.get("/salesforce/oauth/callback", query_string=q, headers=headers or {})


@pytest.mark.parametrize("how", ["reconnect_button", "connect_from_scratch"])
def test_disconnect_then_reconnect_same_org_same_connection(rt, client, emu, how):
    tenant_id, connection_id, program_id = setup_world(rt, client)
    first = _tokens(rt, tenant_id, connection_id)
    connections.disconnect(rt, tenant_id, connection_id, actor=ACTOR)
    assert _tokens(rt, tenant_id, connection_id) is None
    with pytest.raises(InvalidInput) as refused:  # a live program stays live, but a paused one cannot go live again
        programs.set_program_status(rt, tenant_id, program_id, "paused", ACTOR)
        programs.set_program_status(rt, tenant_id, program_id, "live", ACTOR)
    assert "reconnect it before going live" in str(refused.value.errors["connection_id"])

    existing = connection_id if how == "reconnect_button" else None
    host = rt.settings.extra["login_host"]
    # an abandoned attempt first (the admin closed the tab), then the real one: still one pending row at most
    owner = console_session(client, tenant_id)
    salesforce_connect.start_connect(rt, tenant_id, actor=ACTOR, owner=owner, name="Acme org", login_host=host,
                                     connection_id=existing)
    started = salesforce_connect.start_connect(rt, tenant_id, actor=ACTOR, owner=owner, name="Acme org", login_host=host,
                                               connection_id=existing)
    assert len([c for c in _rows(rt, tenant_id) if c.status.value == "pending"]) <= 1
    r = _consent_and_callback(rt, client, started, HTML)
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/connections"), r.get_data(as_text=True)

    rows = _rows(rt, tenant_id)
    assert [(c.id, c.status.value) for c in rows] == [(connection_id, "active")]  # same row, no orphan
    second = _tokens(rt, tenant_id, connection_id)
    assert second["access_token"] and second["access_token"] != first["access_token"]
    assert programs.get_program(rt, tenant_id, program_id).connection_id == connection_id
    programs.set_program_status(rt, tenant_id, program_id, "live", ACTOR)  # usable again
    assert connections.alerts(rt, tenant_id) == []


def test_callback_json_reconnect_answers_the_connection_not_500(rt, client, emu):
    tenant_id, connection_id, _ = setup_world(rt, client)
    connections.disconnect(rt, tenant_id, connection_id, actor=ACTOR)
    started = salesforce_connect.start_connect(rt, tenant_id, actor=ACTOR, owner=console_session(client, tenant_id),
                                               login_host=rt.settings.extra["login_host"])
    assert started.connection_id != connection_id  # a fresh pending row until we know the org
    r = _consent_and_callback(rt, client, started)
    assert r.status_code == 200 and r.get_json()["connection_id"] == connection_id
    assert len(_rows(rt, tenant_id)) == 1


def test_alert_names_the_programs_on_a_disconnected_crm(rt, client, emu):
    tenant_id, connection_id, _ = setup_world(rt, client)
    assert connections.alerts(rt, tenant_id) == []
    connections.disconnect(rt, tenant_id, connection_id, actor=ACTOR)
    [alert] = connections.alerts(rt, tenant_id)
    assert alert.problem == "disconnected" and alert.programs == ("Customers",) and "Customers" in alert.message


def test_cli_reconnect_without_settings_says_what_is_missing(rt, client, emu, monkeypatch):
    import dataclasses

    from refstage.services import connection_cli

    tenant_id, connection_id, _ = setup_world(rt, client)
    bare = dataclasses.replace(rt, settings=dataclasses.replace(rt.settings, extra={}))
    for env in ("REFSTAGE_SALESFORCE_CLIENT_ID", "REFSTAGE_SALESFORCE_CLIENT_SECRET"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr(connection_cli, "_runtime", lambda: bare)
    result = CliRunner().invoke(connection_cli.connection, ["add-salesforce", "acme", "--reconnect", connection_id])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "REFSTAGE_SALESFORCE_CLIENT_ID" in result.output and "README" in result.output

    monkeypatch.setattr(connection_cli, "_runtime", lambda: rt)  # configured: the URL to open, for the same connection
    result = CliRunner().invoke(connection_cli.connection, ["add-salesforce", "acme", "--reconnect", connection_id,
                                                 "--login-host", rt.settings.extra["login_host"]])
    assert result.exit_code == 0 and f"connection {connection_id} is pending" in result.output, result.output
    url = result.output.split("\n\n")[1].strip().splitlines()[0]
    redirect = browser_consent(url)
    result = CliRunner().invoke(connection_cli.connection, ["finish", redirect])
    assert result.exit_code == 0 and f"connected {connection_id}" in result.output, result.output
    result = CliRunner().invoke(connection_cli.connection, ["finish", redirect])  # the same answer twice: one line, no traceback
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
