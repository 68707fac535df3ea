"""One HTTP session for every Salesforce call: timeouts, transient retries with backoff and jitter,
token refresh on INVALID_SESSION_ID, the API budget, and Salesforce errors mapped to CrmError.

simple-salesforce (REST and Bulk 2.0) is handed this session, so its calls get the same treatment —
including a refresh in the middle of a Bulk job, which simple-salesforce cannot do itself."""

from __future__ import annotations

import datetime as dt
import email.utils

import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests

from refstage.services.ports import BudgetExhausted, CrmError

log = logging.getLogger(__name__)

API_VERSION = "62.0"
DEFAULT_TIMEOUT = (10.0, 120.0)  # connect, read
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION", "QUERY_TIMEOUT",
                             "REQUEST_RUNNING_TOO_LONG", "TXN_SECURITY_METERING_ERROR"})
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


class Credentials(Protocol):
    """Where the access token lives and how to get a new one (auth.TokenKeeper)."""

    access_token: str
    instance_url: str

    def refresh(self, stale_token: str) -> None: ...


@dataclass
class ApiBudget:
    """The share of the org's rolling 24-hour allowance we may use, and this run's own cap.

    `org_fraction`: stop once org-wide usage reaches this share of the daily maximum (Singer: 0.8).
    `run_limit`: stop once this gateway has made this many calls (None: no per-run cap)."""

    org_fraction: float = 0.8
    run_limit: int | None = None
    used: int | None = None
    max: int | None = None
    calls: int = 0

    def observe(self, header: str | None) -> None:
        match = _LIMIT_INFO.search(header or "")
        if match:
            self.used, self.max = int(match.group(1)), int(match.group(2))

    def check(self) -> None:
        if self.run_limit is not None and self.calls >= self.run_limit:
            raise BudgetExhausted(f"this run's API budget of {self.run_limit} calls is spent")
        if self.used is not None and self.max and self.used >= self.org_fraction * self.max:
            raise BudgetExhausted(f"the org has used {self.used} of {self.max} daily API requests; "
                                  f"Refstage stops at {self.org_fraction:.0%}")


def error_of(response: requests.Response) -> tuple[str | None, str]:
    """(errorCode, message) from a Salesforce error body — a JSON array, an OAuth object, or text."""
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return None, text[:500] or f"HTTP {response.status_code}"
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body[0].get("errorCode"), str(body[0].get("message") or body[0])
    if isinstance(body, dict):
        if "error" in body:
            return str(body["error"]), str(body.get("error_description") or body["error"])
        if "errorCode" in body:
            return body["errorCode"], str(body.get("message") or body)
    return None, str(body)[:500]


def is_transient(status: int, code: str | None) -> bool:
    return status >= 500 or status == 429 or (code in TRANSIENT_CODES)


def crm_error(status: int, code: str | None, message: str) -> CrmError:
    if code == "REQUEST_LIMIT_EXCEEDED":
        return BudgetExhausted(f"Salesforce: {message}")
    return CrmError(message, transient=is_transient(status, code), code=code, status=status)


class SalesforceSession(requests.Session):
    """A requests.Session that authenticates, retries and budgets every call it makes."""

    def __init__(self, credentials: Credentials, budget: ApiBudget, *, retries: int = 5, backoff: float = 0.5,
                 max_backoff: float = 30.0, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        self.credentials = credentials
        self.budget = budget
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.default_timeout = timeout
        self.sleep = sleep
        self.server_time: dt.datetime | None = None  # the org's clock, from the Date header of the last answer
        self.headers["User-Agent"] = "refstage-salesforce/1"

    def _delay(self, attempt: int) -> float:
        # Full jitter: spreads retries of many workers hitting the same outage.
        return random.uniform(0, min(self.max_backoff, self.backoff * (2 ** attempt)))

    def _clock(self, header: str | None) -> None:
        if not header:
            return
        try:
            parsed = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        self.server_time = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)

    def _rebase(self, url: str) -> str:
        """After a refresh the instance URL may have changed (org migration): follow it."""
        current = urlsplit(self.credentials.instance_url)
        parts = urlsplit(url)
        if parts.path.startswith("/services/data") and parts.netloc and parts.netloc != current.netloc:
            return urlunsplit((current.scheme, current.netloc, parts.path, parts.query, parts.fragment))
        return url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        refreshed = False
        attempt = 0
        while True:
            self.budget.check()
            token = self.credentials.access_token
            headers = dict(kwargs.pop("headers", None) or {})
            headers["Authorization"] = f"Bearer {token}"
            url = self._rebase(url)
            try:
                response = super().request(method, url, *args, headers=headers, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self.budget.calls += 1
                if attempt < self.retries:
                    delay = self._delay(attempt)
                    log.info("Salesforce %s %s: %s; retry in %.2fs", method, urlsplit(url).path, type(exc).__name__, delay)
                    self.sleep(delay)
                    attempt += 1
                    kwargs["headers"] = headers
                    continue
                raise CrmError(f"Salesforce could not be reached: {exc}", transient=True) from exc
            self.budget.calls += 1
            self.budget.observe(response.headers.get("Sforce-Limit-Info"))
            self._clock(response.headers.get("Date"))
            kwargs["headers"] = headers
            if response.status_code < 300:
                return response
            code, message = error_of(response)
            if response.status_code == 401:
                if refreshed:
                    raise CrmError(f"Salesforce refused a freshly refreshed session: {message}", transient=True,
                                   code=code, status=401)
                self.credentials.refresh(token)  # raises ReconnectRequired on invalid_grant
                refreshed = True
                continue
            if code == "REQUEST_LIMIT_EXCEEDED":
                raise BudgetExhausted(f"Salesforce: {message}")
            if is_transient(response.status_code, code) and attempt < self.retries:
                delay = self._delay(attempt)
                log.info("Salesforce %s %s: %s %s; retry in %.2fs", method, urlsplit(url).path,
                         response.status_code, code, delay)
                self.sleep(delay)
                attempt += 1
                continue
            return response  # a permanent error: the caller maps it with Salesforce's own text
