"""observe_crm_changes: the one path from a CRM change (pushed or polled) to referrals and rewards."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from refstage.adapters.db import models as m
from refstage.domain import qualification
from refstage.domain.audit import Actor
from refstage.domain.money import Money
from refstage.domain.programs import Program
from refstage.domain.referrals import CrmRefs, Referral, ReferralStatus
from refstage.domain.rewards import AdvocateHistory, RewardRule, RewardStatus, period_start
from refstage.services.ports import ChangedRecord
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
CHUNK = 500
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

    def add(self, other: "ObserveStats") -> None:
        for name in ("records", "stale", "referrals_touched", "qualified", "disqualified", "rewards_created", "rewards_changed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)


def observe_crm_changes(rt: Runtime, tenant_id: str, connection_id: str, records: Sequence[ChangedRecord],
                        actor: Actor | None = None) -> ObserveStats:
    """Apply CRM record states in order of modification; the same state applied twice changes nothing."""
    actor = actor or Actor.sync(connection_id)
    total = ObserveStats()
    ordered = sorted(records, key=lambda r: (r.modified_at or dt.datetime.min.replace(tzinfo=dt.timezone.utc), r.id))
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start:start + CHUNK]
        for attempt in range(MAX_RETRIES):
            try:
                total.add(_observe_chunk(rt, tenant_id, connection_id, chunk, actor))
                break
            except (StaleDataError, IntegrityError) as exc:
                # Another worker stored the same record or moved the same referral meanwhile:
                # re-read and apply again; the second pass sees their work and adds nothing twice.
                log.info("concurrent update while observing changes (%s); retrying chunk (attempt %s)",
                         type(exc).__name__, attempt + 1)
        else:
            total.errors.append(f"gave up after {MAX_RETRIES} concurrent-update retries")
    return total


def _store_records(uow, connection_id: str, records: Sequence[ChangedRecord], now: dt.datetime) -> list[ChangedRecord]:
    """Keep the newest state per record; return the records that were news."""
    keys = {(r.object, r.id) for r in records}
    existing: dict[tuple[str, str], m.CrmRecordRow] = {}
    by_object: dict[str, list[str]] = {}
    for obj, crm_id in keys:
        by_object.setdefault(obj, []).append(crm_id)
    for obj, ids in by_object.items():
        for start in range(0, len(ids), 900):
            for row in uow.session.scalars(select(m.CrmRecordRow).where(
                    m.CrmRecordRow.connection_id == connection_id, m.CrmRecordRow.object_name == obj,
                    m.CrmRecordRow.crm_id.in_(ids[start:start + 900]))):
                existing[(obj, row.crm_id)] = row
    fresh: list[ChangedRecord] = []
    for rec in records:
        row = existing.get((rec.object, rec.id))
        if row is not None and row.modified_at is not None and rec.modified_at is not None and rec.modified_at < row.modified_at:
            continue  # an older state arriving late (out-of-order delivery): the newer one stands
        if row is not None and rec.modified_at is not None and row.modified_at == rec.modified_at and row.fields == rec.fields \
                and row.deleted == rec.deleted:
            continue  # exact replay
        if row is None:
            row = m.CrmRecordRow(tenant_id=uow.tenant_id, connection_id=connection_id, object_name=rec.object, crm_id=rec.id,
                                 fields={}, updated_at=now)
            uow.session.add(row)
            existing[(rec.object, rec.id)] = row
        merged = dict(row.fields or {})
        merged.update(rec.fields)
        row.fields = merged
        row.modified_at = rec.modified_at or row.modified_at
        row.deleted = rec.deleted
        row.updated_at = now
        fresh.append(rec)
    uow.session.flush()
    return fresh


class _RecordCache:
    """Latest CRM record states for a chunk's referrals, loaded with one query per object."""

    def __init__(self, uow, connection_id: str):
        self.uow, self.connection_id = uow, connection_id
        self.rows: dict[tuple[str, str], m.CrmRecordRow] = {}

    def load(self, wanted: dict[str, set[str]]) -> None:
        for obj, ids in wanted.items():
            missing = [i for i in ids if (obj, i) not in self.rows]
            for start in range(0, len(missing), 900):
                for row in self.uow.session.scalars(select(m.CrmRecordRow).where(
                        m.CrmRecordRow.connection_id == self.connection_id, m.CrmRecordRow.object_name == obj,
                        m.CrmRecordRow.crm_id.in_(missing[start:start + 900]))):
                    self.rows[(obj, row.crm_id)] = row

    def get(self, obj: str, crm_id: str | None) -> m.CrmRecordRow | None:
        return self.rows.get((obj, crm_id)) if crm_id else None

    def snapshot(self, referral: Referral) -> dict[str, dict[str, Any]]:
        snapshot: dict[str, dict[str, Any]] = {}
        for obj, col in LINK_FIELD.items():
            row = self.get(obj, getattr(referral.crm, col))
            if row is not None and not row.deleted:
                snapshot[obj] = dict(row.fields or {})
        return snapshot


def _wanted(referrals: Sequence[Referral]) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = {}
    for referral in referrals:
        for obj, col in LINK_FIELD.items():
            value = getattr(referral.crm, col)
            if value:
                wanted.setdefault(obj, set()).add(value)
    return wanted


def _history(uow, referral: Referral, now: dt.datetime):
    cache: dict[str, AdvocateHistory] = {}
    others = None

    def history_for(rule: RewardRule) -> AdvocateHistory:
        nonlocal others
        if rule.key in cache:
            return cache[rule.key]
        if rule.tier_at is None and rule.cap_period is None:
            return AdvocateHistory(qualified_count=1)  # nothing in this rule depends on history
        if others is None:
            count = uow.referrals.qualified_count(referral.advocate_id)
            # Count this referral once, whether or not its qualification is stored yet.
            already = uow.session.scalar(select(m.ReferralRow.qualified_at).where(m.ReferralRow.id == referral.id)) is not None
            others = count - (1 if already else 0)
        total, count = None, 0
        if rule.cap_period:
            totals, count = uow.rewards.period_totals(referral.advocate_id, rule.key, period_start(now, rule.cap_period))
            currency = (rule.cap_amount or rule.amount or Money.zero(rule.currency or "USD")).currency
            total = Money(totals.get(currency, 0), currency)
        cache[rule.key] = AdvocateHistory(qualified_count=others + 1, period_total=total, period_count=count)
        return cache[rule.key]

    return history_for


def _observe_chunk(rt: Runtime, tenant_id: str, connection_id: str, records: Sequence[ChangedRecord], actor: Actor) -> ObserveStats:
    stats = ObserveStats(records=len(records))
    now = rt.now()
    notifications: list[tuple[str, str]] = []
    with rt.uow(tenant_id) as uow:
        uow.connections.get(connection_id)  # the connection must be this tenant's
        fresh = _store_records(uow, connection_id, records, now)
        stats.stale = len(records) - len(fresh)
        touched: dict[str, None] = {}
        for obj, col in LINK_FIELD.items():
            ids = [r.id for r in fresh if r.object == obj]
            if ids:
                for ref_ids in uow.referrals.linked_ids(connection_id, col, ids).values():
                    touched.update(dict.fromkeys(ref_ids))
        if not touched:
            uow.commit()
            return stats
        chunk_referrals = uow.referrals.get_many(list(touched))
        cache = _RecordCache(uow, connection_id)
        cache.load(_wanted(chunk_referrals))
        for referral in chunk_referrals:
            _follow_conversion(uow, cache, connection_id, referral, now)
        cache.load(_wanted(chunk_referrals))  # conversion may have linked an opportunity, account, contact
        rewards_by_referral = uow.rewards.for_referrals([r.id for r in chunk_referrals])
        newest = max((r.modified_at for r in fresh if r.modified_at), default=now)
        programs: dict[str, Program] = {}
        for referral in chunk_referrals:
            program = programs.get(referral.program_id) or uow.programs.get(referral.program_id)
            programs[program.id] = program
            snapshot = cache.snapshot(referral)
            if not snapshot:
                if referral.changes:  # refs followed a conversion; nothing else to decide yet
                    uow.referrals.save(referral)
                    uow.record(referral.changes, actor, referral.id)
                continue
            existing = {r.identity: r for r in rewards_by_referral.get(referral.id, [])}
            before = referral.status
            outcome = qualification.observe(referral, program, snapshot, now, existing, _history(uow, referral, now), rt.new_id)
            referral.last_observed_at = newest
            uow.referrals.save(referral)
            changed_refs = bool(referral.changes)
            uow.record(referral.changes, actor, referral.id)
            stats.referrals_touched += 1
            if referral.status == ReferralStatus.QUALIFIED and before != ReferralStatus.QUALIFIED:
                stats.qualified += 1
                notifications.append(("referral.qualified", referral.id))
            if referral.status == ReferralStatus.DISQUALIFIED and before != ReferralStatus.DISQUALIFIED:
                stats.disqualified += 1
            for reward in outcome.new_rewards:
                if uow.rewards.add(reward):
                    uow.record(reward.changes, actor, reward.id)
                    stats.rewards_created += 1
                    uow.mark_stale(connection_id, "reward", reward.id, now)
                    if reward.status == RewardStatus.APPROVED:
                        notifications.append(("reward.approved", reward.id))
            for reward in outcome.changed_rewards:
                uow.rewards.save(reward)
                uow.record(reward.changes, actor, reward.id)
                stats.rewards_changed += 1
                uow.mark_stale(connection_id, "reward", reward.id, now)
            if outcome.referral_changed or changed_refs:
                uow.mark_stale(connection_id, "referral", referral.id, now)
        uow.commit()
    for event, entity_id in notifications:
        rt.jobs.enqueue("notify", tenant_id=tenant_id, event=event, entity_id=entity_id)
    return stats


def _follow_conversion(uow, cache: _RecordCache, connection_id: str, referral: Referral, now: dt.datetime) -> None:
    row = cache.get("Lead", referral.crm.lead_id)
    if row is None or not (row.fields or {}).get("IsConverted"):
        return
    refs = CrmRefs(**{col: (row.fields or {}).get(name) for name, col in CONVERSION_FIELDS.items()})
    if refs.opportunity_id and refs.opportunity_id != referral.crm.opportunity_id:
        holders = uow.referrals.find_by_crm(connection_id, opportunity_id=refs.opportunity_id)
        if any(h.id != referral.id for h in holders):
            # Two referred leads merged into one deal: the first referral keeps the attribution.
            refs.opportunity_id = None
    referral.update_crm_refs(refs, now)


def referrals_needing_fields(programs: Iterable[Program]) -> dict[str, set[str]]:
    """Union of the CRM fields every live program's rules read: the sync pulls only these."""
    needed: dict[str, set[str]] = {}
    for program in programs:
        for obj, names in program.required_fields().items():
            needed.setdefault(obj, set()).update(names)
    return needed
