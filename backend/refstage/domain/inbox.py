"""CRM pushes as the inbox keeps them: which record a push says changed, under which delivery id.

A push is a hint that a record changed, never the record's state: what it carries is kept for the
record (troubleshooting) but qualification reads the record from the CRM before deciding anything."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PushedChange:
    object: str  # Lead, Opportunity, Deal, Person, ...
    id: str  # the record's id in the CRM
    delivery_id: str  # the CRM's id for this delivery, stable across its retries: stored once
    changed_at: dt.datetime | None = None  # what the push claims; never trusted for ordering of states
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InboxEntry:
    pk: int
    object: str
    id: str
    source: str
