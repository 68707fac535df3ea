"""A small Pipedrive HTTP client over requests: API v2 for deals, persons, pipelines, stages and
search; v1 for dealFields/personFields, notes, webhooks and users/me.

What it takes care of, so the gateway does not have to:
* authentication (OAuth bearer with refresh-on-401, or the personal `x-api-token` header);
* cursor pagination (v2 `additional_data.next_cursor`) and v1 `start`/`pagination.next_start`;
* rate limits: every answer's `x-ratelimit-*` headers are read; when the burst allowance is spent we
  wait for its reset before the next call; a 429 is retried after the advertised reset (never
  immediately); a reset too far away (the daily token budget) ends the run with `BudgetExhausted`;
* transient failures: 5xx and network errors are retried with exponential backoff and jitter —
  for idempotent methods only; a POST that got a 5xx is not re-sent here (the job-level retry,
  which looks before it creates, decides);
* Pipedrive's error envelope `{"success": false, "error", "error_info"}` becomes `CrmError` with
  Pipedrive's own message and `transient` set for 429/5xx;
* counting API calls (total, per endpoint, and token cost from `x-token-cost`).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import requests

from refstage.services.ports import BudgetExhausted, CrmError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (10.0, 60.0)
IDEMPOTENT = frozenset({"GET", "PATCH", "PUT", "DELETE", "HEAD"})


class Credentials(Protocol):
    """Where the API lives and how we authenticate (see auth.py)."""

    @property
    def api_domain(self) -> str: ...

    def headers(self) -> dict[str, str]: ...

    def refresh(self, stale_headers: dict[str, str]) -> bool:
        """Get new credentials after a 401; False when there is nothing to refresh (API token)."""
        ...


@dataclass
class RateState:
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # monotonic time when the window resets


@dataclass
class CallStats:
    calls: int = 0
    tokens: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    by_endpoint: dict[str, int] = field(default_factory=dict)


def _error_text(response: requests.Response) -> tuple[str, str | None]:
    """Pipedrive's own words from the error envelope (or the first part of a non-JSON body)."""
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return (text[:300] or f"HTTP {response.status_code}"), None
    if isinstance(body, dict):
        error = body.get("error") or body.get("error_description") or body.get("message")
        info = body.get("error_info")
        code = body.get("code") or body.get("errorCode")
        message = str(error or f"HTTP {response.status_code}")
        if info and str(info) not in message:
            message = f"{message} ({info})"
        return message, (str(code) if code is not None else None)
    return str(body)[:300], None


class PipedriveClient:
    def __init__(self, credentials: Credentials, *, verify: bool | str = True, session: requests.Session | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT, max_retries: int = 4, max_wait_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, run_limit: int | None = None,
                 low_water: int = 2) -> None:
        if verify is False:
            raise ValueError("TLS verification cannot be turned off")
        self.credentials = credentials
        self.verify = verify
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.sleep = sleep
        self.run_limit = run_limit
        self.low_water = low_water
        self.rate = RateState()
        self.stats = CallStats()

    # -- low level ---------------------------------------------------------------------------
    @property
    def calls(self) -> int:
        return self.stats.calls

    def url(self, version: str, path: str) -> str:
        return f"{self.credentials.api_domain.rstrip('/')}/api/{version}/{path.lstrip('/')}"

    def _wait(self, seconds: float, why: str) -> None:
        if seconds <= 0:
            return
        if seconds > self.max_wait_s:
            raise BudgetExhausted(f"Pipedrive rate limit: {why}; the allowance resets in {seconds:.0f}s")
        log.info("Pipedrive %s: waiting %.1fs", why, seconds)
        self.stats.waited_s += seconds
        self.sleep(seconds)

    def _before_call(self) -> None:
        if self.run_limit is not None and self.stats.calls >= self.run_limit:
            raise BudgetExhausted(f"this run's Pipedrive budget of {self.run_limit} calls is spent")
        r = self.rate
        if r.remaining is not None and r.remaining <= self.low_water and r.reset_at is not None:
            self._wait(r.reset_at - time.monotonic(), "burst allowance spent")
            r.remaining = None

    def _observe(self, response: requests.Response) -> None:
        h = response.headers
        try:
            if "x-ratelimit-remaining" in h:
                self.rate.remaining = int(float(h["x-ratelimit-remaining"]))
            if "x-ratelimit-limit" in h:
                self.rate.limit = int(float(h["x-ratelimit-limit"]))
            if "x-ratelimit-reset" in h:
                self.rate.reset_at = time.monotonic() + float(h["x-ratelimit-reset"])
            if "x-token-cost" in h:
                self.stats.tokens += int(float(h["x-token-cost"]))
        except ValueError:
            pass

    def _reset_delay(self, response: requests.Response, attempt: int) -> float:
        for name in ("x-ratelimit-reset", "retry-after"):
            value = response.headers.get(name)
            if value:
                try:
                    return max(float(value), 0.5) + random.uniform(0, 0.25)
                except ValueError:
                    pass
        return min(2.0 * (2 ** attempt), 20.0) * random.uniform(0.5, 1.0)

    def request(self, method: str, version: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None) -> dict[str, Any]:
        """One API call; returns the decoded envelope (`data`, `additional_data`) or raises CrmError."""
        method = method.upper()
        url = self.url(version, path)
        endpoint = f"{method} {version}/{path.split('?')[0]}"
        refreshed = False
        attempt = 0
        while True:
            self._before_call()
            headers = {"Accept": "application/json", **self.credentials.headers()}
            self.stats.calls += 1
            self.stats.by_endpoint[endpoint] = self.stats.by_endpoint.get(endpoint, 0) + 1
            try:
                response = self.session.request(method, url, params=params, json=json, headers=headers,
                                                timeout=self.timeout, verify=self.verify)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if method in IDEMPOTENT and attempt < self.max_retries:
                    attempt += 1
                    self.stats.retries += 1
                    self._wait(min(0.5 * (2 ** attempt), 8.0) * random.uniform(0.5, 1.0), "network error")
                    continue
                raise CrmError(f"Pipedrive could not be reached: {exc}", transient=True) from exc
            self._observe(response)
            status = response.status_code
            if status == 401 and not refreshed and self.credentials.refresh(headers):
                refreshed = True
                continue
            if status == 429:
                self.stats.rate_limited += 1
                if attempt < self.max_retries:
                    attempt += 1
                    self.stats.retries += 1
                    self._wait(self._reset_delay(response, attempt), "429 Too Many Requests")
                    self.rate.remaining = None
                    continue
            elif status >= 500 and method in IDEMPOTENT and attempt < self.max_retries:
                attempt += 1
                self.stats.retries += 1
                self._wait(min(0.5 * (2 ** attempt), 8.0) * random.uniform(0.5, 1.0), f"HTTP {status}")
                continue
            if status >= 400:
                message, code = _error_text(response)
                transient = status == 429 or status >= 500
                if status == 403 and "text/html" in response.headers.get("Content-Type", ""):
                    # Pipedrive's answer to a client that kept sending after 429s.
                    message, transient = "Pipedrive blocked the requests after repeated rate-limit errors", True
                raise CrmError(f"Pipedrive {method} {path}: {message}", transient=transient, code=code, status=status)
            if status == 204 or not response.content:
                return {"success": True, "data": None}
            try:
                body = response.json()
            except ValueError as exc:
                raise CrmError(f"Pipedrive {method} {path}: answer is not JSON", transient=True, status=status) from exc
            if isinstance(body, dict) and body.get("success") is False:
                message, code = _error_text(response)
                raise CrmError(f"Pipedrive {method} {path}: {message}", transient=False, code=code, status=status)
            return body if isinstance(body, dict) else {"success": True, "data": body}

    # -- helpers -------------------------------------------------------------------------------
    def get(self, version: str, path: str, **params: Any) -> Any:
        return self.request("GET", version, path, params=_clean(params)).get("data")

    def post(self, version: str, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", version, path, json=body).get("data")

    def patch(self, version: str, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", version, path, json=body).get("data")

    def delete(self, version: str, path: str) -> Any:
        return self.request("DELETE", version, path).get("data")

    def pages(self, path: str, **params: Any) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """v2 cursor pagination: (items, next_cursor) per page, starting at `cursor` if given."""
        params = _clean(params)
        while True:
            body = self.request("GET", "v2", path, params=params)
            data = body.get("data") or []
            if isinstance(data, dict):  # search answers {"items": [...]}
                data = data.get("items") or []
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            yield data, cursor
            if not cursor:
                return
            params = {**params, "cursor": cursor}

    def iterate(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        for items, _ in self.pages(path, **params):
            yield from items

    def iterate_v1(self, path: str, limit: int = 500, **params: Any) -> Iterator[dict[str, Any]]:
        """v1 offset pagination (`additional_data.pagination.next_start`)."""
        start = 0
        while True:
            body = self.request("GET", "v1", path, params=_clean({**params, "start": start, "limit": limit}))
            yield from body.get("data") or []
            pagination = (body.get("additional_data") or {}).get("pagination") or {}
            if not pagination.get("more_items_in_collection"):
                return
            start = int(pagination.get("next_start", start + limit))


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple, set)):
            value = ",".join(str(v) for v in value)
        out[key] = value
    return out
