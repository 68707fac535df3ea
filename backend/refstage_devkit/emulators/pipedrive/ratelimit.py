"""Token-based rate limiting as Pipedrive documents it.

* A daily token budget per company (30,000 x plan multiplier x seats; the emulator's default is
  30,000 x 1 x 5 seats = 150,000), reset at 00:00 UTC of the emulated clock. Each request costs
  the `x-token-cost` of its operation in the official v2 OpenAPI file; v1 operations (no cost in
  their file) use v1's documented doubled costs (see COSTS_V1).
* A burst limit per token over a rolling 2-second window (80 for an OAuth app on Essential; 10
  for search endpoints).
* Every API response carries `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset`
  (seconds until the window has room again) for the burst window that applied. Over the limit:
  429 with the error envelope. A token that keeps sending while limited (more than
  `abuse_threshold` 429s inside one window) gets the 403 HTML page Pipedrive serves to abusers.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field

from .store import Clock

# x-token-cost from pipedrive-openapi-v2.yaml for the operations the emulator serves.
COSTS_V2 = {
    ("GET", "/deals"): 10, ("POST", "/deals"): 5, ("GET", "/deals/{id}"): 1,
    ("PATCH", "/deals/{id}"): 5, ("DELETE", "/deals/{id}"): 3, ("GET", "/deals/archived"): 20,
    ("GET", "/persons"): 10, ("POST", "/persons"): 5, ("GET", "/persons/{id}"): 1,
    ("PATCH", "/persons/{id}"): 5, ("DELETE", "/persons/{id}"): 3, ("GET", "/persons/search"): 20,
    ("GET", "/organizations"): 10, ("POST", "/organizations"): 5,
    ("GET", "/organizations/{id}"): 1, ("PATCH", "/organizations/{id}"): 5,
    ("DELETE", "/organizations/{id}"): 3,
    ("GET", "/pipelines"): 5, ("GET", "/pipelines/{id}"): 1,
    ("GET", "/stages"): 5, ("GET", "/stages/{id}"): 1,
}
# v1: Pipedrive's token table gives v1 operations twice the cost of their v2 twins
# (list 20, single get 2, create/update 10, delete 6).
COSTS_V1 = {"GET_LIST": 20, "GET_ONE": 2, "POST": 10, "PUT": 10, "PATCH": 10, "DELETE": 6}


def cost_of(method: str, api: str, template: str) -> int:
    if api == "v2":
        return COSTS_V2.get((method, template), 10)
    if method == "GET":
        return COSTS_V1["GET_ONE"] if "{" in template or template.endswith("/me") else COSTS_V1["GET_LIST"]
    return COSTS_V1.get(method, 10)


@dataclass
class Decision:
    allowed: bool
    status: int = 200
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class RateLimiter:
    def __init__(self, clock: Clock, daily_budget: int = 150_000, burst_limit: int = 80,
                 search_burst_limit: int = 10, window: float = 2.0, abuse_threshold: int = 40) -> None:
        self.clock = clock
        self.daily_budget = daily_budget
        self.burst_limit = burst_limit
        self.search_burst_limit = search_burst_limit
        self.window = window
        self.abuse_threshold = abuse_threshold
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._day = self._day_of(self.clock.ts())
            self.tokens_used = 0
            self._windows: dict[tuple[str, bool], deque[float]] = defaultdict(deque)
            self._rejections: dict[str, deque[float]] = defaultdict(deque)
            self.requests = 0
            self.rejected_429 = 0
            self.rejected_403 = 0
            self.by_endpoint: dict[str, dict[str, int]] = defaultdict(lambda: {"requests": 0, "tokens": 0})

    @staticmethod
    def _day_of(ts: float) -> int:
        return int(ts // 86400)

    def check(self, principal: str, endpoint: str, cost: int, search: bool = False) -> Decision:
        now = self.clock.ts()
        with self._lock:
            if self._day_of(now) != self._day:
                self._day = self._day_of(now)
                self.tokens_used = 0
            limit = self.search_burst_limit if search else self.burst_limit
            window = self._windows[(principal, search)]
            while window and window[0] <= now - self.window:
                window.popleft()
            rejections = self._rejections[principal]
            while rejections and rejections[0] <= now - self.window:
                rejections.popleft()
            self.requests += 1
            stats = self.by_endpoint[endpoint]
            stats["requests"] += 1
            reset = math.ceil(window[0] + self.window - now) if window else 0

            def headers(remaining: int, reset_in: int) -> dict[str, str]:
                return {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(max(0, remaining)),
                        "x-ratelimit-reset": str(max(0, reset_in))}

            if len(rejections) >= self.abuse_threshold:
                self.rejected_403 += 1
                rejections.append(now)
                return Decision(False, 403, "abuse", headers(0, max(1, reset)))
            if len(window) >= limit:
                self.rejected_429 += 1
                rejections.append(now)
                return Decision(False, 429, "Request over limit", headers(0, max(1, reset)))
            if self.tokens_used + cost > self.daily_budget:
                self.rejected_429 += 1
                rejections.append(now)
                until_midnight = math.ceil((self._day + 1) * 86400 - now)
                return Decision(False, 429, "Daily token budget exceeded",
                                headers(0, until_midnight))
            window.append(now)
            self.tokens_used += cost
            stats["tokens"] += cost
            reset = math.ceil(window[0] + self.window - now)
            return Decision(True, 200, "", headers(limit - len(window), max(1, reset)))

    def forced_headers(self, principal: str, search: bool = False) -> dict[str, str]:
        limit = self.search_burst_limit if search else self.burst_limit
        return {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}

    def usage(self) -> dict:
        with self._lock:
            return {"daily_budget": self.daily_budget, "tokens_used": self.tokens_used,
                    "tokens_remaining": max(0, self.daily_budget - self.tokens_used),
                    "requests": self.requests, "rejected_429": self.rejected_429,
                    "rejected_403": self.rejected_403, "burst_limit": self.burst_limit,
                    "search_burst_limit": self.search_burst_limit,
                    "by_endpoint": {k: dict(v) for k, v in self.by_endpoint.items()}}
