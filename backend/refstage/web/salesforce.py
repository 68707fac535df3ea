"""Salesforce web endpoints: the OAuth connect flow for admins, and the Outbound Message receiver.

The receiver acknowledges (`<Ack>true</Ack>`) only after the notifications are committed to the
crm_events inbox and the `process_events` job is queued; anything else answers a SOAP fault, so
Salesforce keeps retrying (at-least-once; the inbox dedupes)."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import re
from typing import Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree as ET
from defusedxml.common import DefusedXmlException
from flask import Blueprint, Response, current_app, flash, g, jsonify, redirect, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from refstage.adapters.db import models as m
from refstage.domain.connections import ConnectionStatus, CrmKind
from refstage.domain.errors import InvalidInput
from refstage.services import connections
from refstage.services.ports import CrmError
from refstage.services.runtime import Runtime
from refstage.web.api import body, require_api_key
from refstage.web.oauth_owner import console_owner

log = logging.getLogger(__name__)
bp = Blueprint("salesforce", __name__)

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OM_NS = "http://soap.sforce.com/2005/09/outbound"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
MAX_BODY = 1024 * 1024


def rt() -> Runtime:
    return current_app.extensions["refstage"]


# --- OAuth connect (admins) ----------------------------------------------------------------------
@bp.post("/salesforce/connections")
@require_api_key
def start_connect():
    """A pending connection; `authorize_url` is the console page an admin of this workspace opens (signed
    in) to approve it at Salesforce: the flow is bound to that browser session, not to the API key."""
    data = body()
    conn = connections.prepare_connect(rt(), g.tenant_id, actor=g.actor, name=str(data.get("name") or "Salesforce"),
                                       login_host=str(data.get("login_host") or "production"),
                                       connection_id=data.get("connection_id"))
    link = rt().settings.base_url + url_for("admin.connection_authorize", connection_id=conn.id)  # not the Host header
    return jsonify({"connection_id": conn.id, "authorize_url": link}), 201


@bp.get("/salesforce/oauth/callback")
def oauth_callback():
    """Salesforce redirects the admin's browser here. The state (bound server-side to one pending
    connection) is the credential; errors from Salesforce are shown, never retried."""
    browser = request.accept_mimetypes.accept_html  # an admin's browser goes back to the console

    def answer_error(code: str, message: str, status: int):
        if browser:
            flash(f"Salesforce connection failed: {message}", "error")
            return redirect(url_for("admin.connections"), 303)
        return jsonify({"error": code, "message": message}), status

    if request.args.get("error"):
        return answer_error("salesforce_refused", request.args.get("error_description") or request.args["error"], 400)
    owner = console_owner(create=False)
    if owner is None:
        return answer_error("connect_failed", connections.NOT_YOURS, 403)
    try:
        conn = connections.finish_connect(rt(), request.args.get("code", ""), request.args.get("state", ""), owner=owner)
    except CrmError as exc:
        return answer_error("salesforce_error", str(exc), 502 if exc.transient else 400)
    except InvalidInput as exc:
        if not browser:
            raise
        return answer_error("connect_failed", "; ".join(m for msgs in exc.errors.values() for m in msgs), 400)
    if browser:
        flash(f"Connected to Salesforce org {conn.external_org_id} as {conn.external_username}.")
        return redirect(url_for("admin.connections"), 303)
    return jsonify({"connection_id": conn.id, "status": conn.status.value, "org_id": conn.external_org_id,
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
    conn = connections.disconnect(rt(), g.tenant_id, connection_id, actor=g.actor)
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


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _value(el: Any) -> Any:
    if el.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true":
        return None
    text = el.text or ""
    if text in ("true", "false"):
        return text == "true"
    return text


_SF_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_SOBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


def parse_notifications(xml: bytes) -> tuple[str, list[dict[str, Any]]]:
    """(OrganizationId, [{id, object, fields}]) from a SOAP `notifications` envelope."""
    root = ET.fromstring(xml, forbid_dtd=True)
    notifications = root.find(f"{{{SOAP_NS}}}Body/{{{OM_NS}}}notifications")
    if notifications is None:
        raise ValueError("not an outbound message: no notifications element")
    org_id = (notifications.findtext(f"{{{OM_NS}}}OrganizationId") or "").strip()
    items = []
    for note in notifications.findall(f"{{{OM_NS}}}Notification"):
        sobj = note.find(f"{{{OM_NS}}}sObject")
        if sobj is None:
            continue
        obj = (sobj.get(XSI_TYPE) or "").split(":")[-1]
        fields = {_local(child.tag): _value(child) for child in sobj}
        record_id = fields.get("Id")
        if not obj or not record_id:
            raise ValueError("a notification without an sObject type or Id")
        if not isinstance(record_id, str) or not _SF_ID.match(record_id) or not _SOBJECT.match(obj):
            raise ValueError("a notification whose sObject type or Id is not a Salesforce one")
        items.append({"notification_id": note.findtext(f"{{{OM_NS}}}Id"), "object": obj, "id": record_id, "fields": fields})
    if len(items) > 100:
        raise ValueError("more than 100 notifications in one message")
    return org_id, items


def _changed_at(fields: dict[str, Any]) -> dt.datetime | None:
    from refstage.adapters.crm.salesforce.sync import parse_time

    for name in ("SystemModstamp", "LastModifiedDate"):
        if fields.get(name):
            try:
                return parse_time(fields[name])
            except ValueError:
                return None
    return None


@bp.post("/webhooks/salesforce/outbound-message/<connection_id>")
def outbound_message(connection_id: str):
    runtime = rt()
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY:
        return soap_fault("message too large", 413)
    with runtime.uow() as uow:
        tenant_id = uow.directory.tenant_for_connection(connection_id)
    if tenant_id is None:
        return soap_fault("unknown endpoint", 404)
    with runtime.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
    secret = conn.settings.get("outbound_message_key")
    if secret and not hmac.compare_digest(str(secret), request.args.get("key", "")):
        return soap_fault("not authorised", 403)
    if conn.kind != CrmKind.SALESFORCE or conn.status != ConnectionStatus.ACTIVE or not conn.external_org_id:
        return soap_fault("this endpoint does not take messages now", 403)
    try:
        org_id, items = parse_notifications(raw)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        return soap_fault(f"malformed message: {exc}", 400)
    if org_id[:15] != conn.external_org_id[:15]:
        log.warning("outbound message for connection %s from org %s refused", connection_id, org_id)
        return soap_fault("organization does not match this endpoint", 403)
    now = runtime.now()
    with runtime.uow(tenant_id) as uow:
        for item in items:
            changed_at = _changed_at(item["fields"])
            stamp = item["fields"].get("SystemModstamp") or item["fields"].get("LastModifiedDate") or item["notification_id"] or ""
            key = f"{item['object']}:{item['id']}:{stamp}"[:200]
            exists = uow.session.scalar(select(m.CrmEventRow.id).where(
                m.CrmEventRow.connection_id == connection_id, m.CrmEventRow.dedupe_key == key))
            if exists is not None:
                continue  # a redelivery
            try:
                with uow.session.begin_nested():
                    uow.session.add(m.CrmEventRow(
                        tenant_id=tenant_id, connection_id=connection_id, source="salesforce_outbound_message",
                        dedupe_key=key, object_type=item["object"], object_id=item["id"], changed_at=changed_at,
                        payload={"fields": item["fields"], "notification_id": item["notification_id"]},
                        received_at=now, attempts=0))
            except IntegrityError:
                continue  # the same change arriving concurrently
        uow.commit()
    try:
        runtime.jobs.enqueue("process_events", tenant_id=tenant_id, connection_id=connection_id)
    except Exception:  # noqa: BLE001 - without the job queued we must not acknowledge
        log.exception("could not queue process_events for %s", connection_id)
        return soap_fault("temporarily unable to accept messages", 503, "soapenv:Server")
    return soap_ack()
