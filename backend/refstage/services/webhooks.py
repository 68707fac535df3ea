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

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.errors import DomainError, InvalidInput, NotFound
from refstage.services.ports import TargetRefused, UnitOfWork
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
                rt.outbound.check_webhook_url(url, allow_private=_private_targets_allowed(rt))
            except TargetRefused as exc:
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
        endpoint = uow.webhook_endpoints.add(rt.new_id(), url=clean["url"], description=clean.get("description", ""),
                                             sealed_secret=rt.vault.seal({"secret": secret}), events=clean["events"], now=now)
        uow.audit.append([AuditEntry(tenant_id, "webhook_endpoint", endpoint["id"], "created", actor, now, None,
                                     {"url": endpoint["url"], "events": endpoint["events"]})])
        uow.commit()
    return endpoint, secret


def list_endpoints(rt: Runtime, tenant_id: str) -> list[dict[str, Any]]:
    with rt.uow(tenant_id) as uow:
        return uow.webhook_endpoints.list()


def get_endpoint(rt: Runtime, tenant_id: str, endpoint_id: str) -> dict[str, Any]:
    with rt.uow(tenant_id) as uow:
        return uow.webhook_endpoints.get(endpoint_id)


def update_endpoint(rt: Runtime, tenant_id: str, endpoint_id: str, data: dict[str, Any], actor: Actor) -> dict[str, Any]:
    clean = _validate(rt, data.get("url"), data.get("events"), data.get("description"))
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise InvalidInput({"active": ["true or false"]})
        clean["active"] = data["active"]
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        current = uow.webhook_endpoints.get(endpoint_id)
        before = {k: current[k] for k in clean}
        endpoint = uow.webhook_endpoints.update(endpoint_id, clean, now)
        uow.audit.append([AuditEntry(tenant_id, "webhook_endpoint", endpoint_id, "updated", actor, now, before, dict(clean))])
        uow.commit()
    return endpoint


def rotate_secret(rt: Runtime, tenant_id: str, endpoint_id: str, actor: Actor) -> str:
    secret = _new_secret()
    with rt.uow(tenant_id) as uow:
        uow.webhook_endpoints.set_secret(endpoint_id, rt.vault.seal({"secret": secret}), rt.now())
        uow.audit.append([AuditEntry(tenant_id, "webhook_endpoint", endpoint_id, "secret_rotated", actor, rt.now(), None, None)])
        uow.commit()
    return secret


def delete_endpoint(rt: Runtime, tenant_id: str, endpoint_id: str, actor: Actor) -> None:
    with rt.uow(tenant_id) as uow:
        removed = uow.webhook_endpoints.remove(endpoint_id)
        uow.audit.append([AuditEntry(tenant_id, "webhook_endpoint", endpoint_id, "deleted", actor, rt.now(),
                                     {"url": removed["url"]}, None)])
        uow.commit()


# --- events -----------------------------------------------------------------------------------------------
def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def event_data(uow: UnitOfWork, event: str, entity_id: str) -> dict[str, Any]:
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
    with rt.uow(tenant_id) as uow:
        endpoints = _subscribed(uow, event)
        if not endpoints:
            return []
        try:
            data = event_data(uow, event, entity_id)
        except NotFound:
            log.warning("webhook %s: %s no longer exists", event, entity_id)
            return []
        # None where this event already went (or is going) to the endpoint.
        created = [d["id"] for d in _add_deliveries(rt, uow, endpoints, event, entity_id, data, now) if d]
        uow.commit()
    _queue(rt, tenant_id, created)
    return created


def _subscribed(uow: UnitOfWork, event: str) -> list[dict[str, Any]]:
    """The tenant's active endpoints that take this event, oldest first."""
    return [e for e in uow.webhook_endpoints.list(active_only=True) if event in e["events"]]


def _add_deliveries(rt: Runtime, uow: UnitOfWork, endpoints: list[dict[str, Any]], event: str, entity_id: str,
                    data: dict[str, Any], now: dt.datetime) -> list[dict[str, Any] | None]:
    """One pending delivery of the event per endpoint; None for an endpoint that already has it."""
    out = []
    for endpoint in endpoints:
        delivery_id = rt.new_id()
        out.append(uow.webhook_deliveries.add_once(delivery_id, endpoint_id=endpoint["id"], event=event, entity_id=entity_id,
                                                   payload=_payload(uow, delivery_id, event, data, now), now=now))
    return out


def _payload(uow: UnitOfWork, delivery_id: str, event: str, data: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    return {"id": delivery_id, "event": event, "created_at": now.isoformat(), "tenant_id": uow.tenant_id, "data": data}


def _queue(rt: Runtime, tenant_id: str, delivery_ids: Iterable[str]) -> None:
    for delivery_id in delivery_ids:
        rt.jobs.enqueue("deliver_webhook", tenant_id=tenant_id, delivery_id=delivery_id)


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
        claimed = uow.webhook_deliveries.claim(delivery_id, now, now + LEASE)
        uow.commit()
        delivery = uow.webhook_deliveries.get(delivery_id)
        if not claimed:
            return DeliveryOutcome(delivery["status"])
        endpoint = uow.webhook_endpoints.get(delivery["endpoint_id"])
        attempts, payload, event = delivery["attempts"], delivery["payload"], delivery["event"]
        url, sealed = endpoint["url"], uow.webhook_endpoints.sealed_secret(endpoint["id"])
        active = endpoint["active"]
    if not active:
        result = rt.outbound.HttpResult(None, "endpoint disabled")
        final = True
    else:
        secret = rt.vault.open(sealed)["secret"]
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {SIGNATURE_HEADER: sign(secret, body, int(now.timestamp())), "Refstage-Event": event,
                   "Refstage-Delivery": delivery_id, "Refstage-Attempt": str(attempts)}
        result = rt.outbound.post_json(url, body, headers, allow_private=_private_targets_allowed(rt))
        final = not result.retryable
    if result.ok:
        status, retry_in = "delivered", None
    elif final or attempts >= MAX_ATTEMPTS:
        status, retry_in = "failed", None
    else:
        status, retry_in = "retrying", retry_delay(attempts)
    done = rt.now()
    with rt.uow(tenant_id) as uow:
        uow.webhook_deliveries.finish(
            delivery_id, status=status, status_code=result.status_code,
            error=None if result.ok else rt.outbound.sanitise_reason(result.error or "failed"),
            delivered_at=done if result.ok else None,
            next_attempt_at=done + dt.timedelta(seconds=retry_in) if retry_in is not None else None)
        uow.commit()
    if status != "delivered":
        log.warning("webhook %s %s to %s: attempt %s %s (%s)", event, delivery_id, url, attempts, status, result.error)
    return DeliveryOutcome(status, retry_in, result.status_code)


def redeliver(rt: Runtime, tenant_id: str, delivery_id: str, actor: Actor) -> dict[str, Any]:
    """Send a failed (or delivered) event again, from the delivery log."""
    with rt.uow(tenant_id) as uow:
        delivery = uow.webhook_deliveries.get(delivery_id)
        if delivery["status"] in ("pending", "retrying", "sending"):
            return delivery
        out = uow.webhook_deliveries.requeue(delivery_id, rt.now())
        uow.audit.append([AuditEntry(tenant_id, "webhook_delivery", delivery_id, "redeliver", actor, rt.now(), None, None)])
        uow.commit()
    _queue(rt, tenant_id, [delivery_id])
    return out


def due_deliveries(rt: Runtime, limit: int = 500) -> list[tuple[str, str]]:
    """(tenant_id, delivery_id) whose time has come and whose job may be lost: the periodic sweep."""
    with rt.uow() as uow:
        return uow.directory.webhooks_due(rt.now() - dt.timedelta(minutes=1), limit)


def list_deliveries(rt: Runtime, tenant_id: str, *, endpoint_id: str | None = None, status: str | None = None,
                    event: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    with rt.uow(tenant_id) as uow:
        return uow.webhook_deliveries.list(endpoint_id=endpoint_id, status=status, event=event, limit=limit, offset=offset)


def get_delivery(rt: Runtime, tenant_id: str, delivery_id: str) -> dict[str, Any]:
    with rt.uow(tenant_id) as uow:
        return uow.webhook_deliveries.get(delivery_id)


def send_test_event(rt: Runtime, tenant_id: str, endpoint_id: str, actor: Actor) -> dict[str, Any]:
    """A `ping` delivery to check an endpoint; goes through the same log and retries."""
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        uow.webhook_endpoints.get(endpoint_id)
        delivery_id = rt.new_id()
        # A ping is its own entity (the delivery's id), so it is never already there.
        out = uow.webhook_deliveries.add_once(delivery_id, endpoint_id=endpoint_id, event="ping", entity_id=delivery_id,
                                              payload=_payload(uow, delivery_id, "ping", {}, now), now=now)
        uow.commit()
    _queue(rt, tenant_id, [delivery_id])
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


def _payout_data(uow: UnitOfWork, reward_id: str) -> dict[str, Any]:
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
        for delivery in uow.webhook_deliveries.for_entities(PAYOUT_REQUESTED, ids):
            entry = out.setdefault(delivery["entity_id"], {"requested_at": delivery["created_at"], "statuses": []})
            entry["statuses"].append(delivery["status"])
    return out


def send_payout(rt: Runtime, tenant_id: str, reward_id: str, actor: Actor) -> PayoutRequest:
    """Ask the payout system to pay an approved reward: a signed `reward.payout_requested` webhook (the
    reward, its referral, the advocate, the payee and the program) to every active endpoint subscribed
    to it, through the delivery log (retries, redeliver). Once per reward: when it was already sent,
    nothing goes out again and `sent` is False (redeliver from the delivery log instead). The payout
    system confirms by marking the reward paid (`rewards.issue_reward`, the API's `/rewards/{id}/issue`)."""
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        reward = uow.rewards.get(reward_id)  # NotFound for another tenant's reward
        existing = uow.webhook_deliveries.for_entities(PAYOUT_REQUESTED, [reward_id])
        if existing:
            return PayoutRequest(False, existing[0]["created_at"], existing)
        if reward.status.value != "approved":
            raise PayoutNotAllowed(f"only approved rewards can be sent to the payout system (this one is {reward.status.value.replace('_', ' ')})")
        endpoints = _subscribed(uow, PAYOUT_REQUESTED)
        if not endpoints:
            raise PayoutNotAllowed(f"no active webhook endpoint is subscribed to {PAYOUT_REQUESTED}; add one first")
        data = _payout_data(uow, reward_id)
        # None where a concurrent click got there first (unique on endpoint, event, reward).
        out = [d for d in _add_deliveries(rt, uow, endpoints, PAYOUT_REQUESTED, reward_id, data, now) if d]
        created = [d["id"] for d in out]
        if not created:
            uow.rollback()
            existing = uow.webhook_deliveries.for_entities(PAYOUT_REQUESTED, [reward_id])
            return PayoutRequest(False, min((d["created_at"] for d in existing), default=now), existing)
        uow.audit.append([AuditEntry(tenant_id, "reward", reward_id, "payout_requested", actor, now, None,
                                     {"deliveries": created, "endpoints": [e["id"] for e in endpoints],
                                      "amount": data["reward"]["amount"]})])
        uow.commit()
    _queue(rt, tenant_id, created)
    log.info("payout requested for reward %s: %s deliveries", reward_id, len(created))
    return PayoutRequest(True, now, out)


__all__: Iterable[str] = ["WEBHOOK_EVENTS", "ENDPOINT_EVENTS", "PAYOUT_REQUESTED", "sign", "verify_signature", "create_endpoint",
                          "fan_out", "deliver", "send_payout", "payout_requests"]
