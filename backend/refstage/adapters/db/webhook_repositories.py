"""Outbound webhooks' storage: a tenant's endpoints, and the delivery log that is their outbox (one row per
endpoint, event and entity, kept through retries). Scoped to one tenant like every repository: another
tenant's endpoint or delivery is `NotFound`, never listed, never changed."""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from sqlalchemy import or_, select, update

from refstage.adapters.db import models as m
from refstage.adapters.db.repositories import _Scoped

def _endpoint_dict(row: m.WebhookEndpointRow) -> dict[str, Any]:
    return {"id": row.id, "url": row.url, "description": row.description, "events": list(row.events or []),
            "active": row.active, "created_at": row.created_at, "updated_at": row.updated_at}


def _delivery_dict(r: m.WebhookDeliveryRow) -> dict[str, Any]:
    return {"id": r.id, "endpoint_id": r.endpoint_id, "event": r.event, "entity_id": r.entity_id, "status": r.status,
            "attempts": r.attempts, "last_status_code": r.last_status_code, "last_error": r.last_error,
            "next_attempt_at": r.next_attempt_at, "created_at": r.created_at, "delivered_at": r.delivered_at,
            "payload": r.payload}


class WebhookEndpointRepository(_Scoped):
    """Where a tenant's events go. The signing secret is stored sealed and read only to sign."""

    def _row(self, endpoint_id: str) -> m.WebhookEndpointRow:
        return self._one(m.WebhookEndpointRow, endpoint_id, "webhook endpoint")

    def add(self, endpoint_id: str, *, url: str, description: str, sealed_secret: str, events: list[str],
            now: dt.datetime) -> dict[str, Any]:
        row = m.WebhookEndpointRow(id=endpoint_id, tenant_id=self.tenant_id, url=url, description=description,
                                   secret=sealed_secret, events=events, active=True, created_at=now, updated_at=now)
        self.session.add(self._keep(row))
        return _endpoint_dict(row)

    def get(self, endpoint_id: str) -> dict[str, Any]:
        return _endpoint_dict(self._row(endpoint_id))

    def list(self, *, active_only: bool = False) -> list[dict[str, Any]]:
        """Oldest first."""
        E = m.WebhookEndpointRow
        q = select(E).where(E.tenant_id == self.tenant_id)
        if active_only:
            q = q.where(E.active.is_(True))
        return [_endpoint_dict(r) for r in self.session.scalars(q.order_by(E.created_at, E.id))]

    def update(self, endpoint_id: str, changes: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
        """Set the given fields (url, description, events, active)."""
        row = self._row(endpoint_id)
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = now
        return _endpoint_dict(row)

    def sealed_secret(self, endpoint_id: str) -> str:
        return self._row(endpoint_id).secret

    def set_secret(self, endpoint_id: str, sealed_secret: str, now: dt.datetime) -> None:
        row = self._row(endpoint_id)
        row.secret, row.updated_at = sealed_secret, now

    def remove(self, endpoint_id: str) -> dict[str, Any]:
        """Delete the endpoint (its deliveries go with it); returns what it was."""
        row = self._row(endpoint_id)
        self.session.delete(row)
        return _endpoint_dict(row)


class WebhookDeliveryRepository(_Scoped):
    """The delivery log: each event for each endpoint, its payload, attempts and last answer."""

    def _row(self, delivery_id: str) -> m.WebhookDeliveryRow:
        return self._one(m.WebhookDeliveryRow, delivery_id, "webhook delivery")

    def add_once(self, delivery_id: str, *, endpoint_id: str, event: str, entity_id: str, payload: dict[str, Any],
                 now: dt.datetime) -> dict[str, Any] | None:
        """Store a pending delivery, due now, unless this endpoint already has this event for this entity
        (the unique constraint decides, so a concurrent fan-out or click gets None: already there)."""
        row = m.WebhookDeliveryRow(id=delivery_id, tenant_id=self.tenant_id, endpoint_id=endpoint_id, event=event,
                                   entity_id=entity_id, payload=payload, status="pending", attempts=0,
                                   next_attempt_at=now, created_at=now)
        return _delivery_dict(self._keep(row)) if self._add_unless_there(row) else None

    def get(self, delivery_id: str) -> dict[str, Any]:
        return _delivery_dict(self._row(delivery_id))

    def list(self, *, endpoint_id: str | None = None, status: str | None = None, event: str | None = None,
             limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Newest first."""
        W = m.WebhookDeliveryRow
        filters = [(W.endpoint_id, endpoint_id), (W.status, status), (W.event, event)]
        return [_delivery_dict(r) for r in self._newest_first(W, filters, limit, offset)]

    def for_entities(self, event: str, entity_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Deliveries of one event (for the given entities, or all), oldest first."""
        W = m.WebhookDeliveryRow
        q = select(W).where(W.tenant_id == self.tenant_id, W.event == event)
        if entity_ids is not None:
            q = q.where(W.entity_id.in_(list(entity_ids)))
        return [_delivery_dict(r) for r in self.session.scalars(q.order_by(W.created_at, W.id))]

    def claim(self, delivery_id: str, now: dt.datetime, lease_until: dt.datetime) -> bool:
        """Mark a delivery as being sent (one attempt more) until `lease_until`, if it is waiting or its last
        sender's lease ran out. One conditional UPDATE: of two workers, one gets True."""
        W = m.WebhookDeliveryRow
        return bool(self.session.execute(update(W).where(
            W.id == delivery_id, W.tenant_id == self.tenant_id,
            or_(W.status.in_(["pending", "retrying"]), (W.status == "sending") & (W.next_attempt_at <= now)))
            .values(status="sending", attempts=W.attempts + 1, next_attempt_at=lease_until)).rowcount)

    def finish(self, delivery_id: str, *, status: str, status_code: int | None, error: str | None,
               delivered_at: dt.datetime | None, next_attempt_at: dt.datetime | None) -> None:
        """Record an attempt's outcome."""
        row = self._row(delivery_id)
        row.status, row.last_status_code, row.last_error = status, status_code, error
        row.delivered_at, row.next_attempt_at = delivered_at, next_attempt_at

    def requeue(self, delivery_id: str, now: dt.datetime) -> dict[str, Any]:
        """Start a finished delivery over: pending, no attempts, due now."""
        row = self._row(delivery_id)
        row.status, row.attempts, row.next_attempt_at = "pending", 0, now
        return _delivery_dict(row)
