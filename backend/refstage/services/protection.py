"""Protection for the public forms: rate limits shared by every web worker (counters in the database,
so they hold across gunicorn processes and machines) and the log of posts refused by the bot checks."""

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

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from refstage.adapters.db import models as m
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
    """Count one request of `subject` in the current fixed window; atomic (INSERT … ON CONFLICT DO UPDATE)."""
    now = rt.now()
    window = int(now.timestamp() // limit.window_seconds)
    key = f"{limit.scope}:{client_fingerprint(rt, subject)}:{window}"
    expires = dt.datetime.fromtimestamp((window + 1) * limit.window_seconds, dt.timezone.utc)
    with rt.session_factory() as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(m.RateLimitRow).values(key=key, count=1, expires_at=expires)
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"count": m.RateLimitRow.count + 1})
        count = int(session.execute(stmt.returning(m.RateLimitRow.count)).scalar_one())
        if count == 1 and random.random() < 0.02:
            session.execute(delete(m.RateLimitRow).where(m.RateLimitRow.expires_at < now))
        session.commit()
    retry_after = max(1, math.ceil((expires - now).total_seconds()))
    return Decision(count <= limit.limit, retry_after, count, limit)


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
    refused = [d for d in (hit(rt, lim, subject) for lim, subject in pairs if subject) if not d.allowed]
    if not refused:
        return None
    worst = max(refused, key=lambda d: d.retry_after)
    log.warning("rate limit %s reached (%s/%s)", worst.limit.scope, worst.count, worst.limit.limit)
    return worst


def record_rejected_submission(rt: Runtime, *, form: str, reason: str, client: str | None, code: str | None = None,
                               tenant_id: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """A post the bot checks refused: logged and kept for review; no referral or advocate is created."""
    with rt.session_factory() as session:
        session.add(m.RejectedSubmissionRow(tenant_id=tenant_id, form=form, code=(code or None) and code[:32], reason=reason,
                                            client=client_fingerprint(rt, client) if client else None,
                                            detail=detail or {}, at=rt.now()))
        session.commit()
    log.warning("public %s form: submission rejected (%s) for code %s", form, reason, code or "-",
                extra={"form": form, "reason": reason, "code": code})


def rejected_submissions(rt: Runtime, tenant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    from sqlalchemy import select

    with rt.session_factory() as session:
        q = select(m.RejectedSubmissionRow)
        if tenant_id is not None:
            q = q.where(m.RejectedSubmissionRow.tenant_id == tenant_id)
        rows = session.scalars(q.order_by(m.RejectedSubmissionRow.id.desc()).limit(limit))
        return [{"id": r.id, "tenant_id": r.tenant_id, "form": r.form, "code": r.code, "reason": r.reason,
                 "detail": r.detail, "at": r.at} for r in rows]
