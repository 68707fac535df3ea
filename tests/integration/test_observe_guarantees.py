"""The set-based observation keeps its guarantees: every state change has its audit entry (with the same content as
the row-by-row path wrote), rewards are created exactly once however often or concurrently a chunk runs, and a
referral changed by another worker during the chunk is detected and the chunk redone."""

import datetime as dt
import uuid

import pytest

from refstage.adapters.db import models as m
from refstage.adapters.db.repositories import ReferralRepository, RewardRepository, StaleVersion
from refstage.domain.audit import ActorKind
from refstage.services import qualification
from refstage.services.ports import ChangedRecord, ConcurrentUpdate, StorageConflict

T0 = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.timezone.utc)


def _referrals(rt, world, count):
    """Routed referrals linked to opportunities: {opportunity id: referral id}."""
    now = rt.now()
    adv_id = str(uuid.uuid4())
    linked = {f"006GUAR{i:011d}": str(uuid.uuid4()) for i in range(count)}
    with rt.session_factory() as s:
        s.execute(m.AdvocateRow.__table__.insert(), [{
            "id": adv_id, "tenant_id": world.tenant.id, "program_id": world.program.id, "name": "Ada",
            "email": "ada@customer.test", "code": "GUARANT22", "source": "api", "enrolled_at": now, "active": True}])
        s.execute(m.ReferralRow.__table__.insert(), [{
            "id": ref_id, "version": 1, "tenant_id": world.tenant.id, "program_id": world.program.id,
            "advocate_id": adv_id, "connection_id": world.connection.id, "friend_name": f"Friend {i}",
            "friend_email": f"f{i}@prospect.test", "friend_canonical_email": f"f{i}@prospect.test", "source": "link",
            "consent_at": now, "consent_version": "1", "captured_at": now, "status": "routed", "flags": [],
            "opportunity_id": opp, "routed_at": now, "updated_at": now} for i, (opp, ref_id) in enumerate(linked.items())])
        s.commit()
    return linked


def _won(opps, minutes=0):
    return [ChangedRecord("Opportunity", o, {"StageName": "Closed Won", "Amount": 9000}, T0 + dt.timedelta(minutes=minutes, seconds=i))
            for i, o in enumerate(opps)]


def _audit(rt, world):
    with rt.session_factory() as s:
        return s.execute(m.AuditRow.__table__.select().where(m.AuditRow.tenant_id == world.tenant.id,
                                                             m.AuditRow.entity_type.in_(["referral", "reward"]))).mappings().all()


def _rewards(rt, world):
    with rt.uow(world.tenant.id) as uow:
        return uow.rewards.list(limit=10_000)


def test_every_qualification_and_reward_has_its_audit_entry_and_queue_row(rt, world):
    linked = _referrals(rt, world, 30)
    stats = qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, _won(linked))
    assert (stats.qualified, stats.rewards_created) == (30, 60)

    entries = _audit(rt, world)
    by_entity = {}
    for e in entries:
        by_entity.setdefault((e["entity_type"], e["entity_id"]), []).append(e)
    rule = world.program.rule.describe()
    for ref_id in linked.values():
        (entry,) = by_entity[("referral", ref_id)]
        assert (entry["action"], entry["before"], entry["after"], entry["reason"]) == (
            "status:qualified", {"status": "routed"}, {"status": "qualified", "evidence": {"rule": rule}}, None)
        assert (entry["actor_kind"], entry["actor_id"], entry["actor_label"]) == (ActorKind.SYNC.value, world.connection.id, "CRM sync")
        assert entry["at"] is not None
    rewards = _rewards(rt, world)
    assert len(rewards) == 60
    for reward in rewards:
        (entry,) = by_entity[("reward", reward.id)]
        assert entry["action"] == "created" and entry["before"] is None and entry["reason"] is None
        assert entry["after"] == {"status": reward.status.value, "amount": reward.amount.to_dict(), "rule": reward.rule_key,
                                  "recipient": reward.recipient.value, "flags": [f.to_dict() for f in reward.flags]}
        assert entry["actor_kind"] == ActorKind.SYNC.value
    assert len(entries) == 90  # nothing else, nothing twice
    with rt.session_factory() as s:
        queued = set(s.execute(m.PendingWriteRow.__table__.select().with_only_columns(
            m.PendingWriteRow.entity_type, m.PendingWriteRow.entity_id)).all())
    assert queued == {("referral", r) for r in linked.values()} | {("reward", r.id) for r in rewards}


def test_a_rerun_of_the_same_chunk_creates_no_reward_and_no_audit_entry(rt, world):
    linked = _referrals(rt, world, 20)
    qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, _won(linked))
    before = (len(_rewards(rt, world)), len(_audit(rt, world)))
    again = qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, _won(linked))
    assert (again.rewards_created, again.qualified) == (0, 0)
    # A newer state of the same records: decided again, still nothing new.
    newer = qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, _won(linked, minutes=5))
    assert newer.rewards_created == 0
    assert (len(_rewards(rt, world)), len(_audit(rt, world))) == before == (40, 60)


def test_rewards_another_worker_created_meanwhile_are_not_created_twice(rt, world, monkeypatch):
    """Another worker stored some of the same rewards after our read: the unique identity and the per-reward
    savepoints keep one of each, and only the rewards we inserted get our audit entries."""
    linked = _referrals(rt, world, 10)
    opps = list(linked)
    qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, _won(opps[:4]))
    assert len(_rewards(rt, world)) == 8
    # Our read sees none of the rewards (as if it ran before the other worker's commit), and the first four
    # referrals are still routed in what it read.
    monkeypatch.setattr(RewardRepository, "for_referrals", lambda self, ids: {})
    real_get_many = ReferralRepository.get_many

    def as_read_before(self, ids):
        found = real_get_many(self, ids)
        for referral in found:
            if referral.qualified_at is not None:
                referral.status, referral.qualified_at = qualification.ReferralStatus.ROUTED, None
        return found

    monkeypatch.setattr(ReferralRepository, "get_many", as_read_before)
    stats = qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, _won(opps, minutes=5))
    assert stats.rewards_created == 12
    rewards = _rewards(rt, world)
    assert len(rewards) == 20 and len({(r.referral_id, r.recipient, r.rule_key) for r in rewards}) == 20
    created = [e for e in _audit(rt, world) if e["entity_type"] == "reward"]
    assert sorted(e["entity_id"] for e in created) == sorted(r.id for r in rewards)


def test_a_referral_moved_by_another_worker_during_the_chunk_is_detected_and_the_chunk_redone(rt, world, monkeypatch):
    linked = _referrals(rt, world, 10)
    moved = next(iter(linked.values()))
    real_get_many = ReferralRepository.get_many
    conflicts = []

    def moved_meanwhile(self, ids):
        found = real_get_many(self, ids)
        if not conflicts:
            # Another worker's write between our read and ours (on SQLite the write lock rules that out between
            # processes, so it is made in our own transaction: our rollback undoes it as theirs would stand).
            self.session.execute(m.ReferralRow.__table__.update().where(m.ReferralRow.id == moved).values(
                version=m.ReferralRow.version + 1))
        return found

    real_save_many = ReferralRepository.save_many

    def save_many(self, referrals):
        try:
            real_save_many(self, referrals)
        except ConcurrentUpdate as exc:
            conflicts.append(exc)
            raise

    monkeypatch.setattr(ReferralRepository, "get_many", moved_meanwhile)
    monkeypatch.setattr(ReferralRepository, "save_many", save_many)
    stats = qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, _won(linked))
    assert len(conflicts) == 1 and isinstance(conflicts[0], StorageConflict)
    assert (stats.qualified, stats.rewards_created) == (10, 20)  # the redone chunk, counted once
    assert len(_rewards(rt, world)) == 20 and len(_audit(rt, world)) == 30


def test_a_conflict_on_every_attempt_leaves_nothing_written_and_raises(rt, world, monkeypatch):
    linked = _referrals(rt, world, 3)

    def always_stale(self, referrals):
        raise StaleVersion("changed by another worker")

    monkeypatch.setattr(ReferralRepository, "save_many", always_stale)
    with pytest.raises(ConcurrentUpdate):
        qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, _won(linked))
    assert _rewards(rt, world) == [] and _audit(rt, world) == []
