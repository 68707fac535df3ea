"""Salesforce Outbound Messages on the wire: the SOAP `notifications` envelope Salesforce posts, parsed
into the few facts the inbox keeps: the org id, and per notification its id, sObject type, record Id
and the pushed values.

The pushed values are a hint only: process_events re-reads each record from the org before anything
is decided (see docs/decisions/2026-12-02-push-is-a-hint.md). Parsing refuses DTDs and entities
(defusedxml) and anything that is not shaped like a Salesforce notification."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from defusedxml import ElementTree as ET
from defusedxml.common import DefusedXmlException

from refstage.services.ports import MalformedPush

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OM_NS = "http://soap.sforce.com/2005/09/outbound"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
MAX_NOTIFICATIONS = 100  # Salesforce sends at most 100 notifications per message
MAX_BODY = 1024 * 1024

_SF_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_SOBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


class MalformedMessage(MalformedPush):
    """The body is not a Salesforce Outbound Message."""


@dataclass(frozen=True)
class Notification:
    notification_id: str | None  # stable across Salesforce's retries of the same notification
    object: str
    id: str
    fields: dict[str, Any]

    @property
    def stamp(self) -> str | None:
        return self.fields.get("SystemModstamp") or self.fields.get("LastModifiedDate")


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    notifications: list[Notification]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _value(el: Any) -> Any:
    if el.get(XSI_NIL) == "true":
        return None
    text = el.text or ""
    if text in ("true", "false"):
        return text == "true"
    return text


def parse(xml: bytes) -> OutboundMessage:
    """The envelope's OrganizationId and notifications; MalformedMessage for anything else."""
    try:
        root = ET.fromstring(xml, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedMessage(f"not well-formed XML ({type(exc).__name__})") from None
    notifications = root.find(f"{{{SOAP_NS}}}Body/{{{OM_NS}}}notifications")
    if notifications is None:
        raise MalformedMessage("not an outbound message: no notifications element")
    org_id = (notifications.findtext(f"{{{OM_NS}}}OrganizationId") or "").strip()
    items: list[Notification] = []
    for note in notifications.findall(f"{{{OM_NS}}}Notification"):
        sobj = note.find(f"{{{OM_NS}}}sObject")
        if sobj is None:
            continue
        obj = (sobj.get(XSI_TYPE) or "").split(":")[-1]
        fields = {_local(child.tag): _value(child) for child in sobj}
        record_id = fields.get("Id")
        if not obj or not record_id:
            raise MalformedMessage("a notification without an sObject type or Id")
        if not isinstance(record_id, str) or not _SF_ID.match(record_id) or not _SOBJECT.match(obj):
            raise MalformedMessage("a notification whose sObject type or Id is not a Salesforce one")
        note_id = (note.findtext(f"{{{OM_NS}}}Id") or "").strip() or None
        items.append(Notification(note_id[:40] if note_id else None, obj, record_id, fields))
        if len(items) > MAX_NOTIFICATIONS:
            raise MalformedMessage(f"more than {MAX_NOTIFICATIONS} notifications in one message")
    return OutboundMessage(org_id, items)

