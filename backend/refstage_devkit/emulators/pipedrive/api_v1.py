"""API v1: the parts that have no v2 twin -- dealFields, personFields, notes, webhooks, users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, g, jsonify, request

from .company import CUSTOM_FIELD_TYPES, USERS, ApiError, COMPANY_DOMAIN, COMPANY_ID
from .http import form_or_json, ok, q_int
from .store import v1_time

if TYPE_CHECKING:
    from .server import EmulatorState


def _v1_field(field: dict[str, Any]) -> dict[str, Any]:
    out = dict(field)
    out["add_time"] = v1_time(field["add_time"])
    out["update_time"] = v1_time(field["update_time"])
    return out


def _user_v1(user: dict[str, Any], me: bool = False) -> dict[str, Any]:
    out = {"id": user["id"], "name": user["name"], "email": user["email"],
           "default_currency": "USD", "locale": "en_US", "lang": 1, "active_flag": True,
           "is_admin": user["is_admin"], "role_id": 1, "phone": None, "activated": True,
           "is_deleted": False, "timezone_name": "Europe/Tallinn",
           "timezone_offset": "+02:00", "icon_url": None, "is_you": me,
           "created": "2024-01-01 00:00:00", "modified": "2024-01-01 00:00:00",
           "last_login": "2026-01-01 09:00:00", "has_created_company": user["id"] == 1,
           "access": [{"app": "sales", "admin": bool(user["is_admin"]), "permission_set_id": "1"}]}
    if me:
        out.update({"company_id": COMPANY_ID, "company_name": "Refstage Demo Company",
                    "company_domain": COMPANY_DOMAIN, "company_country": "EE",
                    "company_industry": "Software", "language": {"language_code": "en",
                                                                 "country_code": "US"}})
    return out


def blueprint(state: "EmulatorState") -> Blueprint:
    bp = Blueprint("pipedrive_v1", __name__, url_prefix="/api/v1")
    company = state.company

    def fields_list(entity: str) -> Response:
        start = q_int("start", 0, minimum=0) or 0
        limit = q_int("limit", 100, minimum=1, maximum=500) or 100
        fields = company.fields(entity)
        page = fields[start:start + limit]
        more = start + limit < len(fields)
        pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        return ok([_v1_field(f) for f in page], {"pagination": pagination})

    def fields_create(entity: str) -> Response:
        body = form_or_json()
        name = body.get("name")
        field_type = body.get("field_type")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "Field name is required")
        if field_type not in CUSTOM_FIELD_TYPES:
            raise ApiError(400, f"field_type must be one of {', '.join(CUSTOM_FIELD_TYPES)}")
        options = body.get("options")
        if field_type in ("enum", "set") and not options:
            raise ApiError(400, "options are required for enum and set fields")
        field = company.add_field(entity, name.strip(), field_type, options=options,
                                  user_id=g.principal.user_id)
        return ok(_v1_field(field))

    def field_get(entity: str, field_id: int) -> Response:
        field = state.store.get(company.field_kind(entity), field_id)
        if field is None:
            raise ApiError(404, "Field not found")
        return ok(_v1_field(field))

    @bp.get("/dealFields")
    def deal_fields() -> Response:
        return fields_list("deal")

    @bp.post("/dealFields")
    def add_deal_field() -> Response:
        return fields_create("deal")

    @bp.get("/dealFields/<int:field_id>")
    def get_deal_field(field_id: int) -> Response:
        return field_get("deal", field_id)

    @bp.get("/personFields")
    def person_fields() -> Response:
        return fields_list("person")

    @bp.post("/personFields")
    def add_person_field() -> Response:
        return fields_create("person")

    @bp.get("/personFields/<int:field_id>")
    def get_person_field(field_id: int) -> Response:
        return field_get("person", field_id)

    # -- notes ----------------------------------------------------------------------------
    def _note_v1(note: dict[str, Any]) -> dict[str, Any]:
        deal = state.store.get("deal", note["deal_id"]) if note.get("deal_id") else None
        person = state.store.get("person", note["person_id"]) if note.get("person_id") else None
        org = state.store.get("organization", note["org_id"]) if note.get("org_id") else None
        user = next(u for u in USERS if u["id"] == note["user_id"])
        return {
            "id": note["id"], "active_flag": True, "add_time": v1_time(note["add_time"]),
            "content": note["content"], "deal": {"title": deal["title"]} if deal else None,
            "lead_id": None, "deal_id": note.get("deal_id"),
            "last_update_user_id": note["user_id"], "org_id": note.get("org_id"),
            "organization": {"name": org["name"]} if org else None,
            "person": {"name": person["name"]} if person else None,
            "person_id": note.get("person_id"),
            "pinned_to_deal_flag": bool(note.get("pinned_to_deal_flag")),
            "pinned_to_organization_flag": bool(note.get("pinned_to_organization_flag")),
            "pinned_to_person_flag": bool(note.get("pinned_to_person_flag")),
            "update_time": v1_time(note["update_time"]),
            "user": {"email": user["email"], "icon_url": None,
                     "is_you": user["id"] == g.principal.user_id, "name": user["name"]},
            "user_id": note["user_id"],
        }

    @bp.post("/notes")
    def add_note() -> Response:
        body = form_or_json()
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ApiError(400, "Note content is required")
        links: dict[str, int] = {}
        for key, kind, label in (("deal_id", "deal", "Deal"), ("person_id", "person", "Person"),
                                 ("org_id", "organization", "Organization")):
            raw = body.get(key)
            if raw in (None, ""):
                continue
            try:
                value = int(raw)
            except (TypeError, ValueError) as exc:
                raise ApiError(400, f"{key} must be an integer") from exc
            obj = state.store.get(kind, value)
            if obj is None or obj.get("is_deleted"):
                raise ApiError(400, f"{label} not found")
            links[key] = value
        if not links and not body.get("lead_id"):
            raise ApiError(400, "A note must be attached to a deal, person, organization or lead")
        now = state.clock.iso()
        note = {"id": None, "content": content, "user_id": g.principal.user_id,
                "add_time": now, "update_time": now, "is_deleted": False, **links}
        for flag in ("pinned_to_deal_flag", "pinned_to_person_flag", "pinned_to_organization_flag"):
            note[flag] = str(body.get(flag, "0")) in ("1", "true", "True")
        note = state.store.put("note", note)
        rendered = _note_v1(note)
        company._emit("create", "note", rendered, None, "api", g.principal.user_id)
        return ok(rendered)

    @bp.get("/notes")
    def list_notes() -> Response:
        deal_id = q_int("deal_id")
        person_id = q_int("person_id")
        start = q_int("start", 0, minimum=0) or 0
        limit = q_int("limit", 100, minimum=1, maximum=500) or 100
        notes = [n for n in state.store.all("note")
                 if (deal_id is None or n.get("deal_id") == deal_id)
                 and (person_id is None or n.get("person_id") == person_id)]
        page = notes[start:start + limit]
        more = start + limit < len(notes)
        return ok([_note_v1(n) for n in page],
                  {"pagination": {"start": start, "limit": limit, "more_items_in_collection": more}})

    @bp.get("/notes/<int:note_id>")
    def get_note(note_id: int) -> Response:
        note = state.store.get("note", note_id)
        if note is None or note.get("is_deleted"):
            raise ApiError(404, "Note not found")
        return ok(_note_v1(note))

    # -- webhooks -------------------------------------------------------------------------
    @bp.post("/webhooks")
    def add_webhook() -> Response:
        body = form_or_json()
        try:
            hook = state.webhooks.create(body, user_id=g.principal.user_id)
        except ApiError as exc:
            resp = jsonify({"success": False, "status": "error", "error": exc.error,
                            "error_info": exc.error_info, "data": None,
                            "errors": {"message": exc.error}})
            resp.status_code = exc.status
            return resp
        return _status_ok(hook, 201)

    @bp.get("/webhooks")
    def list_webhooks() -> Response:
        return _status_ok(state.webhooks.list(), 200)

    @bp.delete("/webhooks/<int:webhook_id>")
    def delete_webhook(webhook_id: int) -> Response:
        if not state.webhooks.delete(webhook_id):
            resp = jsonify({"success": False, "status": "error", "error": "Webhook not found",
                            "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.",
                            "data": None, "errors": {"id": ["Webhook not found"]}})
            resp.status_code = 404
            return resp
        return jsonify({"success": True, "status": "ok"})

    # -- users ----------------------------------------------------------------------------
    @bp.get("/users/me")
    def me() -> Response:
        user = next(u for u in USERS if u["id"] == g.principal.user_id)
        return ok(_user_v1(user, me=True))

    @bp.get("/users")
    def users() -> Response:
        return ok([_user_v1(u, me=u["id"] == g.principal.user_id) for u in USERS])

    return bp


def _status_ok(data: Any, status: int) -> Response:
    resp = jsonify({"success": True, "status": "ok", "data": data})
    resp.status_code = status
    return resp
