"""Salesforce web endpoints: the OAuth connect flow for admins, and the Outbound Message receiver.

The receiver posts to `/webhooks/salesforce/outbound-message/<connection id>/<push key>` (the key is the
connection's secret; services.push_keys). It acknowledges (`<Ack>true</Ack>`) only after
services.inbox has committed the notifications to the inbox and queued `process_events`; anything else
answers a SOAP fault, so Salesforce keeps retrying (at-least-once; the inbox dedupes). The pushed
values are a hint: nothing is decided until the records are re-read from the org."""

from __future__ import annotations

import logging
from xml.sax.saxutils import escape

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from refstage.services import connections, inbox, salesforce_connect
from refstage.services.runtime import Runtime
from refstage.web.api import body, require_api_key
from refstage.web.oauth_owner import finish_oauth_callback

log = logging.getLogger(__name__)
bp = Blueprint("salesforce", __name__)

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OM_NS = "http://soap.sforce.com/2005/09/outbound"
MAX_BODY = 1024 * 1024  # the same bound the adapter's parser enforces; read no more than this


def rt() -> Runtime:
    return current_app.extensions["refstage"]


# --- OAuth connect (admins) ----------------------------------------------------------------------
@bp.post("/salesforce/connections")
@require_api_key
def start_connect():
    """A pending connection; `authorize_url` is the console page an admin of this workspace opens (signed
    in) to approve it at Salesforce: the flow is bound to that browser session, not to the API key."""
    data = body()
    conn = salesforce_connect.prepare_connect(rt(), g.tenant_id, actor=g.actor,
                                              name=str(data.get("name") or "Salesforce"),
                                              login_host=str(data.get("login_host") or "production"),
                                              connection_id=data.get("connection_id"))
    link = rt().settings.base_url + url_for("admin.connection_authorize", connection_id=conn.id)  # not the Host header
    return jsonify({"connection_id": conn.id, "authorize_url": link}), 201


@bp.get("/salesforce/oauth/callback")
def oauth_callback():
    """Salesforce redirects the admin's browser here. The state (bound server-side to one pending
    connection) is the credential; errors from Salesforce are shown, never retried."""
    return finish_oauth_callback(
        "Salesforce", salesforce_connect.finish_connect,
        browser=request.accept_mimetypes.accept_html,  # an admin's browser goes back to the console
        connected=lambda conn: f"Connected to Salesforce org {conn.external_org_id} as {conn.external_username}.",
        as_json=lambda conn: {"connection_id": conn.id, "status": conn.status.value, "org_id": conn.external_org_id,
                              "username": conn.external_username, "instance_url": conn.instance_url})


@bp.get("/salesforce/connections")
@require_api_key
def list_connections():
    return jsonify({"data": [{"id": c.id, "kind": c.kind.value, "name": c.name, "status": c.status.value,
                              "org_id": c.external_org_id, "username": c.external_username,
                              "instance_url": c.instance_url, "status_message": c.status_message,
                              "last_sync_at": c.last_sync_at.isoformat() if c.last_sync_at else None}
                             for c in connections.list_connections(rt(), g.tenant_id)]})


@bp.delete("/salesforce/connections/<connection_id>")
@require_api_key
def disconnect(connection_id: str):
    conn = salesforce_connect.disconnect(rt(), g.tenant_id, connection_id, actor=g.actor)
    return jsonify({"id": conn.id, "status": conn.status.value})


# --- Outbound Messages ---------------------------------------------------------------------------
def soap_ack() -> Response:
    xml = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="%s"><soapenv:Body>'
           '<notificationsResponse xmlns="%s"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>'
           % (SOAP_NS, OM_NS))
    return Response(xml, 200, content_type="text/xml; charset=utf-8")


def soap_fault(message: str, status: int = 500, code: str = "soapenv:Client") -> Response:
    xml = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="%s"><soapenv:Body><soapenv:Fault>'
           '<faultcode>%s</faultcode><faultstring>%s</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>'
           % (SOAP_NS, code, escape(message)))
    return Response(xml, status, content_type="text/xml; charset=utf-8")


@bp.post("/webhooks/salesforce/outbound-message/<connection_id>/<push_key>")
def outbound_message(connection_id: str, push_key: str):
    if (request.content_length or 0) > MAX_BODY:
        return soap_fault("message too large", 413)
    raw = request.get_data(cache=False)
    try:
        inbox.receive_outbound_message(rt(), connection_id, push_key, raw)
    except inbox.PushRefused as exc:
        return soap_fault(exc.message, exc.status)
    except inbox.PushNotQueued:
        return soap_fault("temporarily unable to accept messages", 503, "soapenv:Server")
    return soap_ack()


@bp.post("/webhooks/salesforce/outbound-message/<connection_id>")
def outbound_message_without_key(connection_id: str):
    """The endpoint before push keys: refused loudly (Salesforce shows the fault in its Outbound Message
    queue), so a stale configuration is noticed instead of silently trusted."""
    return soap_fault("this endpoint URL has no push key and is no longer accepted: point the Outbound Message at "
                      "the connection's current endpoint URL (Refstage console, CRM connections)", 410)
