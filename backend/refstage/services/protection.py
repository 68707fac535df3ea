"""Protection for the public forms: rate limits shared by every web worker (counters in the database,
so they hold across gunicorn processes and machines) and the log of posts refused by the bot checks.

The counters are written through the form's precompiled write (`rt.form_write()`, the `FormWrite` port):
the same statement the referral form's own transaction counts with (services.intake)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import math
import random
import threading
from dataclasses import dataclass
from typing import Any

from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    scope: str
    limit: int
    window_seconds: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int
    count: int
    limit: Limit


def client_fingerprint(rt: Runtime, value: str) -> str:
    """A keyed hash of an IP address or an email: counters and logs never hold the address itself."""
    return hmac.new(rt.settings.secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def hit(rt: Runtime, limit: Limit, subject: str) -> Decision:
    """Count one request of `subject` in the current fixed window, in its own transaction; atomic
    (INSERT … ON CONFLICT DO UPDATE)."""
    now = rt.now()
    hits = [(limit, subject)]
    keys = counters(rt, hits, now)
    with rt.form_write() as tx:
        totals = tx.bump_counters(to_add(keys))
    [decision] = decide(hits, keys, totals, now)
    maybe_tidy(rt, decision.count == 1, now)
    return decision


def counters(rt: Runtime, hits: list[tuple[Limit, str]], now: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """The fixed-window counter (key, expires_at) each (limit, subject) counts on; subjects stored hashed."""
    out = []
    for limit, subject in hits:
        window = int(now.timestamp() // limit.window_seconds)
        out.append((f"{limit.scope}:{client_fingerprint(rt, subject)}:{window}",
                     dt.datetime.fromtimestamp((window + 1) * limit.window_seconds, dt.timezone.utc)))
    return out


def decide(hits: list[tuple[Limit, str]], keys: list[tuple[str, dt.datetime]], totals: dict[str, int],
           now: dt.datetime) -> list[Decision]:
    """Decisions for hits whose counters were just raised to `totals` (by the number of hits on each):
    each hit gets the decision it would have got had they been counted one after the other, in order."""
    seen = {key: totals[key] - n for key, n, _ in to_add(keys)}
    decisions = []
    for (limit, _), (key, expires) in zip(hits, keys):
        seen[key] += 1
        decisions.append(Decision(seen[key] <= limit.limit, max(1, math.ceil((expires - now).total_seconds())), seen[key], limit))
    return decisions


def to_add(keys: list[tuple[str, dt.datetime]]) -> list[tuple[str, int, dt.datetime]]:
    """(key, how many hits, expires_at) per distinct counter, for one statement each."""
    added: dict[str, list] = {}
    for key, expires in keys:
        added.setdefault(key, [0, expires])[0] += 1
    return [(key, n, expires) for key, (n, expires) in added.items()]


def maybe_tidy(rt: Runtime, new_window: bool, now: dt.datetime) -> None:
    """Now and then, when a counter's window began, drop expired counters (its own small transaction)."""
    if new_window and random.random() < 0.02:
        with rt.form_write() as tx:
            tx.drop_expired_counters(now)


def worst(decisions: list[Decision]) -> Decision | None:
    """The refusing decision with the longest wait (logged), or None when all allow."""
    refused = [d for d in decisions if not d.allowed]
    if not refused:
        return None
    decision = max(refused, key=lambda d: d.retry_after)
    log.warning("rate limit %s reached (%s/%s)", decision.limit.scope, decision.count, decision.limit.limit)
    return decision


class LocalCounter:
    """A per-process fixed-window counter for page views: no database write on the hottest path. Each web
    process counts on its own, so the effective limit is the limit times the number of processes — fine
    for views (anti-scraping); the form posts keep the shared counters above."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._window: dict[str, int] = {}
        self._lock = threading.Lock()

    def hit(self, rt: Runtime, limit: Limit, subject: str) -> Decision:
        now = rt.now()
        window = int(now.timestamp() // limit.window_seconds)
        key = f"{limit.scope}:{subject}"
        with self._lock:
            if self._window.get(key) != window:
                if len(self._counts) > 100_000:  # bounded memory under a flood of distinct addresses
                    self._counts.clear()
                    self._window.clear()
                self._window[key], self._counts[key] = window, 0
            self._counts[key] += 1
            count = self._counts[key]
        expires = (window + 1) * limit.window_seconds
        return Decision(count <= limit.limit, max(1, math.ceil(expires - now.timestamp())), count, limit)


def check_local(rt: Runtime, counter: LocalCounter, limit: Limit, subject: str | None) -> Decision | None:
    if not subject:
        return None
    decision = counter.hit(rt, limit, subject)
    return None if decision.allowed else decision


def check(rt: Runtime, pairs: list[tuple[Limit, str]]) -> Decision | None:
    """Count every (limit, subject); return the refusing decision with the longest wait, or None."""
    return worst([hit(rt, lim, subject) for lim, subject in pairs if subject])


def record_rejected_submission(rt: Runtime, *, form: str, reason: str, client: str | None, code: str | None = None,
                               tenant_id: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """A post the bot checks refused: logged and kept for review; no referral or advocate is created."""
    with rt.uow() as uow:
        uow.rejected_submissions.add(tenant_id=tenant_id, form=form, code=(code or None) and code[:32], reason=reason,
                                     client=client_fingerprint(rt, client) if client else None, detail=detail or {},
                                     at=rt.now())
        uow.commit()
    log.warning("public %s form: submission rejected (%s) for code %s", form, reason, code or "-",
                extra={"form": form, "reason": reason, "code": code})


def rejected_submissions(rt: Runtime, tenant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The refused posts, newest first: every tenant's (the operator's view) or one tenant's."""
    with rt.uow(readonly=True) as uow:
        return uow.rejected_submissions.recent(tenant_id, limit)
