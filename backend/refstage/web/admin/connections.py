"""CRM connections: status, last sync, "reconnect required", connect / disconnect, sync now, sync log, retry."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from refstage.domain.errors import InvalidInput
from refstage.services import admin_queries, push_keys, sync
from refstage.services import connections as connection_service
from refstage.web.admin import bp
from refstage.web.admin.auth import ADMIN, actor, back_or, requires, rt, tenant_id

# Connecting, reconnecting and disconnecting are the connectors' use cases (services.salesforce_connect,
# services.pipedrive_connect, services.connections); the console only collects the admin's input and sends
# the browser to the CRM.


def _errors_text(exc: InvalidInput) -> str:
    return "; ".join(str(m) for msgs in exc.errors.values() for m in (msgs if isinstance(msgs, list) else [msgs]))


def _to_the_crm(start):
    """Send the browser to the CRM's sign-in page of the flow `start()` opens, or back to Connections saying why not."""
    from refstage.services.ports import CrmError

    try:
        started = start()
    except InvalidInput as exc:
        flash(_errors_text(exc), "error")
        return redirect(url_for("admin.connections"))
    except CrmError as exc:
        flash(f"Cannot connect: {exc}", "error")
        return redirect(url_for("admin.connections"))
    return redirect(started.authorize_url)


@bp.context_processor
def _connection_alerts():
    """The banner on every console page: a CRM that cannot work, or whose last sync failed."""
    from flask import g

    if not getattr(g, "admin_user", None) or not getattr(g, "tenant_id", None):
        return {}
    return {"connection_alerts": connection_service.alerts(rt(), g.tenant_id)}


@bp.route("/connections")
@requires(*ADMIN)
def connections():
    from refstage.domain.connections import CrmKind

    views = admin_queries.connections_overview(rt(), tenant_id())
    return render_template("admin/connections.html", views=views,
                           salesforce_oauth=connection_service.oauth_configured(rt(), CrmKind.SALESFORCE),
                           pipedrive_oauth=connection_service.oauth_configured(rt(), CrmKind.PIPEDRIVE),
                           push_urls=push_keys.endpoint_urls(rt(), tenant_id()))


@bp.route("/connections/connect", methods=["POST"])
@requires(*ADMIN)
def connection_connect():
    """Start Salesforce's OAuth flow (new connection, or reconnect with `connection_id`)."""
    from refstage.services import salesforce_connect
    from refstage.web.oauth_owner import console_owner

    return _to_the_crm(lambda: salesforce_connect.start_connect(
        rt(), tenant_id(), actor=actor(), owner=console_owner(create=True), name=request.form.get("name") or "Salesforce",
        login_host=request.form.get("login_host") or "production", connection_id=request.form.get("connection_id") or None))


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
    from refstage.web.oauth_owner import console_owner

    # another tenant's connection is NotFound: 404
    return _to_the_crm(lambda: connection_service.start_prepared(rt(), tenant_id(), connection_id, actor=actor(),
                                                                 owner=console_owner(create=True)))


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
    if request.method == "GET" or request.form.get("confirm") != "yes":
        impact = admin_queries.disconnect_impact(rt(), tenant_id(), connection_id)  # 404 for another tenant's id
        return render_template("admin/connection_disconnect.html", impact=impact)
    conn = connection_service.disconnect(rt(), tenant_id(), connection_id, actor=actor())  # 404 for another tenant's
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
