"""Connecting a tenant to a Pipedrive company: OAuth (start → authorize URL; finish → tokens sealed in
the Vault) or a personal API token; then provisioning (our custom fields, the deal webhook with
per-connection HTTP basic credentials); disconnect (webhook removed, token revoked).

The flow's state, owner and bookkeeping are shared with Salesforce (services.connections); this module
holds what only Pipedrive has: API tokens, the company, custom fields and the webhook."""

from __future__ import annotations

import logging
import os
from typing import Any

from refstage.domain.audit import Actor
from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.domain.errors import InvalidInput
from refstage.services import connections
from refstage.services.connections import ConnectStart, FlowOwner
from refstage.services.ports import CrmError
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)


def webhook_url(rt: Runtime, connection_id: str) -> str:
    extra = dict(getattr(rt.settings, "extra", {}) or {})
    base = extra.get("pipedrive_webhook_base_url") or os.environ.get("REFSTAGE_PIPEDRIVE_WEBHOOK_BASE_URL") or rt.settings.base_url
    return f"{base.rstrip('/')}/webhooks/pipedrive/{connection_id}"


def prepare_connect(rt: Runtime, tenant_id: str, *, actor: Actor, name: str = "Pipedrive",
                    connection_id: str | None = None) -> CrmConnection:
    """The API's half of connecting: a pending connection (see connections.prepare)."""
    rt.pipedrive.OAuthApp.from_settings(rt.settings)  # "not configured" now, not after the admin clicks
    return connections.prepare(rt, tenant_id, CrmKind.PIPEDRIVE, actor=actor, name=name, connection_id=connection_id)


def start_connect(rt: Runtime, tenant_id: str, *, actor: Actor, owner: FlowOwner, name: str = "Pipedrive",
                  connection_id: str | None = None) -> ConnectStart:
    pd = rt.pipedrive
    connections.check_owner(owner, tenant_id)
    app = pd.OAuthApp.from_settings(rt.settings)
    return connections.open_flow(rt, tenant_id, CrmKind.PIPEDRIVE, actor=actor, owner=owner, name=name,
                                 connection_id=connection_id, authorize_url=lambda state: pd.authorize_url(app, state))


def finish_connect(rt: Runtime, code: str, state: str, *, owner: FlowOwner) -> CrmConnection:
    """The OAuth callback: check the state and that `owner` started the flow, spend the state, exchange
    the code (HTTP Basic client auth), record the company, seal the tokens, provision fields and the webhook."""
    pd = rt.pipedrive
    flow = connections.checked_callback(rt, CrmKind.PIPEDRIVE, code, state, owner=owner)
    with rt.uow(flow.tenant_id) as uow:  # single use: spend the state before the code is exchanged
        conn = uow.connections.get(flow.connection_id)
        connections.spend(conn, flow)
        uow.connections.save(conn)
        uow.commit()
    tokens = pd.exchange_code(pd.OAuthApp.from_settings(rt.settings), code)
    return _activate(rt, flow.tenant_id, flow.connection_id, tokens, pd.StaticOAuthCredentials(tokens), flow.actor)


def connect_api_token(rt: Runtime, tenant_id: str, *, actor: Actor, api_token: str, api_domain: str,
                      name: str = "Pipedrive", connection_id: str | None = None) -> CrmConnection:
    """The alternative to OAuth: a personal API token (checked against /users/me, then sealed)."""
    from urllib.parse import urlsplit

    token = (api_token or "").strip()
    parts = urlsplit((api_domain or "").strip())
    if not token or len(token) > 200:
        raise InvalidInput({"api_token": "paste the personal API token from Pipedrive's settings"})
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password or parts.query:
        raise InvalidInput({"api_domain": "the company's https:// address, e.g. https://acme.pipedrive.com"})
    try:
        domain = rt.pipedrive.checked_api_domain(rt.settings, api_domain.strip())
    except CrmError as exc:
        raise InvalidInput({"api_domain": f"{exc} (a Pipedrive company address, e.g. https://acme.pipedrive.com)"}) from None
    conn = connections.prepare(rt, tenant_id, CrmKind.PIPEDRIVE, actor=actor, name=name, connection_id=connection_id)
    secret = {"kind": "api_token", "api_token": token, "api_domain": domain}
    try:
        return _activate(rt, tenant_id, conn.id, secret, rt.pipedrive.ApiTokenCredentials(token, domain), actor)
    except (CrmError, InvalidInput) as exc:
        if connection_id is None:
            _forget_unfinished(rt, tenant_id, conn.id)
        if isinstance(exc, CrmError) and exc.status in (401, 403):
            raise InvalidInput({"api_token": f"Pipedrive refused this token: {exc}"}) from None
        raise


def _forget_unfinished(rt: Runtime, tenant_id: str, connection_id: str) -> None:
    """A token that did not work leaves no "pending" connection behind."""
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        if conn.status == ConnectionStatus.PENDING and not conn.external_org_id and uow.connections.delete_unused(conn.id):
            uow.commit()


def _activate(rt: Runtime, tenant_id: str, connection_id: str, secret: dict[str, Any], credentials: Any,
              actor: Actor) -> CrmConnection:
    pd = rt.pipedrive
    client = pd.PipedriveClient(credentials, verify=pd.tls_verify(rt.settings))
    me = client.get("v1", "users/me") or {}
    company_id = str(me.get("company_id") or "")
    if not company_id:
        raise CrmError("Pipedrive did not say which company this is (users/me)", transient=True)

    def record(uow, conn: CrmConnection) -> tuple[dict[str, Any], dict[str, Any]]:
        old = uow.connections.credentials(conn.id)
        webhook = (rt.vault.open(old).get("webhook") if old else None) or pd.new_basic_credentials()
        conn.external_org_id = company_id
        conn.external_user_id = str(me.get("id") or "") or None
        conn.external_username = me.get("email")
        conn.instance_url = credentials.api_domain
        conn.settings["auth"] = secret.get("kind", "oauth")
        conn.settings["company_domain"] = me.get("company_domain")
        return {**secret, "webhook": webhook}, {"auth": conn.settings["auth"]}

    conn = connections.store_connected(rt, tenant_id, connection_id, org_id=company_id, org_noun="Pipedrive company",
                                       actor=actor, record=record)
    provision(rt, tenant_id, conn.id)
    return connections.get_connection(rt, tenant_id, conn.id)


def provision(rt: Runtime, tenant_id: str, connection_id: str) -> dict[str, Any]:
    """Our custom fields (created if missing) and one deal webhook pointing at this connection's
    receiver. Safe to repeat: existing fields are found by name, stale webhooks to our URL replaced."""
    pd = rt.pipedrive
    conn = connections.get_connection(rt, tenant_id, connection_id)
    gateway = pd.gateway(rt, conn)
    gateway.prepare()
    with rt.uow(tenant_id) as uow:
        basic = rt.vault.open(uow.connections.credentials(connection_id) or "").get("webhook")
    url = webhook_url(rt, connection_id)
    for hook_id in pd.existing_webhooks(gateway.client, url):
        pd.unregister_webhook(gateway.client, hook_id)
    hook_id = pd.register_webhook(gateway.client, url, basic)
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        conn.settings.update(gateway.connection.settings)
        conn.settings["webhook_id"] = hook_id
        conn.settings["webhook_url"] = url
        uow.connections.save(conn)
        uow.commit()
    return conn.settings


def disconnect(rt: Runtime, tenant_id: str, connection_id: str, *, actor: Actor) -> CrmConnection:
    """Remove our webhook and revoke the OAuth grant (best effort), then forget the credentials."""
    pd = rt.pipedrive
    conn, secret = connections.with_credentials(rt, tenant_id, connection_id)
    if conn.kind != CrmKind.PIPEDRIVE:
        raise InvalidInput({"connection": "not a Pipedrive connection"})
    if secret is not None:
        try:
            client = pd.PipedriveClient(pd.credentials_for(rt, conn), verify=pd.tls_verify(rt.settings))
            if conn.settings.get("webhook_id"):
                pd.unregister_webhook(client, int(conn.settings["webhook_id"]))
        except CrmError as exc:
            log.warning("could not remove the Pipedrive webhook of connection %s: %s", connection_id, exc)
        if secret.get("kind") == "oauth" and secret.get("refresh_token"):
            try:
                if not pd.revoke(pd.OAuthApp.from_settings(rt.settings), secret["refresh_token"]):
                    log.warning("Pipedrive did not confirm revoking the tokens of connection %s", connection_id)
            except CrmError as exc:
                log.warning("revoking the Pipedrive tokens of connection %s failed: %s", connection_id, exc)
    return connections.mark_disconnected(rt, tenant_id, connection_id, actor=actor)


__all__ = ["prepare_connect", "start_connect", "finish_connect", "connect_api_token", "provision", "disconnect", "webhook_url"]
