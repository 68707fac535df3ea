"""Intake of the public referral form. A request validates, then counts the shared rate limits and
stores the submission in ONE transaction, and is answered. The `capture_intake` job drains stored
submissions into referrals through `referrals.capture_referral`, the one capture path (self-referral
and velocity flags, duplicates, routing and notifications).

- Durable: a 303 is sent only after the commit; a lost job is found by the sweep (`pending`).
- Idempotent: the same post sent twice is one row (the id is a digest of the form's one-time token and
  the address) and one referral (the referral's idempotency key is the intake id).
- Cheap: in a web process, posts arriving together share one commit (`IntakeWriter`), and the drain
  job is scheduled at most once per KICK_DELAY per process instead of once per post.
See docs/decisions/2026-11-22-public-pages-load.md."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from refstage.domain.errors import InvalidInput
from refstage.domain.referrals import ReferralSource
from refstage.services import protection, referrals
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)

KEEP_PROCESSED = dt.timedelta(days=7)  # then deleted: the referral holds the data from then on
SWEEP_AFTER = dt.timedelta(seconds=60)  # a submission still pending this long lost its job
KICK_DELAY = 0.5  # seconds: the drain runs this long after the first of a burst of posts
KICK_MARGIN = 0.2  # seconds of clock difference tolerated between web and worker machines


@dataclass(frozen=True)
class Submission:
    tenant_id: str
    program_id: str
    advocate_id: str
    code: str
    friend: dict[str, Any]  # the output of referrals.validate_friend
    consent_version: str
    token: str  # the form's signed anti-forgery token: one per page view
    client: str | None = None  # the poster's IP; stored hashed


def intake_id(rt: Runtime, token: str, email: str) -> str:
    """The same form (token) sent again for the same address is the same submission."""
    digest = hmac.new(rt.settings.secret_key.encode(), f"intake|{token}|{email.strip().lower()}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


class _Slot:
    """One post waiting in the group commit."""

    __slots__ = ("sub", "limits", "at", "refused", "error", "written", "leads", "done")

    def __init__(self, sub: Submission, limits: list[tuple[protection.Limit, str]], at: dt.datetime):
        self.sub, self.limits, self.at = sub, [(lim, subject) for lim, subject in limits if subject], at
        self.refused: protection.Decision | None = None
        self.error: BaseException | None = None
        self.written = self.leads = False
        self.done = threading.Event()


def _store(rt: Runtime, slots: list[_Slot]) -> int:
    """One transaction for a batch of posts: count their rate limits in order and store the accepted ones.
    A refused post keeps its counts and stores nothing. Returns how many were accepted."""
    now = rt.now()
    hits = [hit for slot in slots for hit in slot.limits]
    keys = protection.counters(rt, hits, now)
    added = protection.to_add(keys)
    accepted: list[_Slot] = []
    with rt.form_write() as tx:
        totals = tx.bump_counters(added)
        decisions = iter(protection.decide(hits, keys, totals, now))
        for slot in slots:
            slot.refused = protection.worst([next(decisions) for _ in slot.limits])
            if slot.refused is None:
                accepted.append(slot)
        tx.insert_intake([{
            "id": intake_id(rt, slot.sub.token, slot.sub.friend["email"]), "tenant_id": slot.sub.tenant_id,
            "program_id": slot.sub.program_id, "advocate_id": slot.sub.advocate_id, "code": slot.sub.code,
            "friend": slot.sub.friend, "consent_version": slot.sub.consent_version,
            "client": protection.client_fingerprint(rt, slot.sub.client) if slot.sub.client else None,
            "received_at": slot.at} for slot in accepted])
    protection.maybe_tidy(rt, any(totals[key] == n for key, n, _ in added), now)
    return len(accepted)


class IntakeWriter:
    """The web process's way in (one per app). Group commit, leader/follower: a post that finds no write
    in progress writes at once, together with everything that queued meanwhile; a post that finds one
    waits for the next. Each request is answered only after the commit that holds its submission."""

    WAIT_SECONDS = 60.0

    def __init__(self, rt: Runtime, kick_delay: float = KICK_DELAY):
        self.rt = rt
        self.kick_delay = kick_delay
        self._lock = threading.Lock()
        self._waiting: list[_Slot] = []
        self._writing = False
        self._drain_at = 0.0  # wall-clock time the drain this process last scheduled will start
        self._pid = os.getpid()

    def submit(self, sub: Submission, limits: list[tuple[protection.Limit, str]]) -> protection.Decision | None:
        """Count `limits` and store `sub`; the refusing decision (429: nothing stored) or None once committed."""
        slot = _Slot(sub, limits, self.rt.now())
        with self._lock:
            if self._pid != os.getpid():  # forked after use: the parent's waiters are not ours
                self._waiting, self._writing, self._pid = [], False, os.getpid()
            self._waiting.append(slot)
            slot.leads, self._writing = not self._writing, True
        if not slot.leads and not slot.done.wait(self.WAIT_SECONDS):
            with self._lock:
                if not slot.leads and slot in self._waiting:  # never picked up: give up, nothing stored
                    self._waiting.remove(slot)
                    raise TimeoutError("no answer from the intake writer")
            slot.done.wait()  # picked up meanwhile: being written, or handed the lead
        if slot.leads and not slot.written:
            self._write_batch()
        if slot.error is not None:
            raise slot.error
        return slot.refused

    def _write_batch(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        accepted = 0
        try:
            accepted = _store(self.rt, batch)
        except BaseException as exc:  # noqa: BLE001 - each waiting request gets the error; nothing was stored
            for slot in batch:
                slot.error = exc
        with self._lock:
            successor = self._waiting[0] if self._waiting else None
            if successor is None:
                self._writing = False
            else:
                successor.leads = True  # it writes the next round, with whatever queued meanwhile
            kick = accepted > 0 and time.time() >= self._drain_at - KICK_MARGIN
            if kick:
                self._drain_at = time.time() + self.kick_delay
        for slot in batch:
            slot.written = True
            slot.done.set()
        if successor is not None:
            successor.done.set()
        if kick:
            schedule_drain(self.rt, self.kick_delay)


def schedule_drain(rt: Runtime, delay: float = 0.0) -> None:
    """Queue the `capture_intake` drain. A drain already scheduled to start after a commit will see that
    commit's rows, so the writer skips scheduling another until then. A lost one is found by the sweep."""
    try:
        rt.jobs.schedule("capture_intake", delay)
    except Exception:  # noqa: BLE001 - the submissions are committed; the sweep queues the drain again
        log.exception("could not queue the intake drain; the sweep will")


def drain(rt: Runtime, max_rows: int | None = None, batch: int = 200) -> dict[str, int]:
    """Capture waiting submissions, oldest first, until none is left or `max_rows` were done (the job then
    queues another, so one drain never holds the drainers' lock for long). Stops at the first failure,
    which is raised for the job to retry."""
    counts: dict[str, int] = {}
    done = 0
    while max_rows is None or done < max_rows:
        items = pending(rt, dt.timedelta(0), limit=batch if max_rows is None else min(batch, max_rows - done))
        if not items:
            break
        for outcome, n in process_many(rt, items).items():
            counts[outcome] = counts.get(outcome, 0) + n
        done += len(items)
    return counts


def process(rt: Runtime, tenant_id: str, intake_id: str) -> str:
    """Turn one stored submission into a referral: 'captured', 'refused' (program paused, advocate
    deactivated or code gone since the page was shown), or 'missing'. Safe to run any number of times."""
    found = status(rt, intake_id)
    if found is None or found["tenant_id"] != tenant_id:
        return "missing"
    if found["state"] != "pending":
        return found["state"]
    f = found["friend"]
    friend = referrals.FriendInput(f["name"], f["email"], f.get("company"), f.get("phone"), True)
    referral_id, reason = None, None
    try:
        referral = referrals.capture_referral(rt, found["code"], friend, source=ReferralSource.LINK, tenant_id=tenant_id,
                                              idempotency_key=f"intake:{intake_id}", received_at=found["received_at"],
                                              consent_version=found["consent_version"])
        referral_id = referral.id
    except referrals.ReferralNotAccepted as exc:
        reason = str(exc)
    except InvalidInput as exc:  # validated before storing; only a change of the rules lands here
        reason = f"invalid: {exc.errors}"
    with rt.uow(tenant_id) as uow:
        uow.intake.mark_processed(intake_id, rt.now(), referral_id, reason)
        uow.commit()
    if reason:
        log.warning("intake %s not captured: %s", intake_id, reason, extra={"tenant_id": tenant_id})
    return "captured" if referral_id else "refused"


def process_many(rt: Runtime, items: list[list[str]] | list[tuple[str, str]]) -> dict[str, int]:
    """`process` for each (tenant, intake id); every one is tried, then the first failure is raised (retry)."""
    counts: dict[str, int] = {}
    failed: Exception | None = None
    for tenant_id, row_id in items:
        try:
            outcome = process(rt, tenant_id, row_id)
        except Exception as exc:  # noqa: BLE001 - the others still go; the job is retried for this one
            log.exception("capture of intake %s failed", row_id)
            failed = failed or exc
            continue
        counts[outcome] = counts.get(outcome, 0) + 1
    if failed is not None:
        raise failed
    return counts


def pending(rt: Runtime, older_than: dt.timedelta = SWEEP_AFTER, limit: int = 500) -> list[tuple[str, str]]:
    """(tenant, intake id) of submissions still waiting after `older_than`: their job was lost."""
    with rt.uow(readonly=True) as uow:
        return uow.intake_backlog.waiting(rt.now() - older_than, limit)


def prune(rt: Runtime, keep: dt.timedelta = KEEP_PROCESSED) -> int:
    """Delete processed submissions after `keep`: the friend's details then live only on the referral."""
    with rt.uow() as uow:
        deleted = uow.intake_backlog.prune(rt.now() - keep)
        uow.commit()
    return deleted


def status(rt: Runtime, intake_id: str) -> dict[str, Any] | None:
    """One submission's state, for support and tests."""
    with rt.uow(readonly=True) as uow:
        found = uow.intake_backlog.get(intake_id)
    if found is None:
        return None
    found["state"] = "pending" if found["processed_at"] is None else ("captured" if found["referral_id"] else "refused")
    return found


