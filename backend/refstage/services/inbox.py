"""One inbox for CRM pushes (Salesforce Outbound Messages, Pipedrive webhooks).

A receiver authenticates the push (the connection's push secret, in constant time; the org or
company it claims), lets the CRM's adapter parse its wire format, and records what it names with
`record_crm_push`: stored once per delivery id, and `process_events` queued only when something new
was stored. Nothing here calls the CRM or decides anything about referrals: a push is a hint, and
`services.sync.drain_events` re-reads the records from the CRM before any reward decision."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.domain.errors import NotFound
from refstage.domain.inbox import PushedChange
from refstage.services import push_keys
from refstage.services.ports import CredentialsUnreadable, MalformedPush
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)

SALESFORCE_SOURCE = "salesforce_outbound_message"
PIPEDRIVE_SOURCE = "pipedrive_webhook"
MAX_CONNECTION_ID = 64


class PushRefused(Exception):
    """The push is not accepted; nothing was stored. `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, code: str = "refused"):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class PushNotQueued(Exception):
    """Stored, but processing could not be queued: answer 5xx so the CRM retries (the inbox dedupes)."""


@dataclass(frozen=True)
class PushReceipt:
    stored: int
    duplicates: int
    ignored: str | None = None  # an entity we do not follow (acknowledged, nothing stored)


def record_crm_push(rt: Runtime, tenant_id: str, connection_id: str, source: str,
                    changes: Sequence[PushedChange]) -> PushReceipt:
    """Store the pushed changes once per delivery id; queue processing only if something was new."""
    with rt.uow(tenant_id) as uow:
        stored = uow.inbox.add_new(connection_id, source, changes, rt.now()) if changes else 0
        uow.commit()
    if stored:
        try:
            rt.jobs.enqueue("process_events", tenant_id=tenant_id, connection_id=connection_id)
        except Exception as exc:  # noqa: BLE001 - without the job queued the CRM must retry
            log.exception("could not queue process_events for %s", connection_id)
            raise PushNotQueued(str(exc)) from exc
    return PushReceipt(stored=stored, duplicates=len(changes) - stored)


def _connection(rt: Runtime, connection_id: str) -> tuple[str, CrmConnection] | None:
    if not connection_id or len(connection_id) > MAX_CONNECTION_ID:
        return None
    with rt.uow() as uow:
        tenant_id = uow.directory.tenant_for_connection(connection_id)
    if tenant_id is None:
        return None
    try:
        with rt.uow(tenant_id) as uow:
            return tenant_id, uow.connections.get(connection_id)
    except NotFound:
        return None


def _claimed(rt: Runtime, stamp: Any):
    """The time a push claims, kept for troubleshooting only (never compared with the CRM's own)."""
    try:
        return rt.salesforce.parse_time(stamp) if isinstance(stamp, str) else None
    except ValueError:
        return None


# --- Salesforce ------------------------------------------------------------------------------------
def receive_outbound_message(rt: Runtime, connection_id: str, push_key: str, body: bytes) -> PushReceipt:
    """An Outbound Message posted to the connection's keyed endpoint. Refusals (PushRefused) say as
    little as possible: unknown connection and wrong key answer alike."""
    if len(body) > rt.salesforce.MAX_MESSAGE_BODY:
        raise PushRefused(413, "message too large", "too_large")
    found = _connection(rt, connection_id)
    if found is None or found[1].kind != CrmKind.SALESFORCE:
        push_keys.burn_equal_time(push_key)
        raise PushRefused(403, "not authorised", "not_authorised")
    tenant_id, conn = found
    if not push_keys.push_key_matches(rt, conn, push_key):
        log.warning("outbound message for connection %s refused: wrong push key", connection_id)
        raise PushRefused(403, "not authorised", "not_authorised")
    if conn.status != ConnectionStatus.ACTIVE or not conn.external_org_id:
        raise PushRefused(403, "this endpoint does not take messages now", "inactive")
    try:
        message = rt.salesforce.parse_outbound_message(body)
    except MalformedPush as exc:
        raise PushRefused(400, f"malformed message: {exc}", "malformed") from None
    if message.organization_id[:15] != conn.external_org_id[:15]:
        log.warning("outbound message for connection %s from another org refused", connection_id)
        raise PushRefused(403, "organization does not match this endpoint", "wrong_org")
    changes = []
    for note in message.notifications:
        delivery = note.notification_id or note.stamp or ""
        changes.append(PushedChange(note.object, note.id, f"{note.object}:{note.id}:{delivery}", _claimed(rt, note.stamp),
                                    {"fields": note.fields, "notification_id": note.notification_id}))
    return record_crm_push(rt, tenant_id, connection_id, SALESFORCE_SOURCE, changes)


# --- Pipedrive -------------------------------------------------------------------------------------
def receive_pipedrive_webhook(rt: Runtime, connection_id: str, user: str | None, password: str | None,
                              read_payload: Callable[[], Any], *, too_large: bool = False) -> PushReceipt:
    """A webhook delivery with the HTTP Basic credentials Pipedrive was given for this connection.
    `read_payload` returns the parsed JSON body (None if it is not JSON); it is called only once the
    credentials are checked, so a stranger's body is never parsed."""
    pd = rt.pipedrive
    found = _connection(rt, connection_id)
    expected = None
    if found is not None and found[1].kind == CrmKind.PIPEDRIVE:
        try:
            with rt.uow(found[0]) as uow:
                sealed = uow.connections.credentials(connection_id)
            expected = rt.vault.open(sealed).get("webhook") if sealed else None
        except CredentialsUnreadable:
            expected = None
    if not pd.check_basic(expected or {"user": "x", "password": "x"}, user, password) or expected is None:
        if found is not None:
            log.warning("Pipedrive webhook for connection %s refused: bad credentials", connection_id)
        raise PushRefused(401, "unauthorized", "unauthorized")
    tenant_id, conn = found  # type: ignore[misc]
    if conn.status != ConnectionStatus.ACTIVE:
        raise PushRefused(410, "this connection does not take deliveries now", "gone")
    if too_large:
        raise PushRefused(413, "the body is too large", "too_large")
    payload = read_payload()
    if payload is None:
        raise PushRefused(400, "the body is not JSON", "bad_request")
    try:
        delivery = pd.parse_delivery(payload, conn.settings.get("custom_names") or {})
    except MalformedPush as exc:
        raise PushRefused(400, str(exc), "bad_request") from None
    if delivery.record is None:
        return PushReceipt(0, 0, ignored=delivery.entity)
    rec = delivery.record
    meta = payload.get("meta") if isinstance(payload, dict) else None
    change = PushedChange(rec.object, rec.id, delivery.event_id, rec.modified_at,
                          {"fields": rec.fields, "deleted": rec.deleted, "action": delivery.action,
                           "attempt": (meta or {}).get("attempt")})
    return record_crm_push(rt, tenant_id, connection_id, PIPEDRIVE_SOURCE, [change])


__all__ = ["record_crm_push", "receive_outbound_message", "receive_pipedrive_webhook", "PushRefused",
           "PushNotQueued", "PushReceipt"]
