"""Pipedrive web endpoints: the OAuth connect flow (and API-token connect) for admins, and the
webhook receiver.

The receiver hands the delivery to services.inbox, which checks HTTP basic auth (constant time) against
the connection's sealed credentials, stores the delivery in the inbox once per `meta.id`, commits, and
queues `process_events` when it was new; only then does the view answer 200 — no CRM call, no rule
evaluation in the request. The delivery is a hint: the deal is re-read from Pipedrive before anything is
decided. Bad auth: 401, nothing stored. Malformed JSON: 400."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from refstage.domain.errors import InvalidInput
from refstage.services import inbox, pipedrive_connect
from refstage.services.ports import CrmError
from refstage.services.runtime import Runtime
from refstage.web.api import body, require_api_key
from refstage.web.oauth_owner import finish_oauth_callback

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
    try:
        conn = pipedrive_connect.prepare_connect(rt(), g.tenant_id, actor=g.actor, name=str(data.get("name") or "Pipedrive"),
                                                 connection_id=data.get("connection_id"))
    except CrmError as exc:
        if getattr(exc, "code", None) != "not_configured":
            raise
        # No OAuth app on this server: the caller must send a personal API token instead.
        raise InvalidInput({"api_token": "required: this server has no Pipedrive app configured for OAuth"}) from None
    # An admin of this workspace opens it signed in: the OAuth flow is bound to that console session.
    link = rt().settings.base_url + url_for("admin.connection_authorize", connection_id=conn.id)  # not the Host header
    return jsonify({"connection_id": conn.id, "authorize_url": link}), 201


@bp.get("/pipedrive/oauth/callback")
def oauth_callback():
    """Pipedrive redirects the admin's browser here; the state (bound server-side, single use, ten
    minutes, to one pending connection) is the credential."""
    return finish_oauth_callback(
        "Pipedrive", pipedrive_connect.finish_connect,
        browser="text/html" in request.headers.get("Accept", ""),  # an admin's browser goes back to the console
        connected=lambda conn: f"Connected to Pipedrive company {conn.external_org_id} as {conn.external_username}.",
        as_json=_conn_out)


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
    basic = request.authorization
    user = basic.username if basic and basic.type == "basic" else None
    password = basic.password if basic and basic.type == "basic" else None
    too_large = (request.content_length or 0) > MAX_BODY
    try:  # the body is read only once the credentials are checked
        receipt = inbox.receive_pipedrive_webhook(rt(), connection_id, user, password,
                                                  lambda: request.get_json(silent=True), too_large=too_large)
    except inbox.PushRefused as exc:
        if exc.status == 401:
            return _unauthorized()
        return jsonify({"error": exc.code, "message": exc.message}), exc.status
    except inbox.PushNotQueued:
        return jsonify({"error": "unavailable"}), 503
    if receipt.ignored:
        return jsonify({"ok": True, "ignored": receipt.ignored})
    return jsonify({"ok": True, "duplicate": receipt.stored == 0})
