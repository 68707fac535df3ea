"""CRM connections: status, last sync, "reconnect required", connect / disconnect, sync now, sync log, retry."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for

from refstage.domain.errors import InvalidInput
from refstage.services import admin_queries
from refstage.web.admin import bp
from refstage.web.admin.auth import ADMIN, actor, back_or, requires, rt, tenant_id

# The Salesforce connector's routes (web/salesforce.py) are owned by the connector; the console only
# links to them when they are registered, and calls `services.connections` for disconnect.
CONNECT_ENDPOINTS = ("salesforce.connect_start", "salesforce.connect", "salesforce.oauth_start")


def connect_endpoint() -> str | None:
    for name in CONNECT_ENDPOINTS:
        if name in current_app.view_functions:
            return name
    return None


def _disconnect_service():
    try:
        from refstage.services import connections as svc  # built by the connector's engineer
    except ImportError:
        return None
    return getattr(svc, "disconnect", None)


@bp.route("/connections")
@requires(*ADMIN)
def connections():
    views = admin_queries.connections_overview(rt(), tenant_id())
    return render_template("admin/connections.html", views=views, connect_endpoint=connect_endpoint(),
                           can_disconnect=_disconnect_service() is not None)


@bp.route("/connections/<connection_id>/sync", methods=["POST"])
@requires(*ADMIN)
def connection_sync(connection_id: str):
    try:
        admin_queries.request_sync(rt(), tenant_id(), connection_id, actor())
        flash("Sync queued: the worker runs it in the background.")
    except InvalidInput as exc:
        flash("; ".join(m for msgs in exc.errors.values() for m in msgs), "error")
    return redirect(back_or(url_for("admin.connections")))


@bp.route("/connections/<connection_id>/disconnect", methods=["POST"])
@requires(*ADMIN)
def connection_disconnect(connection_id: str):
    disconnect = _disconnect_service()
    if disconnect is None:
        flash("Disconnecting is not available in this build.", "error")
        return redirect(url_for("admin.connections"))
    with rt().uow(tenant_id()) as uow:
        uow.connections.get(connection_id)  # 404 for another tenant's connection
    disconnect(rt(), tenant_id(), connection_id, actor())
    flash("Disconnected. Refstage no longer calls this CRM; its tokens were revoked.")
    return redirect(url_for("admin.connections"))


@bp.route("/connections/<connection_id>/log")
@requires(*ADMIN)
def connection_log(connection_id: str):
    log = admin_queries.sync_log(rt(), tenant_id(), connection_id)
    return render_template("admin/connection_log.html", log=log)


@bp.route("/connections/<connection_id>/retry", methods=["POST"])
@requires(*ADMIN)
def connection_retry(connection_id: str):
    ids = [int(i) for i in request.form.getlist("pending_id") if i.isdigit()]
    if request.form.get("scope") == "selected" and not ids:
        flash("Select the failed writes to retry, or use Retry all failed.", "error")
        return redirect(url_for("admin.connection_log", connection_id=connection_id))
    count = admin_queries.retry_failed_writes(rt(), tenant_id(), connection_id, actor(),
                                              None if request.form.get("scope") == "all" else ids)
    flash(f"{count} failed write(s) queued again." if count else "Nothing to retry.")
    return redirect(url_for("admin.connection_log", connection_id=connection_id))
