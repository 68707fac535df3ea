"""Users and API keys (admins only): add a user (local password and/or a linked Salesforce identity),
create an API key (its secret is shown once), revoke a key."""

from __future__ import annotations

import re

from flask import flash, redirect, render_template, request, url_for

from refstage.domain.errors import Conflict, InvalidInput
from refstage.domain.tenants import Role
from refstage.services import admin_queries, tenants
from refstage.web.admin import bp
from refstage.web.admin.auth import ADMIN, actor, requires, rt, tenant_id

_SF_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")


def _render(errors=None, values=None, status=200, new_key=None):
    users, keys = admin_queries.users_and_keys(rt(), tenant_id())
    return render_template("admin/users.html", users=users, keys=keys, errors=errors or {}, values=values or {},
                           roles=[r.value for r in Role], new_key=new_key), status


@bp.route("/users")
@requires(*ADMIN)
def users():
    return _render()


@bp.route("/users", methods=["POST"])
@requires(*ADMIN)
def user_create():
    form = request.form
    values = {k: form.get(k, "") for k in ("email", "name", "role", "sf_org_id", "sf_user_id")}
    errors: dict[str, list[str]] = {}
    password = form.get("password", "")
    org, sf_user = values["sf_org_id"].strip(), values["sf_user_id"].strip()
    identity = None
    if org or sf_user:
        if not _SF_ID.match(org):
            errors["sf_org_id"] = ["a Salesforce organization id (00D…, 15 or 18 characters)"]
        if not _SF_ID.match(sf_user):
            errors["sf_user_id"] = ["a Salesforce user id (005…, 15 or 18 characters)"]
        identity = (org, sf_user)
    if not password and not identity:
        errors["password"] = ["set a password, or link a Salesforce identity"]
    if not errors:
        try:
            user = tenants.add_user(rt(), tenant_id(), values["email"], values["role"], password or None,
                                    values["name"].strip(), identity, actor=actor())
            flash(f"User {user.email} added as {user.role.value}.")
            return redirect(url_for("admin.users"))
        except InvalidInput as exc:
            errors.update(exc.errors)
        except Conflict as exc:
            errors["email"] = [str(exc)]
    return _render(errors, values, 400)


@bp.route("/api-keys", methods=["POST"])
@requires(*ADMIN)
def api_key_create():
    try:
        plaintext = tenants.create_api_key(rt(), tenant_id(), request.form.get("name", ""), actor())
    except InvalidInput as exc:
        return _render({"key_name": exc.errors.get("name", ["invalid"])}, {"key_name": request.form.get("name", "")}, 400)
    # Shown once, in this response only: never stored in plaintext, never put in the (readable) session cookie.
    resp = _render(new_key=plaintext)
    return resp[0], 201, {"Cache-Control": "no-store"}


@bp.route("/api-keys/<key_id>/revoke", methods=["POST"])
@requires(*ADMIN)
def api_key_revoke(key_id: str):
    tenants.revoke_api_key(rt(), tenant_id(), key_id, actor())
    flash("API key revoked: it stops working immediately.")
    return redirect(url_for("admin.users"))
