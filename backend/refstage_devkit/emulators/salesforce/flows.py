"""Deployed automation: active record-triggered flows run after a record is saved, test their entry
conditions (including "is changed" and "only when updated to meet the condition"), and their
``outboundMessage`` action calls send the deployed Outbound Messages (``Workflow`` outboundMessages:
fields, endpoint URL, integration user) through the shared delivery queue (outbound.py).

Only the elements this needs are interpreted: the start element and a chain of action calls.
Other flow elements (decisions, assignments, record updates, scheduled paths) are stored but not run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import ids
from .mdschema import MD_URI, parse_xml
from .store import to_json

if TYPE_CHECKING:
    from .schema import SObject
    from .server import Org

log = logging.getLogger(__name__)
NS = "{" + MD_URI + "}"
EVENTS = {"Create": {"created"}, "Update": {"updated"}, "CreateAndUpdate": {"created", "updated"},
          "Delete": {"deleted"}}


def _text(el: Any, tag: str) -> str | None:
    child = el.find(NS + tag) if el is not None else None
    return child.text.strip() if child is not None and child.text else None


@dataclass
class Condition:
    field: str
    operator: str
    value: Any


@dataclass
class RecordFlow:
    name: str
    object: str
    events: set[str]
    conditions: list[Condition]
    logic: str                      # "and", "or", or "1 AND (2 OR 3)"
    only_when_changed_to_meet: bool
    outbound_messages: list[str] = field(default_factory=list)  # "Opportunity.Refstage_Opportunity_Changed"


def _value(el: Any) -> Any:
    if el is None:
        return None
    for tag, conv in (("stringValue", str), ("numberValue", float), ("dateValue", str), ("dateTimeValue", str)):
        text = _text(el, tag)
        if text is not None:
            return conv(text)
    text = _text(el, "booleanValue")
    if text is not None:
        return text.lower() == "true"
    return None


def parse_flow(name: str, body: bytes) -> RecordFlow | None:
    root, _ = parse_xml(body)
    start = root.find(NS + "start")
    if (_text(root, "status") or "") != "Active" or start is None or not _text(start, "object"):
        return None
    if (_text(start, "triggerType") or "") not in ("RecordAfterSave", "RecordBeforeSave", "RecordBeforeDelete"):
        return None
    conditions = [Condition(_text(f, "field") or "", _text(f, "operator") or "EqualTo", _value(f.find(NS + "value")))
                  for f in start.findall(NS + "filters")]
    flow = RecordFlow(name=name, object=_text(start, "object") or "",
                      events=EVENTS.get(_text(start, "recordTriggerType") or "", set()), conditions=conditions,
                      logic=(_text(start, "filterLogic") or "and"),
                      only_when_changed_to_meet=(_text(start, "doesRequireRecordChangedToMeetCriteria") or "")
                      .lower() == "true")
    actions = {(_text(a, "name") or ""): a for a in root.findall(NS + "actionCalls")}
    target = _text(start.find(NS + "connector"), "targetReference")
    seen: set[str] = set()
    while target and target in actions and target not in seen:
        seen.add(target)
        call = actions[target]
        if (_text(call, "actionType") or "") == "outboundMessage":
            flow.outbound_messages.append(_text(call, "actionName") or "")
        target = _text(call.find(NS + "connector"), "targetReference")
    return flow


_LOGIC_TOKEN = re.compile(r"\s*(\d+|AND|OR|NOT|\(|\))", re.IGNORECASE)


def _combine(logic: str, results: list[bool]) -> bool:
    if not results:
        return True
    low = logic.strip().lower()
    if low == "and":
        return all(results)
    if low == "or":
        return any(results)
    # custom logic: only numbers, AND, OR, NOT and parentheses are accepted, then evaluated as Python
    pos, out = 0, []
    while pos < len(logic):
        m = _LOGIC_TOKEN.match(logic, pos)
        if not m:
            if logic[pos:].strip() == "":
                break
            return False
        tok = m.group(1)
        if tok.isdigit():
            idx = int(tok) - 1
            out.append("True" if 0 <= idx < len(results) and results[idx] else "False")
        else:
            out.append(tok.lower())
        pos = m.end()
    try:
        return bool(eval(" ".join(out), {"__builtins__": {}}, {}))  # noqa: S307 - tokens checked above
    except SyntaxError:
        return False


def _matches(cond: Condition, rec: dict[str, Any], old: dict[str, Any] | None, obj: SObject, event: str) -> bool:
    f = obj.field_ci(cond.field)
    if f is None:
        return False
    value = to_json(f, rec.get(f.name))
    op = cond.operator
    if op == "IsChanged":
        changed = event == "updated" and old is not None and f.name in old
        return changed == bool(cond.value)
    if op == "IsNull":
        return (value is None or value == "") == bool(cond.value)
    expected = cond.value
    if isinstance(value, bool) and not isinstance(expected, bool) and isinstance(expected, str):
        expected = expected.lower() == "true"
    if op == "EqualTo":
        return value == expected
    if op == "NotEqualTo":
        return value != expected
    if value is None:
        return False
    try:
        if op == "GreaterThan":
            return value > expected
        if op == "GreaterThanOrEqualTo":
            return value >= expected
        if op == "LessThan":
            return value < expected
        if op == "LessThanOrEqualTo":
            return value <= expected
    except TypeError:
        return False
    text, needle = str(value), str(expected)
    if op == "Contains":
        return needle in text
    if op == "StartsWith":
        return text.startswith(needle)
    if op == "EndsWith":
        return text.endswith(needle)
    return False


class Automation:
    """The org's active record-triggered flows and deployed Outbound Messages."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.flows: list[RecordFlow] = []
        self.runs: list[dict[str, Any]] = []   # flow interviews started (for tests and the control API)
        org.store.hooks.append(self.on_change)

    def reload(self) -> None:
        store = self.org.store
        rules = []
        for obj_name, body in store.deployed("Workflow"):
            root, _ = parse_xml(body)
            for om in root.findall(NS + "outboundMessages"):
                full = f"{obj_name}.{_text(om, 'fullName')}"
                rule_id = store.kv_get(f"outbound-id:{full}")
                if rule_id is None:
                    rule_id = ids.make_id("04k", store.ids.reserve(1))
                    store.kv_set(f"outbound-id:{full}", rule_id)
                fields = [(f.text or "").strip() for f in om.findall(NS + "fields")]
                rules.append({
                    "id": rule_id, "fullName": full, "name": _text(om, "name") or full, "object": obj_name,
                    "fields": (["Id"] if "Id" not in fields else []) + fields, "condition": None,
                    "endpointUrl": _text(om, "endpointUrl") or "", "events": [],
                    "includeSessionId": (_text(om, "includeSessionId") or "false").lower() == "true",
                    "integrationUser": _text(om, "integrationUser"),
                    "userId": self._user_id(_text(om, "integrationUser") or ""), "active": True, "deployed": True})
        self.org.outbound.set_deployed(rules)
        self._flow_definitions()
        flows = []
        for name, body in store.deployed("Flow"):
            try:
                flow = parse_flow(name, body)
            except Exception:  # pragma: no cover - a stored flow that no longer parses is skipped, not fatal
                log.exception("cannot read deployed flow %s", name)
                continue
            if flow is not None:
                flows.append(flow)
        self.flows = flows

    def _flow_definitions(self) -> None:
        """One FlowDefinitionView row per deployed flow (what installers read to see a flow is active)."""
        store = self.org.store
        view = store.objects.get("FlowDefinitionView")
        if view is None:
            return
        for name, body in store.deployed("Flow"):
            root, _ = parse_xml(body)
            start = root.find(NS + "start")
            version_id = store.kv_get(f"flow-version:{name}")
            if version_id is None:
                version_id = ids.make_id("301", store.ids.reserve(1))
                store.kv_set(f"flow-version:{name}", version_id)
            active = (_text(root, "status") or "") == "Active"
            values = {"ApiName": name, "Label": _text(root, "label") or name,
                      "Description": _text(root, "description"), "ProcessType": _text(root, "processType"),
                      "TriggerType": _text(start, "triggerType"), "TriggerObjectOrEventLabel": _text(start, "object"),
                      "IsActive": int(active), "ActiveVersionId": version_id if active else None,
                      "LatestVersionId": version_id, "ApiVersion": float(_text(root, "apiVersion") or 0) or None}
            found = store.find_by(view, view.fields["ApiName"], name)
            if found:
                store.set_system(view, found[0], values, self.org.admin_id)
            else:
                rid = store.insert(view, {}, self.org.admin_id, notify=False)
                store.set_system(view, rid, values, self.org.admin_id)

    def _user_id(self, username: str) -> str | None:
        user = self.org.store.objects["User"]
        with self.org.store.lock:
            row = self.org.store.db.execute(f"SELECT Id FROM {user.table} WHERE Username=? COLLATE NOCASE",
                                            (username,)).fetchone()
        return row[0] if row else None

    def on_change(self, event: str, obj: SObject, record_ids: list[str]) -> None:
        flows = [f for f in self.flows if f.object == obj.name and event in f.events]
        store = self.org.store
        changes = {rid: store.changes.pop((obj.name, rid), None) for rid in record_ids} if event == "updated" else {}
        if not flows:
            return
        by_name = {r["fullName"]: r for r in self.org.outbound.list_rules() if r.get("deployed")}
        for rid in record_ids:
            rec = store.get(obj, rid, include_deleted=event == "deleted")
            if rec is None:
                continue
            old_values = changes.get(rid)
            for flow in flows:
                if not self._entry(flow, rec, old_values, obj, event):
                    continue
                self.runs.append({"flow": flow.name, "recordId": rid, "event": event,
                                  "at": self.org.clock.now_ms()})
                for action in flow.outbound_messages:
                    rule = by_name.get(action)
                    if rule is not None:
                        self.org.outbound.enqueue(rule["id"], [rid], source=flow.name)

    def _entry(self, flow: RecordFlow, rec: dict[str, Any], old: dict[str, Any] | None, obj: SObject,
               event: str) -> bool:
        now = _combine(flow.logic, [_matches(c, rec, old, obj, event) for c in flow.conditions])
        if not now or not flow.only_when_changed_to_meet or event != "updated":
            return now
        before = {**rec, **(old or {})}
        was = _combine(flow.logic, [_matches(c, before, None, obj, "before") for c in flow.conditions
                                    if c.operator != "IsChanged"] or [True])
        return not was
