"""Deterministic fault injection.

SPEC is a comma-separated list of `name:probability` items plus an optional `seed=N`:

    429:0.1,503:0.05,drop_webhook:0.2,dup_webhook:0.2,seed=7

* a three-digit status (`429`, `500`, `502`, `503`, `504`...): that share of API requests
  (`/api/...`) is answered with that status and the documented error envelope before it
  touches any data (a 429 also carries the `x-ratelimit-*` headers);
* `drop_webhook`: that share of webhook deliveries is never sent (recorded as `dropped`);
* `dup_webhook`: that share of webhook deliveries is sent twice (same `meta.id`);
* `drop_after`: that share of API requests is served (a write commits, webhooks fire) and then the
  connection is closed without a response: "committed at the CRM, response lost";
* `timeout_after`: the same, but the response is held for `timeout=SECONDS` (default 30) first, then
  the connection is closed, as a client's read timeout sees it;
* `search_lag=SECONDS`: the search index trails writes by that long: a person created or changed is
  found by `/persons/search` (by its new values) only SECONDS later, as Pipedrive's index-backed
  search can lag;
* `seed=N`: the random generator's seed (default 0), so a run is reproducible: the n-th request
  always meets the same fate for the same SPEC.

Besides the probabilistic faults the control API queues one-shot faults: a burst of N forced
statuses for the next N API requests, and "drop/duplicate the next N webhook deliveries".
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field


@dataclass
class FaultSpec:
    statuses: dict[int, float] = field(default_factory=dict)
    drop_webhook: float = 0.0
    dup_webhook: float = 0.0
    drop_after: float = 0.0
    timeout_after: float = 0.0
    timeout_seconds: float = 30.0
    search_lag: float = 0.0
    seed: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "FaultSpec":
        spec = cls()
        if not text:
            return spec
        for raw in text.split(","):
            item = raw.strip()
            if not item:
                continue
            if item.startswith("seed="):
                spec.seed = int(item[5:])
                continue
            if item.startswith("timeout=") or item.startswith("search_lag="):
                key, _, raw_value = item.partition("=")
                seconds = float(raw_value)
                if seconds < 0:
                    raise ValueError(f"{key} must not be negative in {item!r}")
                setattr(spec, "timeout_seconds" if key == "timeout" else "search_lag", seconds)
                continue
            name, sep, prob = item.partition(":")
            if not sep:
                raise ValueError(f"fault item {item!r} is not name:probability")
            p = float(prob)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"probability out of range in {item!r}")
            if name == "drop_webhook":
                spec.drop_webhook = p
            elif name == "dup_webhook":
                spec.dup_webhook = p
            elif name in ("drop_after", "timeout_after"):
                setattr(spec, name, p)
            elif name.isdigit() and len(name) == 3 and 400 <= int(name) <= 599:
                spec.statuses[int(name)] = p
            else:
                raise ValueError(f"unknown fault {name!r}")
        if sum(spec.statuses.values()) > 1.0:
            raise ValueError("status fault probabilities add up to more than 1")
        if spec.drop_after + spec.timeout_after > 1.0:
            raise ValueError("drop_after and timeout_after add up to more than 1")
        return spec

    def describe(self) -> str:
        parts = [f"{k}:{v}" for k, v in sorted(self.statuses.items())]
        if self.drop_webhook:
            parts.append(f"drop_webhook:{self.drop_webhook}")
        if self.dup_webhook:
            parts.append(f"dup_webhook:{self.dup_webhook}")
        if self.drop_after:
            parts.append(f"drop_after:{self.drop_after}")
        if self.timeout_after:
            parts.append(f"timeout_after:{self.timeout_after}")
        if self.timeout_after or self.timeout_seconds != 30.0:
            parts.append(f"timeout={self.timeout_seconds:g}")
        if self.search_lag:
            parts.append(f"search_lag={self.search_lag:g}")
        parts.append(f"seed={self.seed}")
        return ",".join(parts)


class Faults:
    def __init__(self, spec: FaultSpec | str | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(spec)

    def configure(self, spec: FaultSpec | str | None) -> None:
        if not isinstance(spec, FaultSpec):
            spec = FaultSpec.parse(spec)
        with self._lock:
            self.spec = spec
            self._request_rng = random.Random(spec.seed)
            self._webhook_rng = random.Random(spec.seed + 1)
            # A generator of its own, so adding after-handler faults leaves the status draws unchanged.
            self._after_rng = random.Random(spec.seed + 2)
            self._after_next: deque[tuple[str, str | None, str | None]] = deque()
            self._bursts: deque[int] = deque()
            self._drop_next = 0
            self._dup_next = 0
            self.injected: dict[str, int] = {}

    def _count(self, key: str) -> None:
        self.injected[key] = self.injected.get(key, 0) + 1

    def burst(self, status: int, count: int) -> None:
        with self._lock:
            self._bursts.extend([int(status)] * int(count))

    def drop_next(self, count: int) -> None:
        with self._lock:
            self._drop_next += int(count)

    def duplicate_next(self, count: int) -> None:
        with self._lock:
            self._dup_next += int(count)

    def request_fault(self) -> int | None:
        """The status to answer this API request with instead of serving it, or None."""
        with self._lock:
            if self._bursts:
                status = self._bursts.popleft()
                self._count(str(status))
                return status
            if not self.spec.statuses:
                return None
            draw = self._request_rng.random()
            acc = 0.0
            for status, p in sorted(self.spec.statuses.items()):
                acc += p
                if draw < acc:
                    self._count(str(status))
                    return status
            return None

    def lose_next(self, kind: str, count: int, method: str | None = None, path: str | None = None) -> None:
        """Serve the next COUNT API requests (those with METHOD and a path starting with PATH, if given),
        then lose their responses; KIND is 'drop_after' or 'timeout_after'."""
        if kind not in ("drop_after", "timeout_after"):
            raise ValueError(f"unknown after-handler fault {kind!r}")
        with self._lock:
            self._after_next.extend([(kind, method.upper() if method else None, path)] * int(count))

    def after_fault(self, method: str = "GET", path: str = "/api/") -> str | None:
        """'drop_after', 'timeout_after' or None: drawn before an API request is served, acted on after."""
        with self._lock:
            for queued in self._after_next:
                kind, want_method, prefix = queued
                if (want_method is None or want_method == method) and (prefix is None or path.startswith(prefix)):
                    self._after_next.remove(queued)
                    self._count(kind)
                    return kind
            if not (self.spec.drop_after or self.spec.timeout_after):
                return None
            draw = self._after_rng.random()
            if draw < self.spec.drop_after:
                self._count("drop_after")
                return "drop_after"
            if draw < self.spec.drop_after + self.spec.timeout_after:
                self._count("timeout_after")
                return "timeout_after"
            return None

    def webhook_fate(self) -> str:
        """'drop', 'dup' or 'send' for a delivery's first attempt."""
        with self._lock:
            if self._drop_next:
                self._drop_next -= 1
                self._count("drop_webhook")
                return "drop"
            if self._dup_next:
                self._dup_next -= 1
                self._count("dup_webhook")
                return "dup"
            draw = self._webhook_rng.random()
            if draw < self.spec.drop_webhook:
                self._count("drop_webhook")
                return "drop"
            if draw < self.spec.drop_webhook + self.spec.dup_webhook:
                self._count("dup_webhook")
                return "dup"
            return "send"

    def snapshot(self) -> dict:
        with self._lock:
            return {"spec": self.spec.describe(), "pending_bursts": list(self._bursts),
                    "drop_next": self._drop_next, "duplicate_next": self._dup_next,
                    "lose_next": [{"kind": k, "method": m, "path": p} for k, m, p in self._after_next],
                    "injected": dict(self.injected)}
