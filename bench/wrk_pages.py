"""Benchmark (e) with the load generated outside Python: `python -m bench.wrk_pages [rounds] [window seconds]`.

The review of issue 22 found that (e)'s Python load generator shares the two cores with the servers and pulls
the ratios toward 1. Here Debian's `wrk` (C, one thread, 16 connections) generates the closed-loop load, pinned
to core 0 with taskset, and every server (gunicorn master and workers) is pinned to core 1; the kinds are
measured in alternating windows, as bench.loadgen.alternating does, so a slow spell of the machine falls on all
of them alike. Reported per kind: throughput, the servers' CPU per answered request (user + system, from /proc),
and wrk's own latency percentiles; and the ratios: landing / hello, form post / hello (the retired target) and
form post / bare form (bench/bare_form_app.py, the new target: ≥ 0.6).

The form post does the real token round trip (bench/wrk/form.lua): each wrk thread GETs the landing page, reads
the signed form token, the bot-check timestamp and the session cookie, and posts new submissions with them.

p99 at 300 req/s: Debian's wrk has no constant-rate mode (that is wrk2's -R), and a closed loop's latency
percentiles hide queueing (coordinated omission). The constant-rate p99 therefore still comes from
bench.loadgen.open_loop, which measures each request from its scheduled time; at 300 req/s its own cost is small,
and it runs pinned to core 0, away from the servers.

wrk: `apt-get install wrk` (Debian/Ubuntu). The bench stops with that instruction when /usr/bin/wrk is missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path


from bench.common import bench_env, gunicorn, instance_dir, machine, process_cpu_seconds
from bench.loadgen import open_loop
from bench.pages import _seed, form_post_maker

HERE = Path(__file__).parent
LOAD_CORE, SERVER_CORE = "0", "1"


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (Debian/Ubuntu), then run again")
    return found


def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def run_wrk(url: str, *, seconds: float, connections: int = 16, script: str | None = None,
            args: tuple[str, ...] = ()) -> dict:
    """One closed-loop window of wrk, pinned to the load core. Returns requests/s, answered, errors, percentiles."""
    pin = ["taskset", "-c", LOAD_CORE] if (os.cpu_count() or 1) > 1 else []
    cmd = [*pin, wrk_binary(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    if script:
        cmd += ["-s", str(HERE / "wrk" / script)]
    cmd.append(url)
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
              "requests": int(re.search(r"(\d+) requests in", out).group(1)),
              "errors": int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1])}
    for p in ("50", "90", "99"):
        found = re.search(rf"^\s+{p}(?:\.000)?%\s+(\S+)", out, re.M)
        result[f"p{p}_ms"] = _seconds(found.group(1)) * 1000 if found else None
    form = re.search(r"FORM posted=(\d+) refused=(\d+) token_fetches=(\d+)", out)
    if form:
        result.update(posted=int(form.group(1)), refused=int(form.group(2)), token_fetches=int(form.group(3)))
    return result


def run(rounds: int = 5, window: float = 3.0, rate_duration: float = 20.0) -> dict:
    run_id = uuid.uuid4().hex[:8]
    with instance_dir("wrk-pages") as inst:
        env = bench_env(inst)
        code = _seed(env)
        servers = {"cpus": SERVER_CORE} if (os.cpu_count() or 1) > 1 else {}
        with gunicorn("bench.hello_app:app", env, **servers) as hello, \
                gunicorn("bench.bare_form_app:app", env, probe="/r/ABCDEFGH2", **servers) as bare, \
                gunicorn("bench.load_app:create()", env, probe=f"/r/{code}", **servers) as app:
            kinds = {
                "hello": (hello, "/hello", None, ()),
                "landing": (app, f"/r/{code}", None, ()),
                "bare form post": (bare, "/r/ABCDEFGH2", "post_static.lua", ("/r/ABCDEFGH2", run_id)),
                "form post": (app, f"/r/{code}", "form.lua", (f"/r/{code}", run_id)),
            }
            for name, (server, path, script, args) in kinds.items():  # warm-up, not counted (imports, caches, pools)
                run_wrk(server + path, seconds=1, script=script, args=tuple(a + ("-warm" if i == 1 else "") for i, a in enumerate(args)))
            per_round: dict[str, list[dict]] = {k: [] for k in kinds}
            for r in range(rounds):
                for name, (server, path, script, args) in kinds.items():
                    cpu0 = process_cpu_seconds(server.pid)
                    got = run_wrk(server + path, seconds=window, script=script, args=tuple(a + (f"-{r}" if i == 1 else "")
                                                                                       for i, a in enumerate(args)))
                    got["server_cpu_s"] = process_cpu_seconds(server.pid) - cpu0
                    per_round[name].append(got)
            p99 = _paced_p99(hello, app, code, rate_duration)
    totals = {}
    for name, rows in per_round.items():
        answered = sum(row.get("posted", row["requests"] - row["errors"]) for row in rows)
        totals[name] = {"rps": sum(row["rps"] for row in rows) / len(rows),
                        "server_cpu_us_per_request": sum(row["server_cpu_s"] for row in rows) / max(1, answered) * 1e6,
                        "errors": sum(row["errors"] for row in rows),
                        "p99_ms_closed_loop": max(row["p99_ms"] or 0 for row in rows)}
    ratio = lambda a, b: [round(x["rps"] / y["rps"], 3) for x, y in zip(per_round[a], per_round[b])]  # noqa: E731
    return {
        "machine": machine(), "load_average": os.getloadavg(), "rounds": rounds, "window_s": window,
        "load_core": LOAD_CORE, "server_core": SERVER_CORE, "totals": totals,
        "landing_over_hello": totals["landing"]["rps"] / totals["hello"]["rps"], "landing_over_hello_rounds": ratio("landing", "hello"),
        "form_over_bare_form": totals["form post"]["rps"] / totals["bare form post"]["rps"],
        "form_over_bare_form_rounds": ratio("form post", "bare form post"),
        "form_over_hello": totals["form post"]["rps"] / totals["hello"]["rps"],
        "p99_ms_at_300": p99,
    }


def _paced_p99(hello: str, app: str, code: str, duration: float) -> dict:
    """p99 at a constant 300 req/s, from the Python paced loader pinned to the load core."""
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {int(LOAD_CORE)})
    try:
        submit = form_post_maker(app, code, "paced")

        h = open_loop(hello, lambda n: ("GET", "/hello", None, {}), rate=300, duration=duration)
        land = open_loop(app, lambda n: ("GET", f"/r/{code}", None, {}), rate=300, duration=duration)
        form = open_loop(app, submit, rate=300, duration=duration, expect={303})
    finally:
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return {"hello": h.pct(99) * 1000, "landing": land.pct(99) * 1000, "form post": form.pct(99) * 1000,
            "errors": {"hello": h.errors, "landing": land.errors, "form post": form.errors}}


def main() -> None:
    import json

    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    result = run(int(args[0]) if args else 5, float(args[1]) if len(args) > 1 else 3.0,
                 float(args[2]) if len(args) > 2 else 20.0)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
