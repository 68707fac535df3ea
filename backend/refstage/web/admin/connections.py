"""CRM connections: status, last sync, "reconnect required", connect / disconnect, sync now, sync log, retry."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from refstage.domain.errors import InvalidInput
from refstage.services import admin_queries, push_keys, sync
from refstage.web.admin import bp
from refstage.web.admin.auth import ADMIN, actor, back_or, requires, rt, tenant_id

# Connecting, reconnecting and disconnecting are the Salesforce connector's use cases
# (services.connections); the console only collects the admin's input and sends the browser to Salesforce.


def _connections_service():
    try:
        from refstage.services import connections as svc
    except ImportError:  # pragma: no cover - a build without the connector
        return None
    return svc


def _disconnect_service():
    svc = _connections_service()
    return getattr(svc, "disconnect", None) if svc else None


def _errors_text(exc: InvalidInput) -> str:
    return "; ".join(str(m) for msgs in exc.errors.values() for m in (msgs if isinstance(msgs, list) else [msgs]))


@bp.context_processor
def _connection_alerts():
    """The banner on every console page: a CRM that cannot work, or whose last sync failed."""
    from flask import g

    if not getattr(g, "admin_user", None) or not getattr(g, "tenant_id", None):
        return {}
    svc = _connections_service()
    return {"connection_alerts": svc.alerts(rt(), g.tenant_id) if svc else []}


@bp.route("/connections")
@requires(*ADMIN)
def connections():
    from refstage.domain.connections import CrmKind

    views = admin_queries.connections_overview(rt(), tenant_id())
    svc = _connections_service()
    return render_template("admin/connections.html", views=views, can_connect=bool(svc and hasattr(svc, "start_connect")),
                           can_disconnect=_disconnect_service() is not None,
                           salesforce_oauth=svc.oauth_configured(rt(), CrmKind.SALESFORCE) if svc else False,
                           pipedrive_oauth=svc.oauth_configured(rt(), CrmKind.PIPEDRIVE) if svc else False,
                           push_urls=push_keys.endpoint_urls(rt(), tenant_id()))


@bp.route("/connections/connect", methods=["POST"])
@requires(*ADMIN)
def connection_connect():
    """Start the connector's OAuth flow (new connection, or reconnect with `connection_id`)."""
    svc = _connections_service()
    if svc is None or not hasattr(svc, "start_connect"):
        flash("Connecting a CRM is not available in this build.", "error")
        return redirect(url_for("admin.connections"))
    from refstage.services.ports import CrmError

    from refstage.web.oauth_owner import console_owner

    try:
        started = svc.start_connect(rt(), tenant_id(), actor=actor(), owner=console_owner(create=True),
                                    name=request.form.get("name") or "Salesforce",
                                    login_host=request.form.get("login_host") or "production",
                                    connection_id=request.form.get("connection_id") or None)
    except InvalidInput as exc:
        flash(_errors_text(exc), "error")
        return redirect(url_for("admin.connections"))
    except CrmError as exc:
        flash(f"Cannot connect: {exc}", "error")
        return redirect(url_for("admin.connections"))
    return redirect(started.authorize_url)


@bp.route("/connections/pipedrive", methods=["POST"])
@requires(*ADMIN)
def connection_connect_pipedrive():
    """Pipedrive: a personal API token (checked at once), or OAuth when the app is configured."""
    from refstage.services import pipedrive_connect
    from refstage.services.ports import CrmError

    form = request.form
    name = form.get("name") or "Pipedrive"
    connection_id = form.get("connection_id") or None
    try:
        if form.get("method") == "oauth":
            from refstage.web.oauth_owner import console_owner

            started = pipedrive_connect.start_connect(rt(), tenant_id(), actor=actor(), owner=console_owner(create=True),
                                                      name=name, connection_id=connection_id)
            return redirect(started.authorize_url)
        conn = pipedrive_connect.connect_api_token(rt(), tenant_id(), actor=actor(), api_token=form.get("api_token", ""),
                                                   api_domain=form.get("api_domain", ""), name=name,
                                                   connection_id=connection_id)
    except InvalidInput as exc:
        flash(f"Pipedrive not connected: {_errors_text(exc)}", "error")
        return redirect(url_for("admin.connections"))
    except CrmError as exc:
        flash(f"Pipedrive not connected: {exc}", "error")
        return redirect(url_for("admin.connections"))
    flash(f"Connected to Pipedrive company {conn.external_org_id} as {conn.external_username}.")
    return redirect(url_for("admin.connections"))


@bp.route("/connections/<connection_id>/authorize")
@requires(*ADMIN)
def connection_authorize(connection_id: str):
    """The link the API hands out for a prepared connection: the signed-in admin's browser is sent to the
    CRM with a state only this session can finish."""
    from refstage.domain.connections import CrmKind
    from refstage.services import connections as sf_connect
    from refstage.services import pipedrive_connect
    from refstage.services.ports import CrmError
    from refstage.web.oauth_owner import console_owner

    with rt().uow(tenant_id()) as uow:
        conn = uow.connections.get(connection_id)  # 404 for another tenant's connection
    svc = pipedrive_connect if conn.kind == CrmKind.PIPEDRIVE else sf_connect
    try:
        started = svc.start_connect(rt(), tenant_id(), actor=actor(), owner=console_owner(create=True),
                                    connection_id=connection_id)
    except InvalidInput as exc:
        flash("; ".join(m for msgs in exc.errors.values() for m in msgs), "error")
        return redirect(url_for("admin.connections"))
    except CrmError as exc:
        flash(f"Cannot connect: {exc}", "error")
        return redirect(url_for("admin.connections"))
    return redirect(started.authorize_url)


@bp.route("/connections/<connection_id>/sync", methods=["POST"])
@requires(*ADMIN)
def connection_sync(connection_id: str):
    try:
        sync.request_sync(rt(), tenant_id(), connection_id, actor())
        flash("Sync queued: the worker runs it in the background.")
    except InvalidInput as exc:
        flash(_errors_text(exc), "error")
    return redirect(back_or(url_for("admin.connections")))


@bp.route("/connections/<connection_id>/disconnect", methods=["GET", "POST"])
@requires(*ADMIN)
def connection_disconnect(connection_id: str):
    """GET: what disconnecting will stop, and a confirm button. POST with confirm=yes: disconnect."""
    disconnect = _disconnect_service()
    if disconnect is None:
        flash("Disconnecting is not available in this build.", "error")
        return redirect(url_for("admin.connections"))
    if request.method == "GET" or request.form.get("confirm") != "yes":
        impact = admin_queries.disconnect_impact(rt(), tenant_id(), connection_id)  # 404 for another tenant's id
        return render_template("admin/connection_disconnect.html", impact=impact)
    conn = _connections_service().get_connection(rt(), tenant_id(), connection_id)  # 404 for another tenant's
    if conn.kind.value == "pipedrive":
        from refstage.services import pipedrive_connect

        pipedrive_connect.disconnect(rt(), tenant_id(), connection_id, actor=actor())
    else:
        disconnect(rt(), tenant_id(), connection_id, actor=actor())
    flash(f"{conn.name} disconnected: Refstage no longer calls this CRM and its tokens were revoked. "
          "Use Reconnect on its card to connect the same org again.")
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
    count = sync.retry_failed_writes(rt(), tenant_id(), connection_id, actor(),
                                     None if request.form.get("scope") == "all" else ids)
    flash(f"{count} failed write(s) queued again." if count else "Nothing to retry.")
    return redirect(url_for("admin.connection_log", connection_id=connection_id))


@bp.route("/connections/<connection_id>/push-path", methods=["POST"])
@requires(*ADMIN)
def connection_push_path(connection_id: str):
    """Queue the deploy of the Outbound Messages and flows into the org (services.push_path; a job runs it)."""
    from refstage.services import push_path

    try:
        if push_path.request_install(rt(), tenant_id(), connection_id, actor=actor()):
            flash("Push path queued: the worker deploys it into Salesforce; this page shows the outcome.")
        else:
            flash("The push path is already being deployed; this page shows the outcome when it is done.")
    except InvalidInput as exc:
        flash("; ".join(m for msgs in exc.errors.values() for m in msgs), "error")
    return redirect(back_or(url_for("admin.connections")))


@bp.route("/connections/<connection_id>/rotate-push-key", methods=["POST"])
@requires(*ADMIN)
def connection_rotate_push_key(connection_id: str):
    """Replace the connection's push secret (confirmed by a ticked box; audited by the service)."""
    if request.form.get("confirm") != "yes":
        flash("Tick the confirmation to rotate the push key.", "error")
        return redirect(url_for("admin.connections"))
    try:
        url = push_keys.rotate_push_key(rt(), tenant_id(), connection_id, actor())
    except InvalidInput as exc:
        flash("; ".join(m for msgs in exc.errors.values() for m in msgs), "error")
        return redirect(url_for("admin.connections"))
    if url:
        flash("Push key rotated. Click Reinstall push path so the org's Outbound Messages use the new endpoint URL below.")
    else:
        flash("Push credentials rotated; the Pipedrive webhook is being re-created with them.")
    return redirect(url_for("admin.connections"))
