"""`refstage bench [--quick] [--only a,e]`: run the benchmarks side by side and write docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

from bench.common import ROOT, machine

# letter -> (module, title)
BENCHMARKS = {
    "a": ("bench.sync_big", "Big change set: 1,000,000 opportunities, 100,000 linked and changed"),
    "b": ("bench.sync_quiet", "Quiet org: incremental sync with nothing changed"),
    "c": ("bench.enrolment", "Enrolment: 100,000 contacts with code and link write-back"),
    "d": ("bench.push_latency", "Push latency: Outbound Message / webhook to reward visible in the CRM"),
    "e": ("bench.pages", "Public pages under load vs a bare Flask hello"),
    "f": ("bench.scaling", "Scaling: the big change set at 10k, 100k and 1M"),
    "g": ("bench.writeback_latency", "Decision write-back latency: approve, reject, mark paid to status visible in the CRM"),
}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    only = None
    database = "sqlite"
    for arg in argv:
        if arg.startswith("--only="):
            only = set(arg.split("=", 1)[1].split(","))
        if arg.startswith("--database="):
            database = arg.split("=", 1)[1]
    if database not in ("sqlite", "postgresql"):
        raise SystemExit(f"--database: sqlite or postgresql, not {database}")
    os.environ["REFSTAGE_BENCH_DATABASE"] = database
    selected = [k for k in BENCHMARKS if only is None or k in only]
    command = ("refstage bench" + (" --quick" if quick else "") + (f" --only={','.join(sorted(only))}" if only else "")
               + (" --database postgresql" if database == "postgresql" else ""))
    results: dict[str, dict] = {}
    host = machine()  # once, before the benchmarks load the machine: its speed check describes this run
    out = ROOT / "bench" / "results" / (("quick" if quick else "full") + ("-postgresql" if database == "postgresql" else "") + ".json")
    for key in selected:
        module_name, title = BENCHMARKS[key]
        print(f"[{key}] {title} ...", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(module_name)
            results[key] = {"title": title, "result": module.run(quick), "seconds": time.perf_counter() - started}
        except Exception as exc:  # noqa: BLE001 - a failed benchmark is reported, not hidden
            results[key] = {"title": title, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(),
                            "seconds": time.perf_counter() - started}
        print(json.dumps(results[key].get("result") or results[key].get("error"), indent=1, default=str), flush=True)
        # Kept after each benchmark: a run stopped part-way keeps the figures it has.
        _keep(out, {key: {**results[key], "command": command, "machine": host,
                          "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}})
    from bench.report import write_report

    write_report(ROOT / "docs" / "benchmarks.md")
    return 1 if any("error" in v for v in results.values()) else 0


def _keep(out: Path, figures: dict[str, dict]) -> None:
    out.parent.mkdir(exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous.update(figures)
    out.write_text(json.dumps(previous, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
