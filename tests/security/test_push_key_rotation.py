"""Rotating a connection's push key from the admin console (a confirmed POST) and the CLI: the old
endpoint URL is refused at once, the new one works, the rotation is audited without the secret, and
another tenant's admin cannot rotate it."""

from __future__ import annotations

from urllib.parse import urlsplit

from click.testing import CliRunner

from refstage.services.push_keys import outbound_message_url
from tests.admin.conftest import admin_client, other_client, people, post  # noqa: F401
from tests.integration.conftest import fake_crm, world  # noqa: F401
from tests.security.push_support import envelope, inbox_count


def _message(world, n: int) -> bytes:
    return envelope(world.connection.external_org_id, [("Lead", "00Q000000000001AAA", {"Status": "Working"})], n)


def _path(rt, world) -> str:
    return urlsplit(outbound_message_url(rt, world.tenant.id, world.connection.id)).path


def test_console_rotation_needs_confirmation_and_retires_the_old_url(rt, world, admin_client, other_client, client):
    old = _path(rt, world)
    page = admin_client.get("/admin/connections").get_data(as_text=True)
    assert old in page and "Rotate push key" in page
    # Without the ticked confirmation nothing changes.
    post(admin_client, f"/admin/connections/{world.connection.id}/rotate-push-key")
    assert _path(rt, world) == old
    # Another tenant's admin cannot rotate it.
    r = post(other_client, f"/admin/connections/{world.connection.id}/rotate-push-key", {"confirm": "yes"})
    assert r.status_code == 404 and _path(rt, world) == old
    r = post(admin_client, f"/admin/connections/{world.connection.id}/rotate-push-key", {"confirm": "yes"})
    assert r.status_code in (302, 303)
    new = _path(rt, world)
    assert new != old and new in admin_client.get("/admin/connections").get_data(as_text=True)
    events = inbox_count(rt)
    assert client.post(old, data=_message(world, 1), content_type="text/xml").status_code == 403
    assert inbox_count(rt) == events
    assert client.post(new, data=_message(world, 2), content_type="text/xml").status_code == 200
    with rt.uow(world.tenant.id) as uow:
        entries = [e for e in uow.audit.list(entity_type="connection", entity_id=world.connection.id)
                   if e.action == "push_key_rotated"]
    assert len(entries) == 1 and entries[0].actor.label == "admin@acme.test"
    assert new.rsplit("/", 1)[1] not in repr(entries[0]) and old.rsplit("/", 1)[1] not in repr(entries[0])


def test_cli_rotation_prints_the_new_url(rt, world, monkeypatch):
    from refstage.services import connection_cli

    monkeypatch.setattr(connection_cli, "_runtime", lambda: rt)
    old = _path(rt, world)
    refused = CliRunner().invoke(connection_cli.connection, ["rotate-push-key", "acme", world.connection.id], input="n\n")
    assert refused.exit_code != 0 and _path(rt, world) == old
    done = CliRunner().invoke(connection_cli.connection, ["rotate-push-key", "acme", world.connection.id, "--yes"])
    assert done.exit_code == 0, done.output
    new = _path(rt, world)
    assert new != old and new in done.output
    shown = CliRunner().invoke(connection_cli.connection, ["push-url", "acme", world.connection.id])
    assert shown.exit_code == 0 and new in shown.output


def test_the_push_key_never_reaches_a_log(rt, world, client, caplog):
    import datetime as dt
    import logging
    import types

    from gunicorn.config import Config

    from refstage.logs import JsonFormatter
    from refstage.web.access_log import RedactingAccessLogger

    path = _path(rt, world)
    key = path.rsplit("/", 1)[1]
    caplog.set_level(logging.DEBUG)
    client.post(path, data=_message(world, 1), content_type="text/xml")
    client.post(path.replace(key, "wrong"), data=_message(world, 2), content_type="text/xml")
    client.post(path, data=envelope("00D000000000999AAA", [("Lead", "00Q000000000001AAA", {})], 3), content_type="text/xml")
    assert caplog.records and key not in caplog.text
    # What the app and gunicorn would write for a request line carrying the key.
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "unhandled error on POST %s", (path,), None)
    assert key not in JsonFormatter().format(record)
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": path, "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1"}
    atoms = RedactingAccessLogger(Config()).atoms(types.SimpleNamespace(status="200 OK", sent=1, headers=[]),
                                                 types.SimpleNamespace(headers=[]),
                                                 environ, dt.timedelta(seconds=0))
    assert all(key not in str(v) for v in atoms.values()) and "[redacted]" in atoms["r"]


def test_rotation_marks_an_installed_push_path_until_it_is_reinstalled(rt, world, admin_client):
    """Found walking docs/install-salesforce.md: after a rotation the card still said 'active' while the org's
    Outbound Messages posted to the retired URL and were refused. It now says so until a reinstall succeeds."""
    from refstage.adapters.crm.salesforce.push_installer import InstallOutcome
    from refstage.services import push_path

    with rt.uow(world.tenant.id) as uow:
        conn = uow.connections.get(world.connection.id)
        conn.external_username = "ada@acme.example"
        conn.settings = {**(conn.settings or {}), push_path.SETTINGS_KEY: {"status": "active", "problems": []}}
        uow.connections.save(conn)
        uow.commit()
    assert "still post to the previous address" not in admin_client.get("/admin/connections").get_data(as_text=True)

    post(admin_client, f"/admin/connections/{world.connection.id}/rotate-push-key", {"confirm": "yes"})
    post(admin_client, f"/admin/connections/{world.connection.id}/rotate-push-key", {"confirm": "yes"})
    page = admin_client.get("/admin/connections").get_data(as_text=True)
    assert page.count("still post to the previous address") == 1 and "Reinstall push path" in page

    deployed_to = []

    class Installer:
        def __init__(self, _rt, _connection):
            pass

        def install(self, endpoint_url):
            deployed_to.append(endpoint_url)
            return InstallOutcome("active", "0Af000000000001AAA", "NoTestRun", False)

    state = push_path.run_install(rt, world.tenant.id, world.connection.id, installer_factory=Installer)
    assert state["status"] == "active" and state["problems"] == []
    assert deployed_to == [outbound_message_url(rt, world.tenant.id, world.connection.id)]
    assert "still post to the previous address" not in admin_client.get("/admin/connections").get_data(as_text=True)


def test_rotation_before_any_install_adds_nothing_to_the_push_path(rt, world, admin_client):
    from refstage.services import push_path

    post(admin_client, f"/admin/connections/{world.connection.id}/rotate-push-key", {"confirm": "yes"})
    with rt.uow(world.tenant.id) as uow:
        assert push_path.SETTINGS_KEY not in (uow.connections.get(world.connection.id).settings or {})
