"""Our process's CPU for observe_crm_changes alone (the set-based qualification's A/B harness).

    python -m bench.observe_cpu 20000            # CPU seconds and per-change cost, SQLite
    python -m bench.observe_cpu 20000 --profile  # plus the top of a cProfile, by own time
    DATABASE_URL=postgresql+psycopg://... python -m bench.observe_cpu 20000   # on PostgreSQL

CPU time (time.process_time) is what we compare: unlike wall time it hardly moves when other
processes share the machine. The load average is printed beside every figure."""

from __future__ import annotations

import cProfile
import datetime as dt
import os
import pstats
import sys
import tempfile
import time
import uuid

from bench.fixtures import linked_referrals, tenant_with_connection
from refstage.adapters.db.database import make_engine
from refstage.adapters.db.migrate import upgrade_engine
from refstage.services.ports import ChangedRecord


def main(n: int, profile: bool = False) -> dict:
    from dataclasses import replace

    from refstage.bootstrap import build_runtime
    from refstage.config import load_settings
    from refstage.services.qualification import observe_crm_changes
    from refstage.services.runtime import RecordingQueue

    tmp = tempfile.mkdtemp()
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
    settings = replace(load_settings({"REFSTAGE_INSTANCE_DIR": tmp}), database_url=url)
    engine = make_engine(settings.database_url)
    upgrade_engine(engine)
    rt = build_runtime(settings, engine=engine, queue=RecordingQueue())
    tenant, conn, program = tenant_with_connection(rt)
    prefix = uuid.uuid4().hex[:6]  # a shared PostgreSQL database keeps earlier runs' rows
    opps = [f"006{prefix}{i:09d}" for i in range(n)]
    linked_referrals(rt, tenant.id, conn.id, program.id, opps)
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    records = [ChangedRecord("Opportunity", o, {"StageName": "Closed Won", "Amount": 9000}, t0 + dt.timedelta(milliseconds=i))
               for i, o in enumerate(opps)]
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall: the machine is shared
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    stats = observe_crm_changes(rt, tenant.id, conn.id, records)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    # The same changes again: a replay must change nothing (and should cost little).
    cpu1 = time.process_time()
    again = observe_crm_changes(rt, tenant.id, conn.id, records)
    replay_cpu = time.process_time() - cpu1
    result = {"changes": n, "cpu_s": round(cpu, 3), "wall_s": round(wall, 3), "cpu_us_per_change": round(cpu / n * 1e6, 1),
              "replay_cpu_s": round(replay_cpu, 3), "qualified": stats.qualified, "rewards": stats.rewards_created,
              "replay_rewards": again.rewards_created, "load_avg": os.getloadavg()[0],
              "database": engine.dialect.name}
    print(result)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 10000, "--profile" in sys.argv)
