"""Where the time of benchmark (a)'s sync goes: `python -m bench.timeline [OPPORTUNITIES]` (default 1,000,000;
10 % linked and changed) runs the big change set without the naive side, with the measured sync's phases
timed, and prints them. A development tool for the sync's wall time, not a benchmark of its own: the figures
in docs/benchmarks.md come from `refstage bench`.

`install(path)` is what the measured process runs (bench/measure.py, when REFSTAGE_BENCH_TIMELINE names a
file): it wraps the sync's phases and the Bulk API calls that bound them, and writes the events there at exit."""

from __future__ import annotations

import atexit
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ENV = "REFSTAGE_BENCH_TIMELINE"


def install(path: str) -> None:
    from refstage.adapters.crm.salesforce import bulk
    from refstage.adapters.crm.salesforce.gateway import SalesforceGateway
    from refstage.services import sync

    started, cpu_started = time.perf_counter(), time.process_time()
    events: list[list] = []

    def event(*what) -> None:  # [wall s, this process's CPU s, what...]
        events.append([round(time.perf_counter() - started, 3), round(time.process_time() - cpu_started, 3), *what])

    def timed(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            event(f"{label} start")
            try:
                return original(*args, **kwargs)
            finally:
                event(f"{label} end")

        setattr(owner, name, wrapper)

    tallies: dict[str, list[float]] = {}

    def tallied(owner, name: str) -> None:
        # Called thousands of times: summed (calls, wall, CPU), not one event per call.
        original = getattr(owner, name)
        tally = tallies.setdefault(f"{getattr(owner, '__name__', owner)}.{name}", [0, 0.0, 0.0])

        def wrapper(*args, **kwargs):
            wall0, cpu0 = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                tally[0] += 1
                tally[1] += time.perf_counter() - wall0
                tally[2] += time.process_time() - cpu0

        setattr(owner, name, wrapper)

    from refstage.adapters.db import repositories, unit_of_work
    from refstage.domain import qualification as domain_qualification
    from refstage.services import qualification as service_qualification

    for owner, name in ((service_qualification, "_observe_chunk"), (service_qualification, "_store_records"),
                        (domain_qualification, "observe"), (unit_of_work.UnitOfWork, "commit"),
                        (unit_of_work.UnitOfWork, "_flush_buffers"), (unit_of_work.UnitOfWork, "flush_pending_rewards"),
                        (repositories.ReferralRepository, "get_many"), (repositories.ReferralRepository, "save_many"),
                        (repositories.RewardRepository, "get_many"), (repositories.RewardRepository, "for_referrals"),
                        (repositories.AuditRepository, "append_rows"), (repositories.CrmRecordRepository, "load"),
                        (repositories.CrmRecordRepository, "live_fields"), (repositories.AdvocateRepository, "get_many"),
                        (bulk.CsvSpool, "add_values")):
        tallied(owner, name)

    timed(sync, "observe_crm_changes", "observe")
    timed(sync, "write_back_all", "write-back")
    timed(SalesforceGateway, "mirror_all", "mirror_all")

    submit = bulk.BulkApi.submit

    def submitted(self, sobject, *args, **kwargs):
        job = submit(self, sobject, *args, **kwargs)
        event(f"submitted {sobject} job", job)
        return job

    bulk.BulkApi.submit = submitted
    wait = bulk._wait

    def waited(client, job_id, is_query, poll, sleep=time.sleep, expected=None, running_for=0.0):
        event("waiting for " + ("query" if is_query else "ingest") + " job", job_id)
        info = wait(client, job_id, is_query, poll, sleep, expected, running_for)
        event("job done", job_id, {"processing_ms": info.get("totalProcessingTime"),
                                   "rows": info.get("numberRecordsProcessed")})
        return info

    bulk._wait = waited

    import requests

    send = requests.Session.request

    def sent(self, method, url, *args, **kwargs):  # every HTTP call to the org, in order
        event("call", method, url.split("/services/", 1)[-1].split("?", 1)[0])
        return send(self, method, url, *args, **kwargs)

    requests.Session.request = sent
    import gc

    collections: dict[int, list[float]] = {}  # generation: [collections, wall s, objects collected]
    gc_started: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started[:] = [time.perf_counter()]
        elif gc_started:
            tally = collections.setdefault(info["generation"], [0, 0.0, 0])
            tally[0] += 1
            tally[1] += time.perf_counter() - gc_started[0]
            tally[2] += info["collected"]

    gc.callbacks.append(on_gc)

    def write() -> None:
        for generation, (count, wall, collected) in sorted(collections.items()):
            tallies[f"garbage collection, generation {generation}"] = [count, wall, wall]
        for label, (calls, wall, cpu) in tallies.items():
            events.append([0.0, 0.0, "tally", label, calls, round(wall, 3), round(cpu, 3)])
        Path(path).write_text(json.dumps(events))

    atexit.register(write)


def summary(events: list[list]) -> list[str]:
    """The events with the wall and CPU time since the one before, and each phase's totals."""
    lines, previous, previous_cpu = [], 0.0, 0.0
    began: dict[str, tuple[float, float]] = {}
    totals: dict[str, list[float]] = {}
    for at, cpu, what, *detail in events:
        if what == "tally":
            label, calls, wall, tally_cpu = detail
            lines.append(f"{label}: {calls} calls, {wall:.2f} s wall, {tally_cpu:.2f} s CPU")
            continue
        lines.append(f"{at:9.2f} s  (+{at - previous:6.2f}, CPU +{cpu - previous_cpu:6.2f})  {what}  "
                     f"{' '.join(map(str, detail))}".rstrip())
        previous, previous_cpu = at, cpu
        phase, _, edge = what.rpartition(" ")
        if edge == "start":
            began[phase] = (at, cpu)
        elif edge == "end" and phase in began:
            wall0, cpu0 = began.pop(phase)
            total = totals.setdefault(phase, [0.0, 0.0])
            total[0] += at - wall0
            total[1] += cpu - cpu0
    for phase, (wall, cpu) in totals.items():
        lines.append(f"{phase} in all: {wall:.2f} s wall, {cpu:.2f} s CPU")
    return lines


def main(argv: list[str]) -> int:
    from bench.sync_big import big_change_set

    total = int(argv[0].replace(",", "").replace("_", "")) if argv else 1_000_000
    with tempfile.TemporaryDirectory(prefix="refstage-timeline-") as tmp:
        path = Path(tmp) / "events.json"
        result = big_change_set(total, total // 10, naive=False, timeline=str(path))
        events = json.loads(path.read_text())
    print("\n".join(summary(events)))
    print(json.dumps({k: result[k] for k in ("seed_seconds", "wall_s", "cpu_s", "emulator_cpu_s", "api_calls", "peak_rss_mb")}, indent=1))
    from bench.common import machine

    print(json.dumps(machine()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
