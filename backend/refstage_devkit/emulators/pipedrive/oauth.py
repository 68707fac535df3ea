"""OAuth 2.0 for the emulated marketplace app, API tokens, and request authentication.

The authorize page is plain HTML a browser (or a test with requests) can drive: log in as a
seeded user (password `demo`), then Allow or Deny. The token endpoint takes form-encoded
`authorization_code` / `refresh_token` grants with HTTP Basic client authentication only, as
Pipedrive documents. Refresh rotates: each refresh answers with a new refresh token and the old
one stops working; access tokens already issued live until they expire. `/oauth/revoke` revokes
a refresh token (and the access tokens minted from it) or a single access token.
"""

from __future__ import annotations

import base64
import html
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, jsonify, redirect, request

from .company import ADMIN_USER_ID, USERS
from .store import Clock

DEMO_CLIENT_ID = "refstage-demo"
DEMO_CLIENT_SECRET = "refstage-demo-secret"
DEMO_SCOPES = "base,deals:full,contacts:full,search:read,admin"  # Pipedrive answers comma-separated
USER_PASSWORD = "demo"
CODE_TTL = 300
REDIRECT_HOSTS = {"127.0.0.1", "localhost"}


@dataclass
class Principal:
    kind: str  # "oauth" or "api_token"
    user_id: int
    key: str  # what rate limits are counted against
    scopes: frozenset[str] | None = None  # None: an API token, which may do everything
    client_id: str | None = None


@dataclass
class OAuthState:
    clock: Clock
    token_ttl: int = 3600
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_tokens: dict[str, int] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seed(self, api_token: str | None = None) -> str:
        self.apps[DEMO_CLIENT_ID] = {"secret": DEMO_CLIENT_SECRET, "scopes": DEMO_SCOPES,
                                     "name": "Refstage (demo app)"}
        token = api_token or secrets.token_hex(20)
        self.api_tokens[token] = ADMIN_USER_ID
        return token

    # -- tokens ---------------------------------------------------------------------------
    def _issue(self, client_id: str, user_id: int, scope: str) -> dict[str, Any]:
        now = self.clock.ts()
        access = f"{user_id}:{secrets.token_urlsafe(24)}"
        refresh = f"{user_id}:{secrets.token_urlsafe(32)}"
        self.access[access] = {"client_id": client_id, "user_id": user_id, "scope": scope,
                               "expires_at": now + self.token_ttl, "refresh": refresh}
        self.refresh[refresh] = {"client_id": client_id, "user_id": user_id, "scope": scope,
                                 "revoked": False}
        return {"access_token": access, "token_type": "Bearer", "refresh_token": refresh,
                "scope": scope, "expires_in": self.token_ttl}

    def authenticate(self, bearer: str | None, api_token: str | None) -> tuple[Principal | None, str]:
        if bearer:
            with self.lock:
                info = self.access.get(bearer)
            if info is None:
                return None, "Invalid token: access token is invalid"
            if info["expires_at"] <= self.clock.ts():
                return None, "Invalid token: access token has expired"
            return Principal("oauth", info["user_id"], "oauth:" + bearer[-12:],
                             frozenset(_scopes(info["scope"])), info["client_id"]), ""
        if api_token:
            user_id = self.api_tokens.get(api_token)
            if user_id is None:
                return None, "You need to be authorized to make this request."
            return Principal("api_token", user_id, "token:" + api_token[-12:]), ""
        return None, "You need to be authorized to make this request."

    def snapshot(self) -> dict[str, Any]:
        now = self.clock.ts()
        with self.lock:
            return {"live_access_tokens": sum(1 for a in self.access.values() if a["expires_at"] > now),
                    "live_refresh_tokens": sum(1 for r in self.refresh.values() if not r["revoked"]),
                    "token_ttl": self.token_ttl}


def _scopes(text: str) -> list[str]:
    return [s for s in re.split(r"[,\s]+", text) if s]


def _redirect_ok(uri: str | None) -> bool:
    if not uri:
        return False
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and parts.hostname in REDIRECT_HOSTS


def _page(title: str, body: str, status: int = 200) -> Response:
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;color:#192435}}
h1{{font-size:1.3rem}} label{{display:block;margin:.6rem 0 .2rem}} input{{width:100%;padding:.4rem}}
.actions{{margin-top:1rem;display:flex;gap:.5rem}} button{{padding:.5rem 1rem}}
.scopes{{background:#f3f5f7;padding:.5rem 1rem;border-radius:4px}}</style></head>
<body><p><strong>Pipedrive</strong> (local emulator)</p>{body}</body></html>"""
    return Response(doc, status=status, mimetype="text/html")


def _oauth_error(status: int, error: str, description: str) -> Response:
    resp = jsonify({"success": False, "error": error, "error_description": description,
                    "message": description})
    resp.status_code = status
    return resp


def _client_from_basic(state: OAuthState) -> tuple[str | None, Response | None]:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None, _oauth_error(401, "invalid_client",
                                  "Client authentication with HTTP Basic (client_id:client_secret) is required")
    try:
        client_id, _, secret = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, _oauth_error(401, "invalid_client", "Malformed Basic credentials")
    app = state.apps.get(client_id)
    if app is None or not secrets.compare_digest(app["secret"], secret):
        return None, _oauth_error(401, "invalid_client", "Invalid client credentials")
    return client_id, None


def blueprint(state: OAuthState, api_domain: Any) -> Blueprint:
    bp = Blueprint("pipedrive_oauth", __name__)

    @bp.get("/oauth/authorize")
    def authorize_page() -> Response:
        client_id = request.args.get("client_id")
        redirect_uri = request.args.get("redirect_uri")
        app = state.apps.get(client_id or "")
        if app is None:
            return _page("Unknown app", "<h1>Unknown app</h1><p>No app has this client_id.</p>", 400)
        if not _redirect_ok(redirect_uri):
            return _page("Invalid redirect", "<h1>Invalid redirect_uri</h1><p>The emulator accepts "
                         "http(s)://127.0.0.1 and http(s)://localhost callbacks.</p>", 400)
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
            for k, v in (("client_id", client_id), ("redirect_uri", redirect_uri),
                         ("state", request.args.get("state", ""))))
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in _scopes(app["scopes"]))
        return _page("Authorize app", f"""
<h1>{html.escape(app['name'])} wants to access your Pipedrive company</h1>
<div class="scopes"><p>It asks for:</p><ul>{scopes}</ul></div>
<form method="post" action="/oauth/authorize">{hidden}
<label for="email">Email</label><input id="email" name="email" value="{html.escape(USERS[0]['email'])}">
<label for="password">Password</label><input id="password" name="password" type="password" value="">
<p><small>Seeded users log in with password <code>{USER_PASSWORD}</code>.</small></p>
<div class="actions"><button type="submit" name="decision" value="allow" id="allow">Allow and install</button>
<button type="submit" name="decision" value="deny" id="deny">Cancel</button></div></form>""")

    @bp.post("/oauth/authorize")
    def authorize_submit() -> Response:
        client_id = request.form.get("client_id", "")
        redirect_uri = request.form.get("redirect_uri", "")
        app_state = request.form.get("state", "")
        if client_id not in state.apps or not _redirect_ok(redirect_uri):
            return _page("Invalid request", "<h1>Invalid authorization request</h1>", 400)
        sep = "&" if "?" in redirect_uri else "?"
        if request.form.get("decision") != "allow":
            query = {"error": "access_denied"}
            if app_state:
                query["state"] = app_state
            return redirect(redirect_uri + sep + urlencode(query), code=302)
        user = next((u for u in USERS if u["email"] == request.form.get("email", "").strip()), None)
        if user is None or request.form.get("password") != USER_PASSWORD:
            return _page("Log in failed", "<h1>Wrong email or password</h1>"
                         "<p><a href=\"javascript:history.back()\">Try again</a></p>", 401)
        code = secrets.token_urlsafe(24)
        with state.lock:
            state.codes[code] = {"client_id": client_id, "redirect_uri": redirect_uri,
                                 "user_id": user["id"], "scope": state.apps[client_id]["scopes"],
                                 "expires_at": state.clock.ts() + CODE_TTL}
        query = {"code": code}
        if app_state:
            query["state"] = app_state
        return redirect(redirect_uri + sep + urlencode(query), code=302)

    @bp.post("/oauth/token")
    def token() -> Response:
        client_id, error = _client_from_basic(state)
        if error is not None:
            return error
        grant = request.form.get("grant_type")
        with state.lock:
            if grant == "authorization_code":
                code = state.codes.pop(request.form.get("code", ""), None)
                if code is None or code["expires_at"] <= state.clock.ts():
                    return _oauth_error(400, "invalid_grant", "Invalid grant: authorization code is invalid")
                if code["client_id"] != client_id:
                    return _oauth_error(400, "invalid_grant", "Invalid grant: code was issued to another client")
                if request.form.get("redirect_uri") != code["redirect_uri"]:
                    return _oauth_error(400, "invalid_grant", "Invalid grant: redirect_uri does not match")
                body = state._issue(client_id, code["user_id"], code["scope"])
            elif grant == "refresh_token":
                old = request.form.get("refresh_token", "")
                info = state.refresh.get(old)
                if info is None or info["revoked"] or info["client_id"] != client_id:
                    return _oauth_error(400, "invalid_grant", "Invalid grant: refresh token is invalid")
                info["revoked"] = True  # rotation: the old refresh token is spent
                body = state._issue(client_id, info["user_id"], info["scope"])
            else:
                return _oauth_error(400, "unsupported_grant_type",
                                    "grant_type must be authorization_code or refresh_token")
        body["api_domain"] = api_domain()
        resp = jsonify(body)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @bp.post("/oauth/revoke")
    def revoke() -> Response:
        client_id, error = _client_from_basic(state)
        if error is not None:
            return error
        token_value = request.form.get("token", "")
        with state.lock:
            if token_value in state.refresh and state.refresh[token_value]["client_id"] == client_id:
                state.refresh[token_value]["revoked"] = True
                for key in [k for k, v in state.access.items() if v["refresh"] == token_value]:
                    del state.access[key]
            elif token_value in state.access and state.access[token_value]["client_id"] == client_id:
                del state.access[token_value]
        # RFC 7009: an unknown token is not an error.
        return Response(status=200)

    return bp
