"""(c) Crash: the worker process is killed with SIGKILL at random points during lead routing and syncs,
then restarted. The final state is the same as a clean run: every referral routed once, qualified once,
rewarded once, mirrored once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from refstage.jobs.queue import HueyQueue, make_huey
from refstage.services.enrolment import run_enrolment
from tests.salesforce.helpers import CLIENT_ID, CLIENT_SECRET, OrgAdmin, final_state, refer, setup_world

SETTINGS = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05, "bulk_read_threshold": 40,
            "bulk_write_threshold": 40, "page_size": 5}


def _worker_env(rt, emu) -> dict[str, str]:
    s = rt.settings
    env = {**os.environ, "DATABASE_URL": s.database_url, "SECRET_KEY": s.secret_key,
           "REFSTAGE_ENCRYPTION_KEYS": ",".join(s.encryption_keys), "REFSTAGE_INSTANCE_DIR": str(s.instance_dir),
           "REFSTAGE_QUEUE_PATH": str(s.queue_path), "REFSTAGE_ENV": "test", "REQUESTS_CA_BUNDLE": emu.ca_path,
           "REFSTAGE_SALESFORCE_CLIENT_ID": CLIENT_ID, "REFSTAGE_SALESFORCE_CLIENT_SECRET": CLIENT_SECRET,
           "REFSTAGE_ALLOW_LOOPBACK_CRM_HOSTS": "1"}  # the emulated org listens on loopback
    env.pop("REDIS_URL", None)
    return env


def _start(env):
    return subprocess.Popen([sys.executable, "-m", "refstage.cli", "worker", "--no-periodic", "-w", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _running_syncs(rt) -> set[str]:
    from sqlalchemy import select

    from refstage.adapters.db import models as m

    with rt.uow() as uow:
        return set(uow.session.scalars(select(m.SyncRunRow.id).where(m.SyncRunRow.status == "running")))


def _run_until_idle(huey, env, rt, timeout: float = 60) -> None:
    """Run a worker until nothing is queued and no sync it started is still running (a killed worker's run
    stays "running" for ever: those are left out). A slow machine can take longer than any fixed pause."""
    abandoned = _running_syncs(rt)
    worker = _start(env)
    try:
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            busy = huey.pending_count() or huey.scheduled_count() or (_running_syncs(rt) - abandoned)
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 1.5:  # nothing queued and in-flight work had time to finish
                return
            time.sleep(0.1)
        raise AssertionError("the worker did not drain the queue in time")
    finally:
        worker.terminate()
        worker.wait(10)


def _kill_repeatedly(env, times: int, rng: random.Random) -> int:
    kills = 0
    for _ in range(times):
        worker = _start(env)
        time.sleep(rng.uniform(0.3, 1.5))
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)  # no cleanup, no finally: a real crash
            kills += 1
        worker.wait(10)
    return kills


def test_worker_killed_at_random_points(rt, client, emu, size, record):
    n, kills_wanted = size(6, 25), size(4, 15)
    rng = random.Random(20261122)
    emu.control.seed(contacts=n + 5, seed=2)
    admin = OrgAdmin(emu)
    huey = make_huey(rt.settings)
    queue = HueyQueue(huey, rt)
    tenant_id, connection_id, program_id = setup_world(rt, client, SETTINGS)
    run_enrolment(rt, tenant_id, program_id)
    env = _worker_env(rt, emu)
    try:
        rt.jobs = queue  # captures enqueue their routing on the real queue
        refer(rt, tenant_id, program_id, n)
        kills = _kill_repeatedly(env, kills_wanted, rng)
        # After a crash, the scheduler's sweeps and syncs pick up what a killed worker had dequeued.
        queue.tasks["sweep_unrouted"].call_local()
        _run_until_idle(huey, env, rt)
        for lead in admin.query("SELECT Id FROM Lead WHERE Refstage_Referral_Id__c != null"):
            opp = admin.convert(lead["Id"])["opportunityId"]
            admin.update("Opportunity", [{"Id": opp, "StageName": "Closed Won", "Amount": 9000}])
        for _ in range(3):
            queue.tasks["sync_connection"](tenant_id, connection_id)
        kills += _kill_repeatedly(env, kills_wanted, rng)
        queue.tasks["sync_connection"](tenant_id, connection_id)
        _run_until_idle(huey, env, rt)
        queue.tasks["sync_connection"](tenant_id, connection_id)  # the next scheduled cycle
        _run_until_idle(huey, env, rt)
    finally:
        huey.storage.flush_all()
    state = final_state(rt, admin, tenant_id, program_id)
    record.update(referrals=n, sigkills=kills, final_state=state)
    assert kills > 0
    assert state["referral_statuses"] == ["qualified"] * n
    assert state["org_referral_leads"] == n
    assert state["rewards"] == 2 * n and state["rewards_per_referral"] == [2]
    assert state["org_referrals"] == n and state["org_rewards"] == 2 * n and state["pending_writes"] == 0
