"""Connecting a tenant to a Pipedrive company: OAuth (start → authorize URL; finish → tokens sealed in
the Vault) or a personal API token; then provisioning (our custom fields, the deal webhook with
per-connection HTTP basic credentials); disconnect (webhook removed, token revoked).

Mirrors services/connections.py (Salesforce): the same state format `<connection id>.<secret>`
(secret stored only as a hash, sealed, single use, ten minutes), the same audit entries and
errors, so the web layer treats both CRMs alike. It is a separate module because connections.py
is written around Salesforce's flow (login hosts, PKCE, identity URL)."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import os
import secrets
from typing import Any

from refstage.domain.audit import Actor
from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.domain.errors import InvalidInput
from refstage.services.connections import (NOT_YOURS, PENDING_KEY, STATE_TTL, ConnectFailed, ConnectStart, FlowOwner,
                                           _audit, _checked_owner, _hash, pending_connection, same_org_connection)
from refstage.services.ports import CrmError
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)


def webhook_url(rt: Runtime, connection_id: str) -> str:
    extra = dict(getattr(rt.settings, "extra", {}) or {})
    base = extra.get("pipedrive_webhook_base_url") or os.environ.get("REFSTAGE_PIPEDRIVE_WEBHOOK_BASE_URL") or rt.settings.base_url
    return f"{base.rstrip('/')}/webhooks/pipedrive/{connection_id}"


def prepare_connect(rt: Runtime, tenant_id: str, *, actor: Actor, name: str = "Pipedrive",
                    connection_id: str | None = None) -> CrmConnection:
    """The API's half of connecting: a pending connection an admin then authorizes from the console
    (the flow is bound to that console session; see services.connections.FlowOwner)."""
    from refstage.adapters.crm.pipedrive.auth import OAuthApp

    OAuthApp.from_settings(rt.settings)  # "not configured" now, not after the admin clicks
    with rt.uow(tenant_id) as uow:
        conn = _pending(rt, uow, tenant_id, actor, name, connection_id, rt.now())
        uow.commit()
    return conn


def start_connect(rt: Runtime, tenant_id: str, *, actor: Actor, owner: FlowOwner, name: str = "Pipedrive",
                  connection_id: str | None = None) -> ConnectStart:
    from refstage.adapters.crm.pipedrive.auth import OAuthApp, authorize_url

    _checked_owner(owner, tenant_id)
    app = OAuthApp.from_settings(rt.settings)
    now = rt.now()
    secret = secrets.token_urlsafe(32)
    with rt.uow(tenant_id) as uow:
        conn = _pending(rt, uow, tenant_id, actor, name, connection_id, now)
        conn.settings[PENDING_KEY] = rt.vault.seal({"state_hash": _hash(secret), "expires": (now + STATE_TTL).isoformat(),
                                                    "actor": actor.label, **owner.sealed_fields()})
        uow.connections.save(conn)
        uow.commit()
    state = f"{conn.id}.{secret}"
    return ConnectStart(conn.id, authorize_url(app, state), state)


def _pending(rt: Runtime, uow, tenant_id: str, actor: Actor, name: str, connection_id: str | None, now: dt.datetime) -> CrmConnection:
    if connection_id:
        conn = uow.connections.get(connection_id)
        if conn.kind != CrmKind.PIPEDRIVE:
            raise InvalidInput({"connection": "not a Pipedrive connection"})
        return conn
    return pending_connection(rt, uow, tenant_id, CrmKind.PIPEDRIVE, name, actor, now)


def finish_connect(rt: Runtime, code: str, state: str, *, owner: FlowOwner) -> CrmConnection:
    """The OAuth callback: check the state and that `owner` started the flow, exchange the code (HTTP Basic client auth), record the
    company, seal the tokens, provision fields and the webhook."""
    from refstage.adapters.crm.pipedrive.auth import OAuthApp, StaticOAuthCredentials, exchange_code

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
    if conn.kind != CrmKind.PIPEDRIVE or not sealed:
        raise ConnectFailed("unknown or expired sign-in; start connecting again")
    pending = rt.vault.open(sealed)
    if not hmac.compare_digest(pending["state_hash"], _hash(secret)) or dt.datetime.fromisoformat(pending["expires"]) < rt.now():
        raise ConnectFailed("unknown or expired sign-in; start connecting again")
    if not owner.owns(pending, tenant_id):
        log.warning("Pipedrive callback for connection %s refused: not the session that started it", connection_id)
        raise ConnectFailed(NOT_YOURS)
    with rt.uow(tenant_id) as uow:  # single use: spend the state before the code is exchanged
        conn = uow.connections.get(connection_id)
        if conn.settings.get(PENDING_KEY) != sealed:
            raise ConnectFailed("this sign-in was already used; start connecting again")
        conn.settings.pop(PENDING_KEY, None)
        uow.connections.save(conn)
        uow.commit()
    tokens = exchange_code(OAuthApp.from_settings(rt.settings), code)
    return _activate(rt, tenant_id, connection_id, tokens, StaticOAuthCredentials(tokens),
                     Actor.system(pending.get("actor") or "oauth"))


def connect_api_token(rt: Runtime, tenant_id: str, *, actor: Actor, api_token: str, api_domain: str,
                      name: str = "Pipedrive", connection_id: str | None = None) -> CrmConnection:
    """The alternative to OAuth: a personal API token (checked against /users/me, then sealed)."""
    from urllib.parse import urlsplit

    from refstage.adapters.crm.pipedrive.auth import ApiTokenCredentials, checked_api_domain

    token = (api_token or "").strip()
    parts = urlsplit((api_domain or "").strip())
    if not token or len(token) > 200:
        raise InvalidInput({"api_token": "paste the personal API token from Pipedrive's settings"})
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password or parts.query:
        raise InvalidInput({"api_domain": "the company's https:// address, e.g. https://acme.pipedrive.com"})
    try:
        domain = checked_api_domain(rt.settings, api_domain.strip())
    except CrmError as exc:
        raise InvalidInput({"api_domain": f"{exc} (a Pipedrive company address, e.g. https://acme.pipedrive.com)"}) from None
    with rt.uow(tenant_id) as uow:
        conn = _pending(rt, uow, tenant_id, actor, name, connection_id, rt.now())
        uow.commit()
    secret = {"kind": "api_token", "api_token": token, "api_domain": domain}
    try:
        return _activate(rt, tenant_id, conn.id, secret, ApiTokenCredentials(token, domain), actor)
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
    from refstage.adapters.crm.pipedrive.auth import tls_verify
    from refstage.adapters.crm.pipedrive.client import PipedriveClient
    from refstage.adapters.crm.pipedrive.webhooks import new_basic_credentials

    client = PipedriveClient(credentials, verify=tls_verify(rt.settings))
    me = client.get("v1", "users/me") or {}
    company_id = str(me.get("company_id") or "")
    if not company_id:
        raise CrmError("Pipedrive did not say which company this is (users/me)", transient=True)
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        if conn.external_org_id and conn.external_org_id != company_id:
            raise ConnectFailed(f"this connection belongs to Pipedrive company {conn.external_org_id}; you signed in to {company_id}")
        conn = same_org_connection(uow, tenant_id, conn, company_id, actor, now)
        connection_id = conn.id
        before = {"status": conn.status.value, "org": conn.external_org_id}
        old = uow.connections.credentials(connection_id)
        webhook = (rt.vault.open(old).get("webhook") if old else None) or new_basic_credentials()
        conn.external_org_id = company_id
        conn.external_user_id = str(me.get("id") or "") or None
        conn.external_username = me.get("email")
        conn.instance_url = credentials.api_domain
        conn.settings["auth"] = secret.get("kind", "oauth")
        conn.settings["company_domain"] = me.get("company_domain")
        conn.status = ConnectionStatus.ACTIVE
        conn.status_message = None
        uow.connections.save(conn)
        uow.connections.store_credentials(conn.id, rt.vault.seal({**secret, "webhook": webhook}))
        _audit(uow, tenant_id, conn, "connected", actor, now, before,
               {"status": "active", "org": company_id, "user": conn.external_username, "auth": conn.settings["auth"]})
        uow.commit()
    provision(rt, tenant_id, connection_id)
    return get(rt, tenant_id, connection_id)


def provision(rt: Runtime, tenant_id: str, connection_id: str) -> dict[str, Any]:
    """Our custom fields (created if missing) and one deal webhook pointing at this connection's
    receiver. Safe to repeat: existing fields are found by name, stale webhooks to our URL replaced."""
    from refstage.adapters.crm.pipedrive import webhooks
    from refstage.adapters.crm.pipedrive.gateway import PipedriveGateway

    conn = get(rt, tenant_id, connection_id)
    gateway = PipedriveGateway(rt, conn)
    gateway.prepare()
    with rt.uow(tenant_id) as uow:
        basic = rt.vault.open(uow.connections.credentials(connection_id) or "").get("webhook")
    url = webhook_url(rt, connection_id)
    for hook_id in webhooks.existing(gateway.client, url):
        webhooks.unregister(gateway.client, hook_id)
    hook_id = webhooks.register(gateway.client, url, basic)
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
    from refstage.adapters.crm.pipedrive import auth, webhooks
    from refstage.adapters.crm.pipedrive.client import PipedriveClient
    from refstage.services import connections

    conn = get(rt, tenant_id, connection_id)
    if conn.kind != CrmKind.PIPEDRIVE:
        raise InvalidInput({"connection": "not a Pipedrive connection"})
    with rt.uow(tenant_id) as uow:
        sealed = uow.connections.credentials(connection_id)
    if sealed:
        secret = rt.vault.open(sealed)
        try:
            client = PipedriveClient(auth.credentials_for(rt, conn), verify=auth.tls_verify(rt.settings))
            if conn.settings.get("webhook_id"):
                webhooks.unregister(client, int(conn.settings["webhook_id"]))
        except CrmError as exc:
            log.warning("could not remove the Pipedrive webhook of connection %s: %s", connection_id, exc)
        if secret.get("kind") == "oauth" and secret.get("refresh_token"):
            try:
                if not auth.revoke(auth.OAuthApp.from_settings(rt.settings), secret["refresh_token"]):
                    log.warning("Pipedrive did not confirm revoking the tokens of connection %s", connection_id)
            except CrmError as exc:
                log.warning("revoking the Pipedrive tokens of connection %s failed: %s", connection_id, exc)
    return connections.disconnect(rt, tenant_id, connection_id, actor=actor)


def get(rt: Runtime, tenant_id: str, connection_id: str) -> CrmConnection:
    with rt.uow(tenant_id) as uow:
        return uow.connections.get(connection_id)


__all__ = ["prepare_connect", "start_connect", "finish_connect", "connect_api_token", "provision", "disconnect", "webhook_url"]
