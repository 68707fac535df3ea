"""Scale-out simulation for docs/scaling.md: many connected orgs synced by several worker processes.

N tenants, each connected (through the real OAuth pages) to an emulated org, each with a live program;
the scheduler's work — one incremental sync per connection — is queued on Redis and drained by W worker
processes sharing PostgreSQL. Measures quiet-sync throughput (syncs/s), API calls per quiet sync and
CPU per sync, the figures the capacity arithmetic in docs/scaling.md rests on.

Run: `python -m bench.many_orgs [N] [W...]` (needs PostgreSQL at 127.0.0.1:5432 and Redis at :6379)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import psycopg

from bench.backend_side import connect, env_for, runtime
from bench.common import instance_dir
from bench.fixtures import PROGRAM
from bench.salesforce_org import emulated_org

PG = "postgresql://postgres@127.0.0.1:5432"


def main(n: int, worker_counts: list[int]) -> dict:
    db = f"refstage_scale_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    results: dict = {"connections": n, "runs": []}
    try:
        with instance_dir("orgs") as inst, emulated_org(inst) as org:
            org.control("POST", "/seed", json={"opportunities": 20_000, "accounts": 500, "seed": 3})
            queue_name = f"refstage-scale-{uuid.uuid4().hex[:6]}"
            env = env_for(inst, org) | {"DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}",
                                        "REDIS_URL": "redis://127.0.0.1:6379/14", "REFSTAGE_QUEUE_NAME": queue_name}
            rt = runtime(env)
            from refstage.jobs.queue import HueyQueue, make_huey

            huey = make_huey(rt.settings)
            tasks = HueyQueue(huey, rt).tasks
            t0 = time.perf_counter()
            pairs = []
            for i in range(n):
                tenant_id, connection_id, _ = connect(rt, org, {**PROGRAM, "slug": f"p{i}"}, {"bulk_poll_seconds": 0.2})
                pairs.append((tenant_id, connection_id))
            results["connect_s"] = time.perf_counter() - t0
            for tenant_id, connection_id in pairs:  # first syncs set the watermarks (not measured)
                tasks["sync_connection"](tenant_id, connection_id)
            _drain(rt, env, 2, n)
            for workers in worker_counts:
                org.control("POST", "/usage", json={"reset": True})
                for tenant_id, connection_id in pairs:
                    tasks["sync_connection"](tenant_id, connection_id)
                cpu0 = _children_cpu()
                elapsed = _drain(rt, env, workers, n)
                calls = org.api_used()
                results["runs"].append({"worker_processes": workers, "threads_each": 2, "syncs": n, "seconds": elapsed,
                                        "syncs_per_s": n / elapsed, "api_calls_per_sync": calls / n,
                                        "worker_cpu_s_per_sync": (_children_cpu() - cpu0) / n})
            huey.storage.flush_all()
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return results


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _drain(rt, env, workers: int, expected: int) -> float:
    """Run `workers` worker processes until `expected` sync runs have finished; return the seconds taken."""
    import datetime as dt

    from sqlalchemy import func, select

    from refstage.adapters.db import models as m

    since = dt.datetime.now(dt.timezone.utc)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "refstage.cli", "worker", "-w", "2", "--no-periodic"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    try:
        while True:
            with rt.session_factory() as s:
                done = s.scalar(select(func.count()).select_from(m.SyncRunRow).where(
                    m.SyncRunRow.started_at >= since, m.SyncRunRow.finished_at.is_not(None)))
            if done >= expected:
                return time.perf_counter() - start
            if time.perf_counter() - start > 600:
                raise RuntimeError(f"only {done} of {expected} syncs finished in 600 s")
            time.sleep(0.1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(15)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    counts = [int(x) for x in sys.argv[2:]] or [1, 2, 4]
    print(json.dumps(main(n, counts), indent=1))
