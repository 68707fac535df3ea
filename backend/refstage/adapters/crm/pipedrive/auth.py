"""Pipedrive authentication: the OAuth 2.0 marketplace-app flow (authlib) and personal API tokens.

* Authorize URL carries `state`; the token endpoint takes HTTP Basic client authentication
  (`client_secret_basic`), as Pipedrive requires. The answer names the company's `api_domain`.
* Access tokens live an hour. `OAuthCredentials` refreshes shortly before expiry or on a 401,
  under a row lock (FOR UPDATE on PostgreSQL), and persists the *rotated* refresh token through the
  Vault in the same transaction: two workers refreshing together end with one refresh.
* `invalid_grant` on refresh means a person must connect again: `ReconnectRequired`.
* A personal API token is stored the same way (sealed with the Vault) and sent as `x-api-token`.

Sealed credential JSON (crm_connections.credentials):
  {"kind": "oauth", "access_token", "refresh_token", "expires_at", "api_domain", "scope", ...,
   "webhook": {"user", "password"}}  or  {"kind": "api_token", "api_token", "api_domain", "webhook": ...}
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import select

from refstage.adapters.crm.hosts import HostNotAllowed, pipedrive_hosts
from refstage.adapters.db import models as m
from refstage.domain.hosts import PIPEDRIVE_HOSTS, HostPolicy
from refstage.domain.connections import CrmConnection
from refstage.adapters.crm.oauth import call_token_endpoint
from refstage.services.ports import CrmError, ReconnectRequired

log = logging.getLogger(__name__)

OAUTH_HOST = "https://oauth.pipedrive.com"
AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
REVOKE_PATH = "/oauth/revoke"
TIMEOUT = (10.0, 30.0)
REFRESH_LEEWAY_S = 120


def _pick(settings: Any, key: str, env: str, default: str | None = None) -> str | None:
    extra = dict(getattr(settings, "extra", {}) or {})
    return extra.get(key) or os.environ.get(env) or default


def tls_verify(settings: Any) -> bool | str:
    """The CA bundle to trust for Pipedrive (a private CA for the local emulator), else the system's.

    Passed per call as `verify=`, because REQUESTS_CA_BUNDLE overrides Session.verify in requests.
    Never False: verification cannot be turned off."""
    bundle = _pick(settings, "pipedrive_ca_bundle", "REFSTAGE_PIPEDRIVE_CA_BUNDLE")
    return bundle or True


@dataclass(frozen=True)
class OAuthApp:
    """The Pipedrive marketplace app Refstage signs in as."""

    client_id: str
    client_secret: str
    redirect_uri: str
    oauth_host: str = OAUTH_HOST
    verify: bool | str = True
    hosts: HostPolicy = HostPolicy("Pipedrive", PIPEDRIVE_HOSTS)

    @classmethod
    def from_settings(cls, settings: Any) -> "OAuthApp":
        client_id = _pick(settings, "pipedrive_client_id", "REFSTAGE_PIPEDRIVE_CLIENT_ID")
        secret = _pick(settings, "pipedrive_client_secret", "REFSTAGE_PIPEDRIVE_CLIENT_SECRET")
        redirect = _pick(settings, "pipedrive_redirect_uri", "REFSTAGE_PIPEDRIVE_REDIRECT_URI",
                         f"{settings.base_url}/pipedrive/oauth/callback")
        host = _pick(settings, "pipedrive_oauth_host", "REFSTAGE_PIPEDRIVE_OAUTH_HOST", OAUTH_HOST)
        if not client_id or not secret:
            raise CrmError("the Pipedrive app is not configured: set REFSTAGE_PIPEDRIVE_CLIENT_ID and "
                           "REFSTAGE_PIPEDRIVE_CLIENT_SECRET", transient=False, code="not_configured")
        hosts = pipedrive_hosts(settings)
        return cls(client_id, secret, redirect or "", allowed_origin(hosts, host or OAUTH_HOST), tls_verify(settings), hosts)


def allowed_origin(hosts: HostPolicy, url: str) -> str:
    """The origin of a Pipedrive URL we may send a secret or token to; a permanent CrmError otherwise."""
    try:
        return hosts.origin(url)
    except HostNotAllowed as exc:
        raise CrmError(f"refusing to contact {url!r}: {exc}", transient=False, code="host_not_allowed") from None


def checked_api_domain(settings: Any, api_domain: str) -> str:
    """A company's api_domain (from a token answer, a person, or the database), allow-listed."""
    return allowed_origin(pipedrive_hosts(settings), api_domain)


def _client(app: OAuthApp) -> OAuth2Session:
    return OAuth2Session(app.client_id, app.client_secret, redirect_uri=app.redirect_uri,
                         token_endpoint_auth_method="client_secret_basic",
                         revocation_endpoint_auth_method="client_secret_basic")


def authorize_url(app: OAuthApp, state: str) -> str:
    with _client(app) as client:
        url, _ = client.create_authorization_url(app.oauth_host + AUTHORIZE_PATH, state=state)
    return url


def _token_call(fn, *args: Any, verify: bool | str, hosts: HostPolicy, **kw: Any) -> dict[str, Any]:
    token = call_token_endpoint(fn, *args, crm="Pipedrive", timeout=TIMEOUT, verify=verify, allow_redirects=False, **kw)
    if not token.get("access_token") or not token.get("api_domain"):
        raise CrmError("Pipedrive's token answer lacks access_token or api_domain", transient=False)
    token["api_domain"] = allowed_origin(hosts, str(token["api_domain"]))  # our bearer token goes there next
    return _normalise(token)


def _normalise(token: dict[str, Any]) -> dict[str, Any]:
    out = {k: token[k] for k in ("access_token", "refresh_token", "token_type", "scope", "api_domain") if k in token}
    expires_in = token.get("expires_in")
    out["expires_at"] = int(token.get("expires_at") or (time.time() + int(expires_in or 3600)))
    out["kind"] = "oauth"
    return out


def exchange_code(app: OAuthApp, code: str) -> dict[str, Any]:
    with _client(app) as client:
        return _token_call(client.fetch_token, allowed_origin(app.hosts, app.oauth_host) + TOKEN_PATH, verify=app.verify,
                           hosts=app.hosts, grant_type="authorization_code", code=code)


def refresh_tokens(app: OAuthApp, refresh_token: str) -> dict[str, Any]:
    with _client(app) as client:
        return _token_call(client.refresh_token, allowed_origin(app.hosts, app.oauth_host) + TOKEN_PATH, verify=app.verify,
                           hosts=app.hosts, refresh_token=refresh_token)


def revoke(app: OAuthApp, token: str) -> bool:
    origin = allowed_origin(app.hosts, app.oauth_host)
    with _client(app) as client:
        try:
            response = client.revoke_token(origin + REVOKE_PATH, token=token, timeout=TIMEOUT, verify=app.verify,
                                           allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as exc:
            log.warning("revoking a Pipedrive token failed: %s", exc)
            return False
    return response.status_code == 200


class ApiTokenCredentials:
    """A personal API token: sent as `x-api-token`; nothing to refresh."""

    def __init__(self, api_token: str, api_domain: str) -> None:
        self._token = api_token
        self._domain = api_domain

    @property
    def api_domain(self) -> str:
        return self._domain

    def headers(self) -> dict[str, str]:
        return {"x-api-token": self._token}

    def refresh(self, stale_headers: dict[str, str]) -> bool:
        return False


class StaticOAuthCredentials:
    """Tokens in hand, not yet stored (during connect): bearer only, no refresh."""

    def __init__(self, tokens: dict[str, Any]) -> None:
        self.tokens = tokens

    @property
    def api_domain(self) -> str:
        return self.tokens["api_domain"]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    def refresh(self, stale_headers: dict[str, str]) -> bool:
        return False


class OAuthCredentials:
    """The connection's OAuth tokens, opened from the Vault; refreshes and persists rotations atomically."""

    def __init__(self, rt: Any, connection: CrmConnection, app: OAuthApp | None = None,
                 tokens: dict[str, Any] | None = None) -> None:
        self.rt = rt
        self.connection = connection
        self._app = app
        self.refreshes = 0
        self.tokens = tokens if tokens is not None else self._load()

    def _load(self) -> dict[str, Any]:
        with self.rt.uow(self.connection.tenant_id) as uow:
            sealed = uow.connections.credentials(self.connection.id)
        if not sealed:
            raise ReconnectRequired("the connection holds no Pipedrive tokens")
        return self.rt.vault.open(sealed)

    @property
    def app(self) -> OAuthApp:
        if self._app is None:
            self._app = OAuthApp.from_settings(self.rt.settings)
        return self._app

    @property
    def api_domain(self) -> str:
        return self.tokens.get("api_domain") or self.connection.instance_url or ""

    def headers(self) -> dict[str, str]:
        if int(self.tokens.get("expires_at") or 0) - REFRESH_LEEWAY_S <= time.time():
            self._refresh(self.tokens.get("access_token"))
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    def refresh(self, stale_headers: dict[str, str]) -> bool:
        stale = (stale_headers.get("Authorization") or "")[len("Bearer "):]
        self._refresh(stale)
        return True

    def _refresh(self, stale_token: str | None) -> None:
        with self.rt.uow(self.connection.tenant_id) as uow:
            row = uow.session.scalar(select(m.ConnectionRow).where(
                m.ConnectionRow.id == self.connection.id, m.ConnectionRow.tenant_id == self.connection.tenant_id)
                .with_for_update())
            if row is None or not row.credentials:
                raise ReconnectRequired("the connection holds no Pipedrive tokens")
            stored = self.rt.vault.open(row.credentials)
            if stored.get("access_token") != stale_token and int(stored.get("expires_at") or 0) - REFRESH_LEEWAY_S > time.time():
                self.tokens = stored  # another worker refreshed meanwhile
                return
            if not stored.get("refresh_token"):
                raise ReconnectRequired("the connection has no Pipedrive refresh token")
            fresh = refresh_tokens(self.app, stored["refresh_token"])
            merged = {**stored, **fresh, "refreshed_at": int(time.time())}
            row.credentials = self.rt.vault.seal(merged)  # the rotated refresh token, in the same commit
            if merged.get("api_domain") and merged["api_domain"] != row.instance_url:
                row.instance_url = merged["api_domain"]
            uow.commit()
        self.tokens = merged
        self.refreshes += 1
        log.info("refreshed the Pipedrive tokens of connection %s", self.connection.id)


def credentials_for(rt: Any, connection: CrmConnection, app: OAuthApp | None = None):
    """Credentials for a stored connection, by kind of secret."""
    with rt.uow(connection.tenant_id) as uow:
        sealed = uow.connections.credentials(connection.id)
    if not sealed:
        raise ReconnectRequired("the connection holds no Pipedrive credentials")
    secret = rt.vault.open(sealed)
    # A row written before the allow-list existed could name any host: checked before a token goes there.
    domain = checked_api_domain(rt.settings, secret.get("api_domain") or connection.instance_url or "")
    if secret.get("kind") == "api_token":
        return ApiTokenCredentials(secret["api_token"], domain)
    return OAuthCredentials(rt, connection, app, tokens={**secret, "api_domain": domain})
