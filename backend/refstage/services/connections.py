"""A tenant's CRM connections, whichever the CRM: what the Salesforce and Pipedrive connectors
(services.salesforce_connect, services.pipedrive_connect) share — the OAuth flow's state and owner,
the pending connection a connect starts from, reconnecting the same org, recording a connection as
connected or disconnected — and listing, alerts and the dispatch of a connection to its connector.

The OAuth state is `<connection id>.<secret>`: the id finds the tenant, the secret (stored only as a
hash, single-use, ten minutes) proves the callback belongs to the flow this tenant started. A callback
can never touch another tenant's connection.

The state alone is not enough: whoever holds the authorize URL could have someone else approve it (a
tenant sends its URL to another org's admin and collects that org's tokens). So every flow has a
`FlowOwner`, and only the owner may finish it: the console session (its tenant, and a secret kept in
that session) that started it, or the operator's terminal (`refstage connection`, the demo seed). A
callback from anyone else is refused before the code is exchanged, and changes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.domain.errors import InvalidInput
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)
STATE_TTL = dt.timedelta(minutes=10)
PENDING_KEY = "oauth_pending"


BROWSER, TERMINAL = "browser", "terminal"


@dataclass(frozen=True)
class FlowOwner:
    """Who may finish an OAuth flow: a signed-in console session of the tenant (`browser`), or a
    trusted process on the server (`terminal`: the CLI, the demo seed), never a web callback."""

    channel: str
    tenant_id: str | None = None
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def browser(cls, tenant_id: str, secret: str) -> "FlowOwner":
        if not tenant_id or not secret:
            raise ValueError("a browser owner needs the session's tenant and secret")
        return cls(BROWSER, tenant_id, secret)

    @classmethod
    def terminal(cls) -> "FlowOwner":
        return cls(TERMINAL)

    def sealed_fields(self) -> dict[str, str | None]:
        return {"channel": self.channel, "owner_hash": _hash(self.secret) if self.secret else None}

    def owns(self, pending: dict, tenant_id: str) -> bool:
        if pending.get("channel") != self.channel:
            return False
        if self.channel == TERMINAL:
            return True
        return (self.tenant_id == tenant_id and bool(self.secret) and bool(pending.get("owner_hash"))
                and hmac.compare_digest(str(pending["owner_hash"]), _hash(self.secret or "")))


NOT_YOURS = ("this sign-in was not started from this console session; sign in to Refstage as an admin of the "
             "workspace and start connecting again from Connections")
UNKNOWN_SIGN_IN = "unknown or expired sign-in; start connecting again"


@dataclass(frozen=True)
class ConnectStart:
    connection_id: str
    authorize_url: str
    state: str


class ConnectFailed(InvalidInput):
    def __init__(self, message: str):
        super().__init__({"connection": message})


@dataclass(frozen=True)
class PendingFlow:
    """An OAuth callback whose state matched a live flow its owner started; `data` is what the start sealed."""
    tenant_id: str
    connection_id: str
    sealed: str
    data: dict[str, Any]

    @property
    def actor(self) -> Actor:
        return Actor.system(self.data.get("actor") or "oauth")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _audit(uow, tenant_id: str, conn: CrmConnection, action: str, actor: Actor, at: dt.datetime,
           before: dict | None, after: dict | None, reason: str | None = None) -> None:
    uow.audit.append([AuditEntry(tenant_id, "connection", conn.id, action, actor, at, before, after, reason)])


def _label(kind: CrmKind) -> str:
    return kind.value.capitalize()


def check_owner(owner: FlowOwner, tenant_id: str) -> None:
    """A console session starts flows for its own tenant only."""
    if owner.channel == BROWSER and owner.tenant_id != tenant_id:
        raise InvalidInput({"connection": NOT_YOURS})


def connection_to_connect(rt: Runtime, uow, tenant_id: str, kind: CrmKind, *, actor: Actor, name: str | None,
                          connection_id: str | None, now: dt.datetime) -> CrmConnection:
    """The connection being reconnected (`connection_id`, of this CRM), else the pending one a new connect starts from."""
    if connection_id:
        conn = uow.connections.get(connection_id)
        if conn.kind != kind:
            raise InvalidInput({"connection": f"not a {_label(kind)} connection"})
        return conn
    return pending_connection(rt, uow, tenant_id, kind, name, actor, now)


def prepare(rt: Runtime, tenant_id: str, kind: CrmKind, *, actor: Actor, name: str, connection_id: str | None,
            settings: dict[str, Any] | None = None) -> CrmConnection:
    """The API's half of connecting (no browser at hand): a pending connection, with what the start will
    need in its `settings`. An admin then opens the console's authorize link, which starts the flow
    bound to their session."""
    with rt.uow(tenant_id) as uow:
        conn = connection_to_connect(rt, uow, tenant_id, kind, actor=actor, name=name, connection_id=connection_id,
                                     now=rt.now())
        if settings:
            conn.settings.update(settings)
            uow.connections.save(conn)
        uow.commit()
    return conn


def open_flow(rt: Runtime, tenant_id: str, kind: CrmKind, *, actor: Actor, owner: FlowOwner, name: str,
              connection_id: str | None, authorize_url: Callable[[str], str], sealed_extra: dict[str, Any] | None = None,
              forget: tuple[str, ...] = ()) -> ConnectStart:
    """Seal a new flow on the connection (state hash, expiry, owner, and the CRM's `sealed_extra`), drop
    the `forget` settings it replaces, and return the CRM's authorize URL for the state. The caller has
    checked the owner (`check_owner`) and the CRM's settings."""
    now = rt.now()
    secret = secrets.token_urlsafe(32)
    with rt.uow(tenant_id) as uow:
        conn = connection_to_connect(rt, uow, tenant_id, kind, actor=actor, name=name, connection_id=connection_id,
                                     now=now)
        for key in forget:
            conn.settings.pop(key, None)
        conn.settings[PENDING_KEY] = rt.vault.seal({"state_hash": _hash(secret), **(sealed_extra or {}),
                                                    "expires": (now + STATE_TTL).isoformat(), "actor": actor.label,
                                                    **owner.sealed_fields()})
        uow.connections.save(conn)
        uow.commit()
    state = f"{conn.id}.{secret}"
    return ConnectStart(conn.id, authorize_url(state), state)


def checked_callback(rt: Runtime, kind: CrmKind, code: str, state: str, *, owner: FlowOwner) -> PendingFlow:
    """The flow an OAuth callback answers, once the state matches a live flow of this CRM and `owner`
    is the one who started it. Nothing is spent or exchanged here."""
    connection_id, _, secret = (state or "").partition(".")
    if not connection_id or not secret or not code:
        raise ConnectFailed("the sign-in answer is incomplete; start connecting again")
    with rt.uow() as uow:
        tenant_id = uow.directory.tenant_for_connection(connection_id)
    if tenant_id is None:
        raise ConnectFailed(UNKNOWN_SIGN_IN)
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        sealed = conn.settings.get(PENDING_KEY)
    if conn.kind != kind or not sealed:
        raise ConnectFailed(UNKNOWN_SIGN_IN)
    pending = rt.vault.open(sealed)
    if not hmac.compare_digest(pending["state_hash"], _hash(secret)) or \
            dt.datetime.fromisoformat(pending["expires"]) < rt.now():
        raise ConnectFailed(UNKNOWN_SIGN_IN)
    if not owner.owns(pending, tenant_id):
        log.warning("%s callback for connection %s refused: not the session that started it", _label(kind), connection_id)
        raise ConnectFailed(NOT_YOURS)
    return PendingFlow(tenant_id, connection_id, sealed, pending)


def spend(conn: CrmConnection, flow: PendingFlow) -> None:
    """A flow finishes once: its sealed state leaves the connection (the caller saves and commits)."""
    if conn.settings.get(PENDING_KEY) != flow.sealed:
        raise ConnectFailed("this sign-in was already used; start connecting again")
    conn.settings.pop(PENDING_KEY, None)


def store_connected(rt: Runtime, tenant_id: str, connection_id: str, *, org_id: str, org_noun: str, actor: Actor,
                    record: Callable[[Any, CrmConnection], tuple[dict[str, Any], dict[str, Any]]],
                    flow: PendingFlow | None = None) -> CrmConnection:
    """Make the connection active on the CRM account `org_id`, in one transaction: spend `flow` if given,
    refuse another account than the one it had, hand the tokens to the existing connection of the same
    account (`same_org_connection`), let the connector `record(uow, conn)` what it learnt (it returns the
    credentials to seal and extra audit fields), then seal, save and audit."""
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        if flow is not None:
            spend(conn, flow)
        if conn.external_org_id and not same_org(conn.kind, conn.external_org_id, org_id):
            raise ConnectFailed(f"this connection belongs to {org_noun} {conn.external_org_id}; you signed in to {org_id}")
        conn = same_org_connection(uow, tenant_id, conn, org_id, actor, now)
        before = {"status": conn.status.value, "org": conn.external_org_id}
        credentials, audited = record(uow, conn)
        conn.status = ConnectionStatus.ACTIVE
        conn.status_message = None
        uow.connections.save(conn)
        uow.connections.store_credentials(conn.id, rt.vault.seal(credentials))
        _audit(uow, tenant_id, conn, "connected", actor, now, before,
               {"status": "active", "org": conn.external_org_id, "user": conn.external_username, **audited})
        uow.commit()
    return conn


def pending_connection(rt: Runtime, uow, tenant_id: str, kind: CrmKind, name: str | None, actor: Actor,
                       now: dt.datetime) -> CrmConnection:
    """The connection a new "Connect" starts from: the tenant's unfinished one of this kind if there
    is one (so abandoned sign-ins never pile up as orphans), else a new pending connection."""
    clean = " ".join((name or "").split())[:200] or kind.value.capitalize()
    for conn in uow.connections.list():
        if conn.kind == kind and conn.status == ConnectionStatus.PENDING and not conn.external_org_id:
            if conn.name != clean:
                conn.name = clean
                uow.connections.save(conn)
            return conn
    conn = uow.connections.add(CrmConnection(id=rt.new_id(), tenant_id=tenant_id, kind=kind, name=clean,
                                             status=ConnectionStatus.PENDING))
    _audit(uow, tenant_id, conn, "created", actor, now, None, {"kind": kind.value, "name": clean})
    return conn


def same_org(kind: CrmKind, a: str | None, b: str | None) -> bool:
    """Salesforce org ids come as 15 or 18 characters (the last three are a checksum)."""
    if not a or not b:
        return False
    return a[:15] == b[:15] if kind == CrmKind.SALESFORCE else a == b


def same_org_connection(uow, tenant_id: str, conn: CrmConnection, org_id: str, actor: Actor,
                        now: dt.datetime) -> CrmConnection:
    """Reconnecting through "Connect" (a fresh pending connection) to an org this workspace already
    knows: the existing connection is the one that gets the new tokens (its programs, sync state and
    CRM records stay attached) and the fresh pending one is removed. One org, one connection."""
    for other in uow.connections.list():
        if other.id != conn.id and other.kind == conn.kind and same_org(conn.kind, other.external_org_id, org_id):
            other.settings.pop(PENDING_KEY, None)
            if not conn.external_org_id and uow.connections.delete_unused(conn.id):
                _audit(uow, tenant_id, conn, "superseded", actor, now, {"status": conn.status.value},
                       None, f"same org as connection {other.id}")
            else:
                raise ConnectFailed(f"this workspace is already connected to this org through {other.name!r}; "
                                    "reconnect that connection instead")
            return other
    return conn


def with_credentials(rt: Runtime, tenant_id: str, connection_id: str) -> tuple[CrmConnection, dict[str, Any] | None]:
    """The connection and its opened credentials (None when it has none), for a connector to revoke them."""
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        sealed = uow.connections.credentials(connection_id)
    return conn, rt.vault.open(sealed) if sealed else None


def mark_disconnected(rt: Runtime, tenant_id: str, connection_id: str, *, actor: Actor) -> CrmConnection:
    """After the connector revoked what it could: the connection stops (nothing is deleted) and its
    credentials are forgotten."""
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        before = {"status": conn.status.value}
        conn.status = ConnectionStatus.DISCONNECTED
        conn.status_message = f"Disconnected by {actor.label or actor.kind.value}."
        conn.settings.pop(PENDING_KEY, None)
        uow.connections.save(conn)
        uow.connections.store_credentials(conn.id, None)
        _audit(uow, tenant_id, conn, "disconnected", actor, rt.now(), before, {"status": "disconnected"})
        uow.commit()
    return conn


def _connector(kind: CrmKind):
    """The CRM's own connect module (imported here, not at the top: both import this module)."""
    if kind == CrmKind.PIPEDRIVE:
        from refstage.services import pipedrive_connect as connector
    else:
        from refstage.services import salesforce_connect as connector  # type: ignore[no-redef]
    return connector


def start_prepared(rt: Runtime, tenant_id: str, connection_id: str, *, actor: Actor, owner: FlowOwner) -> ConnectStart:
    """Start the flow of an existing (prepared, or to be reconnected) connection with its CRM's connector."""
    kind = get_connection(rt, tenant_id, connection_id).kind
    return _connector(kind).start_connect(rt, tenant_id, actor=actor, owner=owner, connection_id=connection_id)


def disconnect(rt: Runtime, tenant_id: str, connection_id: str, *, actor: Actor) -> CrmConnection:
    """Disconnect with the connection's own CRM connector: it revokes what it can at the CRM, then the
    connection is marked disconnected."""
    kind = get_connection(rt, tenant_id, connection_id).kind
    return _connector(kind).disconnect(rt, tenant_id, connection_id, actor=actor)


@dataclass(frozen=True)
class ConnectionAlert:
    """Something about a CRM connection an admin must act on, shown on every console page."""
    connection_id: str
    name: str
    problem: str  # disconnected | reconnect_required | sync_failed
    message: str
    programs: tuple[str, ...]  # names of the programs on this connection that are live or would be


def alerts(rt: Runtime, tenant_id: str) -> list[ConnectionAlert]:
    """Connections that cannot work (disconnected, refused credentials) with the programs that rely
    on them, and connections whose latest sync run failed."""
    with rt.uow(tenant_id, readonly=True) as uow:
        conns = uow.connections.list()
        programs = uow.programs.list()
        runs = uow.connections.latest_runs()
    out = []
    for conn in conns:
        on_it = tuple(p.name for p in programs if p.connection_id == conn.id)
        if conn.status in (ConnectionStatus.DISCONNECTED, ConnectionStatus.RECONNECT_REQUIRED):
            if conn.status == ConnectionStatus.DISCONNECTED and not on_it:
                continue  # a connection nobody uses any more is not a problem
            what = "is disconnected" if conn.status == ConnectionStatus.DISCONNECTED else "needs reconnecting"
            tail = f": {', '.join(on_it)} cannot qualify referrals or write back" if on_it else ""
            out.append(ConnectionAlert(conn.id, conn.name, conn.status.value, f"{conn.name} {what}{tail}.", on_it))
            continue
        run = runs.get(conn.id)
        if conn.usable and run and run["status"] == "failed":
            when = run["started_at"].strftime("%Y-%m-%d %H:%M UTC")
            error = " ".join(str(run.get("error") or "no detail recorded").split())[:300]
            out.append(ConnectionAlert(conn.id, conn.name, "sync_failed",
                                       f"The last sync of {conn.name} failed ({when}): {error}", on_it))
    return out


def oauth_configured(rt: Runtime, kind: CrmKind) -> bool:
    """Whether the CRM's OAuth app (client id and secret) is configured on this server: without it the
    console offers the alternatives (a Pipedrive API token) and names the missing settings."""
    from refstage.services.ports import CrmError

    connector = rt.salesforce if kind == CrmKind.SALESFORCE else rt.pipedrive
    try:
        connector.OAuthApp.from_settings(rt.settings)
    except CrmError:
        return False
    return True


def usable_connection_ids(rt: Runtime, tenant_id: str) -> set[str]:
    with rt.uow(tenant_id, readonly=True) as uow:
        return {c.id for c in uow.connections.list() if c.usable}


def list_connections(rt: Runtime, tenant_id: str) -> list[CrmConnection]:
    with rt.uow(tenant_id) as uow:
        return uow.connections.list()


def get_connection(rt: Runtime, tenant_id: str, connection_id: str) -> CrmConnection:
    with rt.uow(tenant_id) as uow:
        return uow.connections.get(connection_id)


__all__ = ["FlowOwner", "ConnectStart", "ConnectFailed", "PendingFlow", "NOT_YOURS", "check_owner", "prepare",
           "open_flow", "checked_callback", "store_connected", "pending_connection", "same_org_connection",
           "with_credentials", "mark_disconnected", "start_prepared", "disconnect", "alerts", "ConnectionAlert",
           "usable_connection_ids", "oauth_configured", "list_connections", "get_connection"]
