"""OAuth 2.0 web server flow (authlib) with state and PKCE S256, token refresh persisted atomically
through the Vault, and revocation. Salesforce sends no `expires_in`: we refresh when it says
INVALID_SESSION_ID, and treat `invalid_grant` on refresh as "a person must reconnect"."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import select

from refstage.adapters.crm.hosts import HostNotAllowed, salesforce_hosts
from refstage.adapters.db import models as m
from refstage.domain.hosts import SALESFORCE_HOSTS, HostPolicy
from refstage.domain.connections import CrmConnection
from refstage.adapters.crm.oauth import call_token_endpoint
from refstage.services.ports import CrmError, ReconnectRequired

log = logging.getLogger(__name__)

LOGIN_HOSTS = {"production": "https://login.salesforce.com", "sandbox": "https://test.salesforce.com"}
AUTHORIZE_PATH = "/services/oauth2/authorize"
TOKEN_PATH = "/services/oauth2/token"
REVOKE_PATH = "/services/oauth2/revoke"
SCOPE = "api refresh_token id"
TIMEOUT = (10.0, 30.0)


@dataclass(frozen=True)
class OAuthApp:
    """The connected app Refstage signs in as, and the hosts its secret may be sent to."""

    client_id: str
    client_secret: str
    redirect_uri: str
    hosts: HostPolicy = field(default=HostPolicy("Salesforce", SALESFORCE_HOSTS), repr=False)

    @classmethod
    def from_settings(cls, settings: Any) -> "OAuthApp":
        extra = dict(getattr(settings, "extra", {}) or {})

        def pick(key: str, env: str, default: str | None = None) -> str | None:
            return extra.get(key) or os.environ.get(env) or default

        client_id = pick("salesforce_client_id", "REFSTAGE_SALESFORCE_CLIENT_ID")
        secret = pick("salesforce_client_secret", "REFSTAGE_SALESFORCE_CLIENT_SECRET")
        redirect = pick("salesforce_redirect_uri", "REFSTAGE_SALESFORCE_REDIRECT_URI",
                        f"{settings.base_url}/salesforce/oauth/callback")
        if not client_id or not secret:
            raise CrmError("the Salesforce connected app is not configured: set REFSTAGE_SALESFORCE_CLIENT_ID and "
                           "REFSTAGE_SALESFORCE_CLIENT_SECRET", transient=False, code="not_configured")
        return cls(client_id, secret, redirect or "", salesforce_hosts(settings))


def login_host_url(value: str | None, hosts: HostPolicy | None = None) -> str:
    """`production`, `sandbox`, or an https My Domain URL (https://acme.my.salesforce.com) on the
    allow-list; ValueError (HostNotAllowed) for anything else."""
    value = (value or "production").strip()
    if value.lower() in LOGIN_HOSTS:
        return LOGIN_HOSTS[value.lower()]
    parts = urlsplit(value)
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError("the login host must be production, sandbox or an https:// My Domain URL (no path)")
    return (hosts or HostPolicy("Salesforce", SALESFORCE_HOSTS)).origin(value)


def allowed_origin(app: OAuthApp, url: str) -> str:
    """The origin of `url` when the app may talk to it; a permanent CrmError otherwise (nothing is sent)."""
    try:
        return app.hosts.origin(url)
    except HostNotAllowed as exc:
        raise CrmError(f"refusing to contact {url!r}: {exc}", transient=False, code="host_not_allowed") from None


def check_token_hosts(app: OAuthApp, token: dict[str, Any]) -> None:
    """The instance and identity URLs a token answer names get our bearer token later: allow-listed too."""
    for key in ("instance_url", "id"):
        if token.get(key):
            allowed_origin(app, str(token[key]))


def pkce_pair() -> tuple[str, str]:
    verifier = generate_token(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _client(app: OAuthApp, **kw: Any) -> OAuth2Session:
    return OAuth2Session(app.client_id, app.client_secret, redirect_uri=app.redirect_uri, scope=SCOPE,
                         code_challenge_method="S256", token_endpoint_auth_method="client_secret_post", **kw)


def authorize_url(app: OAuthApp, login_host: str, state: str, code_verifier: str, prompt: str | None = "login consent") -> str:
    with _client(app) as client:
        extra = {"prompt": prompt} if prompt else {}
        url, _ = client.create_authorization_url(login_host + AUTHORIZE_PATH, state=state, code_verifier=code_verifier,
                                                 **extra)
    return url


def verify_signature(app: OAuthApp, token: dict[str, Any]) -> None:
    """Salesforce signs `id + issued_at` with the client secret: a token that fails this is not from our app."""
    sig = token.get("signature")
    if not sig:
        return
    expected = base64.b64encode(hmac.new(app.client_secret.encode(), (str(token.get("id", "")) + str(token.get("issued_at", ""))).encode(),
                                         hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(sig, expected):
        raise CrmError("the token response signature does not match the connected app", transient=False, code="invalid_signature")


def _token_call(fn, *args: Any, **kw: Any) -> dict[str, Any]:
    return call_token_endpoint(fn, *args, crm="Salesforce", timeout=TIMEOUT, **kw)


def exchange_code(app: OAuthApp, login_host: str, code: str, code_verifier: str) -> dict[str, Any]:
    origin = allowed_origin(app, login_host)  # the client secret goes to allow-listed hosts only
    with _client(app) as client:
        token = _token_call(client.fetch_token, origin + TOKEN_PATH, grant_type="authorization_code", code=code,
                            code_verifier=code_verifier, allow_redirects=False)
    verify_signature(app, token)
    check_token_hosts(app, token)
    return token


def refresh_tokens(app: OAuthApp, login_host: str, refresh_token: str) -> dict[str, Any]:
    origin = allowed_origin(app, login_host)
    with _client(app) as client:
        token = _token_call(client.refresh_token, origin + TOKEN_PATH, refresh_token=refresh_token, allow_redirects=False)
    verify_signature(app, token)
    check_token_hosts(app, token)
    return token


def identity(token: dict[str, Any], app: OAuthApp | None = None) -> dict[str, Any]:
    """The identity URL names the org and user; read the username from it."""
    allowed_origin(app or OAuthApp("", "", ""), str(token.get("id") or ""))
    try:
        response = requests.get(token["id"], headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=TIMEOUT,
                                allow_redirects=False)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise CrmError(f"Salesforce identity URL could not be reached: {exc}", transient=True) from exc
    if response.status_code >= 300:
        raise CrmError(f"Salesforce identity URL answered {response.status_code}", transient=response.status_code >= 500,
                       status=response.status_code)
    return response.json()


def revoke(app: OAuthApp, login_host: str, token: str) -> bool:
    try:
        origin = allowed_origin(app, login_host)
    except CrmError as exc:
        log.warning("not revoking: %s", exc)
        return False
    with _client(app) as client:
        try:
            response = client.revoke_token(origin + REVOKE_PATH, token=token, timeout=TIMEOUT, allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout) as exc:
            log.warning("revoking a Salesforce token failed: %s", exc)
            return False
    return response.status_code == 200


def org_and_user(identity_url: str) -> tuple[str, str]:
    """https://login.salesforce.com/id/<orgId>/<userId>"""
    parts = urlsplit(identity_url).path.rstrip("/").split("/")
    if len(parts) < 4 or parts[-3] != "id":
        raise CrmError(f"unexpected identity URL {identity_url!r}", transient=False)
    return parts[-2], parts[-1]


class TokenKeeper:
    """The connection's tokens, opened from the Vault; refreshes and persists rotated tokens atomically."""

    def __init__(self, rt: Any, connection: CrmConnection, app: OAuthApp | None = None) -> None:
        self.rt = rt
        self.connection = connection
        self.app = app
        self.refreshes = 0
        self._load()

    def _load(self) -> None:
        with self.rt.uow(self.connection.tenant_id) as uow:
            sealed = uow.connections.credentials(self.connection.id)
        if not sealed:
            raise ReconnectRequired("the connection holds no Salesforce tokens")
        self.tokens = self.rt.vault.open(sealed)
        # A row written before the allow-list could name any instance: our bearer token would go there.
        instance = self.tokens.get("instance_url") or self.connection.instance_url
        if instance and not salesforce_hosts(self.rt.settings).allows(instance):
            raise CrmError(f"the connection's instance {instance!r} is not an allow-listed Salesforce host; add it to "
                           "REFSTAGE_SALESFORCE_LOGIN_HOSTS if it is your org's", transient=False, code="host_not_allowed")

    @property
    def access_token(self) -> str:
        return self.tokens["access_token"]

    @property
    def instance_url(self) -> str:
        return self.tokens.get("instance_url") or self.connection.instance_url or ""

    def refresh(self, stale_token: str) -> None:
        """Refresh once per stale token. The row is locked (FOR UPDATE on PostgreSQL) while we refresh, so two
        workers hitting INVALID_SESSION_ID together end with one refresh; the second reuses the first's token."""
        app = self.app or OAuthApp.from_settings(self.rt.settings)
        with self.rt.uow(self.connection.tenant_id) as uow:
            row = uow.session.scalar(select(m.ConnectionRow).where(
                m.ConnectionRow.id == self.connection.id, m.ConnectionRow.tenant_id == self.connection.tenant_id)
                .with_for_update())
            if row is None or not row.credentials:
                raise ReconnectRequired("the connection holds no Salesforce tokens")
            stored = self.rt.vault.open(row.credentials)
            if stored.get("access_token") != stale_token:
                self.tokens = stored  # someone refreshed meanwhile
                return
            if not stored.get("refresh_token"):
                raise ReconnectRequired("the connection has no refresh token")
            fresh = refresh_tokens(app, self.connection.login_host or LOGIN_HOSTS["production"], stored["refresh_token"])
            merged = {**stored, **{k: v for k, v in fresh.items() if k in (
                "access_token", "refresh_token", "instance_url", "id", "issued_at", "scope", "token_type")}}
            merged["refreshed_at"] = int(time.time())
            row.credentials = self.rt.vault.seal(merged)
            if merged.get("instance_url") and merged["instance_url"] != row.instance_url:
                row.instance_url = merged["instance_url"]
            uow.commit()
        self.tokens = merged
        self.refreshes += 1
        log.info("refreshed the Salesforce session of connection %s", self.connection.id)
