"""Finishing a CRM OAuth flow the way a browser does: a signed-in console session owns the flow
(services.connections.FlowOwner), so a test puts the session keys in its Flask test client first."""

from __future__ import annotations

import secrets

from refstage.domain.errors import NotFound
from refstage.services import sign_in, tenants
from refstage.services.connections import FlowOwner
from refstage.web.admin.auth import SESSION_TOKEN_KEY, TENANT_KEY, USER_KEY
from refstage.web.oauth_owner import OWNER_KEY


def console_session(client, tenant_id: str, user_id: str = "test-admin") -> FlowOwner:
    """Make `client` a console session of `tenant_id` and return the owner its flows get."""
    secret = secrets.token_urlsafe(16)
    rt = client.application.extensions["refstage"]
    # Only a real admin with an open server-side session owns a flow (web/oauth_owner.py), as signing
    # in would give (web/admin/auth._sign_in): a test that names no existing user gets one made.
    email = f"{user_id}@refstage.test"
    try:
        with rt.uow(tenant_id) as uow:
            user = uow.users.get(user_id)
    except NotFound:
        with rt.uow(tenant_id) as uow:
            user = uow.users.by_email(email)
        if user is None:
            user = tenants.add_user(rt, tenant_id, email, "admin", secrets.token_urlsafe(16))
    token = sign_in.open_session(rt, user)
    with client.session_transaction() as s:
        s[USER_KEY], s[TENANT_KEY], s[OWNER_KEY], s[SESSION_TOKEN_KEY] = user.id, tenant_id, secret, token
    return FlowOwner.browser(tenant_id, secret)


def console_cookies(app, tenant_id: str, user_id: str = "test-admin") -> tuple[FlowOwner, dict[str, str]]:
    """The same for a real HTTP client (requests): the session cookie a signed-in admin's browser holds."""
    client = app.test_client()
    owner = console_session(client, tenant_id, user_id)
    name = app.config["SESSION_COOKIE_NAME"]
    return owner, {name: client.get_cookie(name).value}
