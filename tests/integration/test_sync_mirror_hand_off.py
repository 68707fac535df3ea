"""A sync mirrors what its observation queued from memory (services.sync._mirror_observed) and settles exactly
those queue rows: nothing it just wrote is read back, a row queued again meanwhile survives, a refused write is
recorded and retried, and an observation that stops part-way leaves its rows queued."""

from sqlalchemy import select

from refstage.adapters.db import models as m
from refstage.adapters.db import repositories
from refstage.domain.referrals import ReferralStatus
from refstage.services import referrals, sync
from refstage.services.ports import ChangeBatch, CrmError, WriteResult
from tests.integration.test_services import _advocate, _refer


def _open_deal(rt, world, clock, email="fred@prospect.test"):
    """A routed referral whose lead was converted to an open deal, as a sync has seen it: (referral, deal id)."""
    adv = _advocate(rt, world, email=f"ada.{email.split('@')[0]}@customer.test")
    ref = _refer(rt, world, adv.code, email=email)
    referrals.route_referral(rt, world.tenant.id, ref.id)
    opp_id = world.crm.convert(world.crm.created_leads[-1], amount=8000)
    clock.advance(minutes=5)
    assert sync.run_sync(rt, world.tenant.id, world.connection.id).status == "succeeded"
    return ref, opp_id


def _win(world, clock, opp_id):
    world.crm.touch("Opportunity", opp_id, StageName="Closed Won", IsWon=True, IsClosed=True)
    clock.advance(minutes=5)


def _won_deal(rt, world, clock):
    ref, opp_id = _open_deal(rt, world, clock)
    _win(world, clock, opp_id)
    return ref


def _queue(rt, world):
    """{(entity type, entity id): (row id, attempts, last error)} of the write-back queue."""
    P = m.PendingWriteRow
    with rt.uow(world.tenant.id) as uow:
        rows = uow.session.execute(select(P.entity_type, P.entity_id, P.id, P.attempts, P.last_error)).all()
    return {(t, e): (i, attempts, error) for t, e, i, attempts, error in rows}


def test_what_a_sync_observes_is_mirrored_without_reading_it_back(rt, world, clock, monkeypatch):
    ref = _won_deal(rt, world, clock)
    assert _queue(rt, world) == {}

    def no_reads(*args, **kwargs):
        raise AssertionError("the sync read back an entity it had just written")

    monkeypatch.setattr(repositories.RewardRepository, "get_many", no_reads)
    monkeypatch.setattr(repositories.PendingWriteRepository, "queued_with_parents",
                        lambda self, connection_id, limit: iter(()))  # the queue as the write-back would find it: empty
    report = sync.run_sync(rt, world.tenant.id, world.connection.id)
    assert report.status == "succeeded", report.error
    assert report.observe.rewards_created == 2 and report.written == 3 and report.write_failures == 0
    with rt.uow(world.tenant.id) as uow:
        rewards = uow.rewards.for_referral(ref.id)
    assert world.crm.mirrored[ref.id] == {"status": ReferralStatus.QUALIFIED.value}
    assert {r.id for r in rewards} <= set(world.crm.mirrored)
    assert _queue(rt, world) == {}  # exactly the rows the observation wrote were settled


def test_an_entity_queued_again_during_the_mirror_keeps_its_new_row(rt, world, clock, monkeypatch):
    ref = _won_deal(rt, world, clock)
    real_mirror = world.crm.mirror
    requeued = []

    def mirror(referral_rows, rewards, record_states=None):
        result = real_mirror(referral_rows, rewards, record_states)
        if rewards and not requeued:
            # Someone approves or edits this reward while its earlier state is on its way to the CRM.
            with rt.uow(world.tenant.id) as uow:
                uow.mark_stale(world.connection.id, "reward", rewards[0].id, clock())
                uow.commit()
            requeued.append(rewards[0].id)
        return result

    monkeypatch.setattr(world.crm, "mirror", mirror)
    observed = []
    real_write_back = sync.write_back_all

    def write_back_all(*args, **kwargs):
        observed.append(dict(_queue(rt, world)))  # the queue as the sync leaves it to the write-back
        return real_write_back(*args, **kwargs)

    monkeypatch.setattr(sync, "write_back_all", write_back_all)
    report = sync.run_sync(rt, world.tenant.id, world.connection.id)
    assert report.status == "succeeded", report.error
    assert list(observed[0]) == [("reward", requeued[0])]  # the newer row survived the settling
    assert _queue(rt, world) == {}  # and the write-back after it wrote that reward again
    assert ref.id in world.crm.mirrored


def test_a_refused_write_is_recorded_on_its_row_and_stays_queued(rt, world, clock, monkeypatch):
    _won_deal(rt, world, clock)
    real_mirror = world.crm.mirror

    def mirror(referral_rows, rewards, record_states=None):
        result = real_mirror(referral_rows, rewards, record_states)
        refused = [r.id for r in rewards if r.rule_key == "friend"]
        return WriteResult(ok=[i for i in result.ok if i not in refused],
                           failed={i: "FIELD_CUSTOM_VALIDATION_EXCEPTION: no payouts this week" for i in refused},
                           api_calls=result.api_calls)

    monkeypatch.setattr(world.crm, "mirror", mirror)
    report = sync.run_sync(rt, world.tenant.id, world.connection.id)
    queue = _queue(rt, world)
    assert [t for t, _ in queue] == ["reward"]
    (_, reward_id), (_, attempts, error) = next(iter(queue.items()))
    assert attempts >= 1 and error.startswith("FIELD_CUSTOM_VALIDATION_EXCEPTION")
    assert report.write_failures >= 1
    with rt.uow(world.tenant.id) as uow:
        logged = uow.pending_writes.write_log(world.connection.id, 10)
    assert any(entry["entity_id"] == reward_id and entry["status"] == "failed" for entry in logged)


def test_an_observation_stopped_part_way_leaves_its_rows_queued(rt, world, clock, monkeypatch):
    first, first_opp = _open_deal(rt, world, clock)
    second, second_opp = _open_deal(rt, world, clock, email="gina@prospect.test")
    _win(world, clock, first_opp)
    _win(world, clock, second_opp)
    real_iter = world.crm.iter_changes

    def iter_changes(fields, cursor):
        for batch in real_iter(fields, cursor):
            # The same changes in two pages, the CRM failing before the second.
            opps = [r for r in batch.records if r.object == "Opportunity"]
            others = [r for r in batch.records if r.object != "Opportunity"]
            yield ChangeBatch(others + opps[:1], {}, api_calls=1)
            raise CrmError("the org went away", transient=False)

    monkeypatch.setattr(world.crm, "iter_changes", iter_changes)
    report = sync.run_sync(rt, world.tenant.id, world.connection.id)
    assert report.status == "failed" and report.observe.qualified == 1
    queued = _queue(rt, world)
    assert {t for t, _ in queued} == {"referral", "reward"} and len(queued) == 3  # nothing settled, nothing lost
    monkeypatch.setattr(world.crm, "iter_changes", real_iter)
    clock.advance(minutes=5)
    again = sync.run_sync(rt, world.tenant.id, world.connection.id)
    assert again.status == "succeeded", again.error
    assert _queue(rt, world) == {}
    assert world.crm.mirrored[first.id] == world.crm.mirrored[second.id] == {"status": ReferralStatus.QUALIFIED.value}
