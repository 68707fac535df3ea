"""Repositories and constraints on the configured database (SQLite, or PostgreSQL in CI)."""

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError, IntegrityError

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.errors import NotFound
from refstage.domain.money import Money
from refstage.domain.referrals import Advocate, AdvocateSource
from refstage.domain.rewards import Recipient, Reward, RewardKind, RewardStatus
from refstage.services import enrolment, referrals, tenants
from refstage.services.referrals import FriendInput
from tests.integration.conftest import ADMIN


def _advocate(rt, world, code="ABCDEFGH2", crm_id="003A"):
    return Advocate(id=rt.new_id(), tenant_id=world.tenant.id, program_id=world.program.id, name="A", email="a@x.test",
                    code=code, source=AdvocateSource.SALESFORCE_CONTACT, crm_object="Contact", crm_id=crm_id)


def test_referral_codes_are_unique_across_tenants(rt, world):
    with rt.uow(world.tenant.id) as uow:
        uow.advocates.add(_advocate(rt, world))
        uow.commit()
    other = tenants.create_tenant(rt, "Other", "other")
    with rt.uow(other.id) as uow:
        with pytest.raises(IntegrityError):
            uow.advocates.add(Advocate(id=rt.new_id(), tenant_id=other.id, program_id=world.program.id, name="B",
                                       email="b@x.test", code="ABCDEFGH2", source=AdvocateSource.API))


def test_one_advocate_per_crm_record_and_program(rt, world):
    with rt.uow(world.tenant.id) as uow:
        uow.advocates.add(_advocate(rt, world, "ABCDEFGH2", "003A"))
        uow.commit()
    with rt.uow(world.tenant.id) as uow:
        with pytest.raises(IntegrityError):
            uow.advocates.add(_advocate(rt, world, "ABCDEFGH3", "003A"))


def _referral(rt, world):
    advocate, _ = enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Ada", email="ada@customer.test",
                                           source=AdvocateSource.API, actor=ADMIN)
    return referrals.capture_referral(rt, advocate.code, FriendInput("Fred", "fred@prospect.test", None, None, True))


def test_reward_identity_is_unique_in_the_database(rt, world):
    ref = _referral(rt, world)

    def reward():
        return Reward(id=rt.new_id(), tenant_id=world.tenant.id, program_id=world.program.id, referral_id=ref.id,
                      recipient=Recipient.ADVOCATE, rule_key="adv", kind=RewardKind.FIXED, amount=Money("100", "USD"),
                      status=RewardStatus.APPROVED, created_at=rt.now())

    with rt.uow(world.tenant.id) as uow:
        assert uow.rewards.add(reward()) is True
        assert uow.rewards.add(reward()) is False  # same (referral, recipient, rule)
        uow.commit()
    with rt.uow(world.tenant.id) as uow:
        assert len(uow.rewards.for_referral(ref.id)) == 1
        assert uow.rewards.for_referral(ref.id)[0].amount == Money("100.00", "USD")


def test_money_is_stored_exactly(rt, world):
    ref = _referral(rt, world)
    with rt.uow(world.tenant.id) as uow:
        uow.rewards.add(Reward(id=rt.new_id(), tenant_id=world.tenant.id, program_id=world.program.id, referral_id=ref.id,
                               recipient=Recipient.FRIEND, rule_key="x", kind=RewardKind.FIXED,
                               amount=Money("1234567.89", "EUR"), status=RewardStatus.APPROVED, created_at=rt.now()))
        uow.commit()
    with rt.uow(world.tenant.id) as uow:
        assert uow.rewards.for_referral(ref.id)[0].amount == Money("1234567.89", "EUR")


def test_no_query_crosses_tenants(rt, world):
    ref = _referral(rt, world)
    other = tenants.create_tenant(rt, "Other", "other")
    with rt.uow(other.id) as uow:
        with pytest.raises(NotFound):
            uow.referrals.get(ref.id)
        with pytest.raises(NotFound):
            uow.programs.get(world.program.id)
        with pytest.raises(NotFound):
            uow.connections.get(world.connection.id)
        assert uow.referrals.list() == []
        assert uow.advocates.list() == []
        assert uow.audit.list() == []
        assert uow.referrals.find_by_crm(world.connection.id, lead_id="anything") == []


def test_audit_log_is_append_only(rt, world):
    _referral(rt, world)
    with rt.uow(world.tenant.id) as uow:
        entries = uow.audit.list(entity_type="referral")
        assert [e.action for e in entries][-1] == "captured"
        with pytest.raises(DatabaseError):
            uow.session.execute(text("UPDATE audit_log SET reason = 'edited'"))
    with rt.uow(world.tenant.id) as uow:
        with pytest.raises(DatabaseError):
            uow.session.execute(text("DELETE FROM audit_log"))


def test_audit_entries_keep_actor_and_before_after(rt, world):
    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with rt.uow(world.tenant.id) as uow:
        uow.audit.append([AuditEntry(world.tenant.id, "reward", "rw1", "status:approved", Actor.person("u9", "rev@x.test"),
                                     at, {"status": "pending_review"}, {"status": "approved"}, "checked the deal")])
        uow.commit()
    with rt.uow(world.tenant.id) as uow:
        (entry,) = uow.audit.list(entity_id="rw1")
    assert entry.actor.label == "rev@x.test" and entry.before == {"status": "pending_review"} and entry.at == at


def test_save_many_writes_what_the_orm_reads_back_and_refuses_a_row_changed_meanwhile(rt, world):
    from sqlalchemy import update as sql_update
    from sqlalchemy.orm.exc import StaleDataError

    from refstage.adapters.db import models as m
    from refstage.domain.referrals import ReferralStatus
    from refstage.domain.review import Flag, Reason

    first, second = _referral(rt, world), None
    advocate, _ = enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Bo", email="bo@customer.test",
                                           source=AdvocateSource.API, actor=ADMIN)
    second = referrals.capture_referral(rt, advocate.code, FriendInput("Gil", "gil@prospect.test", None, None, True))
    at = dt.datetime(2026, 11, 2, 10, 30, 15, 123456, tzinfo=dt.timezone.utc)
    with rt.uow(world.tenant.id) as uow:
        one, two = sorted(uow.referrals.get_many([first.id, second.id]), key=lambda r: r.id != first.id)
        one.status, one.qualified_at, one.last_observed_at = ReferralStatus.QUALIFIED, at, at
        one.crm.opportunity_id = "006AAA"
        one.flags = [Flag(Reason.DUPLICATE_EXISTING_RECORD, {"match": "O'Brien <x>"})]
        two.status_reason = "moved"
        uow.referrals.save_many([one, two])
        uow.commit()
    with rt.uow(world.tenant.id) as uow:
        got = uow.referrals.get(first.id)
        row = uow.session.get(m.ReferralRow, first.id)
        assert (got.status, got.qualified_at, got.last_observed_at) == (ReferralStatus.QUALIFIED, at, at)
        assert got.crm.opportunity_id == "006AAA" and got.flags == one.flags
        assert row.version == 2 and uow.referrals.get(second.id).status_reason == "moved"

    # Another worker moves the second referral between our read and our write (on SQLite the write lock rules
    # that out, so the change is made in our own transaction): nothing of ours may stand.
    with rt.uow(world.tenant.id) as uow:
        one, two = sorted(uow.referrals.get_many([first.id, second.id]), key=lambda r: r.id != first.id)
        uow.session.execute(sql_update(m.ReferralRow).where(m.ReferralRow.id == second.id).values(
            version=m.ReferralRow.version + 1, status_reason="theirs"))
        one.status_reason = two.status_reason = "ours"
        with pytest.raises(StaleDataError):
            uow.referrals.save_many([one, two])
        uow.rollback()
    with rt.uow(world.tenant.id) as uow:
        assert uow.referrals.get(first.id).status_reason is None
        assert uow.referrals.get(second.id).status_reason == "moved"


def test_batch_reads_give_back_every_field_as_written(rt, world):
    """get_many reads by column position: a column out of place would put a value in the wrong field."""
    from decimal import Decimal

    from refstage.domain.review import Flag, Reason

    ref = _referral(rt, world)
    at = dt.datetime(2026, 11, 2, 10, 30, 15, 123456, tzinfo=dt.timezone.utc)
    advocate = Advocate(id=rt.new_id(), tenant_id=world.tenant.id, program_id=world.program.id, name="Ann", email="ann@x.test",
                        code="BATCHREAD2", source=AdvocateSource.SALESFORCE_CONTACT, crm_object="Contact", crm_id="003B",
                        crm_contact_id="003C", crm_account_id="001D", link_written_at=at, enrolled_at=at, active=False)
    reward = Reward(id=rt.new_id(), tenant_id=world.tenant.id, program_id=world.program.id, referral_id=ref.id,
                    recipient=Recipient.FRIEND, rule_key="friend", kind=RewardKind.FIXED, amount=Money("12.34", "EUR"),
                    status=RewardStatus.PENDING_HOLD, created_at=at, advocate_id=ref.advocate_id,
                    hold_until=at + dt.timedelta(days=30), flags=[Flag(Reason.OVER_AMOUNT_THRESHOLD, {"limit": "10"})],
                    decided_by="u1", decision_comment="ok <b>", decided_at=at, issued_at=at, payout_reference="PO-1")
    with rt.uow(world.tenant.id) as uow:
        uow.advocates.add(advocate)
        uow.advocates.save(advocate)  # the link's write-back time is set after enrolment
        assert uow.rewards.add(reward)
        uow.commit()
    with rt.uow(world.tenant.id, readonly=True) as uow:
        [got_advocate] = uow.advocates.get_many([advocate.id])
        got_rewards = uow.rewards.get_many([reward.id, reward.id])  # in the order asked, repeats included
        [got_referral] = uow.referrals.get_many([ref.id])
        with pytest.raises(NotFound):
            uow.rewards.get_many([reward.id, "no-such-reward"])
        orm_referral = uow.referrals.get(ref.id)
    assert got_advocate == advocate
    assert got_rewards == [reward, reward] and got_rewards[0].amount.amount == Decimal("12.34")
    assert got_rewards[0].hold_until.tzinfo is not None
    assert got_referral == orm_referral == referrals.get_referral(rt, world.tenant.id, ref.id)
    assert (got_referral.friend_name, got_referral.friend_email, got_referral.consent_at.tzinfo) == ("Fred", "fred@prospect.test", dt.timezone.utc)


def test_enrolment_batch_writes_store_what_the_orm_reads_and_stay_in_their_tenant(rt, world):
    """add_many and mark_links_written run compiled executemany statements: what they store must read back
    through the ORM as written, and marking ids of another tenant's advocates must change nothing there."""
    other = tenants.create_tenant(rt, "Other", "other")
    mine = [_advocate(rt, world, f"ABCDEFG{c}", f"003{c}") for c in "23"]
    theirs = Advocate(id=rt.new_id(), tenant_id=other.id, program_id=world.program.id, name="T", email="t@x.test",
                      code="ABCDEFGH9", source=AdvocateSource.SALESFORCE_CONTACT, crm_object="Contact", crm_id="003T")
    with rt.uow(world.tenant.id) as uow:
        uow.advocates.add_many(mine)
        uow.commit()
    with rt.uow(other.id) as uow:
        uow.advocates.add_many([theirs])
        uow.commit()
    at = dt.datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=dt.timezone.utc)
    with rt.uow(world.tenant.id) as uow:
        assert {row[0] for row in uow.advocates.pending_links(world.program.id, 10)} == {a.id for a in mine}
        uow.advocates.mark_links_written([mine[0].id, theirs.id], at)
        uow.commit()
    with rt.uow(world.tenant.id) as uow:
        first, second = uow.advocates.get(mine[0].id), uow.advocates.get(mine[1].id)
        assert (first.code, first.crm_id, first.email, first.source) == ("ABCDEFG2", "0032", "a@x.test",
                                                                         AdvocateSource.SALESFORCE_CONTACT)
        assert first.link_written_at == at and second.link_written_at is None
        assert [row[0] for row in uow.advocates.pending_links(world.program.id, 10)] == [mine[1].id]
    with rt.uow(other.id) as uow:
        assert uow.advocates.get(theirs.id).link_written_at is None


def test_write_back_queue_reads_each_reward_parent_and_removes_exactly_the_rows_given(rt, world):
    """queued_with_parents joins the queued rewards to their referral; remove() deletes runs of consecutive ids by
    range and the rest by id, so a row between two removed ones (re-queued meanwhile) and another tenant's stay."""
    from refstage.adapters.db import models as m

    ref = _referral(rt, world)
    reward = Reward(id=rt.new_id(), tenant_id=world.tenant.id, program_id=world.program.id, referral_id=ref.id,
                    recipient=Recipient.ADVOCATE, rule_key="adv", kind=RewardKind.FIXED, amount=Money("5", "USD"),
                    status=RewardStatus.APPROVED, created_at=rt.now())
    other = tenants.create_tenant(rt, "Other", "other-q")
    now = rt.now()
    with rt.uow(world.tenant.id) as uow:
        assert uow.rewards.add(reward)
        uow.session.execute(text("DELETE FROM pending_writes"))
        rows = [m.PendingWriteRow(tenant_id=world.tenant.id, connection_id=world.connection.id, entity_type="referral",
                                  entity_id=f"r{i}", enqueued_at=now, attempts=0) for i in range(30)]
        rows[3] = m.PendingWriteRow(tenant_id=world.tenant.id, connection_id=world.connection.id, entity_type="reward",
                                    entity_id=reward.id, enqueued_at=now, attempts=0)
        rows[4] = m.PendingWriteRow(tenant_id=world.tenant.id, connection_id=world.connection.id, entity_type="reward",
                                    entity_id="gone", enqueued_at=now, attempts=0)
        rows[20] = m.PendingWriteRow(tenant_id=other.id, connection_id=world.connection.id, entity_type="referral",
                                     entity_id="theirs", enqueued_at=now, attempts=0)
        for row in rows:
            uow.session.add(row)
            uow.session.flush()  # ids in list order
        uow.commit()
    ids = [row.id for row in rows]
    with rt.uow(world.tenant.id, readonly=True) as uow:
        queued = list(uow.pending_writes.queued_with_parents(world.connection.id, 100))
        assert list(uow.pending_writes.queued_with_parents(world.connection.id, 2)) == queued[:2]
    assert [tuple(q) for q in queued] == [
        (row.id, row.entity_type, row.entity_id, ref.id if row.entity_id == reward.id else None)
        for row in rows if row.tenant_id == world.tenant.id]
    kept = {ids[15], ids[27]}  # one inside a long run, one between singles
    remove = [i for i in ids if i not in kept and i != ids[20]] + [ids[20]]  # another tenant's id is not ours
    with rt.uow(world.tenant.id) as uow:
        uow.pending_writes.remove(remove[::-1])  # any order
        uow.commit()
    with rt.uow(world.tenant.id, readonly=True) as uow:
        left = {row[0] for row in uow.session.execute(text("SELECT id FROM pending_writes"))}
    assert left == kept | {ids[20]}


def test_a_write_back_that_read_the_newest_queue_row_leaves_its_re_queued_row_alone(rt, world):
    """Re-queueing replaces the row; the new row must not get the old row's id back (SQLite reuses the largest
    id without AUTOINCREMENT), or the write-back that read the old row deletes the newer change with it."""
    with rt.uow(world.tenant.id) as uow:
        uow.session.execute(text("DELETE FROM pending_writes"))
        uow.mark_stale(world.connection.id, "referral", "older", rt.now())
        uow.mark_stale(world.connection.id, "referral", "newest", rt.now())
        uow.commit()
    with rt.uow(world.tenant.id, readonly=True) as uow:
        read = {entity_id: row_id for row_id, _, entity_id in uow.pending_writes.queued(world.connection.id, 10)}
    with rt.uow(world.tenant.id) as uow:  # the entity changes again while the write-back is in the CRM
        uow.mark_stale(world.connection.id, "referral", "newest", rt.now())
        uow.commit()
    with rt.uow(world.tenant.id) as uow:  # the write-back finishes: it removes the rows it read
        uow.pending_writes.remove(sorted(read.values()))
        uow.commit()
    with rt.uow(world.tenant.id, readonly=True) as uow:
        left = [(entity_id, row_id) for row_id, _, entity_id in uow.pending_writes.queued(world.connection.id, 10)]
    assert [entity_id for entity_id, _ in left] == ["newest"]
    assert left[0][1] > max(read.values())


def test_live_fields_are_the_known_states_of_records_not_deleted(rt, world):
    from refstage.services.ports import RecordState

    at = rt.now()
    with rt.uow(world.tenant.id) as uow:
        uow.crm_records.write(world.connection.id, [
            RecordState(None, "Opportunity", "006A", {"StageName": "Won", "Referral__c": "a0B1"}, at, False),
            RecordState(None, "Opportunity", "006B", {}, at, False),
            RecordState(None, "Opportunity", "006C", {"StageName": "Lost"}, at, True),
            RecordState(None, "Account", "001A", {"Name": "Acme"}, at, False)], at)
        uow.commit()
    wanted = {"Opportunity": {"006A", "006B", "006C", "006Z"}, "Account": ["001A"]}
    with rt.uow(world.tenant.id, readonly=True) as uow:
        live = uow.crm_records.live_fields(world.connection.id, wanted)
        loaded = uow.crm_records.load(world.connection.id, wanted)
    assert live == {key: state.fields for key, state in loaded.items() if not state.deleted} == {
        ("Opportunity", "006A"): {"StageName": "Won", "Referral__c": "a0B1"}, ("Opportunity", "006B"): {},
        ("Account", "001A"): {"Name": "Acme"}}
    with rt.uow(tenants.create_tenant(rt, "Other", "other-f").id, readonly=True) as uow:
        assert uow.crm_records.live_fields(world.connection.id, wanted) == {}
