"""Pipedrive webhooks (v2.0 payloads): registration with per-connection HTTP basic credentials, and
parsing of deliveries into domain records.

A delivery: {"data": <current object, null on delete>, "previous": {changed fields} | null,
"meta": {"action": create|change|delete, "entity": deal|person|..., "entity_id": "42",
"id": <event uuid, stable across retries>, "timestamp", "version": "2.0", ...}}.
Deliveries are retried (3/30/150 s) and may be duplicated or arrive out of order: the receiver
dedupes on `meta.id` and orders by `data.update_time`; polling with `updated_since` covers losses."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Mapping

from refstage.adapters.crm.pipedrive.client import PipedriveClient
from refstage.adapters.crm.pipedrive.records import deal_record, parse_time, person_record
from refstage.services.ports import ChangedRecord, MalformedPush

WEBHOOK_NAME = "Refstage deal changes"
ENTITIES = {"deal": "Deal", "person": "Person"}


class MalformedDelivery(MalformedPush):
    """The body is not a v2.0 webhook payload."""


def new_basic_credentials() -> dict[str, str]:
    """Per-connection HTTP basic credentials for deliveries (stored sealed with the tokens)."""
    return {"user": "refstage-" + secrets.token_hex(6), "password": secrets.token_urlsafe(32)}


def check_basic(expected: Mapping[str, str] | None, user: str | None, password: str | None) -> bool:
    """Constant-time comparison of both parts (no early exit on the user name)."""
    if not expected or not expected.get("user") or not expected.get("password"):
        return False
    ok_user = hmac.compare_digest(str(expected["user"]).encode(), (user or "").encode())
    ok_pass = hmac.compare_digest(str(expected["password"]).encode(), (password or "").encode())
    return ok_user and ok_pass


def register(client: PipedriveClient, url: str, basic: Mapping[str, str], *, event_object: str = "deal",
             name: str = WEBHOOK_NAME) -> int:
    data = client.post("v1", "webhooks", {
        "subscription_url": url, "event_action": "*", "event_object": event_object, "version": "2.0",
        "http_auth_user": basic["user"], "http_auth_password": basic["password"], "name": name,
    })
    return int(data["id"])


def unregister(client: PipedriveClient, webhook_id: int) -> None:
    client.delete("v1", f"webhooks/{int(webhook_id)}")


def existing(client: PipedriveClient, url: str) -> list[int]:
    hooks = client.get("v1", "webhooks") or []
    return [int(h["id"]) for h in hooks if isinstance(h, dict) and h.get("subscription_url") == url]


@dataclass(frozen=True)
class Delivery:
    event_id: str
    action: str
    entity: str
    record: ChangedRecord | None  # None for entities we do not follow


def parse_delivery(body: Any, custom_names: Mapping[str, Mapping[str, str]]) -> Delivery:
    """`custom_names`: {"deal": {hash: readable name}, "person": {...}}."""
    if not isinstance(body, dict) or not isinstance(body.get("meta"), dict):
        raise MalformedDelivery("expected a JSON object with meta")
    meta = body["meta"]
    event_id, action, entity, entity_id = meta.get("id"), meta.get("action"), meta.get("entity"), meta.get("entity_id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 200:
        raise MalformedDelivery("meta.id is missing")
    if str(meta.get("version", "2.0")) != "2.0":
        raise MalformedDelivery("only webhooks v2.0 payloads are accepted")
    if entity not in ENTITIES:
        return Delivery(event_id, str(action), str(entity), None)
    if entity_id is None or not str(entity_id).isdigit():
        raise MalformedDelivery("meta.entity_id is missing")
    data = body.get("data")
    names = custom_names.get(entity) or {}
    if action == "delete" or data is None:
        previous = body.get("previous") if isinstance(body.get("previous"), dict) else {}
        when = parse_time(meta.get("timestamp")) or parse_time((previous or {}).get("update_time"))
        return Delivery(event_id, "delete", entity, ChangedRecord(ENTITIES[entity], str(entity_id), {}, when, True))
    if not isinstance(data, dict) or "id" not in data:
        raise MalformedDelivery("data is not an object")
    record = deal_record(data, names) if entity == "deal" else person_record(data, names)
    if record.modified_at is None:
        record = ChangedRecord(record.object, record.id, record.fields, parse_time(meta.get("timestamp")), record.deleted)
    return Delivery(event_id, str(action), entity, record)
