"""`python -m bench.measure OP ARGS_JSON`: one measured operation, printed as JSON on the last line."""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _peak_rss_mb() -> float:
    """This process's own peak RSS. Linux's ru_maxrss survives exec: it would start at the benchmark parent's
    RSS at fork time. VmHWM belongs to the new address space."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    op, args = sys.argv[1], json.loads(sys.argv[2])
    from refstage.bootstrap import build_runtime
    from refstage.config import load_settings

    # The real queue (Huey on SQLite, the default): what the sync enqueues costs what it costs in production.
    # No consumer runs here, so nothing is executed.
    rt = build_runtime(load_settings())
    # A worker has its CRM adapters imported after its first job: import them before the clock starts, so
    # the figure is a sync's cost, not the process's one-time import (~0.27 s of CPU for the Salesforce one).
    import refstage.adapters.crm.factory  # noqa: F401
    import refstage.adapters.crm.salesforce.gateway  # noqa: F401

    if os.environ.get("REFSTAGE_BENCH_TIMELINE"):  # bench/timeline.py: phase timings, no profiler
        from bench.timeline import install

        install(os.environ["REFSTAGE_BENCH_TIMELINE"])

    profiler = None
    if os.environ.get("REFSTAGE_BENCH_PROFILE"):  # a development aid: pyinstrument's CPU profile to that file
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002)
    cprofile = None
    if os.environ.get("REFSTAGE_BENCH_CPROFILE"):  # a development aid: cProfile's statistics (self time) to that file
        import cProfile

        cprofile = cProfile.Profile()
    baseline_rss = _peak_rss_mb()
    if profiler:
        profiler.start()
    if cprofile:
        cprofile.enable()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if op == "sync":
        from refstage.services.sync import run_sync

        report = run_sync(rt, args["tenant_id"], args["connection_id"])
        result = {"status": report.status, "error": report.error, **report.as_dict(), "own_api_calls": report.api_calls}
    elif op == "enrol":
        from refstage.services.enrolment import run_enrolment

        progress = run_enrolment(rt, args["tenant_id"], args["program_id"])
        result = {"enrolled": progress.enrolled, "already": progress.already, "links_written": progress.links_written,
                  "links_failed": progress.links_failed}
    elif op == "naive":
        from bench.naive import run_naive

        result = run_naive(rt, **args)
    elif op == "competent":
        from bench.naive import run_competent

        result = run_competent(rt, **args)
    else:
        raise SystemExit(f"unknown op {op}")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if cprofile:
        cprofile.disable()
        cprofile.dump_stats(os.environ["REFSTAGE_BENCH_CPROFILE"])
    if profiler:
        profiler.stop()
        with open(os.environ["REFSTAGE_BENCH_PROFILE"], "w") as out:
            out.write(profiler.output_text(unicode=False, color=False, show_all=False))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # cpu_s split: our Python and SQLite's C in user time; system calls (file and socket I/O) in system time.
    print(json.dumps({**result, "wall_s": wall, "cpu_s": cpu, "cpu_user_s": usage.ru_utime - usage0.ru_utime,
                      "cpu_system_s": usage.ru_stime - usage0.ru_stime, "peak_rss_mb": _peak_rss_mb(),
                      "baseline_rss_mb": baseline_rss}))


if __name__ == "__main__":
    main()
