"""Audit entries: who changed what, when, from what to what, and why. Append-only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ActorKind(StrEnum):
    PERSON = "person"
    SYNC = "sync"
    API_KEY = "api_key"
    SYSTEM = "system"
    ADVOCATE = "advocate"
    FRIEND = "friend"


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str | None = None
    label: str = ""

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls(ActorKind.SYSTEM, None, label)

    @classmethod
    def sync(cls, connection_id: str | None = None) -> "Actor":
        return cls(ActorKind.SYNC, connection_id, "CRM sync")

    @classmethod
    def person(cls, user_id: str, email: str) -> "Actor":
        return cls(ActorKind.PERSON, user_id, email)


@dataclass(frozen=True)
class Change:
    """A state change an entity records; the service stamps the actor and stores it."""

    entity_type: str
    entity_id: str | None
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None = None
    at: dt.datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    tenant_id: str
    entity_type: str
    entity_id: str
    action: str
    actor: Actor
    at: dt.datetime
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str | None = None
    id: int | None = field(default=None, compare=False)
