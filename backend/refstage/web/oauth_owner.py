"""Which console session may finish a CRM OAuth flow (services.connections.FlowOwner): the signed-in
admin's tenant, and a random value kept in that session (a fresh one after every sign-in, gone on
sign-out). A callback that arrives without it (another browser, no cookies, another tenant's session)
is refused before anything is exchanged."""

from __future__ import annotations

import secrets

from flask import session

from refstage.services import sign_in as sign_in_service
from refstage.services.connections import FlowOwner
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
