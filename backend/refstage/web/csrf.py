"""CSRF protection for form posts (public pages and the admin console): a per-session token,
compared in constant time. JSON API calls authenticate with API keys and are exempt."""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

SESSION_KEY = "_csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


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
        abort(400, description="This form has expired. Reload the page and try again.")


def init_app(app) -> None:
    app.jinja_env.globals["csrf_token"] = csrf_token
