"""observe_crm_changes: the one path from a CRM change (pushed or polled) to referrals and rewards."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Sequence

from refstage.domain import qualification
from refstage.domain.audit import Actor
from refstage.domain.money import Money
from refstage.domain.programs import Program
from refstage.domain.referrals import CrmRefs, Referral, ReferralStatus
from refstage.domain.rewards import AdvocateHistory, Reward, RewardRule, RewardStatus, period_start
from refstage.services.ports import ChangedRecord, MirrorBatch, RecordState, StorageConflict
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)

# Which referral column a record of each CRM object links through.
LINK_FIELD = {
    "Lead": "lead_id",
    "Contact": "contact_id",
    "Account": "account_id",
    "Opportunity": "opportunity_id",
    "Person": "person_id",
    "Deal": "deal_id",
}
# Lead conversion: follow the lookups Salesforce sets, so attribution survives conversion.
CONVERSION_FIELDS = {"ConvertedOpportunityId": "opportunity_id", "ConvertedAccountId": "account_id", "ConvertedContactId": "contact_id"}
CHUNK = 5000
_NO_HISTORY = AdvocateHistory(qualified_count=1)  # frozen: shared by every rule that reads no history
MAX_RETRIES = 5


@dataclass
class ObserveStats:
    records: int = 0
    stale: int = 0
    referrals_touched: int = 0
    qualified: int = 0
    disqualified: int = 0
    rewards_created: int = 0
    rewards_changed: int = 0
    errors: list[str] = field(default_factory=list)
    # Records referrals point at whose state we have never seen (say, the deal of a lead just converted).
    unseen: dict[str, set[str]] = field(default_factory=dict)

    def add(self, other: "ObserveStats") -> None:
        for name in ("records", "stale", "referrals_touched", "qualified", "disqualified", "rewards_created", "rewards_changed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)
        for obj, ids in other.unseen.items():
            self.unseen.setdefault(obj, set()).update(ids)


@dataclass
class QueuedMirror:
    """What one observed chunk queued for write-back, as the write-back would read it back (its referrals with
    advocate and program, its rewards, their records' states), and the queue rows it wrote for them."""
    batch: MirrorBatch
    rows: dict[tuple[str, str], int]  # {(entity type, entity id): queue row id}


class MirrorFeed:
    """Collects each committed chunk's QueuedMirror, so the sync that observed them can mirror them straight away
    instead of reading back hundreds of thousands of rows it has just written. Taken chunk by chunk: memory holds
    what the latest changes queued, not the whole sync."""

    def __init__(self) -> None:
        self._ready: list[QueuedMirror] = []

    def add(self, queued: QueuedMirror) -> None:
        self._ready.append(queued)

    def take(self) -> list[QueuedMirror]:
        ready, self._ready = self._ready, []
        return ready


def observe_crm_changes(rt: Runtime, tenant_id: str, connection_id: str, records: Sequence[ChangedRecord],
                        actor: Actor | None = None, feed: MirrorFeed | None = None) -> ObserveStats:
    """Apply CRM record states in order of modification; the same state applied twice changes nothing. With a
    `feed`, what each chunk queued for write-back is handed to it too, once the chunk is committed."""
    actor = actor or Actor.sync(connection_id)
    total = ObserveStats()
    ordered = sorted(records, key=lambda r: (r.modified_at or dt.datetime.min.replace(tzinfo=dt.timezone.utc), r.id))
    # Leads first, in chunks of their own: a conversion links its opportunity, account and contact
    # before records of those objects are matched to referrals.
    leads = [r for r in ordered if r.object == "Lead"]
    others = [r for r in ordered if r.object != "Lead"]
    for group in (leads, others):
        for start in range(0, len(group), CHUNK):
            chunk = group[start:start + CHUNK]
            for attempt in range(MAX_RETRIES):
                try:
                    total.add(_observe_chunk(rt, tenant_id, connection_id, chunk, actor, feed))
                    break
                except StorageConflict as exc:
                    # Another worker stored the same record or moved the same referral meanwhile:
                    # re-read and apply again; the second pass sees their work and adds nothing twice.
                    log.info("concurrent update while observing changes (%s); retrying chunk (attempt %s)",
                             type(exc).__name__, attempt + 1)
                    if attempt == MAX_RETRIES - 1:
                        raise  # the caller's checkpoint does not move: these changes are read again

    return total


def _store_records(uow, connection_id: str, records: Sequence[ChangedRecord], now: dt.datetime):
    """Keep the newest state per record. Returns (records that were news, the record states)."""
    wanted: dict[str, set[str]] = {}
    for r in records:
        wanted.setdefault(r.object, set()).add(r.id)
    states = uow.crm_records.load(connection_id, wanted)
    fresh: list[ChangedRecord] = []
    for rec in records:
        state = states.get((rec.object, rec.id))
        if state is not None and state.modified_at is not None and rec.modified_at is not None:
            if rec.modified_at < state.modified_at:
                continue  # an older state arriving late (out-of-order delivery): the newer one stands
            if rec.modified_at == state.modified_at and rec.deleted == state.deleted and all(
                    state.fields.get(k) == v for k, v in rec.fields.items()):
                continue  # exact replay
        if state is None:
            state = RecordState(None, rec.object, rec.id, {}, None, False)
            states[(rec.object, rec.id)] = state
        state.fields = {**state.fields, **rec.fields}
        state.modified_at = rec.modified_at or state.modified_at
        state.deleted = rec.deleted
        state.dirty = True
        fresh.append(rec)
    uow.crm_records.write(connection_id, [s for s in states.values() if s.dirty], now)
    return fresh, states


class _RecordCache:
    """Latest CRM record states for a chunk's referrals, loaded with one query per object."""

    def __init__(self, uow, connection_id: str, states: dict):
        self.uow, self.connection_id = uow, connection_id
        self.rows = dict(states)

    def load(self, wanted: dict[str, set[str]]) -> None:
        missing = {obj: [i for i in ids if (obj, i) not in self.rows] for obj, ids in wanted.items()}
        self.rows.update(self.uow.crm_records.load(self.connection_id, {k: v for k, v in missing.items() if v}))

    def get(self, obj: str, crm_id: str | None):
        return self.rows.get((obj, crm_id)) if crm_id else None

    def snapshot(self, referral: Referral) -> dict[str, dict[str, Any]]:
        snapshot: dict[str, dict[str, Any]] = {}
        for obj, col in LINK_FIELD.items():
            state = self.get(obj, getattr(referral.crm, col))
            if state is not None and not state.deleted:
                snapshot[obj] = dict(state.fields)
        return snapshot


def linked_records(referrals: Sequence[Referral]) -> dict[str, set[str]]:
    """{object: ids} of the CRM records these referrals point at."""
    wanted: dict[str, set[str]] = {}
    for referral in referrals:
        for obj, col in LINK_FIELD.items():
            value = getattr(referral.crm, col)
            if value:
                wanted.setdefault(obj, set()).add(value)
    return wanted


class _ChunkHistory:
    """The advocates' history that tier and cap rules read, for a whole chunk: one grouped query per kind (stored
    qualifications; each capped rule's period totals), then kept current in memory as the chunk decides rewards,
    so the thousandth referral of a chunk sees the 999 before it without a query of its own."""

    def __init__(self, uow, chunk: Sequence[Referral], now: dt.datetime):
        self.uow, self.chunk, self.now = uow, chunk, now
        self.by_advocate: dict[str, list[Referral]] = {}
        for r in chunk:
            self.by_advocate.setdefault(r.advocate_id, []).append(r)
        self._stored_qualified: dict[str, int] | None = None
        self._period: dict[str, dict[str, tuple[dict[str, Decimal], int]]] = {}

    def _qualified_elsewhere(self, referral: Referral) -> int:
        if self._stored_qualified is None:
            self._stored_qualified = self.uow.referrals.qualified_counts(list(self.by_advocate), exclude=[r.id for r in self.chunk])
        # Stored qualifications outside this chunk, plus this chunk's (in memory, not yet written).
        return self._stored_qualified.get(referral.advocate_id, 0) + sum(
            1 for r in self.by_advocate[referral.advocate_id] if r.id != referral.id and r.qualified_at)

    def _period_totals(self, rule: RewardRule, advocate_id: str) -> tuple[dict[str, Decimal], int]:
        if rule.key not in self._period:
            self.uow.flush_pending_rewards()
            self._period[rule.key] = self.uow.rewards.period_totals_many(
                list(self.by_advocate), rule.key, period_start(self.now, rule.cap_period))
        return self._period[rule.key].get(advocate_id, ({}, 0))

    def for_referral(self, referral: Referral):
        cache: dict[str, AdvocateHistory] = {}

        def history_for(rule: RewardRule) -> AdvocateHistory:
            if rule.key in cache:
                return cache[rule.key]
            if rule.tier_at is None and rule.cap_period is None:
                return _NO_HISTORY  # nothing in this rule depends on history
            total, count = None, 0
            if rule.cap_period:
                totals, count = self._period_totals(rule, referral.advocate_id)
                currency = (rule.cap_amount or rule.amount or Money.zero(rule.currency or "USD")).currency
                total = Money(totals.get(currency, 0), currency)
            cache[rule.key] = AdvocateHistory(qualified_count=self._qualified_elsewhere(referral) + 1,
                                              period_total=total, period_count=count)
            return cache[rule.key]

        return history_for

    def created(self, rewards: Sequence[Reward]) -> None:
        """Count the chunk's new rewards into the capped rules' period totals (as the query would once they are
        written). A reward that then loses an insert race to another worker stays counted: the cap errs strict."""
        for reward in rewards:
            period = self._period.get(reward.rule_key)
            if period is None or reward.advocate_id is None or reward.status in (RewardStatus.REJECTED, RewardStatus.CANCELLED):
                continue
            totals, count = period.get(reward.advocate_id, ({}, 0))
            totals = dict(totals)
            totals[reward.amount.currency] = totals.get(reward.amount.currency, Decimal(0)) + reward.amount.amount
            period[reward.advocate_id] = (totals, count + 1)


def _observe_chunk(rt: Runtime, tenant_id: str, connection_id: str, records: Sequence[ChangedRecord], actor: Actor,
                   feed: MirrorFeed | None = None) -> ObserveStats:
    stats = ObserveStats(records=len(records))
    now = rt.now()
    notifications: list[tuple[str, str]] = []
    queued = None
    with rt.uow(tenant_id) as uow:
        if feed is not None:
            uow.track_queue_rows()
        uow.connections.get(connection_id)  # the connection must be this tenant's
        # Only records linked to a referral matter. An unlinked one (say, an opportunity whose lead's
        # conversion we have not seen yet) is not kept: the poll re-reads it from its watermark.
        linked: dict[str, dict[str, list[str]]] = {}
        for obj, col in LINK_FIELD.items():
            ids = list({r.id for r in records if r.object == obj})
            if ids:
                linked[obj] = uow.referrals.linked_ids(connection_id, col, ids)
        relevant = [r for r in records if r.id in linked.get(r.object, {})]
        fresh, states = _store_records(uow, connection_id, relevant, now)
        stats.stale = len(relevant) - len(fresh)
        touched: dict[str, None] = {}
        for rec in fresh:
            touched.update(dict.fromkeys(linked[rec.object][rec.id]))
        if not touched:
            uow.commit()
            return stats
        chunk = uow.referrals.get_many(list(touched))
        cache = _RecordCache(uow, connection_id, states)
        wanted = linked_records(chunk)
        cache.load(wanted)
        converted = [_follow_conversion(uow, cache, connection_id, referral, now) for referral in chunk]
        if any(converted):  # conversion linked an opportunity, account or contact: their states too
            wanted = linked_records(chunk)
            cache.load(wanted)
        for obj, ids in wanted.items():
            missing = {i for i in ids if cache.get(obj, i) is None}
            if missing:
                stats.unseen.setdefault(obj, set()).update(missing)
        rewards_by_referral = uow.rewards.for_referrals([r.id for r in chunk])
        newest = max((r.modified_at for r in fresh if r.modified_at), default=now)
        programs: dict[str, Program] = {}
        history = _ChunkHistory(uow, chunk, now)
        to_save: list[Referral] = []
        stale_referrals: list[Referral] = []
        stale_rewards: list[Reward] = []
        for referral in chunk:
            program = programs.get(referral.program_id) or uow.programs.get(referral.program_id)
            programs[program.id] = program
            snapshot = cache.snapshot(referral)
            if not snapshot:
                if referral.changes:  # refs followed a conversion; nothing else to decide yet
                    to_save.append(referral)
                    uow.record(referral.changes, actor, referral.id)
                    uow.mark_stale(connection_id, "referral", referral.id, now)
                    stale_referrals.append(referral)
                continue
            existing = {r.identity: r for r in rewards_by_referral.get(referral.id, [])}
            before = referral.status
            outcome = qualification.observe(referral, program, snapshot, now, existing, history.for_referral(referral), rt.new_id)
            history.created(outcome.new_rewards)
            referral.last_observed_at = newest
            to_save.append(referral)
            changed = bool(referral.changes)
            uow.record(referral.changes, actor, referral.id)
            stats.referrals_touched += 1
            if referral.status == ReferralStatus.QUALIFIED and before != ReferralStatus.QUALIFIED:
                stats.qualified += 1
                notifications.append(("referral.qualified", referral.id))
            if referral.status == ReferralStatus.DISQUALIFIED and before != ReferralStatus.DISQUALIFIED:
                stats.disqualified += 1
            uow.pending_rewards.extend(outcome.new_rewards)
            for reward in outcome.changed_rewards:
                uow.rewards.save(reward)
                uow.record(reward.changes, actor, reward.id)
                stats.rewards_changed += 1
                uow.mark_stale(connection_id, "reward", reward.id, now)
                stale_rewards.append(reward)
            if changed:
                uow.mark_stale(connection_id, "referral", referral.id, now)
                stale_referrals.append(referral)
        uow.referrals.save_many(to_save)
        for reward in uow.take_inserted_rewards():
            uow.record(reward.changes, actor, reward.id)
            stats.rewards_created += 1
            uow.mark_stale(connection_id, "reward", reward.id, now, created_here=True)
            stale_rewards.append(reward)
            if reward.status == RewardStatus.APPROVED:
                notifications.append(("reward.approved", reward.id))
        batch = None
        if feed is not None and (stale_referrals or stale_rewards):
            batch = _mirror_batch(uow, chunk, stale_referrals, stale_rewards, programs, cache)
        uow.commit()
        if batch is not None:
            # Keyed by the entities' own id strings (the gateway keeps those too), not the database's copies.
            found = uow.queued_rows
            rows = {(kind, e.id): found[(connection_id, kind, e.id)]
                    for kind, entities in (("referral", stale_referrals), ("reward", stale_rewards))
                    for e in entities if (connection_id, kind, e.id) in found}
            queued = QueuedMirror(batch, rows)
    if queued is not None:
        feed.add(queued)
    if notifications:
        # One job for the batch: a mass update qualifies tens of thousands at once.
        rt.jobs.enqueue("notify_many", tenant_id=tenant_id, events=notifications)
    return stats


def _mirror_batch(uow, chunk: Sequence[Referral], stale_referrals: list[Referral], stale_rewards: list[Reward],
                  programs: dict[str, Program], cache: _RecordCache) -> MirrorBatch:
    """The write-back's batch for what this chunk queued, made from what the chunk holds: the queued referrals and
    the referrals of queued rewards (a reward's mirror needs its referral's), in chunk order; the rewards by
    referral and id; the last known state of the records the referrals point at."""
    wanted = {r.id for r in stale_referrals} | {w.referral_id for w in stale_rewards}
    referrals = [r for r in chunk if r.id in wanted]
    advocates = {a.id: a for a in uow.advocates.get_many(sorted({r.advocate_id for r in referrals}))}
    states: dict[tuple[str, str], dict[str, Any]] = {}
    for obj, ids in linked_records(referrals).items():
        for crm_id in ids:
            state = cache.get(obj, crm_id)
            if state is not None and not state.deleted:
                states[(obj, crm_id)] = state.fields
    rewards = sorted(stale_rewards, key=lambda w: (w.referral_id, w.id))
    return MirrorBatch([(r, advocates[r.advocate_id], programs[r.program_id]) for r in referrals], rewards, states)


def _follow_conversion(uow, cache: _RecordCache, connection_id: str, referral: Referral, now: dt.datetime) -> bool:
    """Link the records the referral's converted lead became; whether its references changed."""
    state = cache.get("Lead", referral.crm.lead_id)
    if state is None or not state.fields.get("IsConverted"):
        return False
    refs = CrmRefs(**{col: state.fields.get(name) for name, col in CONVERSION_FIELDS.items()})
    if refs.opportunity_id and refs.opportunity_id != referral.crm.opportunity_id:
        holders = uow.referrals.find_by_crm(connection_id, opportunity_id=refs.opportunity_id)
        if any(h.id != referral.id for h in holders):
            # Two referred leads merged into one deal: the first referral keeps the attribution.
            refs.opportunity_id = None
    return referral.update_crm_refs(refs, now)


def referrals_needing_fields(programs: Iterable[Program]) -> dict[str, set[str]]:
    """Union of the CRM fields every live program's rules read: the sync pulls only these."""
    needed: dict[str, set[str]] = {}
    for program in programs:
        for obj, names in program.required_fields().items():
            needed.setdefault(obj, set()).update(names)
    return needed
