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

    started = time.perf_counter()
    events: list[list] = []

    def event(*what) -> None:
        events.append([round(time.perf_counter() - started, 3), *what])

    def timed(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            event(f"{label} start")
            try:
                return original(*args, **kwargs)
            finally:
                event(f"{label} end")

        setattr(owner, name, wrapper)

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
    atexit.register(lambda: Path(path).write_text(json.dumps(events)))


def summary(events: list[list]) -> list[str]:
    """The events with the time since the one before, and the observation's total."""
    lines, previous, observing, began = [], 0.0, 0.0, None
    for at, what, *detail in events:
        lines.append(f"{at:9.2f} s  (+{at - previous:6.2f})  {what}  {' '.join(map(str, detail))}".rstrip())
        previous = at
        if what == "observe start":
            began = at
        elif what == "observe end" and began is not None:
            observing += at - began
    lines.append(f"observation in all: {observing:.2f} s")
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
