"""A tenant's connection to one CRM org or company."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class CrmKind(StrEnum):
    SALESFORCE = "salesforce"
    PIPEDRIVE = "pipedrive"


class ConnectionStatus(StrEnum):
    PENDING = "pending"  # created, OAuth not finished
    ACTIVE = "active"
    RECONNECT_REQUIRED = "reconnect_required"  # refresh token refused: a person must sign in again
    DISCONNECTED = "disconnected"


@dataclass
class CrmConnection:
    id: str
    tenant_id: str
    kind: CrmKind
    name: str
    status: ConnectionStatus = ConnectionStatus.PENDING
    external_org_id: str | None = None
    instance_url: str | None = None
    login_host: str | None = None
    external_user_id: str | None = None
    external_username: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    status_message: str | None = None
    last_sync_at: dt.datetime | None = None

    @property
    def usable(self) -> bool:
        return self.status == ConnectionStatus.ACTIVE
