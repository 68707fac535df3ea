"""A small HTTP load generator for loopback benchmarks: closed loop (max throughput) and open loop
(fixed rate, latency measured from each request's scheduled start, so a stalled server cannot hide
its queueing — no coordinated omission). Keep-alive connections, one per thread."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

Request = tuple[str, str, bytes | None, dict[str, str]]  # method, path, body, headers


@dataclass
class Result:
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def merge(self, other: "Result") -> None:
        self.ok += other.ok
        self.errors += other.errors
        for k, v in other.statuses.items():
            self.statuses[k] = self.statuses.get(k, 0) + v
        self.latencies.extend(other.latencies)

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        values = sorted(self.latencies)
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _connection(base: str) -> http.client.HTTPConnection:
    parts = urlsplit(base)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)


def _send(conn_box: list, base: str, req: Request, expect: set[int], result: Result) -> None:
    method, path, body, headers = req
    for attempt in range(2):
        try:
            if conn_box[0] is None:
                conn_box[0] = _connection(base)
            conn_box[0].request(method, path, body=body, headers=headers)
            resp = conn_box[0].getresponse()
            resp.read()
            result.statuses[resp.status] = result.statuses.get(resp.status, 0) + 1
            if resp.status in expect:
                result.ok += 1
            else:
                result.errors += 1
            if resp.getheader("Connection", "").lower() == "close":
                conn_box[0].close()
                conn_box[0] = None
            return
        except (OSError, http.client.HTTPException):
            if conn_box[0] is not None:
                conn_box[0].close()
            conn_box[0] = None
            if attempt:
                result.errors += 1


def closed_loop(base: str, make_request: Callable[[int], Request], *, concurrency: int, duration: float,
                expect: set[int] = frozenset({200})) -> Result:
    results = [Result() for _ in range(concurrency)]
    stop = time.perf_counter() + duration
    counter = iter(range(10**9))
    lock = threading.Lock()

    def worker(res: Result) -> None:
        box: list = [None]
        while time.perf_counter() < stop:
            with lock:
                n = next(counter)
            t0 = time.perf_counter()
            _send(box, base, make_request(n), set(expect), res)
            res.latencies.append(time.perf_counter() - t0)
        if box[0] is not None:
            box[0].close()

    threads = [threading.Thread(target=worker, args=(r,)) for r in results]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = Result(elapsed=time.perf_counter() - start)
    for r in results:
        total.merge(r)
    return total


def open_loop(base: str, make_request: Callable[[int], Request], *, rate: float, duration: float, threads: int = 32,
              expect: set[int] = frozenset({200})) -> Result:
    """Requests scheduled at a fixed rate; latency = completion time minus scheduled time."""
    n_total = int(rate * duration)
    start = time.perf_counter() + 0.2
    schedule = [start + i / rate for i in range(n_total)]
    next_index = [0]
    lock = threading.Lock()
    results = [Result() for _ in range(threads)]

    def worker(res: Result) -> None:
        box: list = [None]
        while True:
            with lock:
                i = next_index[0]
                if i >= n_total:
                    break
                next_index[0] += 1
            due = schedule[i]
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            _send(box, base, make_request(i), set(expect), res)
            res.latencies.append(time.perf_counter() - due)
        if box[0] is not None:
            box[0].close()

    pool = [threading.Thread(target=worker, args=(r,)) for r in results]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = Result(elapsed=time.perf_counter() - start)
    for r in results:
        total.merge(r)
    return total


def alternating(kinds: dict[str, tuple[Any, Callable[[], Callable[[int], Request]], set[int]]], *, rounds: int,
                window: float, concurrency: int, cpu_seconds: Callable[[int], float], warm_up: float = 1.0
                ) -> tuple[dict[str, Result], dict[str, float], dict[str, list[float]]]:
    """Closed loops over several servers in short alternating windows, the order rotating each round, so that a
    change in the machine's speed during the run weighs on all of them alike; each kind is warmed up first for
    `warm_up` seconds. `kinds`: name -> (server with its `pid`, a factory of one window's request maker, expected
    statuses). Returns per name the pooled Result, the server's CPU seconds over its windows (`cpu_seconds(pid)`),
    and each round's requests/s."""
    for server, make, expect in kinds.values():
        closed_loop(server, make(), concurrency=concurrency, duration=warm_up, expect=expect)
    totals = {name: Result() for name in kinds}
    cpu = {name: 0.0 for name in kinds}
    per_round: dict[str, list[float]] = {name: [] for name in kinds}
    order = list(kinds)
    for r in range(rounds):
        shift = r % len(order)
        for name in order[shift:] + order[:shift]:
            server, make, expect = kinds[name]
            before = cpu_seconds(server.pid)
            got = closed_loop(server, make(), concurrency=concurrency, duration=window, expect=expect)
            cpu[name] += cpu_seconds(server.pid) - before
            totals[name].merge(got)
            totals[name].elapsed += got.elapsed
            per_round[name].append(got.rps)
    return totals, cpu, per_round
