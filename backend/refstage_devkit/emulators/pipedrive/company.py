"""The emulated company: entities, their API v2 shapes, custom fields, seed data and change events.

Every mutation goes through here so that the API, the control API and seeding behave alike, and
each create/change/delete is reported to the webhook dispatcher with the changed fields.
"""

from __future__ import annotations

import functools
import random
from typing import Any, Callable

from .store import Clock, Store, field_hash

COMPANY_ID = 13370042
COMPANY_DOMAIN = "refstage-demo"
ADMIN_USER_ID = 1

USERS = [
    {"id": 1, "name": "Ada Admin", "email": "admin@refstage.test", "is_admin": 1, "active_flag": True},
    {"id": 2, "name": "Sam Seller", "email": "sam@refstage.test", "is_admin": 0, "active_flag": True},
    {"id": 3, "name": "Rita Rep", "email": "rita@refstage.test", "is_admin": 0, "active_flag": True},
]
USER_IDS = {u["id"] for u in USERS}

DEAL_STATUSES = ("open", "won", "lost")

# Standard fields listed by /v1/dealFields and /v1/personFields (a representative subset).
_STANDARD_FIELDS = {
    "deal": [
        ("id", "ID", "int"), ("title", "Title", "varchar"), ("user_id", "Owner", "user"),
        ("person_id", "Contact person", "people"), ("org_id", "Organization", "org"),
        ("value", "Value", "monetary"), ("currency", "Currency", "varchar_options"),
        ("pipeline", "Pipeline", "double"), ("stage_id", "Stage", "stage"),
        ("status", "Status", "status"), ("add_time", "Deal created", "date"),
        ("update_time", "Update time", "date"), ("won_time", "Won time", "date"),
        ("lost_time", "Lost time", "date"), ("close_time", "Deal closed on", "date"),
        ("lost_reason", "Lost reason", "varchar"), ("visible_to", "Visible to", "visible_to"),
    ],
    "person": [
        ("id", "ID", "int"), ("name", "Name", "varchar"), ("first_name", "First name", "varchar"),
        ("last_name", "Last name", "varchar"), ("org_id", "Organization", "org"),
        ("owner_id", "Owner", "user"), ("email", "Email", "varchar"), ("phone", "Phone", "phone"),
        ("add_time", "Person created", "date"), ("update_time", "Update time", "date"),
        ("visible_to", "Visible to", "visible_to"), ("label_ids", "Labels", "set"),
    ],
}

CUSTOM_FIELD_TYPES = ("address", "date", "daterange", "double", "enum", "monetary", "org", "people",
                      "phone", "set", "text", "time", "timerange", "user", "varchar", "varchar_auto",
                      "visible_to")


class ApiError(Exception):
    def __init__(self, status: int, error: str, error_info: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.error_info = error_info or "Please check developers.pipedrive.com for more information about Pipedrive API."
        self.code = code


EventSink = Callable[..., None]


def _atomic(method: Callable) -> Callable:
    """Run a read-modify-write under the store's lock so concurrent requests cannot interleave."""
    @functools.wraps(method)
    def wrapper(self: "Company", *args: Any, **kwargs: Any) -> Any:
        with self.store.lock:
            return method(self, *args, **kwargs)
    return wrapper


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_types(body: dict[str, Any], spec: dict[str, Any]) -> None:
    """v2 does no coercion: a wrong JSON type is a 400."""
    for key, kind in spec.items():
        if key not in body or body[key] is None:
            continue
        value = body[key]
        ok = {
            "int": _is_int(value),
            "num": (isinstance(value, (int, float)) and not isinstance(value, bool)),
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "list": isinstance(value, list),
            "dict": isinstance(value, dict),
        }[kind]
        if not ok:
            names = {"int": "integer", "num": "number", "str": "string", "bool": "boolean",
                     "list": "array", "dict": "object"}
            raise ApiError(400, f"Validation failed: {key}: Parameter '{key}' must be a {names[kind]}")


_DEAL_TYPES = {"title": "str", "owner_id": "int", "person_id": "int", "org_id": "int",
               "pipeline_id": "int", "stage_id": "int", "value": "num", "currency": "str",
               "status": "str", "probability": "num", "lost_reason": "str", "visible_to": "int",
               "expected_close_date": "str", "label_ids": "list", "custom_fields": "dict",
               "is_deleted": "bool", "is_archived": "bool"}
_PERSON_TYPES = {"name": "str", "owner_id": "int", "org_id": "int", "emails": "list",
                 "phones": "list", "visible_to": "int", "label_ids": "list", "custom_fields": "dict",
                 "first_name": "str", "last_name": "str"}
_ORG_TYPES = {"name": "str", "owner_id": "int", "visible_to": "int", "label_ids": "list",
              "custom_fields": "dict"}


class Company:
    def __init__(self, store: Store, clock: Clock, on_event: EventSink | None = None) -> None:
        self.store = store
        self.clock = clock
        self.on_event = on_event or (lambda **kw: None)

    # -- events ---------------------------------------------------------------------------
    def _emit(self, action: str, entity: str, current: dict | None, previous: dict | None,
              source: str, user_id: int) -> None:
        entity_id = (current or previous or {}).get("id")
        self.on_event(action=action, entity=entity, entity_id=entity_id, data=current,
                      previous=previous, change_source=source, user_id=user_id)

    # -- custom fields --------------------------------------------------------------------
    def field_kind(self, entity: str) -> str:
        return f"{entity}Field"

    def fields(self, entity: str) -> list[dict[str, Any]]:
        return self.store.all(self.field_kind(entity))

    def custom_fields(self, entity: str) -> dict[str, dict[str, Any]]:
        return {f["key"]: f for f in self.fields(entity) if f.get("edit_flag")}

    @_atomic
    def add_field(self, entity: str, name: str, field_type: str, options: list | None = None,
                  user_id: int = ADMIN_USER_ID, key: str | None = None,
                  standard: bool = False) -> dict[str, Any]:
        now = self.clock.iso()
        kind = self.field_kind(entity)
        existing = self.store.count(kind)
        opts = None
        if options:
            opts = [{"id": i + 1, "label": (o.get("label") if isinstance(o, dict) else str(o))}
                    for i, o in enumerate(options)]
        field = {
            "id": None, "key": key or field_hash(), "name": name, "order_nr": existing,
            "field_type": field_type, "add_time": now, "update_time": now,
            "last_updated_by_user_id": user_id, "created_by_user_id": user_id,
            "active_flag": True, "edit_flag": not standard, "index_visible_flag": True,
            "details_visible_flag": True, "add_visible_flag": True, "important_flag": False,
            "bulk_edit_allowed": True, "searchable_flag": False, "filtering_allowed": True,
            "sortable_flag": True, "mandatory_flag": False, "options": opts,
        }
        return self.store.put(kind, field)

    def _apply_custom(self, entity: str, target: dict[str, Any], values: Any) -> dict[str, Any]:
        if values is None:
            return {}
        if not isinstance(values, dict):
            raise ApiError(400, "Validation failed: custom_fields: Parameter 'custom_fields' must be a object")
        known = self.custom_fields(entity)
        current = dict(target.get("custom_fields") or {})
        changed: dict[str, Any] = {}
        for key, value in values.items():
            field = known.get(key)
            if field is None:
                raise ApiError(400, f"Validation failed: custom_fields: Unknown custom field '{key}'")
            ftype = field["field_type"]
            if value is not None:
                if ftype in ("varchar", "varchar_auto", "text", "phone", "address", "date", "time") \
                        and not isinstance(value, str):
                    raise ApiError(400, f"Validation failed: custom_fields.{key}: must be a string")
                if ftype == "double" and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
                    raise ApiError(400, f"Validation failed: custom_fields.{key}: must be a number")
                if ftype == "monetary":
                    if not (isinstance(value, dict) and "value" in value):
                        raise ApiError(400, f"Validation failed: custom_fields.{key}: must be an object with value and currency")
                    value = {"value": value.get("value"), "currency": value.get("currency") or "USD"}
                if ftype in ("enum", "user", "org", "people") and not _is_int(value):
                    raise ApiError(400, f"Validation failed: custom_fields.{key}: must be an integer")
                if ftype == "set" and not (isinstance(value, list) and all(_is_int(v) for v in value)):
                    raise ApiError(400, f"Validation failed: custom_fields.{key}: must be an array of integers")
            if current.get(key) != value:
                changed[key] = current.get(key)
            current[key] = value
        target["custom_fields"] = current
        return changed

    def render(self, entity: str, obj: dict[str, Any]) -> dict[str, Any]:
        """The v2 shape: every custom field of the entity appears, null when unset."""
        out = dict(obj)
        if entity in ("deal", "person", "organization"):
            stored = obj.get("custom_fields") or {}
            out["custom_fields"] = {k: stored.get(k) for k in self.custom_fields(entity)} \
                if entity != "organization" else dict(stored)
        return out

    # -- pipelines & stages ---------------------------------------------------------------
    def add_pipeline(self, name: str, order_nr: int | None = None) -> dict[str, Any]:
        now = self.clock.iso()
        order = order_nr if order_nr is not None else self.store.count("pipeline") + 1
        return self.store.put("pipeline", {
            "id": None, "name": name, "order_nr": order, "is_selected": order == 1,
            "is_deleted": False, "is_deal_probability_enabled": False,
            "add_time": now, "update_time": now})

    def add_stage(self, pipeline_id: int, name: str, probability: int = 100) -> dict[str, Any]:
        now = self.clock.iso()
        order = len([s for s in self.store.all("stage") if s["pipeline_id"] == pipeline_id]) + 1
        return self.store.put("stage", {
            "id": None, "order_nr": order, "name": name, "is_deleted": False,
            "deal_probability": probability, "pipeline_id": pipeline_id,
            "is_deal_rot_enabled": False, "days_to_rotten": None,
            "add_time": now, "update_time": now})

    def stages_of(self, pipeline_id: int) -> list[dict[str, Any]]:
        return sorted((s for s in self.store.all("stage") if s["pipeline_id"] == pipeline_id),
                      key=lambda s: s["order_nr"])

    def _require(self, kind: str, obj_id: Any, label: str) -> dict[str, Any]:
        obj = self.store.get(kind, obj_id) if _is_int(obj_id) else None
        if obj is None or obj.get("is_deleted"):
            raise ApiError(400, f"{label} not found")
        return obj

    # -- organizations --------------------------------------------------------------------
    @_atomic
    def create_org(self, body: dict[str, Any], source: str = "api",
                   user_id: int = ADMIN_USER_ID) -> dict[str, Any]:
        _check_types(body, _ORG_TYPES)
        if not body.get("name"):
            raise ApiError(400, "Validation failed: name: Parameter 'name' is required")
        now = self.clock.iso()
        org = {"id": None, "name": body["name"], "owner_id": body.get("owner_id") or user_id,
               "add_time": now, "update_time": now, "is_deleted": False,
               "visible_to": body.get("visible_to", 3), "label_ids": body.get("label_ids") or [],
               "address": None, "custom_fields": {}}
        self._apply_custom("organization", org, body.get("custom_fields"))
        org = self.store.put("organization", org)
        self._emit("create", "organization", self.render("organization", org), None, source, user_id)
        return self.render("organization", org)

    @_atomic
    def update_org(self, org_id: int, body: dict[str, Any], source: str = "api",
                   user_id: int = ADMIN_USER_ID) -> dict[str, Any]:
        _check_types(body, _ORG_TYPES)
        org = self.get_live("organization", org_id)
        previous: dict[str, Any] = {}
        for key in ("name", "owner_id", "visible_to", "label_ids"):
            if key in body and body[key] != org.get(key):
                previous[key] = org.get(key)
                org[key] = body[key]
        changed = self._apply_custom("organization", org, body.get("custom_fields"))
        if changed:
            previous["custom_fields"] = changed
        return self._finish_update("organization", org, previous, source, user_id)

    # -- persons --------------------------------------------------------------------------
    @staticmethod
    def _contact_list(values: Any, name: str) -> list[dict[str, Any]]:
        if values is None:
            return []
        out = []
        for i, item in enumerate(values):
            if isinstance(item, str):
                item = {"value": item}
            if not isinstance(item, dict) or not isinstance(item.get("value"), str):
                raise ApiError(400, f"Validation failed: {name}: each item needs a string value")
            label = item.get("label")
            if not isinstance(label, str) or not label:
                label = "work"  # the spec types label boolean; the real API carries strings
            out.append({"value": item["value"], "primary": bool(item.get("primary", i == 0)),
                        "label": label})
        if out and not any(e["primary"] for e in out):
            out[0]["primary"] = True
        return out

    @_atomic
    def create_person(self, body: dict[str, Any], source: str = "api",
                      user_id: int = ADMIN_USER_ID) -> dict[str, Any]:
        _check_types(body, _PERSON_TYPES)
        name = body.get("name")
        if not name:
            raise ApiError(400, "Validation failed: name: Parameter 'name' is required")
        if body.get("org_id") is not None:
            self._require("organization", body["org_id"], "Organization")
        owner = body.get("owner_id") or user_id
        if owner not in USER_IDS:
            raise ApiError(400, "Owner not found")
        now = self.clock.iso()
        first, _, last = name.partition(" ")
        person = {"id": None, "name": name, "first_name": body.get("first_name") or first,
                  "last_name": body.get("last_name") or last or None, "owner_id": owner,
                  "org_id": body.get("org_id"), "add_time": now, "update_time": now,
                  "emails": self._contact_list(body.get("emails"), "emails"),
                  "phones": self._contact_list(body.get("phones"), "phones"),
                  "is_deleted": False, "visible_to": body.get("visible_to", 3),
                  "label_ids": body.get("label_ids") or [], "picture_id": None,
                  "custom_fields": {}}
        self._apply_custom("person", person, body.get("custom_fields"))
        person = self.store.put("person", person)
        rendered = self.render("person", person)
        self._emit("create", "person", rendered, None, source, user_id)
        return rendered

    @_atomic
    def update_person(self, person_id: int, body: dict[str, Any], source: str = "api",
                      user_id: int = ADMIN_USER_ID) -> dict[str, Any]:
        _check_types(body, _PERSON_TYPES)
        person = self.get_live("person", person_id)
        if body.get("org_id") is not None:
            self._require("organization", body["org_id"], "Organization")
        if "owner_id" in body and body["owner_id"] not in USER_IDS:
            raise ApiError(400, "Owner not found")
        previous: dict[str, Any] = {}
        updates = {k: body[k] for k in ("name", "first_name", "last_name", "owner_id", "org_id",
                                         "visible_to", "label_ids") if k in body}
        if "emails" in body:
            updates["emails"] = self._contact_list(body["emails"], "emails")
        if "phones" in body:
            updates["phones"] = self._contact_list(body["phones"], "phones")
        if "name" in updates and updates["name"]:
            first, _, last = updates["name"].partition(" ")
            updates.setdefault("first_name", first)
            updates.setdefault("last_name", last or None)
        for key, value in updates.items():
            if person.get(key) != value:
                previous[key] = person.get(key)
                person[key] = value
        changed = self._apply_custom("person", person, body.get("custom_fields"))
        if changed:
            previous["custom_fields"] = changed
        return self._finish_update("person", person, previous, source, user_id)

    def find_persons_by_email(self, email: str) -> list[dict[str, Any]]:
        needle = email.strip().lower()
        hits = self.store.query("person", where_like=needle, limit=1_000_000)
        return [p for p in hits if any(e["value"].lower() == needle for e in p.get("emails") or [])]

    # -- deals ----------------------------------------------------------------------------
    def _placement(self, pipeline_id: Any, stage_id: Any) -> tuple[int, int]:
        if stage_id is not None:
            stage = self._require("stage", stage_id, "Stage")
            if pipeline_id is not None and pipeline_id != stage["pipeline_id"]:
                raise ApiError(400, "Stage does not belong to the given pipeline")
            return stage["pipeline_id"], stage["id"]
        if pipeline_id is None:
            pipelines = sorted(self.store.all("pipeline"), key=lambda p: p["order_nr"])
            if not pipelines:
                raise ApiError(400, "No pipeline exists")
            pipeline_id = pipelines[0]["id"]
        self._require("pipeline", pipeline_id, "Pipeline")
        stages = self.stages_of(pipeline_id)
        if not stages:
            raise ApiError(400, "Pipeline has no stages")
        return pipeline_id, stages[0]["id"]

    def _status_times(self, deal: dict[str, Any], status: str, now: str) -> None:
        deal["status"] = status
        if status == "won":
            deal["won_time"], deal["lost_time"], deal["close_time"] = now, None, now
            deal["lost_reason"] = None
        elif status == "lost":
            deal["lost_time"], deal["won_time"], deal["close_time"] = now, None, now
        else:
            deal["won_time"] = deal["lost_time"] = deal["close_time"] = None
            deal["lost_reason"] = None

    @_atomic
    def create_deal(self, body: dict[str, Any], source: str = "api",
                    user_id: int = ADMIN_USER_ID) -> dict[str, Any]:
        _check_types(body, _DEAL_TYPES)
        if not body.get("title"):
            raise ApiError(400, "Validation failed: title: Parameter 'title' is required")
        pipeline_id, stage_id = self._placement(body.get("pipeline_id"), body.get("stage_id"))
        for key, kind, label in (("person_id", "person", "Person"),
                                 ("org_id", "organization", "Organization")):
            if body.get(key) is not None:
                self._require(kind, body[key], label)
        owner = body.get("owner_id") or user_id
        if owner not in USER_IDS:
            raise ApiError(400, "Owner not found")
        status = body.get("status") or "open"
        if status not in DEAL_STATUSES:
            raise ApiError(400, "Validation failed: status: must be one of open, won, lost")
        now = self.clock.iso()
        deal = {
            "id": None, "title": body["title"], "creator_user_id": user_id, "owner_id": owner,
            "value": body.get("value", 0), "person_id": body.get("person_id"),
            "org_id": body.get("org_id"), "stage_id": stage_id, "pipeline_id": pipeline_id,
            "currency": body.get("currency") or "USD", "add_time": now, "update_time": now,
            "stage_change_time": None, "status": "open", "is_archived": False,
            "archive_time": None, "is_deleted": False, "probability": body.get("probability"),
            "lost_reason": None, "visible_to": body.get("visible_to", 3), "close_time": None,
            "won_time": None, "lost_time": None,
            "expected_close_date": body.get("expected_close_date"),
            "label_ids": body.get("label_ids") or [], "origin": "API" if source == "api" else "ManuallyCreated",
            "origin_id": None, "channel": None, "channel_id": None,
            "acv": None, "arr": None, "mrr": None, "custom_fields": {},
        }
        self._status_times(deal, status, now)
        if status == "lost":
            deal["lost_reason"] = body.get("lost_reason")
        self._apply_custom("deal", deal, body.get("custom_fields"))
        deal = self.store.put("deal", deal)
        rendered = self.render("deal", deal)
        self._emit("create", "deal", rendered, None, source, user_id)
        return rendered

    @_atomic
    def update_deal(self, deal_id: int, body: dict[str, Any], source: str = "api",
                    user_id: int = ADMIN_USER_ID) -> dict[str, Any]:
        _check_types(body, _DEAL_TYPES)
        deal = self.get_live("deal", deal_id)
        now = self.clock.iso()
        previous: dict[str, Any] = {}
        same_pipeline_only = ("stage_id" not in body and body.get("pipeline_id") == deal["pipeline_id"])
        if ("stage_id" in body or "pipeline_id" in body) and not same_pipeline_only:
            pipeline_id, stage_id = self._placement(
                body.get("pipeline_id") if "stage_id" not in body or body.get("pipeline_id") else None,
                body.get("stage_id"))
            if stage_id != deal["stage_id"]:
                previous["stage_id"] = deal["stage_id"]
                deal["stage_id"] = stage_id
                previous["stage_change_time"] = deal["stage_change_time"]
                deal["stage_change_time"] = now
            if pipeline_id != deal["pipeline_id"]:
                previous["pipeline_id"] = deal["pipeline_id"]
                deal["pipeline_id"] = pipeline_id
        for key, kind, label in (("person_id", "person", "Person"),
                                 ("org_id", "organization", "Organization")):
            if body.get(key) is not None:
                self._require(kind, body[key], label)
        if "owner_id" in body and body["owner_id"] not in USER_IDS:
            raise ApiError(400, "Owner not found")
        for key in ("title", "owner_id", "person_id", "org_id", "value", "currency", "probability",
                    "visible_to", "expected_close_date", "label_ids"):
            if key in body and body[key] != deal.get(key):
                previous[key] = deal.get(key)
                deal[key] = body[key]
        if "status" in body and body["status"] != deal["status"]:
            if body["status"] not in DEAL_STATUSES:
                raise ApiError(400, "Validation failed: status: must be one of open, won, lost")
            before = {k: deal.get(k) for k in ("status", "won_time", "lost_time", "close_time", "lost_reason")}
            self._status_times(deal, body["status"], now)
            previous.update({k: v for k, v in before.items() if deal.get(k) != v})
        if "lost_reason" in body and deal["status"] == "lost" and body["lost_reason"] != deal.get("lost_reason"):
            previous.setdefault("lost_reason", deal.get("lost_reason"))
            deal["lost_reason"] = body["lost_reason"]
        changed = self._apply_custom("deal", deal, body.get("custom_fields"))
        if changed:
            previous["custom_fields"] = changed
        return self._finish_update("deal", deal, previous, source, user_id)

    # -- shared ---------------------------------------------------------------------------
    def get_live(self, kind: str, obj_id: int) -> dict[str, Any]:
        obj = self.store.get(kind, obj_id)
        if obj is None or obj.get("is_deleted"):
            raise ApiError(404, f"{kind.capitalize()} not found")
        return obj

    def _finish_update(self, kind: str, obj: dict[str, Any], previous: dict[str, Any],
                       source: str, user_id: int) -> dict[str, Any]:
        if previous:
            previous["update_time"] = obj["update_time"]
            obj["update_time"] = self.clock.iso()
            self.store.put(kind, obj)
            rendered = self.render(kind, obj)
            self._emit("change", kind, rendered, previous, source, user_id)
            return rendered
        return self.render(kind, obj)

    @_atomic
    def delete(self, kind: str, obj_id: int, source: str = "api",
               user_id: int = ADMIN_USER_ID) -> dict[str, Any]:
        obj = self.get_live(kind, obj_id)
        before = self.render(kind, obj)
        obj["is_deleted"] = True
        if kind == "deal":
            obj["status"] = obj["status"]  # deleted deals keep their last status
        obj["update_time"] = self.clock.iso()
        self.store.put(kind, obj)
        self._emit("delete", kind, None, before, source, user_id)
        return {"id": obj_id}

    # -- seed -----------------------------------------------------------------------------
    def seed(self, kind: str = "demo") -> None:
        if kind not in ("demo", "empty"):
            raise ValueError(f"unknown seed {kind!r}")
        self.add_pipeline("Referrals")
        for name, prob in (("Lead In", 10), ("Contact Made", 20), ("Demo Scheduled", 40),
                           ("Proposal Made", 60), ("Negotiations Started", 80)):
            self.add_stage(1, name, prob)
        for key, name, ftype in _STANDARD_FIELDS["deal"]:
            self.add_field("deal", name, ftype, key=key, standard=True)
        for key, name, ftype in _STANDARD_FIELDS["person"]:
            self.add_field("person", name, ftype, key=key, standard=True)
        if kind == "empty":
            return
        pipeline = self.add_pipeline("Partnerships")
        for name in ("Intro", "Agreement Sent", "Signed"):
            self.add_stage(pipeline["id"], name)
        self.add_field("person", "Customer tier", "enum", options=["Gold", "Silver", "Bronze"])
        self.add_field("deal", "Lead source", "varchar")
        orgs = [self.create_org({"name": n}, source="app")["id"]
                for n in ("Acme Robotics", "Globex Logistics", "Initech Software")]
        self.seed_bulk(persons=8, deals=6, orgs=orgs, rng=random.Random(42))

    _FIRST = ("Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines",
              "Jonas", "Kemal", "Lena", "Marta", "Nikos", "Olga", "Pavel", "Quinn", "Rosa")
    _LAST = ("Andersen", "Berg", "Costa", "Dubois", "Eklund", "Fischer", "Garcia", "Hoffmann",
             "Ivanova", "Jensen", "Kowalski", "Larsen", "Moreau", "Novak", "Ortiz", "Petrov")

    def seed_bulk(self, persons: int = 0, deals: int = 0, orgs: list[int] | None = None,
                  rng: random.Random | None = None, source: str = "app") -> dict[str, list[int]]:
        rng = rng or random.Random(self.store.count("person") + self.store.count("deal"))
        orgs = orgs if orgs is not None else [o["id"] for o in self.store.all("organization")]
        stages = [s for s in self.store.all("stage")]
        created_persons, created_deals = [], []
        base = self.store.count("person")
        for i in range(persons):
            first, last = rng.choice(self._FIRST), rng.choice(self._LAST)
            n = base + i + 1
            person = self.create_person({
                "name": f"{first} {last}",
                "emails": [{"value": f"{first}.{last}.{n}@example.com".lower(), "primary": True,
                            "label": "work"}],
                "phones": [{"value": f"+1555{n:07d}", "primary": True, "label": "mobile"}],
                "org_id": rng.choice(orgs) if orgs else None,
                "owner_id": rng.choice(sorted(USER_IDS)),
            }, source=source)
            created_persons.append(person["id"])
        person_ids = created_persons or [p["id"] for p in self.store.all("person")]
        for _ in range(deals):
            stage = rng.choice(stages)
            person_id = rng.choice(person_ids) if person_ids else None
            person = self.store.get("person", person_id) if person_id else None
            deal = self.create_deal({
                "title": f"{(person or {}).get('name', 'Prospect')} deal",
                "value": rng.randrange(500, 50_000, 100), "currency": "EUR",
                "person_id": person_id, "org_id": (person or {}).get("org_id"),
                "stage_id": stage["id"], "owner_id": rng.choice(sorted(USER_IDS)),
            }, source=source)
            created_deals.append(deal["id"])
        return {"persons": created_persons, "deals": created_deals}
