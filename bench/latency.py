"""The timing loop of the latency benchmarks ((d) push, (g) decision write-back): before each change the
worker sits idle for a random while (seeded), as between people's edits; then the change is made as its user
would make it, and the CRM is polled until the result is visible there."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

Item = TypeVar("Item")
State = TypeVar("State")

POLL_S = 0.05


def time_until_visible(items: Iterable[Item], *, change: Callable[[Item], None],
                       visible: Callable[[Item, State], bool], before: Callable[[Item], State] = lambda item: None,
                       pauses: random.Random, max_idle_s: float, give_up_s: float = 60.0,
                       poll_s: float = POLL_S) -> list[float]:
    """For each item: read `before(item)` (what the CRM shows now), sit idle for 0..max_idle_s, then time from
    `change(item)` until `visible(item, that reading)` holds, polling every poll_s. Seconds, one per item."""
    latencies = []
    for item in items:
        state = before(item)
        time.sleep(pauses.uniform(0, max_idle_s))
        t0 = time.perf_counter()
        change(item)
        while not visible(item, state):
            if time.perf_counter() - t0 > give_up_s:
                raise RuntimeError(f"{item}: the change was not visible in the CRM after {give_up_s:g} s")
            time.sleep(poll_s)
        latencies.append(time.perf_counter() - t0)
    return latencies


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank value below which `share` of the values lie (values need not be sorted)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def summary(latencies: list[float]) -> dict:
    """samples, p50_s, p95_s, max_s, min_s of a list of latencies in seconds."""
    if not latencies:
        raise ValueError("no latencies measured")
    return {"samples": len(latencies), "p50_s": statistics.median(latencies), "p95_s": percentile(latencies, 0.95),
            "max_s": max(latencies), "min_s": min(latencies)}
