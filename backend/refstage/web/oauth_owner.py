"""Which console session may finish a CRM OAuth flow (services.connections.FlowOwner): the signed-in
admin's tenant, and a random value kept in that session (a fresh one after every sign-in, gone on
sign-out). A callback that arrives without it (another browser, no cookies, another tenant's session)
is refused before anything is exchanged."""

from __future__ import annotations

import secrets

from flask import session

from refstage.services.connections import FlowOwner
from refstage.web.admin.auth import TENANT_KEY, USER_KEY

OWNER_KEY = "_oauth_owner"


def console_owner(*, create: bool) -> FlowOwner | None:
    """The FlowOwner of this browser's console session, or None when nobody is signed in here."""
    tenant_id, user_id = session.get(TENANT_KEY), session.get(USER_KEY)
    if not tenant_id or not user_id:
        return None
    secret = session.get(OWNER_KEY)
    if not secret:
        if not create:
            return None
        secret = session[OWNER_KEY] = secrets.token_urlsafe(32)
    return FlowOwner.browser(tenant_id, secret)
