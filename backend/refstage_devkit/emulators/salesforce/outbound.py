"""Outbound Messages: rules (object, fields, condition, endpoint) that POST Salesforce's SOAP
``notifications`` envelope on record changes, retried with growing gaps until acknowledged.

Delivery is at-least-once and may be out of order, and carries the record's values at send time,
as Salesforce documents.  A rule's ``condition`` is a SOQL WHERE expression (``StageName = 'Closed Won'``).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import requests
from defusedxml import ElementTree as ET

from . import ids
from .soql import compile_soql
from .store import to_json

if TYPE_CHECKING:
    from .schema import SObject
    from .server import Org

MAX_PER_MESSAGE = 100
MAX_GAP_SECONDS = 2 * 3600
GIVE_UP_SECONDS = 24 * 3600


def _xml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return repr(v)
    return escape(str(v))


class Outbound:
    def __init__(self, org: Org, retry_base: float = 2.0) -> None:
        self.org = org
        self.retry_base = retry_base
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.rules: dict[str, dict[str, Any]] = {}
        self.queue: list[dict[str, Any]] = []   # pending notifications
        self.log: list[dict[str, Any]] = []     # every delivery attempt
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.session = requests.Session()
        org.store.hooks.append(self.on_change)

    # ------------------------------------------------------------------ rules
    def add_rule(self, rule: dict[str, Any]) -> dict[str, Any]:
        obj = self.org.store.sobject(rule.get("object") or rule.get("sobject") or "")
        url = rule.get("endpointUrl") or rule.get("endpoint_url") or rule.get("url")
        if not url or not str(url).startswith(("http://", "https://")):
            raise ValueError("endpointUrl must be an http(s) URL")
        fields = rule.get("fields") or ["Id"]
        canon = []
        for name in fields:
            f = obj.field_ci(name)
            if f is None:
                raise ValueError(f"No such field {name} on {obj.name}")
            canon.append(f.name)
        if "Id" not in canon:
            canon.insert(0, "Id")
        cond = rule.get("condition")
        if cond:
            compile_soql(f"SELECT Id FROM {obj.name} WHERE {cond}", self.org.store.objects, self.org.clock.today())
        events = rule.get("events") or ["created", "updated"]
        rid = ids.make_id("04k", self.org.store.ids.reserve(1))
        entry = {"id": rid, "name": rule.get("name") or f"{obj.name} outbound message", "object": obj.name,
                 "fields": canon, "condition": cond, "endpointUrl": url, "events": list(events),
                 "includeSessionId": bool(rule.get("includeSessionId", False)), "active": rule.get("active", True)}
        with self._lock:
            self.rules[rid] = entry
        return entry

    def set_deployed(self, rules: list[dict[str, Any]]) -> None:
        """Replace the Outbound Messages the Metadata API deployed (flows send them through enqueue)."""
        with self._lock:
            for rid in [rid for rid, r in self.rules.items() if r.get("deployed")]:
                del self.rules[rid]
            for rule in rules:
                self.rules[rule["id"]] = rule

    def enqueue(self, rule_id: str, record_ids: list[str], source: str | None = None) -> None:
        """Queue one notification per record for a rule (a flow's outboundMessage action)."""
        store = self.org.store
        now = self.org.clock.now_ms()
        with self._lock:
            for rid in record_ids:
                self.queue.append({"id": ids.make_id("04l", store.ids.reserve(1)), "ruleId": rule_id,
                                   "recordId": rid, "created": now, "due": now, "attempts": 0, "source": source})
        self._wake.set()

    def list_rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.rules.values()]

    def delete_rule(self, rule_id: str) -> None:
        with self._lock:
            key = ids.normalize(rule_id) or rule_id
            if self.rules.get(key, {}).get("deployed"):
                return  # a deployed Outbound Message leaves with its metadata, not through the control API
            self.rules.pop(key, None)
            self.queue = [n for n in self.queue if n["ruleId"] != rule_id]

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.queue.clear()
            self.log.clear()

    # ------------------------------------------------------------------ events
    def on_change(self, event: str, obj: SObject, record_ids: list[str]) -> None:
        rules = [r for r in self.rules.values() if r["active"] and r["object"] == obj.name and event in r["events"]]
        if not rules:
            return
        store = self.org.store
        for rule in rules:
            matched = record_ids
            if rule["condition"]:
                q = compile_soql(f"SELECT Id FROM {obj.name} WHERE {rule['condition']}", store.objects,
                                 self.org.clock.today())
                sql, params = q.sql(include_deleted=False, with_limit=False)
                marks = ",".join("?" * len(record_ids))
                with store.lock:
                    matched = [r[0] for r in store.db.execute(f"{sql} AND t0.Id IN ({marks})",
                                                              params + list(record_ids))]
            now = self.org.clock.now_ms()
            with self._lock:
                for rid in matched:
                    self.queue.append({"id": ids.make_id("04l", store.ids.reserve(1)), "ruleId": rule["id"],
                                       "recordId": rid, "created": now, "due": now, "attempts": 0})
        self._wake.set()

    # ------------------------------------------------------------------ delivery
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sf-outbound", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            try:
                self.deliver_due()
            except Exception:  # pragma: no cover - keep the worker alive
                import logging

                logging.getLogger(__name__).exception("outbound delivery failed")

    def deliver_due(self) -> None:
        now = self.org.clock.now_ms()
        with self._lock:
            due = [n for n in self.queue if n["due"] <= now]
            now_give_up = [n for n in self.queue if now - n["created"] > GIVE_UP_SECONDS * 1000]
            for n in now_give_up:
                self.queue.remove(n)
                rule = self.rules.get(n["ruleId"], {})
                self.log.append({"notificationIds": [n["id"]], "recordIds": [n["recordId"]], "ruleId": n["ruleId"],
                                 "name": rule.get("name"), "fullName": rule.get("fullName"),
                                 "status": "dropped", "acked": False, "at": now, "attempt": n["attempts"]})
            due = [n for n in due if n not in now_give_up]
        by_rule: dict[str, list[dict[str, Any]]] = {}
        for n in due:
            by_rule.setdefault(n["ruleId"], []).append(n)
        for rule_id, items in by_rule.items():
            rule = self.rules.get(rule_id)
            if rule is None:
                continue
            for i in range(0, len(items), MAX_PER_MESSAGE):
                self._send(rule, items[i:i + MAX_PER_MESSAGE])

    def envelope(self, rule: dict[str, Any], items: list[dict[str, Any]]) -> str:
        store = self.org.store
        obj = store.objects[rule["object"]]
        org_id = self.org.org_id
        base = self.org.base_url
        version = "62.0"
        session = ""
        if rule["includeSessionId"]:
            session = self.org.oauth.issue_access(rule.get("userId") or self.org.admin_id, self.org.client_id, "api")
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            ' <soapenv:Body>\n'
            '  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">\n'
            f'   <OrganizationId>{org_id}</OrganizationId>\n'
            f'   <ActionId>{rule["id"]}</ActionId>\n'
            + (f'   <SessionId>{escape(session)}</SessionId>\n' if session else '   <SessionId xsi:nil="true"/>\n')
            + f'   <EnterpriseUrl>{base}/services/Soap/c/{version}/{org_id[:15]}</EnterpriseUrl>\n'
            f'   <PartnerUrl>{base}/services/Soap/u/{version}/{org_id[:15]}</PartnerUrl>\n'
        ]
        for n in items:
            rec = store.get(obj, n["recordId"], include_deleted=True) or {"Id": n["recordId"]}
            parts.append(f'   <Notification>\n    <Id>{n["id"]}</Id>\n'
                         f'    <sObject xsi:type="sf:{obj.name}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n')
            for fname in rule["fields"]:
                v = to_json(obj.fields[fname], rec.get(fname)) if fname in obj.fields else None
                if v is not None:
                    parts.append(f"     <sf:{fname}>{_xml_value(v)}</sf:{fname}>\n")
            parts.append("    </sObject>\n   </Notification>\n")
        parts.append("  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>\n")
        return "".join(parts)

    @staticmethod
    def acked(body: bytes) -> bool:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return False
        for el in root.iter():
            if el.tag.rsplit("}", 1)[-1] == "Ack" and (el.text or "").strip().lower() == "true":
                return True
        return False

    def _send(self, rule: dict[str, Any], items: list[dict[str, Any]]) -> None:
        body = self.envelope(rule, items)
        status: Any
        ok = False
        try:
            resp = self.session.post(rule["endpointUrl"], data=body.encode(), timeout=10, headers={
                "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""',
                "User-Agent": "Salesforce - OutboundMessaging (refstage emulator)"})
            status = resp.status_code
            ok = resp.status_code == 200 and self.acked(resp.content)
        except requests.RequestException as exc:
            status = type(exc).__name__
        now = self.org.clock.now_ms()
        with self._lock:
            attempt = max(n["attempts"] for n in items) + 1
            self.log.append({"ruleId": rule["id"], "name": rule.get("name"), "fullName": rule.get("fullName"),
                             "flows": sorted({n["source"] for n in items if n.get("source")}),
                             "endpointUrl": rule["endpointUrl"],
                             "notificationIds": [n["id"] for n in items], "recordIds": [n["recordId"] for n in items],
                             "attempt": attempt, "status": status, "acked": ok, "at": now, "body": body})
            for n in items:
                if ok:
                    if n in self.queue:
                        self.queue.remove(n)
                else:
                    n["attempts"] += 1
                    gap = min(self.retry_base * (2 ** (n["attempts"] - 1)), MAX_GAP_SECONDS)
                    n["due"] = now + int(gap * 1000)

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for d in self.log]

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(n) for n in self.queue]

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self.queue:
                    return True
            time.sleep(0.05)
        return False
