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
