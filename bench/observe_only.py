"""Measure observe_crm_changes alone: N changed opportunities, each linked to a referral."""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time

from bench.fixtures import linked_referrals, tenant_with_connection
from refstage.adapters.db.database import make_engine
from refstage.adapters.db.migrate import upgrade_engine
from refstage.services.ports import ChangedRecord


def main(n: int) -> None:
    from dataclasses import replace

    from refstage.bootstrap import build_runtime
    from refstage.config import load_settings
    from refstage.services.qualification import observe_crm_changes
    from refstage.services.runtime import RecordingQueue

    tmp = tempfile.mkdtemp()
    settings = replace(load_settings({"REFSTAGE_INSTANCE_DIR": tmp}), database_url=f"sqlite:///{tmp}/bench.db")
    engine = make_engine(settings.database_url)
    upgrade_engine(engine)
    rt = build_runtime(settings, engine=engine, queue=RecordingQueue())
    tenant, conn, program = tenant_with_connection(rt)
    opps = [f"006{i:015d}" for i in range(n)]
    linked_referrals(rt, tenant.id, conn.id, program.id, opps)
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    records = [ChangedRecord("Opportunity", o, {"StageName": "Closed Won", "Amount": 9000}, t0 + dt.timedelta(milliseconds=i))
               for i, o in enumerate(opps)]
    start = time.perf_counter()
    stats = observe_crm_changes(rt, tenant.id, conn.id, records)
    elapsed = time.perf_counter() - start
    print(f"observed {n} changes in {elapsed:.2f}s ({n / elapsed:.0f}/s): qualified={stats.qualified} rewards={stats.rewards_created}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10000)
