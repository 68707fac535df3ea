"""Benchmark (e): public pages under load, side by side with a bare Flask "hello" under gunicorn."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from urllib.parse import urlencode

import requests

from bench.common import bench_env, gunicorn, instance_dir, process_cpu_seconds
from bench.loadgen import alternating, open_loop


def _seed(env: dict[str, str]) -> str:
    """Migrate and seed the demo data in the benchmark's instance; return an advocate's code."""
    out = subprocess.run([sys.executable, "-c", (
        "from refstage.adapters.db.migrate import upgrade; from refstage.config import load_settings;"
        "from refstage.bootstrap import build_runtime; from refstage.services.runtime import RecordingQueue;"
        "from refstage_devkit.demo import seed; s=load_settings(); upgrade(s.database_url);"
        "print(seed(build_runtime(s, queue=RecordingQueue()))['salesforce_code'])")], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def run(quick: bool) -> dict:
    duration = 6 if quick else 15
    rate_duration = 5 if quick else 20
    concurrency = 16
    rounds = 3 if quick else 5
    window = duration / rounds
    with instance_dir("pages") as inst:
        env = bench_env(inst)
        code = _seed(env)
        results: dict = {"duration_s": duration, "concurrency": concurrency, "rounds": rounds}
        with gunicorn("bench.hello_app:app", env) as hello, \
                gunicorn("bench.load_app:create()", env, probe=f"/r/{code}") as app:
            hello_req = lambda n: ("GET", "/hello", None, {})  # noqa: E731
            landing_req = lambda n: ("GET", f"/r/{code}", None, {})  # noqa: E731
            submit = form_post_maker(app, code, "load")

            windows = iter(range(0, 10**9, 10**6))

            def new_posts():
                """A window's posts: new submissions, not repeats of an earlier window's."""
                first = next(windows)
                return lambda n: submit(first + n)

            kinds = {"hello": (hello, lambda: hello_req, {200}), "landing": (app, lambda: landing_req, {200}),
                     "form": (app, new_posts, {303})}
            totals, cpu, per_round = alternating(kinds, rounds=rounds, window=window, concurrency=concurrency,
                                                 cpu_seconds=process_cpu_seconds)
            h300 = open_loop(hello, hello_req, rate=300, duration=rate_duration)
            land300 = open_loop(app, landing_req, rate=300, duration=rate_duration)
            form300 = open_loop(app, lambda n: submit(10**9 + n), rate=300, duration=rate_duration, expect={303})
    if not quick and shutil.which("wrk"):
        # The same pages with the load generated outside Python (bench/wrk_pages.py); the form target is set there.
        from bench.wrk_pages import run as run_wrk_pages

        wrk = run_wrk_pages(rounds=rounds, window=window, rate_duration=rate_duration)
        results.update({"wrk": wrk, "form_over_bare_form": wrk["form_over_bare_form"],
                        "wrk_landing_over_hello": wrk["landing_over_hello"]})
    elif not quick:
        results["wrk"] = "not run: wrk is not installed (`apt-get install wrk`)"
    h, land, form = totals["hello"], totals["landing"], totals["form"]
    results.update({
        "hello_rps": h.rps, "landing_rps": land.rps, "form_rps": form.rps,
        "landing_ratio": land.rps / h.rps, "form_ratio": form.rps / h.rps,
        # The same ratio per round (hello and the page measured next to each other): how much it moves.
        "landing_ratio_rounds": [round(x / y, 3) for x, y in zip(per_round["landing"], per_round["hello"])],
        "form_ratio_rounds": [round(x / y, 3) for x, y in zip(per_round["form"], per_round["hello"])],
        "hello_p99_ms_at_300": h300.pct(99) * 1000, "landing_p99_ms_at_300": land300.pct(99) * 1000,
        "form_p99_ms_at_300": form300.pct(99) * 1000,
        # Server CPU (gunicorn master and workers, user + system) per answered request in the closed loops.
        "hello_server_cpu_us": cpu["hello"] / max(1, h.ok) * 1e6, "landing_server_cpu_us": cpu["landing"] / max(1, land.ok) * 1e6,
        "form_server_cpu_us": cpu["form"] / max(1, form.ok) * 1e6,
        "errors": {"hello": h.errors, "landing": land.errors, "form": form.errors, "landing300": land300.errors,
                   "form300": form300.errors},
        "statuses": {"form": form.statuses, "form300": form300.statuses},
    })
    return results


def form_post_maker(app: str, code: str, email_prefix: str):
    """The landing form's post as a request maker: one real page load for its token and cookie, then a
    different friend for every n (so no post is a repeat submission)."""
    session = requests.Session()
    page = session.get(f"{app}/r/{code}", timeout=10).text
    fields = dict(re.findall(r'name="(csrf_token|form_ts|website)"[^>]*value="([^"]*)"', page))
    fields.setdefault("website", "")
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    run_id = uuid.uuid4().hex[:8]

    def submit(n: int):
        body = urlencode({**fields, "name": f"Load Friend {n}", "email": f"{email_prefix}{run_id}-{n}@prospect.test",
                          "company": "Load Inc", "consent": "yes"}).encode()
        return ("POST", f"/r/{code}", body, {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})

    return submit
