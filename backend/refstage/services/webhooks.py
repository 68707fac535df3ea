"""Signed outbound webhooks: per-tenant endpoints, one delivery per (endpoint, event, entity), retries
with exponential backoff, and a delivery log.

Signature (Stripe-like, so receivers can reuse familiar code):
    Refstage-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
Receivers recompute the HMAC over the raw body, compare in constant time, and refuse timestamps older
than a few minutes (replay). `verify_signature` below is the reference implementation."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import urlsplit

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from refstage.adapters import outbound
from refstage.adapters.db import models as m
from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.errors import DomainError, InvalidInput, NotFound
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)

WEBHOOK_EVENTS = ("referral.captured", "referral.qualified", "reward.approved", "reward.issued")
#: Sent only on request (the admin console's "Send to payout"), never fanned out from domain events.
PAYOUT_REQUESTED = "reward.payout_requested"
#: What an endpoint may subscribe to. New endpoints get WEBHOOK_EVENTS unless told otherwise:
#: payout requests are opt-in (the payout system's endpoint).
ENDPOINT_EVENTS = WEBHOOK_EVENTS + (PAYOUT_REQUESTED,)
SIGNATURE_HEADER = "Refstage-Signature"
MAX_ATTEMPTS = 8
LEASE = dt.timedelta(minutes=5)  # a delivery claimed by a worker that died is retried after this
TOLERANCE_SECONDS = 300


def retry_delay(attempt: int, base: float = 10.0, cap: float = 3600.0) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): 10 s, 20 s, 40 s … capped at an hour."""
    return min(cap, base * (2 ** max(attempt - 1, 0)))


# --- signing --------------------------------------------------------------------------------------------
def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, now: int, tolerance: int = TOLERANCE_SECONDS) -> bool:
    parts: dict[str, list[str]] = {}
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        ts = int(parts.get("t", [""])[0])
    except ValueError:
        return False
    if abs(now - ts) > tolerance:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))


# --- endpoints ------------------------------------------------------------------------------------------
def _private_targets_allowed(rt: Runtime) -> bool:
    """Development only (REFSTAGE_ALLOW_PRIVATE_WEBHOOK_TARGETS): receivers on this machine or the LAN."""
    return bool(getattr(rt.settings, "allow_private_webhook_targets", False)) and not rt.settings.is_production


def _validate(rt: Runtime, url: Any, events: Any, description: Any) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    if url is not None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if not parts or parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000 or any(c.isspace() for c in url):
            errors["url"] = ["an http(s) URL"]
        elif rt.settings.is_production and parts.scheme != "https":
            errors["url"] = ["webhooks go over https in production"]
        else:
            try:
                outbound.check_webhook_url(url, allow_private=_private_targets_allowed(rt))
            except outbound.TargetRefused as exc:
                errors["url"] = [f"{exc.reason}; webhooks go to public internet hosts only"]
            else:
                clean["url"] = url
    if events is not None:
        if not isinstance(events, list) or not events or any(e not in ENDPOINT_EVENTS for e in events):
            errors["events"] = [f"a non-empty list of: {', '.join(ENDPOINT_EVENTS)}"]
        else:
            clean["events"] = sorted(set(events), key=ENDPOINT_EVENTS.index)
    if description is not None:
        if not isinstance(description, str) or len(description) > 200:
            errors["description"] = ["at most 200 characters"]
        else:
            clean["description"] = description.strip()
    if errors:
        raise InvalidInput(errors)
    return clean


def _endpoint_dict(row: m.WebhookEndpointRow) -> dict[str, Any]:
    return {"id": row.id, "url": row.url, "description": row.description, "events": list(row.events or []),
            "active": row.active, "created_at": row.created_at, "updated_at": row.updated_at}


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def create_endpoint(rt: Runtime, tenant_id: str, url: str, events: list[str] | None, actor: Actor,
                    description: str = "") -> tuple[dict[str, Any], str]:
    """Returns (endpoint, secret). The secret is shown once; it is stored sealed, to sign with."""
    clean = _validate(rt, url, list(WEBHOOK_EVENTS) if events is None else events, description or "")
    if "url" not in clean:
        raise InvalidInput({"url": ["required"]})
    secret = _new_secret()
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        row = m.WebhookEndpointRow(id=rt.new_id(), tenant_id=tenant_id, url=clean["url"], description=clean.get("description", ""),
                                   secret=rt.vault.seal({"secret": secret}), events=clean["events"], active=True,
                                   created_at=now, updated_at=now)
        uow.session.add(row)
        uow.audit.append([AuditEntry(tenant_id, "webhook_endpoint", row.id, "created", actor, now, None,
                                     {"url": row.url, "events": row.events})])
        uow.commit()
        return _endpoint_dict(row), secret


def _endpoint_row(uow, tenant_id: str, endpoint_id: str) -> m.WebhookEndpointRow:
    row = uow.session.get(m.WebhookEndpointRow, endpoint_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    return row


def list_endpoints(rt: Runtime, tenant_id: str) -> list[dict[str, Any]]:
    with rt.uow(tenant_id) as uow:
        rows = uow.session.scalars(select(m.WebhookEndpointRow).where(m.WebhookEndpointRow.tenant_id == tenant_id)
                                   .order_by(m.WebhookEndpointRow.created_at, m.WebhookEndpointRow.id))
        return [_endpoint_dict(r) for r in rows]


def get_endpoint(rt: Runtime, tenant_id: str, endpoint_id: str) -> dict[str, Any]:
    with rt.uow(tenant_id) as uow:
        return _endpoint_dict(_endpoint_row(uow, tenant_id, endpoint_id))


def update_endpoint(rt: Runtime, tenant_id: str, endpoint_id: str, data: dict[str, Any], actor: Actor) -> dict[str, Any]:
    clean = _validate(rt, data.get("url"), data.get("events"), data.get("description"))
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise InvalidInput({"active": ["true or false"]})
        clean["active"] = data["active"]
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        row = _endpoint_row(uow, tenant_id, endpoint_id)
        before = {k: getattr(row, k) for k in clean}
        for key, value in clean.items():
            setattr(row, key, value)
        row.updated_at = now
        uow.audit.append([AuditEntry(tenant_id, "webhook_endpoint", row.id, "updated", actor, now, before, dict(clean))])
        uow.commit()
        return _endpoint_dict(row)


def rotate_secret(rt: Runtime, tenant_id: str, endpoint_id: str, actor: Actor) -> str:
    secret = _new_secret()
    with rt.uow(tenant_id) as uow:
        row = _endpoint_row(uow, tenant_id, endpoint_id)
        row.secret, row.updated_at = rt.vault.seal({"secret": secret}), rt.now()
        uow.audit.append([AuditEntry(tenant_id, "webhook_endpoint", row.id, "secret_rotated", actor, rt.now(), None, None)])
        uow.commit()
    return secret


def delete_endpoint(rt: Runtime, tenant_id: str, endpoint_id: str, actor: Actor) -> None:
    with rt.uow(tenant_id) as uow:
        row = _endpoint_row(uow, tenant_id, endpoint_id)
        uow.audit.append([AuditEntry(tenant_id, "webhook_endpoint", row.id, "deleted", actor, rt.now(), {"url": row.url}, None)])
        uow.session.delete(row)
        uow.commit()


# --- events -----------------------------------------------------------------------------------------------
def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def event_data(uow, event: str, entity_id: str) -> dict[str, Any]:
    """The payload's `data`: the entity as the JSON API shows it (a stable, documented subset)."""
    if event.startswith("referral."):
        r = uow.referrals.get(entity_id)
        return {"id": r.id, "program_id": r.program_id, "advocate_id": r.advocate_id, "status": r.status.value,
                "source": r.source.value, "friend_name": r.friend_name, "friend_email": r.friend_email,
                "friend_company": r.friend_company, "captured_at": _iso(r.captured_at), "qualified_at": _iso(r.qualified_at),
                "crm": r.crm.to_dict()}
    w = uow.rewards.get(entity_id)
    return {"id": w.id, "referral_id": w.referral_id, "program_id": w.program_id, "advocate_id": w.advocate_id,
            "recipient": w.recipient.value, "rule_key": w.rule_key, "kind": w.kind.value, "amount": w.amount.to_dict(),
            "status": w.status.value, "decided_by": w.decided_by, "issued_at": _iso(w.issued_at),
            "payout_reference": w.payout_reference}


def fan_out(rt: Runtime, tenant_id: str, event: str, entity_id: str) -> list[str]:
    """Record one delivery per active endpoint subscribed to the event (once: repeats are ignored) and
    queue them. Returns the ids queued now."""
    if event not in WEBHOOK_EVENTS:
        return []
    now = rt.now()
    created: list[str] = []
    with rt.uow(tenant_id) as uow:
        endpoints = [e for e in uow.session.scalars(select(m.WebhookEndpointRow).where(
            m.WebhookEndpointRow.tenant_id == tenant_id, m.WebhookEndpointRow.active.is_(True))) if event in (e.events or [])]
        if not endpoints:
            return []
        try:
            data = event_data(uow, event, entity_id)
        except NotFound:
            log.warning("webhook %s: %s no longer exists", event, entity_id)
            return []
        for endpoint in endpoints:
            delivery_id = rt.new_id()
            payload = {"id": delivery_id, "event": event, "created_at": now.isoformat(), "tenant_id": tenant_id, "data": data}
            row = m.WebhookDeliveryRow(id=delivery_id, tenant_id=tenant_id, endpoint_id=endpoint.id, event=event,
                                       entity_id=entity_id, payload=payload, status="pending", attempts=0,
                                       next_attempt_at=now, created_at=now)
            try:
                with uow.session.begin_nested():
                    uow.session.add(row)
                created.append(delivery_id)
            except IntegrityError:
                pass  # this event already went (or is going) to this endpoint
        uow.commit()
    for delivery_id in created:
        rt.jobs.enqueue("deliver_webhook", tenant_id=tenant_id, delivery_id=delivery_id)
    return created


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str
    retry_in: float | None = None
    status_code: int | None = None


def deliver(rt: Runtime, tenant_id: str, delivery_id: str) -> DeliveryOutcome:
    """One attempt. Claimed with a conditional UPDATE and a lease, so two workers never both send it.
    Returns `delivered`, `retrying` (with `retry_in` seconds), `failed`, or the status it already had."""
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        claimed = uow.session.execute(update(m.WebhookDeliveryRow).where(
            m.WebhookDeliveryRow.id == delivery_id, m.WebhookDeliveryRow.tenant_id == tenant_id,
            or_(m.WebhookDeliveryRow.status.in_(["pending", "retrying"]),
                (m.WebhookDeliveryRow.status == "sending") & (m.WebhookDeliveryRow.next_attempt_at <= now)))
            .values(status="sending", attempts=m.WebhookDeliveryRow.attempts + 1, next_attempt_at=now + LEASE)).rowcount
        uow.commit()
        row = uow.session.get(m.WebhookDeliveryRow, delivery_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"webhook delivery {delivery_id} not found")
        if not claimed:
            return DeliveryOutcome(row.status)
        endpoint = uow.session.get(m.WebhookEndpointRow, row.endpoint_id)
        attempts, payload, event = row.attempts, row.payload, row.event
        url, sealed = endpoint.url, endpoint.secret
        active = endpoint.active
    if not active:
        result = outbound.HttpResult(None, "endpoint disabled")
        final = True
    else:
        secret = rt.vault.open(sealed)["secret"]
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {SIGNATURE_HEADER: sign(secret, body, int(now.timestamp())), "Refstage-Event": event,
                   "Refstage-Delivery": delivery_id, "Refstage-Attempt": str(attempts)}
        result = outbound.post_json(url, body, headers, allow_private=_private_targets_allowed(rt))
        final = not result.retryable
    if result.ok:
        status, retry_in = "delivered", None
    elif final or attempts >= MAX_ATTEMPTS:
        status, retry_in = "failed", None
    else:
        status, retry_in = "retrying", retry_delay(attempts)
    done = rt.now()
    with rt.uow(tenant_id) as uow:
        row = uow.session.get(m.WebhookDeliveryRow, delivery_id)
        row.status, row.last_status_code = status, result.status_code
        row.last_error = None if result.ok else outbound.sanitise_reason(result.error or "failed")
        row.delivered_at = done if result.ok else None
        row.next_attempt_at = done + dt.timedelta(seconds=retry_in) if retry_in is not None else None
        uow.commit()
    if status != "delivered":
        log.warning("webhook %s %s to %s: attempt %s %s (%s)", event, delivery_id, url, attempts, status, result.error)
    return DeliveryOutcome(status, retry_in, result.status_code)


def redeliver(rt: Runtime, tenant_id: str, delivery_id: str, actor: Actor) -> dict[str, Any]:
    """Send a failed (or delivered) event again, from the delivery log."""
    with rt.uow(tenant_id) as uow:
        row = uow.session.get(m.WebhookDeliveryRow, delivery_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"webhook delivery {delivery_id} not found")
        if row.status in ("pending", "retrying", "sending"):
            return _delivery_dict(row)
        row.status, row.attempts, row.next_attempt_at = "pending", 0, rt.now()
        uow.audit.append([AuditEntry(tenant_id, "webhook_delivery", row.id, "redeliver", actor, rt.now(), None, None)])
        uow.commit()
        out = _delivery_dict(row)
    rt.jobs.enqueue("deliver_webhook", tenant_id=tenant_id, delivery_id=delivery_id)
    return out


def due_deliveries(rt: Runtime, limit: int = 500) -> list[tuple[str, str]]:
    """(tenant_id, delivery_id) whose time has come and whose job may be lost: the periodic sweep."""
    now = rt.now()
    with rt.uow() as uow:
        return [tuple(r) for r in uow.session.execute(select(m.WebhookDeliveryRow.tenant_id, m.WebhookDeliveryRow.id).where(
            m.WebhookDeliveryRow.status.in_(["pending", "retrying", "sending"]),
            m.WebhookDeliveryRow.next_attempt_at <= now - dt.timedelta(minutes=1))
            .order_by(m.WebhookDeliveryRow.next_attempt_at).limit(limit))]


def _delivery_dict(r: m.WebhookDeliveryRow) -> dict[str, Any]:
    return {"id": r.id, "endpoint_id": r.endpoint_id, "event": r.event, "entity_id": r.entity_id, "status": r.status,
            "attempts": r.attempts, "last_status_code": r.last_status_code, "last_error": r.last_error,
            "next_attempt_at": r.next_attempt_at, "created_at": r.created_at, "delivered_at": r.delivered_at,
            "payload": r.payload}


def list_deliveries(rt: Runtime, tenant_id: str, *, endpoint_id: str | None = None, status: str | None = None,
                    event: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    with rt.uow(tenant_id) as uow:
        q = select(m.WebhookDeliveryRow).where(m.WebhookDeliveryRow.tenant_id == tenant_id)
        if endpoint_id:
            q = q.where(m.WebhookDeliveryRow.endpoint_id == endpoint_id)
        if status:
            q = q.where(m.WebhookDeliveryRow.status == status)
        if event:
            q = q.where(m.WebhookDeliveryRow.event == event)
        rows = uow.session.scalars(q.order_by(m.WebhookDeliveryRow.created_at.desc(), m.WebhookDeliveryRow.id).limit(limit).offset(offset))
        return [_delivery_dict(r) for r in rows]


def get_delivery(rt: Runtime, tenant_id: str, delivery_id: str) -> dict[str, Any]:
    with rt.uow(tenant_id) as uow:
        row = uow.session.get(m.WebhookDeliveryRow, delivery_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"webhook delivery {delivery_id} not found")
        return _delivery_dict(row)


def send_test_event(rt: Runtime, tenant_id: str, endpoint_id: str, actor: Actor) -> dict[str, Any]:
    """A `ping` delivery to check an endpoint; goes through the same log and retries."""
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        _endpoint_row(uow, tenant_id, endpoint_id)
        delivery_id = rt.new_id()
        row = m.WebhookDeliveryRow(id=delivery_id, tenant_id=tenant_id, endpoint_id=endpoint_id, event="ping",
                                   entity_id=delivery_id, payload={"id": delivery_id, "event": "ping", "created_at": now.isoformat(),
                                                                   "tenant_id": tenant_id, "data": {}},
                                   status="pending", attempts=0, next_attempt_at=now, created_at=now)
        uow.session.add(row)
        uow.commit()
        out = _delivery_dict(row)
    rt.jobs.enqueue("deliver_webhook", tenant_id=tenant_id, delivery_id=delivery_id)
    return out


# --- payouts ------------------------------------------------------------------------------------------------
class PayoutNotAllowed(DomainError):
    """The reward cannot be sent to the payout system (not approved, or no endpoint takes payouts)."""


@dataclass(frozen=True)
class PayoutRequest:
    """What `send_payout` did: `sent` is False when this reward had already been sent (nothing new went out)."""

    sent: bool
    requested_at: dt.datetime
    deliveries: list[dict[str, Any]]


def _payout_data(uow, reward_id: str) -> dict[str, Any]:
    reward = event_data(uow, PAYOUT_REQUESTED, reward_id)
    w = uow.rewards.get(reward_id)
    referral = event_data(uow, "referral.captured", w.referral_id)
    program = uow.programs.get(w.program_id)
    advocate = None
    if w.advocate_id:
        a = uow.advocates.get(w.advocate_id)
        advocate = {"id": a.id, "name": a.name, "email": a.email, "code": a.code, "crm_object": a.crm_object,
                    "crm_id": a.crm_id, "crm_contact_id": a.crm_contact_id, "crm_account_id": a.crm_account_id}
    if w.recipient.value == "advocate":
        payee = {"kind": "advocate", "name": advocate["name"] if advocate else None, "email": advocate["email"] if advocate else None}
    else:
        payee = {"kind": w.recipient.value, "name": referral["friend_name"], "email": referral["friend_email"]}
    return {"reward": reward, "referral": referral, "advocate": advocate, "payee": payee,
            "program": {"id": program.id, "name": program.name}}


def payout_requests(rt: Runtime, tenant_id: str, reward_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """reward id -> {"requested_at", "statuses"} for rewards already sent to the payout system."""
    ids = None if reward_ids is None else list(dict.fromkeys(reward_ids))
    if ids == []:
        return {}
    out: dict[str, dict[str, Any]] = {}
    with rt.uow(tenant_id) as uow:
        q = select(m.WebhookDeliveryRow).where(m.WebhookDeliveryRow.tenant_id == tenant_id,
                                               m.WebhookDeliveryRow.event == PAYOUT_REQUESTED)
        if ids is not None:
            q = q.where(m.WebhookDeliveryRow.entity_id.in_(ids))
        for row in uow.session.scalars(q.order_by(m.WebhookDeliveryRow.created_at, m.WebhookDeliveryRow.id)):
            entry = out.setdefault(row.entity_id, {"requested_at": row.created_at, "statuses": []})
            entry["statuses"].append(row.status)
    return out


def send_payout(rt: Runtime, tenant_id: str, reward_id: str, actor: Actor) -> PayoutRequest:
    """Ask the payout system to pay an approved reward: a signed `reward.payout_requested` webhook (the
    reward, its referral, the advocate, the payee and the program) to every active endpoint subscribed
    to it, through the delivery log (retries, redeliver). Once per reward: when it was already sent,
    nothing goes out again and `sent` is False (redeliver from the delivery log instead). The payout
    system confirms by marking the reward paid (`rewards.issue_reward`, the API's `/rewards/{id}/issue`)."""
    now = rt.now()
    created: list[str] = []
    with rt.uow(tenant_id) as uow:
        reward = uow.rewards.get(reward_id)  # NotFound for another tenant's reward
        existing = list(uow.session.scalars(select(m.WebhookDeliveryRow).where(
            m.WebhookDeliveryRow.tenant_id == tenant_id, m.WebhookDeliveryRow.event == PAYOUT_REQUESTED,
            m.WebhookDeliveryRow.entity_id == reward_id).order_by(m.WebhookDeliveryRow.created_at, m.WebhookDeliveryRow.id)))
        if existing:
            return PayoutRequest(False, existing[0].created_at, [_delivery_dict(r) for r in existing])
        if reward.status.value != "approved":
            raise PayoutNotAllowed(f"only approved rewards can be sent to the payout system (this one is {reward.status.value.replace('_', ' ')})")
        endpoints = [e for e in uow.session.scalars(select(m.WebhookEndpointRow).where(
            m.WebhookEndpointRow.tenant_id == tenant_id, m.WebhookEndpointRow.active.is_(True))
            .order_by(m.WebhookEndpointRow.created_at, m.WebhookEndpointRow.id)) if PAYOUT_REQUESTED in (e.events or [])]
        if not endpoints:
            raise PayoutNotAllowed(f"no active webhook endpoint is subscribed to {PAYOUT_REQUESTED}; add one first")
        data = _payout_data(uow, reward_id)
        rows = []
        for endpoint in endpoints:
            delivery_id = rt.new_id()
            payload = {"id": delivery_id, "event": PAYOUT_REQUESTED, "created_at": now.isoformat(), "tenant_id": tenant_id,
                       "data": data}
            row = m.WebhookDeliveryRow(id=delivery_id, tenant_id=tenant_id, endpoint_id=endpoint.id, event=PAYOUT_REQUESTED,
                                       entity_id=reward_id, payload=payload, status="pending", attempts=0,
                                       next_attempt_at=now, created_at=now)
            try:
                with uow.session.begin_nested():
                    uow.session.add(row)
                created.append(delivery_id)
                rows.append(row)
            except IntegrityError:
                pass  # a concurrent click got there first (unique on endpoint, event, reward)
        if not created:
            uow.rollback()
            existing = list(uow.session.scalars(select(m.WebhookDeliveryRow).where(
                m.WebhookDeliveryRow.tenant_id == tenant_id, m.WebhookDeliveryRow.event == PAYOUT_REQUESTED,
                m.WebhookDeliveryRow.entity_id == reward_id)))
            return PayoutRequest(False, min((r.created_at for r in existing), default=now), [_delivery_dict(r) for r in existing])
        uow.audit.append([AuditEntry(tenant_id, "reward", reward_id, "payout_requested", actor, now, None,
                                     {"deliveries": created, "endpoints": [e.id for e in endpoints],
                                      "amount": data["reward"]["amount"]})])
        uow.commit()
        out = [_delivery_dict(r) for r in rows]
    for delivery_id in created:
        rt.jobs.enqueue("deliver_webhook", tenant_id=tenant_id, delivery_id=delivery_id)
    log.info("payout requested for reward %s: %s deliveries", reward_id, len(created))
    return PayoutRequest(True, now, out)


__all__: Iterable[str] = ["WEBHOOK_EVENTS", "ENDPOINT_EVENTS", "PAYOUT_REQUESTED", "sign", "verify_signature", "create_endpoint",
                          "fan_out", "deliver", "send_payout", "payout_requests"]
