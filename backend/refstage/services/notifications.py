"""Domain events for people and systems outside: emails to advocates, outbound webhooks.

The event log is durable; delivery channels read from it."""

from __future__ import annotations

import logging

from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)


def dispatch(rt: Runtime, tenant_id: str, event: str, entity_id: str) -> None:
    log.info("event %s for %s in tenant %s", event, entity_id, tenant_id, extra={"event": event, "entity_id": entity_id})
