"""Deterministic fault injection.

SPEC syntax (also accepted as JSON by the control API)::

    KIND:P[,KIND:P...][,seed=N][,slow=SECONDS][,timeout=SECONDS][,path=PREFIX]

KIND is one of ``503`` (SERVER_UNAVAILABLE), ``500`` (UNKNOWN_EXCEPTION), ``slow`` (answer late),
``timeout`` (hold the request for ``timeout`` seconds, then drop it), ``drop`` (close the connection
without a response), ``drop_after`` / ``timeout_after`` (serve the request in full, so a write
commits, then close the connection without a response, at once or after ``timeout`` seconds:
"committed at the CRM, response lost"), ``401`` (INVALID_SESSION_ID), ``403`` (REQUEST_LIMIT_EXCEEDED), ``lock``
(UNABLE_TO_LOCK_ROW on writes), ``bulkfail`` (a Bulk API job ends ``Failed``).
P is a probability in [0, 1] (``503:0.1``) or ``#N`` for "the next N eligible requests" (``401:#1``).
One random draw per request from ``random.Random(seed)`` picks at most one fault, so a given seed and
request sequence always injects the same faults.  ``path=`` limits faults to URL paths starting with
the prefix (default: every path except ``/_emulator/`` and the OpenID key/discovery documents).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = ("503", "500", "slow", "timeout", "drop", "drop_after", "timeout_after", "401", "403", "lock", "bulkfail")
# Kinds acted on after the handler ran (the others replace it).
AFTER_HANDLER = ("drop_after", "timeout_after")
ALIASES = {"unavailable": "503", "error": "500", "session": "401", "limit": "403", "unable_to_lock_row": "lock",
           "bulk": "bulkfail", "dropped": "drop", "drop-after": "drop_after", "timeout-after": "timeout_after"}


@dataclass
class FaultRule:
    kind: str
    probability: float = 0.0
    remaining: int | None = None  # "#N" rules


@dataclass
class FaultPlan:
    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0
    slow_seconds: float = 2.0
    timeout_seconds: float = 60.0
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": [{"kind": r.kind, "probability": r.probability, "remaining": r.remaining} for r in self.rules],
            "seed": self.seed, "slow": self.slow_seconds, "timeout": self.timeout_seconds, "path": self.path,
        }


def parse_spec(spec: str | None) -> FaultPlan:
    plan = FaultPlan()
    if not spec:
        return plan
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if "=" in part:
            key, value = (x.strip() for x in part.split("=", 1))
            if key == "seed":
                plan.seed = int(value)
            elif key == "slow":
                plan.slow_seconds = float(value)
            elif key == "timeout":
                plan.timeout_seconds = float(value)
            elif key == "path":
                plan.path = value
            else:
                raise ValueError(f"unknown fault option {key!r}")
            continue
        kind, _, prob = part.partition(":")
        kind = ALIASES.get(kind.lower(), kind.lower())
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
        if prob.startswith("#"):
            plan.rules.append(FaultRule(kind, 0.0, int(prob[1:])))
        else:
            p = float(prob or "1")
            if not 0 <= p <= 1:
                raise ValueError(f"fault probability out of range: {part}")
            plan.rules.append(FaultRule(kind, p))
    return plan


class Faults:
    def __init__(self, spec: str | None = None) -> None:
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {}
        self.set(spec)

    def set(self, spec: str | FaultPlan | None) -> None:
        plan = spec if isinstance(spec, FaultPlan) else parse_spec(spec)
        with self._lock:
            self.plan = plan
            self.rng = random.Random(plan.seed)

    def eligible(self, path: str) -> bool:
        if self.plan.path:
            return path.startswith(self.plan.path)
        return not (path.startswith("/_emulator") or path.startswith("/.well-known") or path == "/id/keys")

    def draw(self, path: str, method: str, kinds: tuple[str, ...] | None = None) -> str | None:
        """Pick the fault (if any) for one request. ``lock`` only hits writes; ``bulkfail`` only jobs."""
        if not self.plan.rules or not self.eligible(path):
            return None
        with self._lock:
            for rule in self.plan.rules:
                if rule.remaining and self._applies(rule.kind, method, kinds):
                    rule.remaining -= 1
                    return self._count(rule.kind)
            r = self.rng.random()
            acc = 0.0
            for rule in self.plan.rules:
                if rule.remaining is not None:
                    continue
                acc += rule.probability
                if r < acc:
                    return self._count(rule.kind) if self._applies(rule.kind, method, kinds) else None
        return None

    @staticmethod
    def _applies(kind: str, method: str, kinds: tuple[str, ...] | None) -> bool:
        if kinds is not None:
            return kind in kinds
        if kind == "bulkfail":
            return False
        if kind == "lock":
            return method in ("POST", "PATCH", "PUT", "DELETE")
        return True

    def _count(self, kind: str) -> str:
        self.injected[kind] = self.injected.get(kind, 0) + 1
        return kind

    def bulk_should_fail(self, path: str) -> bool:
        """Consulted once per Bulk job when it starts processing."""
        if not any(r.kind == "bulkfail" for r in self.plan.rules):
            return False
        with self._lock:
            for rule in self.plan.rules:
                if rule.kind == "bulkfail":
                    if rule.remaining:
                        rule.remaining -= 1
                        self._count("bulkfail")
                        return True
                    if rule.remaining is None and self.rng.random() < rule.probability:
                        self._count("bulkfail")
                        return True
        return False
