"""OAuth 2.0 and OpenID Connect: authorize pages, token endpoint, revoke, userinfo, identity URL, keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from werkzeug.wrappers import Request, Response

from .errors import SFError, invalid_session
from .server import json_response

if TYPE_CHECKING:
    from .server import Org

APP_SCOPES = ["api", "refresh_token", "offline_access", "openid", "id", "profile", "email", "address", "phone",
              "web", "full"]
CODE_TTL_MS = 15 * 60 * 1000


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response({"error": error, "error_description": description}, status)


class OAuth:
    def __init__(self, org: Org) -> None:
        self.org = org
        self._lock = threading.Lock()
        self.browser_sessions: dict[str, str] = {}
        db = org.store.db
        with org.store.lock:
            db.execute("CREATE TABLE IF NOT EXISTS _tokens (token TEXT PRIMARY KEY, kind TEXT, user_id TEXT, "
                       "client_id TEXT, scope TEXT, issued INTEGER, last INTEGER, revoked INTEGER DEFAULT 0, "
                       "parent TEXT, extra TEXT)")
        pem = org.store.kv_get("oidc_key")
        if pem is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
            org.store.kv_set("oidc_key", pem)
        self.key = serialization.load_pem_private_key(pem.encode(), password=None)
        nums = self.key.public_key().public_numbers()
        self.kid = hashlib.sha256(str(nums.n).encode()).hexdigest()[:8]
        self.jwk = {"kty": "RSA", "n": b64url(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
                    "e": b64url(nums.e.to_bytes(3, "big")), "alg": "RS256", "use": "sig", "kid": self.kid}

    # ------------------------------------------------------------------ tokens
    def _new_token(self, kind: str, user_id: str, client_id: str, scope: str, parent: str | None = None,
                   extra: dict | None = None) -> str:
        if kind == "access":
            token = f"{self.org.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
        elif kind == "refresh":
            token = "5Aep" + secrets.token_urlsafe(60)
        else:
            token = "aPrx" + secrets.token_urlsafe(48)
        now = self.org.clock.now_ms()
        with self.org.store.lock:
            self.org.store.db.execute(
                "INSERT INTO _tokens (token, kind, user_id, client_id, scope, issued, last, parent, extra) "
                "VALUES (?,?,?,?,?,?,?,?,?)", (token, kind, user_id, client_id, scope, now, now, parent,
                                              json.dumps(extra or {})))
        return token

    def _token_row(self, token: str) -> dict[str, Any] | None:
        with self.org.store.lock:
            cur = self.org.store.db.execute("SELECT * FROM _tokens WHERE token=?", (token,))
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        return dict(zip(names, row)) if row else None

    def issue_access(self, user_id: str, client_id: str, scope: str, parent: str | None = None) -> str:
        return self._new_token("access", user_id, client_id, scope, parent)

    def authenticate(self, request: Request) -> str:
        """Return the user id behind the request's bearer token, or raise INVALID_SESSION_ID."""
        auth = request.headers.get("Authorization", "")
        token = ""
        for prefix in ("Bearer ", "OAuth "):
            if auth.startswith(prefix):
                token = auth[len(prefix):].strip()
        if not token:
            token = request.headers.get("X-SFDC-Session", "")
        if not token:
            raise SFError(401, "INVALID_AUTH_HEADER", "INVALID_HEADER_TYPE")
        return self.validate(token)

    def validate(self, token: str) -> str:
        row = self._token_row(token)
        if row is None or row["kind"] != "access" or row["revoked"]:
            raise invalid_session()
        now = self.org.clock.now_ms()
        if now - row["last"] > self.org.session_timeout * 1000:
            raise invalid_session()
        if now - row["last"] > 1000:
            with self.org.store.lock:
                self.org.store.db.execute("UPDATE _tokens SET last=? WHERE token=?", (now, token))
        return row["user_id"]

    def revoke(self, token: str) -> bool:
        row = self._token_row(token)
        if row is None or row["revoked"]:
            return False
        with self.org.store.lock:
            db = self.org.store.db
            db.execute("UPDATE _tokens SET revoked=1 WHERE token=?", (token,))
            if row["kind"] == "refresh":
                db.execute("UPDATE _tokens SET revoked=1 WHERE parent=?", (token,))
        return True

    def revoke_all(self, user_id: str | None = None) -> None:
        with self.org.store.lock:
            if user_id:
                self.org.store.db.execute("UPDATE _tokens SET revoked=1 WHERE user_id=?", (user_id,))
            else:
                self.org.store.db.execute("UPDATE _tokens SET revoked=1")

    def expire_sessions(self) -> None:
        """Make every access token look idle past the timeout (refresh tokens stay valid)."""
        with self.org.store.lock:
            self.org.store.db.execute("UPDATE _tokens SET last=0 WHERE kind='access'")

    # ------------------------------------------------------------------ helpers
    def user(self, user_id: str) -> dict[str, Any]:
        obj = self.org.store.objects["User"]
        rec = self.org.store.get(obj, user_id)
        return rec or {}

    def check_password(self, username: str, password: str) -> str | None:
        obj = self.org.store.objects["User"]
        matches = self.org.store.find_by(obj, obj.fields["Username"], username)
        if not matches:
            return None
        uid = matches[0]
        stored = self.org.store.kv_get(f"password:{uid}")
        if stored is None or not hmac.compare_digest(stored, password):
            return None
        rec = self.user(uid)
        if not rec.get("IsActive"):
            return None
        return uid

    def identity_url(self, user_id: str) -> str:
        return f"{self.org.base_url}/id/{self.org.org_id}/{user_id}"

    def token_response(self, user_id: str, client_id: str, scope: str, refresh: str | None,
                       nonce: str | None = None, access: str | None = None) -> dict[str, Any]:
        access = access or self.issue_access(user_id, client_id, scope, parent=refresh)
        issued_at = str(self.org.clock.now_ms())
        ident = self.identity_url(user_id)
        sig = base64.b64encode(hmac.new(self.org.client_secret.encode(), (ident + issued_at).encode(),
                                        hashlib.sha256).digest()).decode()
        body: dict[str, Any] = {"access_token": access}
        if refresh:
            body["refresh_token"] = refresh
        body["signature"] = sig
        body["scope"] = scope
        if "openid" in scope.split():
            body["id_token"] = self.id_token(user_id, client_id, access, nonce)
        body.update({"instance_url": self.org.base_url, "id": ident, "token_type": "Bearer",
                     "issued_at": issued_at})
        return body

    def id_token(self, user_id: str, client_id: str, access: str, nonce: str | None) -> str:
        now = self.org.clock.now_ms() // 1000
        u = self.user(user_id)
        at_hash = b64url(hashlib.sha256(access.encode()).digest()[:16])
        claims: dict[str, Any] = {
            "at_hash": at_hash, "sub": self.identity_url(user_id), "aud": client_id,
            "iss": self.org.base_url, "exp": now + 300, "iat": now, "auth_time": now,
            "name": u.get("Name"), "preferred_username": u.get("Username"), "given_name": u.get("FirstName"),
            "family_name": u.get("LastName"), "email": u.get("Email"), "email_verified": True,
            "zoneinfo": u.get("TimeZoneSidKey") or "GMT", "organization_id": self.org.org_id,
            "user_id": user_id, "user_type": "STANDARD", "locale": "en_US",
        }
        if nonce:
            claims["nonce"] = nonce
        header = {"kid": self.kid, "typ": "JWT", "alg": "RS256"}
        signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
            b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)

    def identity(self, user_id: str, version: str = "62.0") -> dict[str, Any]:
        u = self.user(user_id)
        base = self.org.base_url
        urls = {k: f"{base}/services/{v}".replace("{version}", version) for k, v in {
            "enterprise": "Soap/c/{version}/" + self.org.org_id[:15],
            "metadata": "Soap/m/{version}/" + self.org.org_id[:15],
            "partner": "Soap/u/{version}/" + self.org.org_id[:15],
            "rest": "data/v{version}/", "sobjects": "data/v{version}/sobjects/",
            "search": "data/v{version}/search/", "query": "data/v{version}/query/",
            "recent": "data/v{version}/recent/", "tooling_soap": "Soap/T/{version}/" + self.org.org_id[:15],
            "tooling_rest": "data/v{version}/tooling/", "profile": "",
            "feeds": "data/v{version}/chatter/feeds", "groups": "data/v{version}/chatter/groups",
            "users": "data/v{version}/chatter/users", "feed_items": "data/v{version}/chatter/feed-items",
            "feed_elements": "data/v{version}/chatter/feed-elements",
        }.items()}
        urls["profile"] = f"{base}/{user_id}"
        urls["custom_domain"] = base
        return {
            "id": self.identity_url(user_id), "asserted_user": True, "user_id": user_id,
            "organization_id": self.org.org_id, "username": u.get("Username"),
            "nick_name": (u.get("Username") or "").split("@")[0], "display_name": u.get("Name"),
            "email": u.get("Email"), "email_verified": True, "first_name": u.get("FirstName"),
            "last_name": u.get("LastName"), "timezone": u.get("TimeZoneSidKey") or "GMT",
            "photos": {"picture": f"{base}/profilephoto/005/F", "thumbnail": f"{base}/profilephoto/005/T"},
            "addr_street": None, "addr_city": None, "addr_state": None, "addr_country": None, "addr_zip": None,
            "mobile_phone": None, "mobile_phone_verified": False, "is_lightning_login_user": False,
            "status": {"created_date": None, "body": None}, "urls": urls, "active": bool(u.get("IsActive")),
            "user_type": "STANDARD", "language": "en_US", "locale": "en_US", "utcOffset": 0,
            "last_modified_date": u.get("LastModifiedDate", "").replace("+0000", "Z"),
            "is_app_installed": True,
        }

    def userinfo(self, user_id: str) -> dict[str, Any]:
        u = self.user(user_id)
        ident = self.identity(user_id)
        return {
            "sub": self.identity_url(user_id), "user_id": user_id, "organization_id": self.org.org_id,
            "preferred_username": u.get("Username"), "nickname": ident["nick_name"], "name": u.get("Name"),
            "email": u.get("Email"), "email_verified": True, "given_name": u.get("FirstName"),
            "family_name": u.get("LastName"), "zoneinfo": ident["timezone"], "photos": ident["photos"],
            "profile": ident["urls"]["profile"], "picture": ident["photos"]["picture"], "address": {},
            "is_salesforce_integration_user": False, "urls": ident["urls"], "active": ident["active"],
            "user_type": "STANDARD", "language": "en_US", "locale": "en_US", "utcOffset": 0,
            "updated_at": ident["last_modified_date"], "is_app_installed": True,
        }


# ---------------------------------------------------------------------- redirect URIs
def redirect_allowed(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.hostname in ("127.0.0.1", "localhost", "::1")


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;background:#f3f3f3;margin:0}}main{{max-width:380px;margin:8vh auto;
background:#fff;border-radius:8px;padding:2rem;box-shadow:0 2px 8px #0002}}h1{{font-size:1.3rem;color:#032d60}}
label{{display:block;margin:.8rem 0 .2rem}}input[type=text],input[type=password],input[type=email]{{width:100%;
padding:.5rem;box-sizing:border-box}}button{{margin-top:1rem;padding:.6rem 1.2rem;background:#0176d3;color:#fff;
border:0;border-radius:4px;cursor:pointer}}button.deny{{background:#fff;color:#0176d3;border:1px solid #0176d3}}
.err{{color:#c23934}}</style></head><body><main>{body}</main></body></html>"""


def _hidden(params: dict[str, str]) -> str:
    return "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                   for k, v in params.items() if v is not None)


_AUTH_PARAMS = ("response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge",
                "code_challenge_method", "nonce", "prompt", "display", "login_hint")


def _page(title: str, body: str, status: int = 200) -> Response:
    return Response(_PAGE.format(title=html.escape(title), body=body), status=status,
                    content_type="text/html; charset=utf-8")


def _redirect(uri: str, params: dict[str, str]) -> Response:
    sep = "&" if "?" in uri else "?"
    resp = Response("", status=302)
    resp.headers["Location"] = uri + sep + urlencode(params)
    return resp


def authorize(org: Org, request: Request) -> Response:
    src = request.form if request.method == "POST" else request.args
    params = {k: src.get(k) for k in _AUTH_PARAMS if src.get(k) is not None}
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    if client_id != org.client_id:
        return _page("Error", "<h1>error=invalid_client_id</h1><p>error_description=client identifier invalid</p>",
                     400)
    if not redirect_allowed(redirect_uri):
        return _page("Error", "<h1>error=redirect_uri_mismatch</h1><p>error_description=redirect_uri must match "
                     "configuration</p>", 400)
    state = {"state": params["state"]} if "state" in params else {}
    if params.get("response_type") != "code":
        return _redirect(redirect_uri, {"error": "unsupported_response_type",
                                        "error_description": "response type not supported", **state})
    if params.get("code_challenge") and params.get("code_challenge_method", "S256") != "S256":
        return _redirect(redirect_uri, {"error": "invalid_request",
                                        "error_description": "code_challenge_method must be S256", **state})
    requested = (params.get("scope") or "").split()
    bad = [s for s in requested if s not in APP_SCOPES]
    if bad:
        return _redirect(redirect_uri, {"error": "invalid_scope",
                                        "error_description": "the requested scope is not allowed", **state})
    sid = request.cookies.get("sf_emu_sid", "")
    user_id = org.oauth.browser_sessions.get(sid)
    action = request.form.get("action") if request.method == "POST" else None
    error = ""
    set_cookie = None
    if action == "login":
        uid = org.oauth.check_password(request.form.get("username", ""), request.form.get("pw", ""))
        if uid is None:
            error = ("Please check your username and password. If you still can't log in, contact your "
                     "Salesforce administrator.")
        else:
            user_id = uid
            sid = secrets.token_urlsafe(24)
            org.oauth.browser_sessions[sid] = uid
            set_cookie = sid
    elif params.get("prompt") and "login" in params["prompt"].split() and action is None:
        user_id = None
    if user_id is None:
        body = (f"<h1>Log in to Salesforce (emulator)</h1>"
                + (f'<p class="err" role="alert">{html.escape(error)}</p>' if error else "")
                + f'<form method="post" action="/services/oauth2/authorize">{_hidden(params)}'
                '<input type="hidden" name="action" value="login">'
                '<label for="username">Username</label>'
                f'<input type="email" id="username" name="username" value="{html.escape(params.get("login_hint", ""))}"'
                ' autocomplete="username" required>'
                '<label for="password">Password</label>'
                '<input type="password" id="password" name="pw" autocomplete="current-password" required>'
                '<button type="submit" id="Login" name="Login">Log In</button></form>')
        return _page("Login | Salesforce", body, 401 if error else 200)
    if action in ("allow", "deny"):
        if action == "deny":
            return _redirect(redirect_uri, {"error": "access_denied",
                                            "error_description": "end-user denied authorization", **state})
        scope = " ".join(requested) if requested else "api refresh_token id"
        code = org.oauth._new_token("code", user_id, client_id, scope, extra={
            "redirect_uri": redirect_uri, "code_challenge": params.get("code_challenge"),
            "nonce": params.get("nonce")})
        return _redirect(redirect_uri, {"code": code, **state})
    u = org.oauth.user(user_id)
    scope_list = "".join(f"<li>{html.escape(s)}</li>" for s in (requested or ["api", "refresh_token", "id"]))
    body = (f"<h1>Allow Access?</h1><p>Refstage ({html.escape(client_id)}) is asking to access your data as "
            f"<strong>{html.escape(u.get('Username') or '')}</strong>:</p><ul>{scope_list}</ul>"
            f'<form method="post" action="/services/oauth2/authorize">{_hidden(params)}'
            '<button type="submit" id="oaapprove" name="action" value="allow">Allow</button> '
            '<button type="submit" class="deny" id="oadeny" name="action" value="deny">Deny</button></form>')
    resp = _page("Allow Access | Salesforce", body)
    if set_cookie:
        resp.set_cookie("sf_emu_sid", set_cookie, httponly=True, secure=True, samesite="Lax", path="/")
    return resp


def _client_credentials(request: Request) -> tuple[str, str | None]:
    client_id = request.form.get("client_id", "")
    secret = request.form.get("client_secret")
    if request.authorization and request.authorization.type == "basic":
        client_id = request.authorization.username or client_id
        secret = request.authorization.password or secret
    return client_id, secret


def token(org: Org, request: Request) -> Response:
    if request.mimetype != "application/x-www-form-urlencoded" and request.method == "POST" and not request.form:
        return oauth_error("invalid_request", "must be form-encoded")
    grant = request.form.get("grant_type", "")
    client_id, secret = _client_credentials(request)
    if not client_id or client_id != org.client_id:
        return oauth_error("invalid_client_id", "client identifier invalid")
    secret_ok = secret is not None and hmac.compare_digest(secret, org.client_secret)
    if secret is not None and not secret_ok:
        return oauth_error("invalid_client", "invalid client credentials")
    oa = org.oauth
    if grant == "authorization_code":
        code = request.form.get("code", "")
        row = oa._token_row(code)
        if row is None or row["kind"] != "code" or row["revoked"] or \
                org.clock.now_ms() - row["issued"] > CODE_TTL_MS:
            return oauth_error("invalid_grant", "invalid authorization code")
        extra = json.loads(row["extra"] or "{}")
        oa.revoke(code)  # single use
        if request.form.get("redirect_uri") != extra.get("redirect_uri"):
            return oauth_error("redirect_uri_mismatch", "redirect_uri must match configuration")
        challenge = extra.get("code_challenge")
        verifier = request.form.get("code_verifier")
        if challenge:
            if not verifier:
                return oauth_error("invalid_grant", "invalid code verifier")
            computed = b64url(hashlib.sha256(verifier.encode()).digest())
            if not hmac.compare_digest(computed, challenge):
                return oauth_error("invalid_grant", "invalid code verifier")
        elif verifier:
            return oauth_error("invalid_grant", "invalid code verifier")
        if not secret_ok and not challenge:
            return oauth_error("invalid_client", "invalid client credentials")
        scope = row["scope"]
        scopes = scope.split()
        refresh = None
        if "refresh_token" in scopes or "offline_access" in scopes or "full" in scopes:
            refresh = oa._new_token("refresh", row["user_id"], client_id, scope)
        return json_response(oa.token_response(row["user_id"], client_id, scope, refresh, extra.get("nonce")))
    if grant == "refresh_token":
        rt = request.form.get("refresh_token", "")
        row = oa._token_row(rt)
        if row is None or row["kind"] != "refresh" or row["revoked"]:
            return oauth_error("invalid_grant", "expired access/refresh token")
        if not oa.user(row["user_id"]).get("IsActive"):
            return oauth_error("invalid_grant", "inactive user")
        return json_response(oa.token_response(row["user_id"], client_id, row["scope"], None,
                                               access=oa.issue_access(row["user_id"], client_id, row["scope"],
                                                                      parent=rt)))
    if grant == "password":
        if not secret_ok:
            return oauth_error("invalid_client", "invalid client credentials")
        uid = oa.check_password(request.form.get("username", ""), request.form.get("password", ""))
        if uid is None:
            return oauth_error("invalid_grant", "authentication failure")
        return json_response(oa.token_response(uid, client_id, "api id", None))
    if grant == "client_credentials":
        if not secret_ok:
            return oauth_error("invalid_client", "invalid client credentials")
        return json_response(oa.token_response(org.admin_id, client_id, "api id", None))
    if not grant:
        return oauth_error("invalid_request", "missing grant type")
    return oauth_error("unsupported_grant_type", "grant type not supported")


def revoke(org: Org, request: Request) -> Response:
    tok = request.values.get("token", "")
    if not tok or not org.oauth.revoke(tok):
        return oauth_error("unsupported_token_type", "this token type is not supported")
    return Response("", 200)


def _bearer_user(org: Org, request: Request) -> str:
    return org.oauth.authenticate(request)


def userinfo(org: Org, request: Request) -> Response:
    try:
        uid = _bearer_user(org, request)
    except SFError:
        return Response("Bad_OAuth_Token", 403, content_type="text/plain")
    return json_response(org.oauth.userinfo(uid))


def identity(org: Org, request: Request, org_id: str, user_id: str) -> Response:
    try:
        uid = _bearer_user(org, request)
    except SFError:
        return Response("Bad_OAuth_Token", 403, content_type="text/plain")
    from . import ids

    if ids.normalize(org_id) != org.org_id or ids.normalize(user_id) != uid:
        return Response("Bad_Id", 403, content_type="text/plain")
    body = org.oauth.identity(uid, request.args.get("version", "62.0"))
    return json_response(body)


def openid_configuration(org: Org, request: Request) -> Response:
    base = org.base_url
    return json_response({
        "issuer": base,
        "authorization_endpoint": f"{base}/services/oauth2/authorize",
        "token_endpoint": f"{base}/services/oauth2/token",
        "revocation_endpoint": f"{base}/services/oauth2/revoke",
        "userinfo_endpoint": f"{base}/services/oauth2/userinfo",
        "jwks_uri": f"{base}/id/keys",
        "scopes_supported": APP_SCOPES,
        "response_types_supported": ["code", "token", "token id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "display_values_supported": ["page", "popup", "touch"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic",
                                                  "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["active", "address", "email", "email_verified", "family_name", "given_name",
                             "is_app_installed", "language", "locale", "name", "nickname", "organization_id",
                             "phone_number", "phone_number_verified", "photos", "picture",
                             "preferred_username", "profile", "sub", "updated_at", "urls", "user_id",
                             "user_type", "zoneinfo"],
    })


def keys(org: Org, request: Request) -> Response:
    return json_response({"keys": [org.oauth.jwk]})


def routes() -> list[tuple[str, list[str], Any]]:
    return [
        ("/services/oauth2/authorize", ["GET", "POST"], authorize),
        ("/services/oauth2/token", ["POST"], token),
        ("/services/oauth2/revoke", ["GET", "POST"], revoke),
        ("/services/oauth2/userinfo", ["GET", "POST"], userinfo),
        ("/id/<org_id>/<user_id>", ["GET", "POST"], identity),
        ("/.well-known/openid-configuration", ["GET"], openid_configuration),
        ("/id/keys", ["GET"], keys),
    ]
