"""The floor under benchmark (e)'s form-post target: `python -m bench.form_floor`.

A Flask view that only parses the form and answers 303 (bench/bare_form_app.py), against the bare "hello" of
benchmark (e), under the same gunicorn settings and the same load generator, with the same request bodies as
(e)'s form posts, in alternating 3-second windows. Whatever a real form post does on top of that (its signed
token, bot checks, validation, rate limits, a durable write) can only lower the ratio. A development tool, not
one of the issue's benchmarks; its figures are quoted in docs/performance.md."""

from __future__ import annotations

import sys
import uuid
from urllib.parse import urlencode

from bench.common import bench_env, gunicorn, instance_dir, machine, process_cpu_seconds
from bench.loadgen import alternating


def main(rounds: int = 6, window: float = 3.0, concurrency: int = 16) -> None:
    run_id = uuid.uuid4().hex[:8]
    # The fields benchmark (e) posts; the tokens are of the same length, and nothing here checks them.
    fields = {"csrf_token": "1763890000.abcdefghijklmnop.0123456789abcdef0123456789abcdef",
              "form_ts": "1763890000.000.0123456789abcdef0123456789abcdef", "website": ""}

    def submit(n: int):
        body = urlencode({**fields, "name": f"Load Friend {n}", "email": f"load{run_id}-{n}@prospect.test",
                          "company": "Load Inc", "consent": "yes"}).encode()
        return ("POST", "/r/ABCDEFGH2", body, {"Content-Type": "application/x-www-form-urlencoded"})

    with instance_dir("form-floor") as inst:
        env = bench_env(inst)
        with gunicorn("bench.hello_app:app", env) as hello, \
                gunicorn("bench.bare_form_app:app", env, probe="/r/ABCDEFGH2") as bare:
            kinds = {"hello": (hello, lambda: lambda n: ("GET", "/hello", None, {}), {200}),
                     "bare form post": (bare, lambda: submit, {303})}
            totals, cpu, per_round = alternating(kinds, rounds=rounds, window=window, concurrency=concurrency,
                                                 cpu_seconds=process_cpu_seconds)
    print(f"machine: {machine()}")
    for name, total in totals.items():
        print(f"{name}: {total.rps:,.0f} req/s, server CPU {cpu[name] / max(1, total.ok) * 1e6:,.0f} µs per request, "
              f"{total.errors} errors")
    ratios = [a / b for a, b in zip(per_round["bare form post"], per_round["hello"])]
    print(f"bare form post / hello: {totals['bare form post'].rps / totals['hello'].rps:.3f} "
          f"(per round {', '.join(f'{x:.3f}' for x in ratios)})")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
