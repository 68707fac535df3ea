"""Pipedrive objects → domain records (ChangedRecord) and back. Shared by polling and webhooks, so a
deal means the same thing whichever way it arrived.

Field names the rules see: the standard v2 deal/person keys (`stage_id`, `status`, `value`,
`currency`, `pipeline_id`, `owner_id`, `won_time`, ...) and each custom field under a readable name
(its label in snake_case, e.g. "Lead source" → `lead_source`), never the 40-character hash."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Iterable, Mapping

from refstage.services.ports import ChangedRecord

DEAL_STANDARD = ("id", "title", "owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "value", "currency",
                 "status", "add_time", "update_time", "stage_change_time", "won_time", "lost_time", "close_time",
                 "lost_reason", "probability", "expected_close_date", "is_deleted", "is_archived", "label_ids")
PERSON_STANDARD = ("id", "name", "first_name", "last_name", "owner_id", "org_id", "add_time", "update_time",
                   "label_ids", "is_deleted")
# Always carried for deals: qualification and ordering need them whatever the rules say.
DEAL_ALWAYS = ("stage_id", "status", "value", "currency", "pipeline_id", "owner_id", "won_time", "lost_time",
               "close_time", "stage_change_time", "update_time")
PERSON_ALWAYS = ("owner_id", "org_id", "update_time")


def snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def parse_time(value: Any) -> dt.datetime | None:
    """v2 RFC 3339 (`2026-11-02T09:00:00Z`) and v1 `YYYY-MM-DD HH:MM:SS` (UTC)."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    if " " in text and "T" not in text:
        text = text.replace(" ", "T")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def flatten(obj: Mapping[str, Any], standard: Iterable[str], custom_names: Mapping[str, str],
            wanted: set[str] | None = None) -> dict[str, Any]:
    """Standard fields plus custom fields by readable name. `custom_names`: hash → readable name.
    With `wanted`, only those names (plus the standard ones always carried)."""
    out: dict[str, Any] = {}
    for key in standard:
        if key in obj and (wanted is None or key in wanted):
            out[key] = obj[key]
    custom = obj.get("custom_fields") or {}
    for key, value in custom.items():
        name = custom_names.get(key)
        if name is None:
            continue
        if wanted is None or name in wanted or key in wanted:
            out[name] = value
    return out


def deal_record(deal: Mapping[str, Any], custom_names: Mapping[str, str], wanted: set[str] | None = None) -> ChangedRecord:
    names = None if wanted is None else set(wanted) | set(DEAL_ALWAYS)
    fields = flatten(deal, DEAL_STANDARD, custom_names, names)
    deleted = bool(deal.get("is_deleted")) or deal.get("status") == "deleted"
    return ChangedRecord("Deal", str(deal["id"]), fields, parse_time(deal.get("update_time")), deleted)


def person_record(person: Mapping[str, Any], custom_names: Mapping[str, str], wanted: set[str] | None = None) -> ChangedRecord:
    names = None if wanted is None else set(wanted) | set(PERSON_ALWAYS)
    fields = flatten(person, PERSON_STANDARD, custom_names, names)
    emails = person.get("emails") or []
    primary = next((e.get("value") for e in emails if isinstance(e, dict) and e.get("primary")), None) or \
        next((e.get("value") for e in emails if isinstance(e, dict)), None)
    if wanted is None or "email" in (wanted or ()):
        fields["email"] = primary
    return ChangedRecord("Person", str(person["id"]), fields, parse_time(person.get("update_time")),
                         bool(person.get("is_deleted")))


def primary_email(person: Mapping[str, Any]) -> str | None:
    emails = person.get("emails") or []
    if isinstance(emails, list):
        for e in emails:
            if isinstance(e, dict) and e.get("primary") and e.get("value"):
                return str(e["value"])
        for e in emails:
            if isinstance(e, dict) and e.get("value"):
                return str(e["value"])
            if isinstance(e, str):
                return e
    return None
