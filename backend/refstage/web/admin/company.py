"""Company settings: the name, logo and colour advocates and friends see on public pages and in
emails, and the locale and time zone the console formats money and dates in."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from refstage.domain.errors import InvalidInput
from refstage.services import tenants
from refstage.web.admin import bp
from refstage.web.admin.auth import ADMIN, actor, requires, rt, tenant_id
from refstage.web.admin.programs import flatten_errors

FIELDS = ("display_name", "logo_url", "brand_color", "locale", "time_zone")


@bp.route("/company", methods=["GET", "POST"])
@requires(*ADMIN)
def company():
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in FIELDS}
        try:
            tenants.update_identity(rt(), tenant_id(), values, actor())
        except InvalidInput as exc:
            return render_template("admin/company.html", values=values, errors=flatten_errors(exc.errors)), 400
        flash("Company settings saved. Public pages show them within a minute.")
        return redirect(url_for("admin.company"))
    current = tenants.identity(rt(), tenant_id())
    values = {k: getattr(current, k) or "" for k in FIELDS}
    return render_template("admin/company.html", values=values, errors={}, tenant_name=g.tenant.name)
