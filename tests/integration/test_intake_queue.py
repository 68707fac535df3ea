"""The public form's intake through the real task queue (Huey on SQLite): the post schedules the drain,
the drain captures and queues routing, a lost drain is found by the sweep, one drainer at a time."""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest
from huey.exceptions import RetryTask

from refstage.domain.referrals import AdvocateSource, ReferralStatus
from refstage.jobs.queue import HueyQueue, make_huey
from refstage.services import enrolment, intake
from refstage.web.app import create_app
from tests.integration.conftest import ADMIN


@pytest.fixture
def stack(rt, world, settings):
    huey = make_huey(settings, name=f"intake{os.getpid()}")
    rt.jobs = queue = HueyQueue(huey, rt)
    app = create_app(runtime=rt, test_config={"TESTING": True, "REFSTAGE_MIN_FILL_SECONDS": 0})
    adv, _ = enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Ada", email="ada@customer.test",
                                      source=AdvocateSource.API, actor=ADMIN)
    yield app.test_client(), huey, queue, adv
    huey.storage.flush_all()


def _post(client, code: str, email: str):
    page = client.get(f"/r/{code}").get_data(as_text=True)
    fields = dict(re.findall(r'name="(csrf_token|form_ts)"[^>]*value="([^"]*)"', page))
    return client.post(f"/r/{code}", data={**fields, "name": "Fred", "email": email, "consent": "yes", "website": ""})


def _run_due(huey) -> list[str]:
    """What the consumer does, a few seconds ahead: run the queue; tasks not yet due wait in the schedule
    and are run when their time comes."""
    later = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=5)
    names = []
    for _ in range(5):
        while (task := huey.dequeue()) is not None:
            huey.execute(task, timestamp=later)
            names.append(task.name)
        for task in huey.read_schedule(later):
            huey.enqueue(task)
    return names


def test_post_schedules_the_drain_which_captures_and_routes(rt, world, stack):
    client, huey, _, adv = stack
    assert _post(client, adv.code, "fred@prospect.test").status_code == 303
    [queued] = [t for t in huey.pending() if t.name == "capture_intake"]
    assert queued.eta is not None and queued.eta > dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # a short delay
    assert _all(rt, world) == []  # nothing captured yet: the post only stored it
    ran = _run_due(huey)
    assert "capture_intake" in ran and "route_referral" in ran and "notify" in ran
    [ref] = _all(rt, world)
    assert ref.status == ReferralStatus.ROUTED and world.crm.created_leads


def _all(rt, world):
    with rt.uow(world.tenant.id) as uow:
        return uow.referrals.list(limit=10, offset=0)


def test_a_lost_drain_is_found_by_the_sweep(rt, world, stack, clock):
    client, huey, queue, adv = stack
    assert _post(client, adv.code, "fred@prospect.test").status_code == 303
    huey.storage.flush_all()  # the scheduled drain is lost (a crash of the queue's storage)
    assert queue.tasks["sweep_intake"].call_local() == 0  # too recent: its drain may still be on the way
    clock.advance(seconds=61)
    assert queue.tasks["sweep_intake"].call_local() == 1
    assert "capture_intake" in _run_due(huey)
    assert [r.friend_email for r in _all(rt, world)] == ["fred@prospect.test"]


def test_one_drainer_at_a_time(rt, world, stack):
    client, huey, queue, adv = stack
    assert _post(client, adv.code, "fred@prospect.test").status_code == 303
    from refstage.jobs.locks import connection_lock

    with connection_lock(huey, "intake-drain"):
        with pytest.raises(RetryTask):  # waits its turn instead of skipping: rows it would miss are not stranded
            queue.tasks["capture_intake"].call_local()
    assert queue.tasks["capture_intake"].call_local() == {"captured": 1}
    assert intake.pending(rt, dt.timedelta(0)) == []


def test_a_long_backlog_is_drained_in_bounded_jobs(rt, world, stack, monkeypatch):
    client, huey, queue, adv = stack
    import refstage.jobs.tasks as tasks

    monkeypatch.setattr(tasks, "INTAKE_DRAIN_ROWS", 2)
    for i in range(3):
        assert _post(client, adv.code, f"fred{i}@prospect.test").status_code == 303
    huey.storage.flush_all()
    assert queue.tasks["capture_intake"].call_local() == {"captured": 2}
    assert [t.name for t in huey.pending() if t.name == "capture_intake"] == ["capture_intake"]  # the rest: next job
    assert queue.tasks["capture_intake"].call_local() == {"captured": 1}
    assert len(_all(rt, world)) == 3
