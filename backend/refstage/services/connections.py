"""Connecting a tenant to a Salesforce org: start (authorize URL, state + PKCE kept server-side),
finish (code → tokens sealed in the Vault, org/user/instance recorded), disconnect (revoke).

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
from dataclasses import dataclass, field

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.domain.errors import InvalidInput, NotFound
from refstage.services import push_keys
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
CONNECT_HOST_KEY = "connect_login_host"


@dataclass(frozen=True)
class ConnectStart:
    connection_id: str
    authorize_url: str
    state: str


class ConnectFailed(InvalidInput):
    def __init__(self, message: str):
        super().__init__({"connection": message})


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _audit(uow, tenant_id: str, conn: CrmConnection, action: str, actor: Actor, at: dt.datetime,
           before: dict | None, after: dict | None, reason: str | None = None) -> None:
    uow.audit.append([AuditEntry(tenant_id, "connection", conn.id, action, actor, at, before, after, reason)])


def _checked_owner(owner: FlowOwner, tenant_id: str) -> None:
    if owner.channel == BROWSER and owner.tenant_id != tenant_id:
        raise InvalidInput({"connection": NOT_YOURS})


def prepare_connect(rt: Runtime, tenant_id: str, *, actor: Actor, name: str = "Salesforce", login_host: str = "production",
                    connection_id: str | None = None) -> CrmConnection:
    """The API's half of connecting (no browser at hand): a pending connection and its login host. An
    admin then opens the console's authorize link, which starts the flow bound to their session."""
    from refstage.adapters.crm.salesforce.auth import OAuthApp, login_host_url

    try:
        host = login_host_url(login_host, OAuthApp.from_settings(rt.settings).hosts)
    except ValueError as exc:
        raise InvalidInput({"login_host": str(exc)}) from None
    with rt.uow(tenant_id) as uow:
        conn = _pending_connection(rt, uow, tenant_id, actor, name, connection_id, rt.now())
        conn.settings[CONNECT_HOST_KEY] = host
        uow.connections.save(conn)
        uow.commit()
    return conn


def _pending_connection(rt: Runtime, uow, tenant_id: str, actor: Actor, name: str, connection_id: str | None,
                        now: dt.datetime) -> CrmConnection:
    if connection_id:
        conn = uow.connections.get(connection_id)
        if conn.kind != CrmKind.SALESFORCE:
            raise InvalidInput({"connection": "not a Salesforce connection"})
        return conn
    return pending_connection(rt, uow, tenant_id, CrmKind.SALESFORCE, name, actor, now)


def start_connect(rt: Runtime, tenant_id: str, *, actor: Actor, owner: FlowOwner, name: str = "Salesforce",
                  login_host: str | None = None, connection_id: str | None = None) -> ConnectStart:
    """A new connection (or a reconnect of an existing one): returns the URL to send the admin to. Only
    `owner` can finish the flow. Without `login_host`, a prepared connection's host (or production)."""
    from refstage.adapters.crm.salesforce.auth import OAuthApp, authorize_url, login_host_url, pkce_pair

    _checked_owner(owner, tenant_id)
    app = OAuthApp.from_settings(rt.settings)
    if login_host is None and connection_id:
        with rt.uow(tenant_id) as uow:
            prepared = uow.connections.get(connection_id)
        login_host = prepared.settings.get(CONNECT_HOST_KEY) or prepared.login_host
    try:
        host = login_host_url(login_host or "production", app.hosts)
    except ValueError as exc:
        raise InvalidInput({"login_host": str(exc)}) from None
    now = rt.now()
    secret = secrets.token_urlsafe(32)
    verifier, _ = pkce_pair()
    with rt.uow(tenant_id) as uow:
        conn = _pending_connection(rt, uow, tenant_id, actor, name, connection_id, now)
        conn.settings.pop(CONNECT_HOST_KEY, None)
        conn.settings[PENDING_KEY] = rt.vault.seal({"state_hash": _hash(secret), "verifier": verifier, "login_host": host,
                                                    "expires": (now + STATE_TTL).isoformat(), "actor": actor.label,
                                                    **owner.sealed_fields()})
        uow.connections.save(conn)
        uow.commit()
    state = f"{conn.id}.{secret}"
    return ConnectStart(conn.id, authorize_url(app, host, state, verifier), state)


def finish_connect(rt: Runtime, code: str, state: str, *, owner: FlowOwner) -> CrmConnection:
    """The OAuth callback: check the flow is `owner`'s, exchange the code (with the PKCE verifier),
    record the org, seal the tokens."""
    from refstage.adapters.crm.salesforce.auth import OAuthApp, exchange_code, identity, org_and_user

    connection_id, _, secret = (state or "").partition(".")
    if not connection_id or not secret or not code:
        raise ConnectFailed("the sign-in answer is incomplete; start connecting again")
    with rt.uow() as uow:
        tenant_id = uow.directory.tenant_for_connection(connection_id)
    if tenant_id is None:
        raise ConnectFailed("unknown or expired sign-in; start connecting again")
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        sealed = conn.settings.get(PENDING_KEY)
    if not sealed:
        raise ConnectFailed("unknown or expired sign-in; start connecting again")
    pending = rt.vault.open(sealed)
    if not hmac.compare_digest(pending["state_hash"], _hash(secret)) or \
            dt.datetime.fromisoformat(pending["expires"]) < rt.now():
        raise ConnectFailed("unknown or expired sign-in; start connecting again")
    if not owner.owns(pending, tenant_id):
        log.warning("Salesforce callback for connection %s refused: not the session that started it", connection_id)
        raise ConnectFailed(NOT_YOURS)
    app = OAuthApp.from_settings(rt.settings)
    token = exchange_code(app, pending["login_host"], code, pending["verifier"])
    org_id, user_id = org_and_user(token["id"])
    ident = identity(token, app)
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        if conn.settings.get(PENDING_KEY) != sealed:
            raise ConnectFailed("this sign-in was already used; start connecting again")
        if conn.external_org_id and conn.external_org_id[:15] != org_id[:15]:
            raise ConnectFailed(f"this connection belongs to org {conn.external_org_id}; you signed in to {org_id}")
        conn.settings.pop(PENDING_KEY, None)
        conn = same_org_connection(uow, tenant_id, conn, org_id, Actor.system(pending.get("actor") or "oauth"), now)
        before = {"status": conn.status.value, "org": conn.external_org_id}
        creds = {k: token.get(k) for k in ("access_token", "refresh_token", "instance_url", "id", "issued_at", "scope",
                                           "token_type")}
        conn.settings.pop(PENDING_KEY, None)
        issued = int(token.get("issued_at") or 0)
        if issued and "sync_from" not in conn.settings:
            # Salesforce's clock at connect time: the first sync reads changes from here (minus the overlap).
            conn.settings["sync_from"] = dt.datetime.fromtimestamp(issued / 1000, dt.timezone.utc).isoformat()
        conn.external_org_id = ident.get("organization_id") or org_id
        conn.external_user_id = ident.get("user_id") or user_id
        conn.external_username = ident.get("username")
        conn.instance_url = token.get("instance_url")
        conn.login_host = pending["login_host"]
        push_keys.issue_if_missing(rt, conn)  # the secret its Outbound Messages must carry
        conn.status = ConnectionStatus.ACTIVE
        conn.status_message = None
        uow.connections.save(conn)
        uow.connections.store_credentials(conn.id, rt.vault.seal(creds))
        _audit(uow, tenant_id, conn, "connected", Actor.system(pending.get("actor") or "oauth"), now, before,
               {"status": "active", "org": conn.external_org_id, "user": conn.external_username})
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


def disconnect(rt: Runtime, tenant_id: str, connection_id: str, *, actor: Actor) -> CrmConnection:
    """Revoke the tokens at Salesforce (best effort: a revoke that fails is logged) and forget them."""
    from refstage.adapters.crm.salesforce.auth import LOGIN_HOSTS, OAuthApp, revoke

    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        sealed = uow.connections.credentials(connection_id)
    if sealed:
        tokens = rt.vault.open(sealed)
        token = tokens.get("refresh_token") or tokens.get("access_token")
        if token and conn.kind == CrmKind.SALESFORCE:
            if not revoke(OAuthApp.from_settings(rt.settings), conn.login_host or LOGIN_HOSTS["production"], token):
                log.warning("Salesforce did not confirm revoking the tokens of connection %s", connection_id)
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

    if kind == CrmKind.SALESFORCE:
        from refstage.adapters.crm.salesforce.auth import OAuthApp
    else:
        from refstage.adapters.crm.pipedrive.auth import OAuthApp  # type: ignore[assignment]
    try:
        OAuthApp.from_settings(rt.settings)
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


__all__ = ["start_connect", "prepare_connect", "finish_connect", "FlowOwner", "disconnect", "pending_connection",
           "same_org_connection", "alerts", "ConnectionAlert", "usable_connection_ids", "oauth_configured",
           "list_connections", "get_connection", "ConnectStart",
           "ConnectFailed", "NotFound"]
