"""CSRF protection for form posts. The admin console: a per-session token, compared in constant time.
The anonymous public forms: a signed, time-limited token bound to the form (no session, so a page
view sets no cookie and can be served from cache); see docs/decisions/2026-11-22-public-pages-load.md.
JSON API calls authenticate with API keys and are exempt."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from flask import abort, current_app, request, session

SESSION_KEY = "_csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SIGNED_MAX_AGE = 24 * 3600
CLOCK_SKEW = 300
EXPIRED = "This form has expired. Reload the page and try again."


def csrf_token() -> str:
    token = session.get(SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def check_csrf() -> None:
    """Abort with 400 unless the posted token matches the session's."""
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FORM_FIELD) or request.headers.get(HEADER) or ""
    if not expected or not hmac.compare_digest(str(expected), str(sent)):
        abort(400, description=EXPIRED)


@functools.lru_cache(maxsize=16)
def _key(label: str, secret: str) -> bytes:
    return hashlib.sha256(f"{label}|".encode() + secret.encode()).digest()


def keyed_mac(label: str, *parts: str) -> str:
    """32 hex characters of HMAC-SHA256 over `parts` (joined by '|'), under a key derived from SECRET_KEY for
    `label`: each kind of signed value has a key of its own."""
    return hmac.new(_key(label, current_app.config["SECRET_KEY"]), "|".join(parts).encode(), hashlib.sha256).hexdigest()[:32]


def _mac(purpose: str, issued: str, nonce: str) -> str:
    return keyed_mac("refstage.public-form-csrf", purpose, issued, nonce)


def _now() -> int:
    return int(current_app.extensions["refstage"].now().timestamp())


def signed_token(purpose: str) -> str:
    """'issued.nonce.mac' for one public form (purpose names the form and its code or program)."""
    issued, nonce = str(_now()), secrets.token_urlsafe(12)
    return f"{issued}.{nonce}.{_mac(purpose, issued, nonce)}"


def check_signed(purpose: str, max_age: int = SIGNED_MAX_AGE) -> str:
    """Abort with 400 unless the posted token was signed by us for this form within `max_age`; returns it."""
    sent = str(request.form.get(FORM_FIELD) or request.headers.get(HEADER) or "")
    issued, _, rest = sent.partition(".")
    nonce, _, mac = rest.partition(".")
    if not (issued.isdigit() and nonce and mac and hmac.compare_digest(mac, _mac(purpose, issued, nonce))):
        abort(400, description=EXPIRED)
    if not -CLOCK_SKEW <= _now() - int(issued) <= max_age:  # another web machine's clock may run a little behind
        abort(400, description=EXPIRED)
    return sent


def init_app(app) -> None:
    app.jinja_env.globals["csrf_token"] = csrf_token
