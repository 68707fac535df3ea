"""Benchmark (f): scaling. The big change set of (a) at several org sizes, 10 % of opportunities linked and
changed. Growth ratio: wall time per change at the largest size ÷ at 10k (≤ 1 is linear or better); also per
step between consecutive sizes (10k→100k, 100k→1M), as the 10k figure carries fixed costs.

The naive integration runs only at 10k (at larger sizes its one-REST-call-per-referral loop takes far
longer than the benchmark budget; (a) reports it, projected, at its own size). The largest size reuses (a)'s
measurement when (a) ran at that size in the same `refstage bench` run."""

from __future__ import annotations

from bench.sync_big import MEASURED, big_change_set


def scaling(sizes: list[int]) -> dict:
    rows = []
    for total in sizes:
        linked = total // 10
        naive = total == sizes[0]
        reused = next((v for (t, l, _), v in MEASURED.items() if t == total and l == linked), None)
        r = reused if reused is not None and not naive else big_change_set(total, linked, naive=naive, naive_limit_s=None)
        row = {"opportunities": total, "changes": linked, "wall_s": r["wall_s"], "api_calls": r["api_calls"],
               "peak_rss_mb": r["peak_rss_mb"], "cpu_s": r["cpu_s"], "status": r["status"],
               "wall_s_per_change_ms": 1000 * r["wall_s"] / linked, "shared_with_a": reused is not None and not naive}
        if naive:
            row.update({"naive_wall_s": r["naive_wall_s"], "naive_api_calls": r["naive_api_calls"], "speedup": r["speedup"]})
        rows.append(row)
    first, last = rows[0], rows[-1]
    steps = [{"from": a["opportunities"], "to": b["opportunities"],
              "ratio": b["wall_s_per_change_ms"] / a["wall_s_per_change_ms"]} for a, b in zip(rows, rows[1:])]
    return {"sizes": rows, "growth_ratio": last["wall_s_per_change_ms"] / first["wall_s_per_change_ms"],
            "growth_steps": steps,
            "growth_from": first["opportunities"], "growth_to": last["opportunities"],
            "api_calls_growth": f"{first['api_calls']} → {last['api_calls']}"}


def run(quick: bool) -> dict:
    return scaling([10_000, 100_000]) if quick else scaling([10_000, 100_000, 1_000_000])
