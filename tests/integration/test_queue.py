"""The task queue for real: Huey on SQLite (embedded default) and on Redis, with a worker process."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import uuid

import pytest
import redis as redis_lib

from refstage.domain.referrals import AdvocateSource, ReferralStatus
from refstage.domain.rewards import RewardStatus
from refstage.jobs.queue import HueyQueue, backoff_delay, make_huey
from refstage.services import enrolment, programs, referrals, sync
from refstage.services.ports import CrmError
from tests.conftest import TEST_REDIS_URL
from tests.integration.conftest import ADMIN

REDIS_URL = TEST_REDIS_URL or "redis://127.0.0.1:6379/15"


def _done(huey) -> None:
    huey.storage.flush_all()
    pool = getattr(getattr(huey.storage, "conn", None), "connection_pool", None)
    if pool is not None:
        pool.disconnect()


def _redis_available() -> bool:
    try:
        with redis_lib.Redis.from_url(REDIS_URL, socket_connect_timeout=1) as client:
            client.ping()
        return True
    except redis_lib.RedisError:
        if TEST_REDIS_URL:  # CI named a Redis: it must be there
            raise
        return False


@pytest.fixture(params=["sqlite", "redis"])
def queue_settings(request, settings):
    if request.param == "redis":
        if not _redis_available():
            pytest.skip("no Redis at " + REDIS_URL)
        # A queue name of its own: other test runs may share this Redis database.
        return dataclasses.replace(settings, redis_url=REDIS_URL, queue_name=f"refstage-test-{uuid.uuid4().hex[:8]}")
    return settings


def _referral(rt, world):
    adv, _ = enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Ada", email="ada@customer.test",
                                      source=AdvocateSource.API, actor=ADMIN)
    return referrals.capture_referral(rt, adv.code, referrals.FriendInput("Fred", "fred@prospect.test", None, None, True))


def test_transient_failure_is_retried_with_backoff(rt, world, queue_settings):
    huey = make_huey(queue_settings, name=f"t{os.getpid()}")
    rt.jobs = HueyQueue(huey, rt)
    ref = _referral(rt, world)
    world.crm.fail_next.append(CrmError("503 SERVER_UNAVAILABLE", transient=True))
    task = huey.dequeue()
    while task is not None and task.name != "route_referral":
        task = huey.dequeue()  # the notify task of the capture
    assert task is not None
    huey.execute(task)  # fails, schedules a retry
    scheduled = huey.scheduled()
    assert [t.name for t in scheduled] == ["route_referral"] and scheduled[0].retries == task.retries
    assert referrals.get_referral(rt, world.tenant.id, ref.id).status == ReferralStatus.CAPTURED
    import datetime as dt

    due = scheduled[0].eta + dt.timedelta(seconds=1)
    assert scheduled[0].eta - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) >= dt.timedelta(seconds=2)  # backed off, not immediate
    (retry,) = huey.read_schedule(due)
    huey.execute(retry, timestamp=due)
    assert referrals.get_referral(rt, world.tenant.id, ref.id).status == ReferralStatus.ROUTED
    _done(huey)


def test_backoff_grows_and_is_jittered():
    delays = [backoff_delay(n) for n in range(8)]
    assert all(2.5 <= d <= 900 for d in delays)
    assert max(backoff_delay(7) for _ in range(50)) > max(backoff_delay(0) for _ in range(50))


def test_lock_per_connection(rt, world, queue_settings):
    huey = make_huey(queue_settings, name=f"lock{os.getpid()}")
    queue = HueyQueue(huey, rt)
    from refstage.jobs.locks import connection_lock

    with connection_lock(huey, f"sync:{world.connection.id}"):
        assert queue.tasks["sync_connection"].call_local(world.tenant.id, world.connection.id) is None  # skipped
    result = queue.tasks["sync_connection"].call_local(world.tenant.id, world.connection.id)
    assert result is not None and "pulled" in result
    # A holder killed mid-sync (SIGKILL: no finally) leaves its lock; once expired it is taken over.
    from refstage.jobs.locks import plant

    plant(huey, f"sync:{world.connection.id}", owner="dead", expires_in=-1)
    assert queue.tasks["sync_connection"].call_local(world.tenant.id, world.connection.id) is not None
    plant(huey, f"sync:{world.connection.id}", owner="alive", expires_in=60)
    assert queue.tasks["sync_connection"].call_local(world.tenant.id, world.connection.id) is None
    _done(huey)


def test_worker_process_runs_queued_work(rt, world, queue_settings, clock, tmp_path):
    """`refstage worker` in its own process picks up a job from the queue and changes the database."""
    programs.update_program(rt, world.tenant.id, world.program.id, {"holding_days": 1}, ADMIN)
    ref = _referral(rt, world)
    referrals.route_referral(rt, world.tenant.id, ref.id)
    opp = world.crm.convert(world.crm.created_leads[0], amount=9000)
    world.crm.touch("Opportunity", opp, StageName="Closed Won")
    clock.advance(days=-2)  # qualified two days ago: the 1-day hold is over by real time
    sync.run_sync(rt, world.tenant.id, world.connection.id)
    with rt.uow(world.tenant.id) as uow:
        assert {r.status for r in uow.rewards.for_referral(ref.id)} == {RewardStatus.PENDING_HOLD}

    s = queue_settings
    env = {**os.environ, "DATABASE_URL": s.database_url, "SECRET_KEY": s.secret_key,
           "REFSTAGE_ENCRYPTION_KEYS": ",".join(s.encryption_keys), "REFSTAGE_INSTANCE_DIR": str(tmp_path),
           "REFSTAGE_QUEUE_PATH": str(s.queue_path), "REFSTAGE_ENV": "test", "REFSTAGE_QUEUE_NAME": s.queue_name}
    env.pop("REDIS_URL", None)
    if s.redis_url:
        env["REDIS_URL"] = s.redis_url
    huey = make_huey(s)
    HueyQueue(huey, rt).tasks["release_holds"]()  # enqueue only: the worker process runs it
    worker = subprocess.Popen([sys.executable, "-m", "refstage.cli", "worker", "--no-periodic", "-w", "1"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with rt.uow(world.tenant.id) as uow:
                statuses = {r.status for r in uow.rewards.for_referral(ref.id)}
            if statuses == {RewardStatus.APPROVED}:
                break
            time.sleep(0.2)
        assert statuses == {RewardStatus.APPROVED}, worker.stdout.read1().decode() if worker.poll() is not None else statuses
    finally:
        worker.terminate()
        worker.wait(10)
        worker.stdout.close()
        _done(huey)


def test_sqlite_queue_retries_a_locked_first_open(tmp_path, monkeypatch):
    """Processes starting together race to switch a new queue file to WAL; SQLite answers "database is
    locked" at once rather than waiting. make_huey tries again instead of failing the process's boot."""
    import sqlite3
    from types import SimpleNamespace

    from refstage.jobs import queue

    real, calls = queue.SqliteHuey, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(queue, "SqliteHuey", flaky)
    monkeypatch.setattr(queue.time, "sleep", lambda s: None)
    huey = queue.make_huey(SimpleNamespace(redis_url=None, queue_name="t", queue_path=tmp_path / "q.db"))
    assert len(calls) == 3 and huey is not None


def test_an_idle_worker_polls_the_queue_at_least_every_second(settings, tmp_path, monkeypatch):
    """On the SQLite queue an idle worker polls with a growing gap; capped at a second (Huey's default cap is
    10 s), a push arriving after a quiet spell is picked up within about a second."""
    from click.testing import CliRunner

    import huey.consumer
    from refstage.jobs import cli

    made = {}

    class Recorder:
        def __init__(self, huey, **kwargs):
            made.update(kwargs)

        def run(self):
            made["ran"] = True

    monkeypatch.setattr(huey.consumer, "Consumer", Recorder)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("REFSTAGE_ENCRYPTION_KEYS", ",".join(settings.encryption_keys))
    monkeypatch.setenv("REFSTAGE_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("REFSTAGE_QUEUE_PATH", str(tmp_path / "queue.db"))
    monkeypatch.setenv("REFSTAGE_ENV", "test")
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = CliRunner().invoke(cli.worker, ["-w", "1", "--no-periodic"])
    assert result.exit_code == 0, result.output
    assert made["ran"] and made["max_delay"] <= 1.0 and made["workers"] == 1 and made["periodic"] is False


def test_sync_command_reports_an_unreachable_crm_without_a_traceback(rt, world, monkeypatch):
    """`refstage sync` runs in the admin's terminal: a transient CRM failure (which the worker would retry) is
    one line per connection and exit status 1, and the other connections still sync."""
    from click.testing import CliRunner

    import refstage.bootstrap
    import refstage.services.sync
    from refstage.jobs import cli

    attempted = []

    def unreachable(_rt, _tenant_id, connection_id, **_kw):
        attempted.append(connection_id)
        raise CrmError("Salesforce could not be reached: certificate verify failed", transient=True)

    monkeypatch.setattr(refstage.bootstrap, "build_runtime", lambda **_kw: rt)
    monkeypatch.setattr(refstage.services.sync, "run_sync", unreachable)
    with rt.uow() as uow:
        expected = [c for _t, c in uow.directory.active_connections()]
    result = CliRunner().invoke(cli.sync, [])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "could not be reached" in result.output and "Traceback" not in result.output
    assert attempted == expected and expected
