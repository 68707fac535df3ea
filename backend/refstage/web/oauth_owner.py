"""Which console session may finish a CRM OAuth flow (services.connections.FlowOwner): the signed-in
admin's tenant, and a random value kept in that session (a fresh one after every sign-in, gone on
sign-out). A callback that arrives without it (another browser, no cookies, another tenant's session)
is refused before anything is exchanged. And the callback itself, the same for every CRM."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from flask import flash, jsonify, redirect, request, session, url_for

from refstage.domain.connections import CrmConnection
from refstage.domain.errors import InvalidInput
from refstage.services import sign_in as sign_in_service
from refstage.services.connections import NOT_YOURS, FlowOwner
from refstage.services.ports import CrmError
from refstage.web.admin.auth import SESSION_TOKEN_KEY, TENANT_KEY, USER_KEY, rt

OWNER_KEY = "_oauth_owner"


def console_owner(*, create: bool) -> FlowOwner | None:
    """The FlowOwner of this browser's console session, or None when nobody is signed in here."""
    tenant_id, user_id = session.get(TENANT_KEY), session.get(USER_KEY)
    if not tenant_id or not user_id:
        return None
    # The cookie alone is not enough (the callbacks are outside the console's own check): its
    # server-side session must still be open, so a cookie copied before sign-out finishes nothing.
    if sign_in_service.session_user(rt(), tenant_id, user_id, session.get(SESSION_TOKEN_KEY)) is None:
        return None
    secret = session.get(OWNER_KEY)
    if not secret:
        if not create:
            return None
        secret = session[OWNER_KEY] = secrets.token_urlsafe(32)
    return FlowOwner.browser(tenant_id, secret)


def finish_oauth_callback(crm: str, finish_connect: Callable[..., CrmConnection], *, browser: bool,
                          connected: Callable[[CrmConnection], str],
                          as_json: Callable[[CrmConnection], dict[str, Any]]):
    """The CRM (`crm`: "Salesforce", "Pipedrive") redirected here with a code and the state, or a refusal.
    Only the console session that started the flow may finish it. An admin's `browser` goes back to the
    console with a message; an API client gets JSON (`as_json`) or an error code."""

    def answer_error(code: str, message: str, status: int):
        if browser:
            flash(f"{crm} connection failed: {message}", "error")
            return redirect(url_for("admin.connections"), 303)
        return jsonify({"error": code, "message": message}), status

    if request.args.get("error"):
        return answer_error(f"{crm.lower()}_refused", request.args.get("error_description") or request.args["error"], 400)
    owner = console_owner(create=False)
    if owner is None:
        return answer_error("connect_failed", NOT_YOURS, 403)
    try:
        conn = finish_connect(rt(), request.args.get("code", ""), request.args.get("state", ""), owner=owner)
    except CrmError as exc:
        return answer_error(f"{crm.lower()}_error", str(exc), 502 if exc.transient else 400)
    except InvalidInput as exc:
        if not browser:
            raise
        return answer_error("connect_failed", "; ".join(str(m) for msgs in exc.errors.values() for m in msgs), 400)
    if browser:
        flash(connected(conn))
        return redirect(url_for("admin.connections"), 303)
    return jsonify(as_json(conn))
