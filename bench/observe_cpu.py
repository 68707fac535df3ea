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


PHASES = [
    ("refstage.adapters.db.repositories", "CrmRecordRepository", "load"),
    ("refstage.adapters.db.repositories", "CrmRecordRepository", "write"),
    ("refstage.adapters.db.repositories", "ReferralRepository", "linked_ids"),
    ("refstage.adapters.db.repositories", "ReferralRepository", "get_many"),
    ("refstage.adapters.db.repositories", "ReferralRepository", "save_many"),
    ("refstage.adapters.db.repositories", "RewardRepository", "for_referrals"),
    ("refstage.adapters.db.repositories", "RewardRepository", "add_many"),
    ("refstage.adapters.db.repositories", "AuditRepository", "append"),
    ("refstage.adapters.db.unit_of_work", "UnitOfWork", "record"),
    ("refstage.adapters.db.unit_of_work", "UnitOfWork", "_flush_buffers"),
    ("refstage.adapters.db.unit_of_work", "UnitOfWork", "commit"),
    ("refstage.domain.qualification", None, "observe"),
    ("refstage.domain.rules", "Rule", "evaluate"),
    ("refstage.services.qualification", None, "_store_records"),
    ("refstage.services.qualification", None, "linked_records"),
    ("refstage.services.qualification", "_RecordCache", "snapshot"),
]


def _time_phases() -> dict[str, float]:
    """Wrap the chunk's steps with CPU-time counters (inclusive; a nested step counts in its caller too)."""
    import functools
    import importlib

    spent: dict[str, float] = {}
    for module_name, owner_name, attr in PHASES:
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name) if owner_name else module
        original = getattr(owner, attr)
        label = f"{owner_name or module_name.rsplit('.', 1)[1]}.{attr}"

        def wrapped(*args, __original=original, __label=label, **kwargs):
            t = time.process_time()
            try:
                return __original(*args, **kwargs)
            finally:
                spent[__label] = spent.get(__label, 0.0) + time.process_time() - t

        setattr(owner, attr, functools.wraps(original)(wrapped))
    return spent


def main(n: int, profile: bool = False, phases: bool = False) -> dict:
    from dataclasses import replace

    from refstage.bootstrap import build_runtime
    from refstage.config import load_settings
    from refstage.services.qualification import observe_crm_changes
    from refstage.services.runtime import RecordingQueue

    spent = _time_phases() if phases else None
    tmp = tempfile.mkdtemp()
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
    settings = replace(load_settings({"REFSTAGE_INSTANCE_DIR": tmp}), database_url=url)
    engine = make_engine(settings.database_url)
    upgrade_engine(engine)
    if engine.dialect.name == "postgresql":
        # A database of one's own (DATABASE_URL), emptied first: the fixtures' advocate codes are unique site-wide.
        from refstage.adapters.db import models as m

        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE " + ", ".join(t.name for t in m.Base.metadata.sorted_tables) + " CASCADE")
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
    if spent is not None:
        for label, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(f"  {label:40s} {seconds:7.3f} s CPU (inclusive, first run + replay)")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 10000, "--profile" in sys.argv, "--phases" in sys.argv)
