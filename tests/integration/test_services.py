"""The journeys through the services, on the real database, with an in-memory CRM."""

import threading

import pytest

from refstage.domain.audit import Actor
from refstage.domain.errors import InvalidInput, InvalidTransition
from refstage.domain.referrals import AdvocateSource, ReferralStatus
from refstage.domain.rewards import RewardStatus
from refstage.services import enrolment, programs, qualification, referrals, reports, rewards, sync
from refstage.services.ports import CrmError
from refstage.services.referrals import FriendInput, ReferralNotAccepted
from tests.integration.conftest import ADMIN, PROGRAM

S = ReferralStatus


def _advocate(rt, world, email="ada@customer.test"):
    return enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Ada", email=email,
                                    source=AdvocateSource.API, actor=ADMIN)[0]


def _refer(rt, world, code, email="fred@prospect.test", **kw):
    return referrals.capture_referral(rt, code, FriendInput("Fred", email, "Prospect", None, True), **kw)


def test_capture_commits_first_and_queues_routing(rt, world):
    adv = _advocate(rt, world)
    ref = _refer(rt, world, adv.code.lower())  # codes are case-insensitive
    assert ref.status == S.CAPTURED
    assert ("route_referral", {"tenant_id": world.tenant.id, "referral_id": ref.id}) in rt.jobs.jobs
    assert world.crm.created_leads == []  # nothing external during capture


def test_capture_validates_every_field(rt, world):
    adv = _advocate(rt, world)
    with pytest.raises(InvalidInput) as info:
        referrals.capture_referral(rt, adv.code, FriendInput("", "not-an-email", "x" * 300, "call me", False))
    assert set(info.value.errors) == {"name", "email", "company", "phone", "consent"}
    with pytest.raises(ReferralNotAccepted):
        _refer(rt, world, "ZZZZZZZZZ")
    with rt.uow(world.tenant.id) as uow:
        assert uow.referrals.list() == []  # bad input left nothing behind


def test_paused_program_takes_no_referrals(rt, world):
    adv = _advocate(rt, world)
    programs.set_program_status(rt, world.tenant.id, world.program.id, "paused", ADMIN)
    with pytest.raises(ReferralNotAccepted):
        _refer(rt, world, adv.code)


def test_full_journey_rewards_exactly_once(rt, world, clock):
    adv = _advocate(rt, world)
    ref = _refer(rt, world, adv.code)
    assert referrals.route_referral(rt, world.tenant.id, ref.id) == S.ROUTED
    assert referrals.route_referral(rt, world.tenant.id, ref.id) == S.ROUTED  # replayed job: no second lead
    assert len(world.crm.created_leads) == 1
    lead_id = world.crm.created_leads[0]
    opp_id = world.crm.convert(lead_id, amount=8000)
    clock.advance(minutes=5)
    report = sync.run_sync(rt, world.tenant.id, world.connection.id)
    assert report.status == "succeeded"
    got = referrals.get_referral(rt, world.tenant.id, ref.id)
    assert got.status == S.IN_PROGRESS and got.crm.opportunity_id == opp_id  # attribution followed conversion
    world.crm.touch("Opportunity", opp_id, StageName="Closed Won", IsWon=True, IsClosed=True)
    clock.advance(minutes=5)
    report = sync.run_sync(rt, world.tenant.id, world.connection.id)
    assert report.observe.qualified == 1 and report.observe.rewards_created == 2
    # The batch's events go out as one job (a mass update must not queue one job per referral).
    batched = [kw["events"] for name, kw in rt.jobs.jobs if name == "notify_many"]
    assert ("referral.qualified", ref.id) in [tuple(e) for events in batched for e in events]
    # The same changes observed again (overlap window, replayed push) create nothing new.
    again = qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id,
                                              [world.crm.touch("Opportunity", opp_id)])
    assert again.rewards_created == 0
    with rt.uow(world.tenant.id) as uow:
        found = uow.rewards.for_referral(ref.id)
    assert sorted((r.rule_key, r.status.value) for r in found) == [("adv", "approved"), ("friend", "approved")]
    adv_reward = next(r for r in found if r.rule_key == "adv")
    rewards.issue_reward(rt, world.tenant.id, adv_reward.id, ADMIN, "PAY-7")
    rewards.issue_reward(rt, world.tenant.id, adv_reward.id, ADMIN, "PAY-7")  # double click: same result
    assert referrals.get_referral(rt, world.tenant.id, ref.id).status == S.REWARDED
    # Write-back mirrored the referral and both rewards into the CRM.
    sync.run_sync(rt, world.tenant.id, world.connection.id)
    assert world.crm.mirrored[ref.id]["status"] == "rewarded"
    assert world.crm.mirrored[adv_reward.id]["status"] == "issued"
    summary = reports.summary(rt, world.tenant.id, reports.ReportFilter())
    row = summary["rows"][0]
    assert (row["captured"], row["routed"], row["qualified"], row["rewards_issued"]) == (1, 1, 1, 1)
    assert row["rewards_sum"] == {"USD": "100.00"} and row["qualification_rate"] == 1.0


def test_out_of_order_changes_never_overwrite_newer_state(rt, world):
    adv = _advocate(rt, world)
    ref = _refer(rt, world, adv.code)
    referrals.route_referral(rt, world.tenant.id, ref.id)
    opp_id = world.crm.convert(world.crm.created_leads[0])
    lead = world.crm.touch("Lead", world.crm.created_leads[0])
    won = world.crm.touch("Opportunity", opp_id, StageName="Closed Won", IsWon=True, IsClosed=True)
    lost = world.crm.touch("Opportunity", opp_id, StageName="Closed Lost", IsWon=False)
    old_won = won  # delivered late, after the newer "lost"
    stats = qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, [lead, lost])
    stats = qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, [old_won])
    assert stats.stale == 1
    assert referrals.get_referral(rt, world.tenant.id, ref.id).status == S.IN_PROGRESS


def test_concurrent_observers_create_one_reward(rt, world):
    adv = _advocate(rt, world)
    ref = _refer(rt, world, adv.code)
    referrals.route_referral(rt, world.tenant.id, ref.id)
    opp_id = world.crm.convert(world.crm.created_leads[0], amount=9000)
    lead = world.crm.touch("Lead", world.crm.created_leads[0])
    won = world.crm.touch("Opportunity", opp_id, StageName="Closed Won", IsWon=True, IsClosed=True)
    errors = []

    def worker():
        try:
            qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, [lead, won])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with rt.uow(world.tenant.id) as uow:
        assert len(uow.rewards.for_referral(ref.id)) == 2


def test_duplicate_existing_record_goes_to_review_then_attach(rt, world):
    world.crm.touch("Contact", "003EXISTING0000AAA", Email="fred@prospect.test", AccountId="001X")
    adv = _advocate(rt, world)
    ref = _refer(rt, world, adv.code)
    assert referrals.route_referral(rt, world.tenant.id, ref.id) == S.DUPLICATE
    got = referrals.get_referral(rt, world.tenant.id, ref.id)
    assert got.flags[0].reason.value == "duplicate_existing_record"
    with pytest.raises(InvalidInput):
        referrals.resolve_duplicate(rt, world.tenant.id, ref.id, accept=True, actor=ADMIN, comment="")
    referrals.resolve_duplicate(rt, world.tenant.id, ref.id, accept=True, actor=ADMIN, comment="new buying centre")
    assert referrals.route_referral(rt, world.tenant.id, ref.id, attach=True) == S.ROUTED
    got = referrals.get_referral(rt, world.tenant.id, ref.id)
    assert got.crm.contact_id == "003EXISTING0000AAA" and world.crm.created_leads == []


def test_same_friend_twice_is_one_referral_and_self_referral_is_blocked(rt, world):
    adv = _advocate(rt, world, email="ada@customer.test")
    first = _refer(rt, world, adv.code)
    rt.jobs.jobs.clear()
    second = _refer(rt, world, adv.code, email="Fred@Prospect.test")  # same person, normalised email
    assert first.status == S.CAPTURED and second.id == first.id  # the first referral stands
    assert rt.jobs.jobs == []  # no second routing, no second email to the advocate
    with rt.uow(world.tenant.id) as uow:
        assert len(uow.referrals.list(program_id=world.program.id)) == 1
        [attempt] = uow.audit.list(entity_type="referral", entity_id=first.id, limit=50)[:1]
    assert attempt.action == "repeat_submission" and attempt.reason == "the same person submitted again"
    selfie = _refer(rt, world, adv.code, email="ada@customer.test")
    assert selfie.status == S.REJECTED and "self_referral" in selfie.status_reason


def test_crm_outage_loses_nothing(rt, world):
    adv = _advocate(rt, world)
    ref = _refer(rt, world, adv.code)
    world.crm.fail_next.append(CrmError("503 SERVER_UNAVAILABLE", transient=True))
    with pytest.raises(CrmError):
        referrals.route_referral(rt, world.tenant.id, ref.id)
    assert referrals.get_referral(rt, world.tenant.id, ref.id).status == S.CAPTURED
    assert referrals.route_referral(rt, world.tenant.id, ref.id) == S.ROUTED


def test_idempotency_key_returns_the_first_referral(rt, world):
    adv = _advocate(rt, world)
    one = _refer(rt, world, adv.code, idempotency_key="k-1")
    two = _refer(rt, world, adv.code, idempotency_key="k-1")
    assert one.id == two.id


def test_holding_period_and_review(rt, world, clock):
    programs.update_program(rt, world.tenant.id, world.program.id, {"holding_days": 14,
                            "review_policy": {"amount_threshold": {"amount": "60", "currency": "USD"}}}, ADMIN)
    adv = _advocate(rt, world)
    ref = _refer(rt, world, adv.code)
    referrals.route_referral(rt, world.tenant.id, ref.id)
    opp = world.crm.convert(world.crm.created_leads[0], amount=6000)
    world.crm.touch("Opportunity", opp, StageName="Closed Won")
    sync.run_sync(rt, world.tenant.id, world.connection.id)
    with rt.uow(world.tenant.id) as uow:
        found = {r.rule_key: r for r in uow.rewards.for_referral(ref.id)}
    assert {r.status for r in found.values()} == {RewardStatus.PENDING_HOLD}
    with pytest.raises(InvalidTransition):
        rewards.approve_reward(rt, world.tenant.id, found["adv"].id, ADMIN)
    clock.advance(days=14)
    assert rewards.release_due_holds(rt, world.tenant.id) == 2
    with rt.uow(world.tenant.id) as uow:
        found = {r.rule_key: r for r in uow.rewards.for_referral(ref.id)}
    assert found["adv"].status == RewardStatus.PENDING_REVIEW  # 100 USD > 60 threshold
    assert found["friend"].status == RewardStatus.APPROVED
    result = rewards.decide_many(rt, world.tenant.id, [found["adv"].id, found["friend"].id], Actor.person("u2", "rev@acme.test"),
                                 approve=True, comment="checked")
    assert result.done == [found["adv"].id] and found["friend"].id in result.failed
    with rt.uow(world.tenant.id) as uow:
        actions = [e.action for e in uow.audit.list(entity_id=found["adv"].id)]
    assert "status:approved" in actions and "created" in actions


def test_enrolment_from_crm_is_idempotent_and_incremental(rt, world, clock):
    for i in range(5):
        world.crm.add_contact(f"Person {i}", f"p{i}@customer.test")
    first = enrolment.run_enrolment(rt, world.tenant.id, world.program.id)
    assert (first.enrolled, first.links_written) == (5, 5)
    again = enrolment.run_enrolment(rt, world.tenant.id, world.program.id)
    assert again.enrolled == 0 and again.links_written == 0
    world.crm.add_contact("Late", "late@customer.test")
    clock.advance(hours=1)
    third = enrolment.run_enrolment(rt, world.tenant.id, world.program.id)
    assert third.enrolled == 1 and third.links_written == 1
    with rt.uow(world.tenant.id) as uow:
        advocates = uow.advocates.list(program_id=world.program.id)
    assert len(advocates) == 6 and len({a.code for a in advocates}) == 6
    assert {link.link for link in world.crm.links.values()} == {f"https://refer.example.test/r/{a.code}" for a in advocates}


def test_program_validation_reports_all_fields(rt, world):
    bad = {**PROGRAM, "slug": "Bad Slug", "rule": "Opportunity.Stage ==", "reward_rules": [{"key": "x"}],
           "connection_id": world.connection.id}
    with pytest.raises(InvalidInput) as info:
        programs.create_program(rt, world.tenant.id, bad, ADMIN)
    assert {"rule", "reward_rules.0"} <= set(info.value.errors)
    wrong_kind = {**PROGRAM, "slug": "pd", "enrolment": {"kind": "pipedrive_persons"}, "connection_id": world.connection.id}
    with pytest.raises(InvalidInput) as info:
        programs.create_program(rt, world.tenant.id, wrong_kind, ADMIN)
    assert "enrolment.kind" in info.value.errors


def test_write_back_drains_the_queue_in_bounded_rounds(rt, world):
    from sqlalchemy import func, select

    from refstage.adapters.db import models as m

    advocates = [_advocate(rt, world, email=f"a{i}@customer.test") for i in range(3)]
    for i, adv in enumerate(advocates):
        ref = _refer(rt, world, adv.code, email=f"friend{i}@prospect.test")
        referrals.route_referral(rt, world.tenant.id, ref.id)
    with rt.uow(world.tenant.id) as uow:
        pending = uow.session.scalar(select(func.count()).select_from(m.PendingWriteRow))
    assert pending == 3
    assert sync.write_back_all(rt, world.tenant.id, world.connection, limit=2) == 3  # two rounds
    with rt.uow(world.tenant.id) as uow:
        assert uow.session.scalar(select(func.count()).select_from(m.PendingWriteRow)) == 0
    assert len(world.crm.mirrored) == 3
