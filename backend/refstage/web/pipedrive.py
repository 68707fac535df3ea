"""Pipedrive web endpoints: the OAuth connect flow (and API-token connect) for admins, and the
webhook receiver.

The receiver checks HTTP basic auth (constant time) against the connection's sealed credentials,
stores the delivery in the crm_events inbox (deduped on `meta.id` by the unique constraint,
`changed_at` = the object's `update_time` for ordering), commits, queues `process_events`, and only
then answers 200 — no CRM call, no rule evaluation in the request, so it answers well within
Pipedrive's 10 s (and our 1 s) budget. Bad auth: 401, nothing stored. Malformed JSON: 400."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from refstage.adapters.crypto import CredentialsUnreadable
from refstage.adapters.db import models as m
from refstage.domain.connections import ConnectionStatus, CrmKind
from refstage.domain.errors import NotFound
from refstage.services import pipedrive_connect
from refstage.services.ports import CrmError
from refstage.services.runtime import Runtime
from refstage.web.api import body, require_api_key

log = logging.getLogger(__name__)
bp = Blueprint("pipedrive", __name__)
MAX_BODY = 512 * 1024


def rt() -> Runtime:
    return current_app.extensions["refstage"]


def _conn_out(c) -> dict:
    return {"connection_id": c.id, "kind": c.kind.value, "name": c.name, "status": c.status.value,
            "company_id": c.external_org_id, "username": c.external_username, "api_domain": c.instance_url,
            "webhook_id": c.settings.get("webhook_id")}


# --- connect (admins, API key) -------------------------------------------------------------------
@bp.post("/pipedrive/connections")
@require_api_key
def start_connect():
    """`{"name"}` → OAuth: `{"connection_id", "authorize_url"}` to send the admin's browser to;
    `{"name", "api_token", "api_domain"}` → connected with a personal API token."""
    data = body()
    if data.get("api_token"):
        conn = pipedrive_connect.connect_api_token(
            rt(), g.tenant_id, actor=g.actor, api_token=str(data["api_token"]), api_domain=str(data.get("api_domain") or ""),
            name=str(data.get("name") or "Pipedrive"), connection_id=data.get("connection_id"))
        return jsonify(_conn_out(conn)), 201
    started = pipedrive_connect.start_connect(rt(), g.tenant_id, actor=g.actor, name=str(data.get("name") or "Pipedrive"),
                                              connection_id=data.get("connection_id"))
    return jsonify({"connection_id": started.connection_id, "authorize_url": started.authorize_url}), 201


@bp.get("/pipedrive/oauth/callback")
def oauth_callback():
    """Pipedrive redirects the admin's browser here; the state (bound server-side, single use, ten
    minutes, to one pending connection) is the credential."""
    from flask import flash, redirect, url_for

    from refstage.domain.errors import InvalidInput

    browser = "text/html" in request.headers.get("Accept", "")  # an admin's browser goes back to the console

    def answer_error(code: str, message: str, status: int):
        if browser:
            flash(f"Pipedrive connection failed: {message}", "error")
            return redirect(url_for("admin.connections"), 303)
        return jsonify({"error": code, "message": message}), status

    if request.args.get("error"):
        return answer_error("pipedrive_refused", request.args.get("error_description") or request.args["error"], 400)
    try:
        conn = pipedrive_connect.finish_connect(rt(), request.args.get("code", ""), request.args.get("state", ""))
    except CrmError as exc:
        return answer_error("pipedrive_error", str(exc), 502 if exc.transient else 400)
    except InvalidInput as exc:
        if not browser:
            raise
        return answer_error("connect_failed", "; ".join(str(m) for msgs in exc.errors.values() for m in msgs), 400)
    if browser:
        flash(f"Connected to Pipedrive company {conn.external_org_id} as {conn.external_username}.")
        return redirect(url_for("admin.connections"), 303)
    return jsonify(_conn_out(conn))


@bp.delete("/pipedrive/connections/<connection_id>")
@require_api_key
def disconnect(connection_id: str):
    conn = pipedrive_connect.disconnect(rt(), g.tenant_id, connection_id, actor=g.actor)
    return jsonify({"id": conn.id, "status": conn.status.value})


# --- webhook receiver --------------------------------------------------------------------------
def _unauthorized() -> Response:
    resp = jsonify({"error": "unauthorized"})
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = 'Basic realm="refstage-pipedrive"'
    return resp


@bp.post("/webhooks/pipedrive/<connection_id>")
def webhook(connection_id: str):
    from refstage.adapters.crm.pipedrive.webhooks import MalformedDelivery, check_basic, parse_delivery

    runtime = rt()
    if len(connection_id) > 64:
        return _unauthorized()
    with runtime.uow() as uow:
        tenant_id = uow.directory.tenant_for_connection(connection_id)
    basic = request.authorization
    user = basic.username if basic and basic.type == "basic" else None
    password = basic.password if basic and basic.type == "basic" else None
    if tenant_id is None:
        check_basic({"user": "x", "password": "x"}, user, password)  # same work as a known connection
        return _unauthorized()
    try:
        with runtime.uow(tenant_id) as uow:
            conn = uow.connections.get(connection_id)
            sealed = uow.connections.credentials(connection_id)
        expected = runtime.vault.open(sealed).get("webhook") if sealed else None
    except (NotFound, CredentialsUnreadable):
        return _unauthorized()
    if conn.kind != CrmKind.PIPEDRIVE or not check_basic(expected, user, password):
        log.warning("Pipedrive webhook for connection %s refused: bad credentials", connection_id)
        return _unauthorized()
    if conn.status != ConnectionStatus.ACTIVE:
        return jsonify({"error": "gone", "message": "this connection does not take deliveries now"}), 410
    if (request.content_length or 0) > MAX_BODY:
        return jsonify({"error": "too_large"}), 413
    payload = request.get_json(silent=True)
    if payload is None:
        return jsonify({"error": "bad_request", "message": "the body is not JSON"}), 400
    try:
        delivery = parse_delivery(payload, conn.settings.get("custom_names") or {})
    except MalformedDelivery as exc:
        return jsonify({"error": "bad_request", "message": str(exc)}), 400
    if delivery.record is None:
        return jsonify({"ok": True, "ignored": delivery.entity})
    rec = delivery.record
    stored = False
    with runtime.uow(tenant_id) as uow:
        exists = uow.session.scalar(select(m.CrmEventRow.id).where(
            m.CrmEventRow.connection_id == connection_id, m.CrmEventRow.dedupe_key == delivery.event_id))
        if exists is None:
            try:
                with uow.session.begin_nested():
                    uow.session.add(m.CrmEventRow(
                        tenant_id=tenant_id, connection_id=connection_id, source="pipedrive_webhook",
                        dedupe_key=delivery.event_id, object_type=rec.object, object_id=rec.id, changed_at=rec.modified_at,
                        payload={"fields": rec.fields, "deleted": rec.deleted, "action": delivery.action,
                                 "attempt": (payload.get("meta") or {}).get("attempt")},
                        received_at=runtime.now(), attempts=0))
                stored = True
            except IntegrityError:
                stored = False  # the same delivery arriving concurrently: already in the inbox
        uow.commit()
    if stored:
        try:
            runtime.jobs.enqueue("process_events", tenant_id=tenant_id, connection_id=connection_id)
        except Exception:  # noqa: BLE001 - the event is durable; the periodic sync drains it anyway
            log.exception("could not queue process_events for %s", connection_id)
            return jsonify({"error": "unavailable"}), 503
    return jsonify({"ok": True, "duplicate": not stored})
