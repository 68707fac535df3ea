"""Connecting a tenant to a Salesforce org: start (authorize URL; state, PKCE verifier and login host
kept server-side), finish (code → tokens sealed in the Vault, org/user/instance recorded, push key
issued), disconnect (revoke), and the External Client App an installation deploys to sign in as.

The flow's state, owner and bookkeeping are shared with Pipedrive (services.connections); this module
holds what only Salesforce has: login hosts, PKCE and the identity URL."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from refstage.domain.audit import Actor
from refstage.domain.connections import CrmConnection, CrmKind
from refstage.domain.errors import InvalidInput
from refstage.services import connections, push_keys
from refstage.services.connections import ConnectStart, FlowOwner
from refstage.services.ports import SalesforceConnector
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)
CONNECT_HOST_KEY = "connect_login_host"


def _login_host(rt: Runtime, login_host: str, app) -> str:
    try:
        return rt.salesforce.login_host_url(login_host, app.hosts)
    except ValueError as exc:
        raise InvalidInput({"login_host": str(exc)}) from None


def prepare_connect(rt: Runtime, tenant_id: str, *, actor: Actor, name: str = "Salesforce", login_host: str = "production",
                    connection_id: str | None = None) -> CrmConnection:
    """The API's half of connecting: a pending connection and its login host (see connections.prepare)."""
    host = _login_host(rt, login_host, rt.salesforce.OAuthApp.from_settings(rt.settings))
    return connections.prepare(rt, tenant_id, CrmKind.SALESFORCE, actor=actor, name=name, connection_id=connection_id,
                               settings={CONNECT_HOST_KEY: host})


def start_connect(rt: Runtime, tenant_id: str, *, actor: Actor, owner: FlowOwner, name: str = "Salesforce",
                  login_host: str | None = None, connection_id: str | None = None) -> ConnectStart:
    """A new connection (or a reconnect of an existing one): returns the URL to send the admin to. Only
    `owner` can finish the flow. Without `login_host`, a prepared connection's host (or production)."""
    sf = rt.salesforce
    connections.check_owner(owner, tenant_id)
    app = sf.OAuthApp.from_settings(rt.settings)
    if login_host is None and connection_id:
        prepared = connections.get_connection(rt, tenant_id, connection_id)
        login_host = prepared.settings.get(CONNECT_HOST_KEY) or prepared.login_host
    host = _login_host(rt, login_host or "production", app)
    verifier, _ = sf.pkce_pair()
    return connections.open_flow(rt, tenant_id, CrmKind.SALESFORCE, actor=actor, owner=owner, name=name,
                                 connection_id=connection_id, forget=(CONNECT_HOST_KEY,),
                                 sealed_extra={"verifier": verifier, "login_host": host},
                                 authorize_url=lambda state: sf.authorize_url(app, host, state, verifier))


def finish_connect(rt: Runtime, code: str, state: str, *, owner: FlowOwner) -> CrmConnection:
    """The OAuth callback: check the flow is `owner`'s, exchange the code (with the PKCE verifier),
    record the org, seal the tokens. The state is spent with the tokens stored, in one transaction."""
    sf = rt.salesforce
    flow = connections.checked_callback(rt, CrmKind.SALESFORCE, code, state, owner=owner)
    app = sf.OAuthApp.from_settings(rt.settings)
    token = sf.exchange_code(app, flow.data["login_host"], code, flow.data["verifier"])
    org_id, user_id = sf.org_and_user(token["id"])
    ident = sf.identity(token, app)

    def record(uow, conn: CrmConnection) -> tuple[dict[str, Any], dict[str, Any]]:
        issued = int(token.get("issued_at") or 0)
        if issued and "sync_from" not in conn.settings:
            # Salesforce's clock at connect time: the first sync reads changes from here (minus the overlap).
            conn.settings["sync_from"] = dt.datetime.fromtimestamp(issued / 1000, dt.timezone.utc).isoformat()
        conn.external_org_id = ident.get("organization_id") or org_id
        conn.external_user_id = ident.get("user_id") or user_id
        conn.external_username = ident.get("username")
        conn.instance_url = token.get("instance_url")
        conn.login_host = flow.data["login_host"]
        push_keys.issue_if_missing(rt, conn)  # the secret its Outbound Messages must carry
        tokens = {k: token.get(k) for k in ("access_token", "refresh_token", "instance_url", "id", "issued_at", "scope",
                                            "token_type")}
        return tokens, {}

    return connections.store_connected(rt, flow.tenant_id, flow.connection_id, org_id=org_id, org_noun="org",
                                       actor=flow.actor, record=record, flow=flow)


def disconnect(rt: Runtime, tenant_id: str, connection_id: str, *, actor: Actor) -> CrmConnection:
    """Revoke the tokens at Salesforce (best effort: a revoke that fails is logged) and forget them."""
    sf = rt.salesforce
    conn, tokens = connections.with_credentials(rt, tenant_id, connection_id)
    token = tokens and (tokens.get("refresh_token") or tokens.get("access_token"))
    if token and conn.kind == CrmKind.SALESFORCE:
        if not sf.revoke(sf.OAuthApp.from_settings(rt.settings), conn.login_host or sf.LOGIN_HOSTS["production"], token):
            log.warning("Salesforce did not confirm revoking the tokens of connection %s", connection_id)
    return connections.mark_disconnected(rt, tenant_id, connection_id, actor=actor)


def write_external_client_app(salesforce: SalesforceConnector, output: Path, *, contact_email: str,
                              base_url: str | None = None, callback_url: str | None = None) -> list[Path]:
    """The External Client App bundle for this installation, written into the empty folder `output`
    (base URL: REFSTAGE_BASE_URL unless given). ValueError names what is wrong with the input."""
    from refstage.config import load_settings

    return salesforce.write_bundle(output, base_url=base_url or load_settings().base_url, contact_email=contact_email,
                                   callback_url=callback_url)


__all__ = ["prepare_connect", "start_connect", "finish_connect", "disconnect", "write_external_client_app",
           "CONNECT_HOST_KEY"]
