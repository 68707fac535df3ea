"""API v2: deals, persons (with exact-email search), organizations, pipelines and stages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, g, request

from .company import ApiError
from .http import decode_cursor, encode_cursor, json_body, ok, q_bool, q_enum, q_int, q_time

if TYPE_CHECKING:
    from .server import EmulatorState

SORTS = ("id", "update_time", "add_time")


def _page(state: "EmulatorState", kind: str, entity: str | None, *, equals: dict[str, Any],
          statuses: list[str] | None = None, sorts: tuple[str, ...] = SORTS,
          time_filters: bool = True, ids: list[int] | None = None) -> Response:
    limit = q_int("limit", 100, minimum=1, maximum=500)
    sort_by = q_enum("sort_by", sorts, "id")
    direction = q_enum("sort_direction", ("asc", "desc"), "asc")
    cursor = request.args.get("cursor")
    after = decode_cursor(cursor, sort_by, direction) if cursor else None
    rows = state.store.query(
        kind, equals={k: v for k, v in equals.items() if v is not None}, statuses=statuses,
        updated_since=q_time("updated_since") if time_filters else None,
        updated_until=q_time("updated_until") if time_filters else None,
        ids=ids, sort_by=sort_by, descending=direction == "desc", after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(sort_by, direction, rows[-1]) if more and rows else None
    data = [state.company.render(entity, r) if entity else r for r in rows]
    return ok(data, {"next_cursor": next_cursor})


def _ids_param() -> list[int] | None:
    raw = request.args.get("ids")
    if not raw:
        return None
    try:
        ids = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError as exc:
        raise ApiError(400, "Validation failed: ids: must be a comma separated list of integers") from exc
    if len(ids) > 100:
        raise ApiError(400, "Validation failed: ids: at most 100 ids")
    return ids


def _user() -> int:
    return g.principal.user_id


def blueprint(state: "EmulatorState") -> Blueprint:
    bp = Blueprint("pipedrive_v2", __name__, url_prefix="/api/v2")
    company = state.company

    # -- deals ----------------------------------------------------------------------------
    @bp.get("/deals")
    def list_deals() -> Response:
        raw_status = request.args.get("status")
        statuses = None
        if raw_status:
            statuses = [s.strip() for s in raw_status.split(",") if s.strip()]
            bad = [s for s in statuses if s not in ("open", "won", "lost", "deleted")]
            if bad:
                raise ApiError(400, "Validation failed: status: Parameter 'status' must be one of open, won, lost, deleted")
        equals = {"owner_id": q_int("owner_id"), "person_id": q_int("person_id"),
                  "org_id": q_int("org_id"), "pipeline_id": q_int("pipeline_id"),
                  "stage_id": q_int("stage_id")}
        return _page(state, "deal", "deal", equals=equals, statuses=statuses, ids=_ids_param())

    @bp.get("/deals/archived")
    def list_archived() -> Response:
        return ok([], {"next_cursor": None})

    @bp.post("/deals")
    def create_deal() -> Response:
        return ok(company.create_deal(json_body(), user_id=_user()))

    @bp.get("/deals/<int:deal_id>")
    def get_deal(deal_id: int) -> Response:
        deal = state.store.get("deal", deal_id)
        if deal is None:
            raise ApiError(404, "Deal not found")
        return ok(company.render("deal", deal))

    @bp.patch("/deals/<int:deal_id>")
    def patch_deal(deal_id: int) -> Response:
        return ok(company.update_deal(deal_id, json_body(), user_id=_user()))

    @bp.delete("/deals/<int:deal_id>")
    def delete_deal(deal_id: int) -> Response:
        return ok(company.delete("deal", deal_id, user_id=_user()))

    # -- persons --------------------------------------------------------------------------
    @bp.get("/persons")
    def list_persons() -> Response:
        equals = {"owner_id": q_int("owner_id"), "org_id": q_int("org_id")}
        return _page(state, "person", "person", equals=equals, ids=_ids_param())

    @bp.get("/persons/search")
    def search_persons() -> Response:
        term = request.args.get("term", "")
        fields_raw = request.args.get("fields") or "custom_fields,email,notes,phone,name"
        fields = [f.strip() for f in fields_raw.split(",") if f.strip()]
        for f in fields:
            if f not in ("custom_fields", "email", "notes", "phone", "name"):
                raise ApiError(400, "Validation failed: fields: Parameter 'fields' must be one of custom_fields, email, notes, phone, name")
        exact = bool(q_bool("exact_match"))
        org_id = q_int("organization_id")
        limit = q_int("limit", 100, minimum=1, maximum=500)
        cursor = request.args.get("cursor")
        start = 0
        if cursor:
            try:
                start = int(decode_cursor(cursor, "offset", "asc")[1])
            except ApiError:
                raise
        if len(term) < (1 if exact else 2):
            raise ApiError(400, "Validation failed: term: The search term must be at least 2 characters long (1 when exact_match is true)")
        needle = term.strip().lower()
        hits: list[tuple[float, dict]] = []
        for person in state.store.searchable("person"):
            if org_id is not None and person.get("org_id") != org_id:
                continue
            values: list[str] = []
            if "name" in fields:
                values.append(person["name"])
            if "email" in fields:
                values.extend(e["value"] for e in person.get("emails") or [])
            if "phone" in fields:
                values.extend(p["value"] for p in person.get("phones") or [])
            if "custom_fields" in fields:
                values.extend(str(v) for v in (person.get("custom_fields") or {}).values()
                              if isinstance(v, str))
            lowered = [v.lower() for v in values]
            if exact:
                matched = needle in lowered
            else:
                matched = any(needle in v for v in lowered)
            if matched:
                score = 1.0 if needle in lowered else 0.5
                hits.append((score, person))
        hits.sort(key=lambda h: (-h[0], h[1]["id"]))
        page = hits[start:start + limit]
        items = []
        for score, person in page:
            org = state.store.get("organization", person["org_id"]) if person.get("org_id") else None
            items.append({"result_score": score, "item": {
                "id": person["id"], "type": "person", "name": person["name"],
                "phones": [p["value"] for p in person.get("phones") or []],
                "emails": [e["value"] for e in person.get("emails") or []],
                "primary_email": next((e["value"] for e in person.get("emails") or [] if e.get("primary")), None),
                "visible_to": person["visible_to"], "owner": {"id": person["owner_id"]},
                "organization": {"id": org["id"], "name": org["name"], "address": None} if org else None,
                "custom_fields": [], "notes": [], "update_time": person["update_time"],
            }})
        next_cursor = None
        if start + limit < len(hits):
            next_cursor = encode_cursor("offset", "asc", {"offset": None, "id": start + limit})
        return ok({"items": items}, {"next_cursor": next_cursor})

    @bp.post("/persons")
    def create_person() -> Response:
        return ok(company.create_person(json_body(), user_id=_user()))

    @bp.get("/persons/<int:person_id>")
    def get_person(person_id: int) -> Response:
        return ok(company.render("person", company.get_live("person", person_id)))

    @bp.patch("/persons/<int:person_id>")
    def patch_person(person_id: int) -> Response:
        return ok(company.update_person(person_id, json_body(), user_id=_user()))

    @bp.delete("/persons/<int:person_id>")
    def delete_person(person_id: int) -> Response:
        return ok(company.delete("person", person_id, user_id=_user()))

    # -- organizations ----------------------------------------------------------------------
    @bp.get("/organizations")
    def list_orgs() -> Response:
        return _page(state, "organization", "organization",
                     equals={"owner_id": q_int("owner_id")}, ids=_ids_param())

    @bp.post("/organizations")
    def create_org() -> Response:
        return ok(company.create_org(json_body(), user_id=_user()))

    @bp.get("/organizations/<int:org_id>")
    def get_org(org_id: int) -> Response:
        return ok(company.render("organization", company.get_live("organization", org_id)))

    @bp.patch("/organizations/<int:org_id>")
    def patch_org(org_id: int) -> Response:
        return ok(company.update_org(org_id, json_body(), user_id=_user()))

    @bp.delete("/organizations/<int:org_id>")
    def delete_org(org_id: int) -> Response:
        return ok(company.delete("organization", org_id, user_id=_user()))

    # -- pipelines & stages ---------------------------------------------------------------
    @bp.get("/pipelines")
    def list_pipelines() -> Response:
        return _page(state, "pipeline", None, equals={}, time_filters=False)

    @bp.get("/pipelines/<int:pipeline_id>")
    def get_pipeline(pipeline_id: int) -> Response:
        return ok(company.get_live("pipeline", pipeline_id))

    @bp.get("/stages")
    def list_stages() -> Response:
        return _page(state, "stage", None, equals={"pipeline_id": q_int("pipeline_id")},
                     sorts=("id", "update_time", "add_time", "order_nr"), time_filters=False)

    @bp.get("/stages/<int:stage_id>")
    def get_stage(stage_id: int) -> Response:
        return ok(company.get_live("stage", stage_id))

    return bp
