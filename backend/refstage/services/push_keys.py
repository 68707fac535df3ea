"""Per-connection push secrets: what proves a push came from the CRM this connection is for.

Salesforce: Outbound Messages cannot sign or authenticate themselves to us (no custom headers, and
an org-wide client certificate is the only other option), so the secret travels in the endpoint URL as
a path segment: `{base_url}/webhooks/salesforce/outbound-message/{connection_id}/{push_key}`. The key
is 256 random bits, generated at connect, sealed with the Vault in the connection's settings, compared
in constant time, and never logged. Pipedrive: the webhook is created with HTTP Basic credentials (the
same strength) that Pipedrive sends with every delivery.

Rotation replaces the secret at once; the old one stops working immediately. Pushes are hints (the
periodic sync reads the same changes), so the gap until the CRM side is updated costs latency only."""

from __future__ import annotations

import hmac
import secrets

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.connections import CrmConnection, CrmKind
from refstage.domain.errors import InvalidInput
from refstage.services import push_path
from refstage.services.runtime import Runtime

PUSH_KEY_SETTING = "push_key"
OUTBOUND_MESSAGE_PATH = "/webhooks/salesforce/outbound-message"
_DUMMY_KEY = secrets.token_urlsafe(32)  # compared against when there is nothing to compare, for equal work


def new_push_key() -> str:
    """256 random bits, URL-safe (a path segment Salesforce accepts as is)."""
    return secrets.token_urlsafe(32)


def issue_if_missing(rt: Runtime, conn: CrmConnection) -> bool:
    """Give a Salesforce connection its push key (at connect; kept across reconnects). The caller saves."""
    if conn.kind != CrmKind.SALESFORCE or conn.settings.get(PUSH_KEY_SETTING):
        return False
    conn.settings[PUSH_KEY_SETTING] = rt.vault.seal({"key": new_push_key()})
    return True


def _key_of(rt: Runtime, conn: CrmConnection) -> str | None:
    sealed = conn.settings.get(PUSH_KEY_SETTING)
    if not sealed:
        return None
    try:
        return str(rt.vault.open(sealed).get("key") or "") or None
    except Exception:  # noqa: BLE001 - an unreadable key (Vault keys changed) authenticates nobody
        return None


def push_key_matches(rt: Runtime, conn: CrmConnection, presented: str | None) -> bool:
    """Constant-time check of a presented key (same work whether or not the connection has one)."""
    expected = _key_of(rt, conn)
    ok = hmac.compare_digest((expected or _DUMMY_KEY).encode(), (presented or "").encode())
    return ok and expected is not None


def burn_equal_time(presented: str | None) -> None:
    """The comparison an unknown connection would have cost, so timing does not tell which ids exist."""
    hmac.compare_digest(_DUMMY_KEY.encode(), (presented or "").encode())


def _base_url(rt: Runtime) -> str:
    return rt.settings.base_url.rstrip("/")  # REFSTAGE_BASE_URL: must be reachable from Salesforce


def outbound_message_url(rt: Runtime, tenant_id: str, connection_id: str) -> str:
    """The endpoint URL this Salesforce connection's Outbound Messages must post to. A connection made
    before push keys existed gets its key here (once)."""
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        if conn.kind != CrmKind.SALESFORCE:
            raise InvalidInput({"connection": "Outbound Messages are for Salesforce connections"})
        if issue_if_missing(rt, conn):
            uow.connections.save(conn)
            uow.commit()
        key = _key_of(rt, conn)
    if key is None:
        raise InvalidInput({"connection": "this connection's push key cannot be read; rotate it"})
    return f"{_base_url(rt)}{OUTBOUND_MESSAGE_PATH}/{connection_id}/{key}"


def endpoint_urls(rt: Runtime, tenant_id: str) -> dict[str, str]:
    """{connection id: Outbound Message endpoint URL} of the tenant's Salesforce connections that have a key
    (for the console; reads only)."""
    with rt.uow(tenant_id, readonly=True) as uow:
        conns = [c for c in uow.connections.list() if c.kind == CrmKind.SALESFORCE]
    out = {}
    for conn in conns:
        key = _key_of(rt, conn)
        if key:
            out[conn.id] = f"{_base_url(rt)}{OUTBOUND_MESSAGE_PATH}/{conn.id}/{key}"
    return out


def _mark_installed_push_path_stale(conn: CrmConnection) -> None:
    """An installed push path keeps posting to the retired URL until it is reinstalled: say so on its card
    (a successful reinstall replaces the problems list)."""
    installed = dict(conn.settings.get(push_path.SETTINGS_KEY) or {})
    problems = list(installed.get("problems") or [])
    if installed.get("status") in push_path.INSTALLED_STATUSES and push_path.STALE_AFTER_ROTATION not in problems:
        conn.settings[push_path.SETTINGS_KEY] = {**installed, "problems": [*problems, push_path.STALE_AFTER_ROTATION]}


def rotate_push_key(rt: Runtime, tenant_id: str, connection_id: str, actor: Actor) -> str | None:
    """A new push secret; the old one stops working now. Salesforce: returns the new endpoint URL (the
    org's Outbound Messages must be pointed at it: re-run the push-path installer). Pipedrive: new HTTP
    Basic credentials; the `provision_push` job re-creates the webhook with them. Audited (never the secret)."""
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        if conn.kind == CrmKind.SALESFORCE:
            had = bool(conn.settings.get(PUSH_KEY_SETTING))
            conn.settings[PUSH_KEY_SETTING] = rt.vault.seal({"key": new_push_key()})
            _mark_installed_push_path_stale(conn)
            uow.connections.save(conn)
        elif conn.kind == CrmKind.PIPEDRIVE:
            sealed = uow.connections.credentials(connection_id)
            if not sealed:
                raise InvalidInput({"connection": "this connection is not connected; connect it first"})
            secret = rt.vault.open(sealed)
            had = bool(secret.get("webhook"))
            uow.connections.store_credentials(connection_id, rt.vault.seal({**secret, "webhook": rt.pipedrive.new_basic_credentials()}))
        else:  # pragma: no cover - a CRM kind without pushes
            raise InvalidInput({"connection": "this connection takes no pushes"})
        uow.audit.append([AuditEntry(tenant_id, "connection", connection_id, "push_key_rotated", actor, now,
                                     {"push_key": "set" if had else "none"}, {"push_key": "rotated"})])
        uow.commit()
    if conn.kind == CrmKind.PIPEDRIVE:
        rt.jobs.enqueue("provision_push", tenant_id=tenant_id, connection_id=connection_id)
        return None
    return outbound_message_url(rt, tenant_id, connection_id)


__all__ = ["outbound_message_url", "rotate_push_key", "push_key_matches", "issue_if_missing", "new_push_key",
           "PUSH_KEY_SETTING"]
