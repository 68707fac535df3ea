"""Turning on a Salesforce connection's push path: the backend deploys the Outbound Messages and the flows
that send them into the org (Metadata API), with the connected user as integration user and the
connection's own authenticated endpoint. Requested from the console or CLI, run by a job (nothing
external inside a request); re-run after the push key is rotated, since the endpoint URL carries it.

The state lives in the connection's settings under `push_path`: status (queued, deploying, active,
needs_activation, deployed, failed), when, the deploy id, the test level and Salesforce's own problems,
with the endpoint URL never stored or shown."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Callable

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.connections import CrmConnection, CrmKind
from refstage.domain.errors import InvalidInput
from refstage.services.ports import CrmError
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)
SETTINGS_KEY = "push_path"
JOB_NAME = "install_push_path"
STATUSES = ("queued", "deploying", "active", "needs_activation", "deployed", "failed")
# States in which the org holds Outbound Messages that post to the push key of the time of the install.
INSTALLED_STATUSES = ("active", "needs_activation", "deployed")
STALE_AFTER_ROTATION = ("the push key was rotated after this install: the org's Outbound Messages still post to the "
                        "previous address, which is refused; click Reinstall push path")
# A request older than this that never finished (a worker died) may be made again.
STALE_AFTER = dt.timedelta(minutes=45)


def endpoint_url_for(rt: Runtime, tenant_id: str, connection_id: str) -> str:
    """The per-connection Outbound Message URL (with its secret) from the push-key service.

    The one wiring point between the installer and the push keys: tests and callers may pass the URL
    explicitly instead."""
    from refstage.services import push_keys  # the authenticated push path's keys

    return push_keys.outbound_message_url(rt, tenant_id, connection_id)


def installer_for(rt: Runtime, connection: CrmConnection) -> Any:
    return rt.salesforce.push_path_installer(rt, connection)


def state(connection: CrmConnection) -> dict[str, Any]:
    return dict((connection.settings or {}).get(SETTINGS_KEY) or {})


def _record(rt: Runtime, tenant_id: str, connection_id: str, values: dict[str, Any], actor: Actor | None = None,
            action: str | None = None) -> CrmConnection:
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        before = state(conn)
        after = {**before, **values, "updated_at": rt.now().isoformat()}
        conn.settings = {**(conn.settings or {}), SETTINGS_KEY: after}
        uow.connections.save(conn)
        if action:
            summary = {k: after.get(k) for k in ("status", "deploy_id", "test_level")}
            uow.audit.append([AuditEntry(tenant_id, "connection", connection_id, action, actor or Actor.system(),
                                         rt.now(), {"status": before.get("status")}, summary)])
        uow.commit()
        return conn


def in_progress(rt: Runtime, connection: CrmConnection) -> bool:
    current = state(connection)
    if current.get("status") not in ("queued", "deploying"):
        return False
    try:
        since = dt.datetime.fromisoformat(current.get("updated_at") or "")
    except ValueError:
        return False
    now = rt.now()
    if since.tzinfo is None and now.tzinfo is not None:
        since = since.replace(tzinfo=now.tzinfo)
    return now - since < STALE_AFTER


def request_install(rt: Runtime, tenant_id: str, connection_id: str, *, actor: Actor) -> bool:
    """Queues the deploy; False when one is already queued or running. Only for an active Salesforce
    connection that knows its user's username."""
    with rt.uow(tenant_id, readonly=True) as uow:
        conn = uow.connections.get(connection_id)  # NotFound for another tenant's connection
    if conn.kind != CrmKind.SALESFORCE:
        raise InvalidInput({"connection": "the push path is installed into Salesforce orgs only"})
    if not conn.usable:
        raise InvalidInput({"connection": "connect (or reconnect) this Salesforce org first"})
    if not conn.external_username:
        raise InvalidInput({"connection": "the connection does not know its Salesforce username; reconnect it"})
    if in_progress(rt, conn):
        return False
    _record(rt, tenant_id, connection_id, {"status": "queued", "problems": []}, actor, "push_path_install_requested")
    rt.jobs.enqueue(JOB_NAME, tenant_id=tenant_id, connection_id=connection_id)
    return True


def run_install(rt: Runtime, tenant_id: str, connection_id: str, *, endpoint_url: str | None = None,
                installer_factory: Callable[[Runtime, CrmConnection], Any] | None = None,
                retried_by_job: bool = True) -> dict[str, Any]:
    """The job: deploy, wait, confirm the flows are active, record the outcome. Transient failures raise
    (the job retries); anything Salesforce refused is recorded as `failed` with its own words. Run without a
    job (the CLI), a transient failure is `failed` too: left `queued`, nothing would retry it."""
    with rt.uow(tenant_id, readonly=True) as uow:
        conn = uow.connections.get(connection_id)
    if conn.kind != CrmKind.SALESFORCE or not conn.usable:
        return _record(rt, tenant_id, connection_id, {"status": "failed", "problems": [
            "the connection is not an active Salesforce connection"]}, action="push_path_install_failed").settings[SETTINGS_KEY]
    try:
        url = endpoint_url or endpoint_url_for(rt, tenant_id, connection_id)
    except ImportError:  # a build without the authenticated push path has no URL to deploy
        return _record(rt, tenant_id, connection_id, {"status": "failed", "problems": [
            "this Refstage build has no push keys, so there is no endpoint to deploy"]},
            action="push_path_install_failed").settings[SETTINGS_KEY]
    except InvalidInput as exc:
        problems = [m for msgs in exc.errors.values() for m in msgs]
        return _record(rt, tenant_id, connection_id, {"status": "failed", "problems": problems},
                       action="push_path_install_failed").settings[SETTINGS_KEY]
    _record(rt, tenant_id, connection_id, {"status": "deploying"})
    try:
        outcome = (installer_factory or installer_for)(rt, conn).install(url)
    except CrmError as exc:
        if exc.transient and retried_by_job:
            _record(rt, tenant_id, connection_id, {"status": "queued", "problems": [_scrub(str(exc), url)]})
            raise
        return _record(rt, tenant_id, connection_id, {"status": "failed", "problems": [_scrub(str(exc), url)]},
                       action="push_path_install_failed").settings[SETTINGS_KEY]
    values = outcome.as_dict()
    values["problems"] = [_scrub(p, url) for p in values["problems"]]
    values["installed_at"] = rt.now().isoformat() if outcome.status != "failed" else state(conn).get("installed_at")
    action = "push_path_install_failed" if outcome.status == "failed" else "push_path_installed"
    return _record(rt, tenant_id, connection_id, values, action=action).settings[SETTINGS_KEY]


def _scrub(text: str, endpoint_url: str) -> str:
    """Salesforce may quote the endpoint back; it carries the push secret."""
    return text.replace(endpoint_url, "<endpoint URL>") if endpoint_url else text
