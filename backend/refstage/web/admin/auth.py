"""Sign-in for the admin console: local accounts and "Sign in with Salesforce" (OpenID Connect).

- Local: `services.tenants.authenticate` (email + password). The session is cleared on sign-in
  (no fixation) and on sign-out.
- Salesforce: discovery at the login host's `/.well-known/openid-configuration`, authorization code
  with state, nonce and PKCE; the RS256 `id_token` is verified against the provider's `jwks_uri`
  (`/id/keys`), then `(organization_id, user_id)` is mapped to Refstage users an admin linked to
  that identity (`Directory.users_for_salesforce_identity`). Nobody is created by signing in.
- Roles: every view declares the roles it allows with `@requires(...)`; a view without a
  declaration is refused, so a new route cannot be public by accident.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from functools import wraps
from typing import Any, Callable

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from flask import abort, current_app, flash, g, redirect, render_template, request, session, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from refstage.domain.errors import InvalidInput
from refstage.domain.tenants import Role, User
from refstage.services import sign_in as sign_in_service
from refstage.services.ports import CrmError
from refstage.services.runtime import Runtime
from refstage.web.admin import bp
from refstage.web.csrf import SESSION_KEY as CSRF_SESSION_KEY
from refstage.web.csrf import check_csrf, csrf_token
from refstage.web.public import client_ip

log = logging.getLogger(__name__)

USER_KEY = "admin_user_id"
SESSION_TOKEN_KEY = "admin_session"
TENANT_KEY = "admin_tenant_id"
OIDC_KEY = "_admin_oidc"
CHOICE_KEY = "_admin_sf_choices"
HTTP_TIMEOUT = (10.0, 20.0)
ALL = (Role.ADMIN.value, Role.REVIEWER.value)
ADMIN = (Role.ADMIN.value,)


def rt() -> Runtime:
    return current_app.extensions["refstage"]


def requires(*roles: str) -> Callable:
    """Declare who may use a view. Checked in `_load_user` before the view runs."""

    def deco(fn: Callable) -> Callable:
        fn._admin_roles = frozenset(roles)  # type: ignore[attr-defined]
        return fn

    return deco


def public(fn: Callable) -> Callable:
    fn._admin_public = True  # type: ignore[attr-defined]
    return fn


def actor():
    from refstage.domain.audit import Actor

    user: User = g.admin_user
    return Actor.person(user.id, user.email)


def tenant_id() -> str:
    return g.tenant_id


@bp.before_request
def _load_user():
    if request.endpoint == "admin.static":
        return None
    if request.method == "POST":
        check_csrf()
    view = current_app.view_functions.get(request.endpoint or "")
    g.admin_user = None
    user_id, tid = session.get(USER_KEY), session.get(TENANT_KEY)
    if user_id and tid:
        # The cookie alone is not enough: its server-side session must still be open (not signed out,
        # no password change since, not expired).
        found = sign_in_service.session_user(rt(), tid, user_id, session.get(SESSION_TOKEN_KEY))
        if found is None:
            session.clear()
        else:
            g.admin_user, g.tenant = found
            g.tenant_id = tid
    if view is not None and getattr(view, "_admin_public", False):
        return None
    if g.admin_user is None:
        return redirect(url_for("admin.login", next=request.full_path if request.method == "GET" else None))
    roles = getattr(view, "_admin_roles", None)
    if not roles or g.admin_user.role.value not in roles:
        abort(403)
    return None


@bp.app_template_global("admin_can")
def admin_can(*roles: str) -> bool:
    user = getattr(g, "admin_user", None)
    return bool(user and user.role.value in roles)


def _safe_next(target: str | None) -> str:
    """A same-console path, else home: never another host, never a header break (CR/LF) in Location."""
    if (target and target.startswith("/admin") and not target.startswith("//") and "\\" not in target
            and target.isascii() and target.isprintable() and len(target) <= 2000):
        return target
    return url_for("admin.home")


def _sign_in(user: User) -> None:
    session.clear()  # a fresh session: nothing from before sign-in survives (session fixation)
    session[USER_KEY] = user.id
    session[TENANT_KEY] = user.tenant_id
    session[SESSION_TOKEN_KEY] = sign_in_service.open_session(rt(), user)
    session.permanent = False
    csrf_token()  # a new CSRF token for the new session
    log.info("admin sign-in user=%s tenant=%s", user.id, user.tenant_id)


def _login_host_default() -> str:
    extra = dict(getattr(rt().settings, "extra", {}) or {})
    return extra.get("salesforce_login_host") or "production"


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    error = None
    status, headers = 200, {}
    if request.method == "POST":
        result = sign_in_service.sign_in(rt(), request.form.get("email", "")[:254], request.form.get("password", "")[:1024],
                                         client_ip())
        if result.retry_after is not None:
            minutes = max(1, round(result.retry_after / 60))
            error = f"Too many failed attempts. Wait about {minutes} minute{'s' if minutes != 1 else ''} and try again."
            status, headers = 429, {"Retry-After": str(result.retry_after)}
        elif result.user is None:
            error, status = "That email and password do not match an account.", 401
        else:
            _sign_in(result.user)
            return redirect(_safe_next(request.form.get("next")))
    next_path = request.values.get("next", "")
    return render_template("admin/login.html", error=error, next=next_path if next_path.isprintable() else "",
                           email=request.form.get("email", ""), login_host=_login_host_default()), status, headers


@bp.route("/logout", methods=["POST"])
@public
def logout():
    tid = session.get(TENANT_KEY)
    if tid:
        sign_in_service.end_session(rt(), tid, session.get(SESSION_TOKEN_KEY))
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("admin.login"))


# --- Sign in with Salesforce (OpenID Connect) -------------------------------------------------------------------


class OidcError(Exception):
    pass


def _discover(login_host: str, hosts) -> dict[str, Any]:
    """The provider's OpenID configuration, trusted only when it names `login_host` (an allow-listed
    origin) as its issuer and puts its authorization, token and key endpoints on that same origin."""
    from refstage.domain.hosts import HostNotAllowed

    try:
        resp = requests.get(login_host + "/.well-known/openid-configuration", timeout=HTTP_TIMEOUT, allow_redirects=False)
        resp.raise_for_status()
        doc = resp.json()
    except (requests.RequestException, ValueError) as exc:
        raise OidcError(f"Salesforce could not be reached at {login_host}") from exc
    if not isinstance(doc, dict):
        raise OidcError(f"the OpenID configuration at {login_host} is not a JSON object")
    for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(key), str) or not doc[key].startswith("https://"):
            raise OidcError(f"the OpenID configuration at {login_host} has no usable {key}")
    if doc["issuer"].rstrip("/") != login_host:
        raise OidcError(f"the OpenID configuration at {login_host} names another issuer")
    try:
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            hosts.same_origin(doc[key], login_host)
    except HostNotAllowed as exc:
        raise OidcError(f"the OpenID configuration at {login_host} points elsewhere ({exc})") from None
    if "RS256" not in (doc.get("id_token_signing_alg_values_supported") or ["RS256"]):
        raise OidcError("the provider does not sign id tokens with RS256")
    return {**doc, "issuer": login_host}


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@bp.route("/login/salesforce", methods=["POST"])
@public
def login_salesforce():
    try:
        app = sign_in_service.salesforce_app(rt())
        login_host = sign_in_service.salesforce_login_host(rt(), app, request.form.get("login_host") or _login_host_default())
        doc = _discover(login_host, app.hosts)
    except ValueError as exc:
        return _oidc_failed(str(exc))
    except OidcError as exc:
        return _oidc_failed(str(exc))
    except Exception as exc:  # noqa: BLE001 - CrmError "not configured" and the like become a message
        return _oidc_failed(str(exc))
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier, challenge = _pkce()
    session[OIDC_KEY] = {"state": state, "nonce": nonce, "verifier": verifier, "login_host": login_host,
                         "issuer": doc["issuer"], "token_endpoint": doc["token_endpoint"], "jwks_uri": doc["jwks_uri"],
                         "next": _safe_next(request.form.get("next"))}
    redirect_uri = url_for("admin.login_salesforce_callback", _external=True)
    with OAuth2Session(app.client_id, redirect_uri=redirect_uri, scope="openid id") as client:
        url, _ = client.create_authorization_url(doc["authorization_endpoint"], state=state, nonce=nonce,
                                                 code_challenge=challenge, code_challenge_method="S256")
    return redirect(url)


def _oidc_failed(message: str, status: int = 400):
    session.pop(OIDC_KEY, None)
    log.warning("Salesforce sign-in failed: %s", message)
    return render_template("admin/login.html", error=f"Salesforce sign-in failed: {message}", next="", email="",
                           login_host=_login_host_default()), status


def verify_id_token(id_token: str, *, jwks: dict[str, Any], issuer: str, client_id: str, nonce: str) -> dict[str, Any]:
    """RS256 signature against the provider's keys, then iss, aud, exp/iat and nonce."""
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256"])
        registry = jwt.JWTClaimsRegistry(
            leeway=120, iss={"essential": True, "value": issuer}, aud={"essential": True, "value": client_id},
            exp={"essential": True}, nonce={"essential": True, "value": nonce},
            organization_id={"essential": True}, user_id={"essential": True})
        registry.validate(token.claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise OidcError(f"the identity token was refused ({exc.__class__.__name__})") from exc
    for claim in ("organization_id", "user_id"):
        if not isinstance(token.claims.get(claim), str) or not _SALESFORCE_ID.match(token.claims[claim]):
            raise OidcError(f"the identity token's {claim} is not a Salesforce id")
    return dict(token.claims)


_SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


@bp.route("/login/salesforce/callback", methods=["GET"])
@public
def login_salesforce_callback():
    pending = session.get(OIDC_KEY)
    if not pending:
        return _oidc_failed("the sign-in expired; start again")
    sent_state = request.args.get("state", "")
    if not hmac.compare_digest(str(pending["state"]), sent_state):
        return _oidc_failed("the answer does not belong to this sign-in (state mismatch)")
    if request.args.get("error"):
        return _oidc_failed(request.args.get("error_description") or request.args["error"], 401)
    code = request.args.get("code")
    if not code:
        return _oidc_failed("no authorization code in the answer")
    try:
        app = sign_in_service.salesforce_app(rt())
        # Checked again before the client secret leaves: the host must still be on today's allow-list.
        login_host = sign_in_service.salesforce_login_host(rt(), app, str(pending.get("login_host") or ""))
        if pending.get("issuer") != login_host:
            raise OidcError("the sign-in does not belong to an allowed Salesforce host")
        token_endpoint = app.hosts.same_origin(str(pending["token_endpoint"]), login_host)
        jwks_uri = app.hosts.same_origin(str(pending["jwks_uri"]), login_host)
        redirect_uri = url_for("admin.login_salesforce_callback", _external=True)
        with OAuth2Session(app.client_id, app.client_secret, redirect_uri=redirect_uri, scope="openid id",
                           token_endpoint_auth_method="client_secret_post") as client:
            token = client.fetch_token(token_endpoint, grant_type="authorization_code", code=code,
                                       code_verifier=pending["verifier"], timeout=HTTP_TIMEOUT, allow_redirects=False)
        if not token.get("id_token"):
            raise OidcError("Salesforce returned no identity token (is the openid scope allowed?)")
        jwks_resp = requests.get(jwks_uri, timeout=HTTP_TIMEOUT, allow_redirects=False)
        jwks_resp.raise_for_status()
        claims = verify_id_token(token["id_token"], jwks=jwks_resp.json(), issuer=pending["issuer"],
                                 client_id=app.client_id, nonce=pending["nonce"])
    except OidcError as exc:
        return _oidc_failed(str(exc), 401)
    except CrmError as exc:  # the app is not configured
        return _oidc_failed(str(exc), 400)
    except (OAuthError, requests.RequestException, ValueError) as exc:
        return _oidc_failed(f"the token exchange failed ({exc})", 401)
    org_id, sf_user_id = str(claims["organization_id"]), str(claims["user_id"])
    choices = sign_in_service.salesforce_accounts(rt(), org_id, sf_user_id)
    target = pending.get("next") or url_for("admin.home")
    session.pop(OIDC_KEY, None)
    if not choices:
        return _oidc_failed(f"no Refstage account is linked to this Salesforce user ({claims.get('preferred_username') or sf_user_id}). "
                            "Ask an admin to add you with your Salesforce user id.", 403)
    if len(choices) == 1:
        _sign_in(sign_in_service.account_user(rt(), choices[0]["tenant_id"], choices[0]["user_id"]))
        return redirect(target)
    # Several workspaces trust this identity: let the person pick one (ids kept server-side in the session).
    csrf = session.get(CSRF_SESSION_KEY)
    session.clear()
    if csrf:
        session[CSRF_SESSION_KEY] = csrf
    session[CHOICE_KEY] = {"choices": choices, "next": target}
    return redirect(url_for("admin.login_choose"))


@bp.route("/login/choose", methods=["GET", "POST"])
@public
def login_choose():
    pending = session.get(CHOICE_KEY)
    if not pending:
        return redirect(url_for("admin.login"))
    if request.method == "POST":
        picked = request.form.get("tenant_id")
        for choice in pending["choices"]:
            if choice["tenant_id"] == picked:
                _sign_in(sign_in_service.account_user(rt(), picked, choice["user_id"]))
                return redirect(pending["next"])
        abort(400)
    return render_template("admin/choose.html", choices=pending["choices"])


@bp.route("/")
@requires(*ALL)
def home():
    return redirect(url_for("admin.dashboard"))


def back_or(default: str) -> str:
    """A same-console return address from a form, or the default (never an open redirect)."""
    target = request.form.get("back")
    return _safe_next(target) if target and _safe_next(target) == target else default


@bp.route("/account/password", methods=["GET", "POST"])
@requires(*ALL)
def change_password():
    """Every session of the user ends (other browsers too); this browser gets a fresh one."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        user: User = g.admin_user
        try:
            sign_in_service.change_password(rt(), user.tenant_id, user.id, request.form.get("current_password", ""),
                                            request.form.get("new_password", ""), actor())
        except InvalidInput as exc:
            errors = {key: str(value[0] if isinstance(value, list) else value) for key, value in exc.errors.items()}
        else:
            _sign_in(user)
            flash("Your password is changed; other sessions are signed out.")
            return redirect(url_for("admin.home"))
    return render_template("admin/password.html", errors=errors), (422 if errors else 200)
