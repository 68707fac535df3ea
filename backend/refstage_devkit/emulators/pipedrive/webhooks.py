"""Webhooks v2: subscriptions, payloads and the delivery schedule.

Delivery rules (Pipedrive's guide for webhooks v2): a POST with the JSON payload and, when set,
HTTP basic auth; a 2xx answer within 10 s is a success; otherwise the delivery is retried after
3, 30 and 150 s (attempts 2-4, `meta.attempt` counts them). Ten first-attempt failures in a row
ban the webhook for 30 minutes, and events raised during a ban are lost. A webhook that has not
had a success for 3 days is deleted. Every delay is multiplied by `time_scale` and measured on
the emulated clock, so tests can shrink the schedule or jump it with the control API.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests

from .company import ADMIN_USER_ID, COMPANY_DOMAIN, COMPANY_ID, ApiError
from .faults import Faults
from .store import Clock, Store

log = logging.getLogger(__name__)

RETRY_DELAYS = (3.0, 30.0, 150.0)
BAN_AFTER_FAILURES = 10
BAN_SECONDS = 30 * 60
DELETE_AFTER_SECONDS = 3 * 86400
TIMEOUT_SECONDS = 10.0
MAX_DELIVERY_LOG = 10_000  # the control API keeps the most recent deliveries

ACTIONS = {"create": "create", "change": "change", "delete": "delete", "*": "*",
           # v1 names, still accepted by POST /v1/webhooks
           "added": "create", "updated": "change", "merged": "change", "deleted": "delete"}
OBJECTS = ("activity", "activityType", "deal", "lead", "note", "organization", "person",
           "pipeline", "product", "stage", "user", "*")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _iso_ms(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookManager:
    def __init__(self, store: Store, clock: Clock, faults: Faults, time_scale: float = 1.0,
                 timeout: float = TIMEOUT_SECONDS, workers: int = 4) -> None:
        self.store = store
        self.clock = clock
        self.faults = faults
        self.time_scale = time_scale
        self.timeout = timeout
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, dict]] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._stopping = False
        self._state: dict[int, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self._delivery_ids = itertools.count(1)
        self._session = requests.Session()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pd-webhook")
        self._thread = threading.Thread(target=self._run, name="pd-webhook-scheduler", daemon=True)
        self._thread.start()
        clock.subscribe(self._wake)

    # -- subscriptions --------------------------------------------------------------------
    def create(self, body: dict[str, Any], user_id: int = ADMIN_USER_ID) -> dict[str, Any]:
        url = body.get("subscription_url")
        if not isinstance(url, str) or not url:
            raise ApiError(400, "subscription_url is required")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(400, "subscription_url must be an absolute http(s) URL")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK:
            raise ApiError(400, "subscription_url must use https (plain http only on loopback in the emulator)")
        action = body.get("event_action")
        obj = body.get("event_object")
        if action not in ACTIONS:
            raise ApiError(400, "event_action must be one of create, change, delete, *")
        if obj not in OBJECTS:
            raise ApiError(400, f"event_object must be one of {', '.join(OBJECTS)}")
        version = str(body.get("version") or "1.0")
        if version != "2.0":
            raise ApiError(400, "The emulator only serves webhooks v2: send version \"2.0\"")
        mine = [w for w in self.store.all("webhook") if w["user_id"] == (body.get("user_id") or user_id)]
        if len(mine) >= 40:
            raise ApiError(400, "The maximum limit of webhooks is 40 per user")
        now = self.clock.ts()
        hook = {
            "id": None, "company_id": COMPANY_ID, "owner_id": user_id,
            "user_id": body.get("user_id") or user_id, "event_action": action,
            "event_object": obj, "subscription_url": url, "is_active": 1,
            "add_time": _iso_ms(now), "remove_time": None, "type": "general",
            "http_auth_user": body.get("http_auth_user"),
            "http_auth_password": body.get("http_auth_password"),
            "additional_data": {}, "remove_reason": None, "last_delivery_time": None,
            "last_http_status": None, "admin_id": ADMIN_USER_ID, "version": version,
            "name": body.get("name") or f"{action}.{obj}",
        }
        hook = self.store.put("webhook", hook)
        with self._cond:
            self._state[hook["id"]] = {"first_failures": 0, "banned_until": 0.0, "last_success": now,
                                       "lost_in_ban": 0}
        return hook

    def list(self) -> list[dict[str, Any]]:
        return self.store.all("webhook")

    def delete(self, webhook_id: int, reason: str | None = None) -> bool:
        hook = self.store.get("webhook", webhook_id)
        if hook is None:
            return False
        self.store.delete_row("webhook", webhook_id)
        with self._cond:
            self._state.pop(webhook_id, None)
            self._heap = [e for e in self._heap if e[2]["webhook_id"] != webhook_id]
            heapq.heapify(self._heap)
        if reason:
            log.info("webhook %s deleted: %s", webhook_id, reason)
        return True

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self._state.clear()
            self.deliveries.clear()
            self._delivery_ids = itertools.count(1)

    # -- events ---------------------------------------------------------------------------
    def on_event(self, *, action: str, entity: str, entity_id: Any, data: dict | None,
                 previous: dict | None, change_source: str, user_id: int) -> None:
        hooks = self.store.all("webhook")
        if not hooks:
            return
        now = self.clock.ts()
        correlation = str(uuid.uuid4())
        for hook in hooks:
            if hook["event_object"] not in ("*", entity):
                continue
            if ACTIONS[hook["event_action"]] not in ("*", action):
                continue
            payload = {
                "data": data,
                "previous": previous,
                "meta": {
                    "action": action, "entity": entity, "entity_id": str(entity_id),
                    "id": str(uuid.uuid4()), "company_id": str(COMPANY_ID),
                    "correlation_id": correlation, "is_bulk_edit": False, "is_legacy": False,
                    "type": "general", "timestamp": _iso_ms(now), "user_id": str(user_id),
                    "version": "2.0", "webhook_id": str(hook["id"]),
                    "webhook_owner_id": str(hook["owner_id"]), "change_source": change_source,
                    "permitted_user_ids": [str(user_id)], "attempt": 1,
                    "host": f"{COMPANY_DOMAIN}.pipedrive.com",
                },
            }
            record = {"delivery_id": 0, "webhook_id": hook["id"],
                      "event_id": payload["meta"]["id"], "action": action, "entity": entity,
                      "entity_id": str(entity_id), "change_source": change_source,
                      "created_at": _iso_ms(now), "attempts": [], "state": "pending",
                      "payload": payload}
            with self._cond:
                state = self._state.setdefault(hook["id"], {"first_failures": 0, "banned_until": 0.0,
                                                            "last_success": now, "lost_in_ban": 0})
                self.deliveries.append(record)
                record["delivery_id"] = next(self._delivery_ids)
                if len(self.deliveries) > MAX_DELIVERY_LOG:
                    del self.deliveries[: len(self.deliveries) - MAX_DELIVERY_LOG]
                if state["banned_until"] > now:
                    state["lost_in_ban"] += 1
                    record["state"] = "lost_banned"
                    continue
                fate = self.faults.webhook_fate()
                if fate == "drop":
                    record["state"] = "dropped"
                    continue
                self._push(now, {"record": record, "webhook_id": hook["id"], "attempt": 1})
                if fate == "dup":
                    record["duplicated"] = True
                    self._push(now, {"record": record, "webhook_id": hook["id"], "attempt": 1,
                                     "duplicate": True})

    def _push(self, due: float, job: dict) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), job))
        self._cond.notify_all()

    # -- delivery loop --------------------------------------------------------------------
    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    now = self.clock.ts()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    wait = (self._heap[0][0] - now) if self._heap else None
                    self._cond.wait(timeout=min(wait, 0.5) if wait is not None else 0.5)
                if self._stopping:
                    return
                _, _, job = heapq.heappop(self._heap)
                self._in_flight += 1
            self._pool.submit(self._deliver, job)

    def _deliver(self, job: dict) -> None:
        try:
            self._attempt(job)
        except Exception:  # pragma: no cover - never let the worker die
            log.exception("webhook delivery crashed")
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _attempt(self, job: dict) -> None:
        record = job["record"]
        hook = self.store.get("webhook", job["webhook_id"])
        if hook is None:
            record["state"] = "webhook_deleted"
            return
        payload = dict(record["payload"])
        payload["meta"] = dict(payload["meta"], attempt=job["attempt"])
        auth = None
        if hook.get("http_auth_user") or hook.get("http_auth_password"):
            auth = (hook.get("http_auth_user") or "", hook.get("http_auth_password") or "")
        started = self.clock.ts()
        status, error = None, None
        try:
            resp = self._session.post(hook["subscription_url"], json=payload, auth=auth,
                                      timeout=self.timeout,
                                      headers={"User-Agent": "Pipedrive Webhooks (emulator)"})
            status = resp.status_code
            ok = 200 <= status < 300
            if not ok:
                error = f"HTTP {status}"
        except requests.RequestException as exc:
            ok = False
            error = type(exc).__name__
        now = self.clock.ts()
        record["attempts"].append({"attempt": job["attempt"], "at": _iso_ms(started),
                                   "http_status": status, "ok": ok, "error": error,
                                   "duplicate": bool(job.get("duplicate"))})
        # Lock order is store.lock -> _cond everywhere: touch the store before taking _cond.
        with self.store.lock:
            current = self.store.get("webhook", hook["id"])
            if current is not None:
                current["last_delivery_time"] = _iso_ms(now)
                current["last_http_status"] = status
                self.store.put("webhook", current)
        with self._cond:
            state = self._state.setdefault(hook["id"], {"first_failures": 0, "banned_until": 0.0,
                                                        "last_success": now, "lost_in_ban": 0})
            if ok:
                state["first_failures"] = 0
                state["last_success"] = now
                if not job.get("duplicate"):
                    record["state"] = "delivered"
                return
            if job.get("duplicate"):
                return
            if job["attempt"] == 1:
                state["first_failures"] += 1
                if state["first_failures"] >= BAN_AFTER_FAILURES:
                    state["banned_until"] = now + BAN_SECONDS * self.time_scale
                    state["first_failures"] = 0
                    record.setdefault("notes", []).append("webhook banned for 30 minutes")
            if now - state["last_success"] >= DELETE_AFTER_SECONDS * self.time_scale:
                record["state"] = "failed"
                delete_later = True
            else:
                delete_later = False
                if job["attempt"] <= len(RETRY_DELAYS):
                    record["state"] = "retrying"
                    self._push(now + RETRY_DELAYS[job["attempt"] - 1] * self.time_scale,
                               {"record": record, "webhook_id": hook["id"],
                                "attempt": job["attempt"] + 1})
                else:
                    record["state"] = "failed"
        if delete_later:
            self.delete(hook["id"], reason="no successful delivery for 3 days")

    # -- inspection -----------------------------------------------------------------------
    def status(self) -> dict[int, dict[str, Any]]:
        with self._cond:
            now = self.clock.ts()
            return {wid: {"consecutive_first_attempt_failures": s["first_failures"],
                          "banned": s["banned_until"] > now,
                          "banned_until": _iso_ms(s["banned_until"]) if s["banned_until"] > now else None,
                          "events_lost_in_ban": s["lost_in_ban"]}
                    for wid, s in self._state.items()}

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no delivery is due now or in flight (later retries do not count)."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            with self._cond:
                while True:
                    now = self.clock.ts()
                    due = bool(self._heap and self._heap[0][0] <= now)
                    if not due and self._in_flight == 0:
                        return True
                    if deadline.is_set():
                        return False
                    self._cond.wait(timeout=0.05)
        finally:
            timer.cancel()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=2)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()
