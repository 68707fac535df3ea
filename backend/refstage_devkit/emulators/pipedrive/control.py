"""Control API under /_emulator/ for tests and the demo (no auth, no rate limit, no faults).

Changes made here behave like a user acting in the Pipedrive web app: they fire webhooks with
`meta.change_source = "app"` and `meta.user_id` of the admin user (or `user_id` in the body).
"""

from __future__ import annotations

import copy
import random
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request

from .company import ADMIN_USER_ID, ApiError
from .oauth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

if TYPE_CHECKING:
    from .server import EmulatorState


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _int(body: dict[str, Any], key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'{key}' must be an integer")
    return value


def blueprint(state: "EmulatorState") -> Blueprint:
    bp = Blueprint("pipedrive_control", __name__, url_prefix="/_emulator")

    def done(**data: Any) -> Response:
        return jsonify({"success": True, **data})

    @bp.get("/info")
    def info() -> Response:
        return done(base_url=state.base_url, api_domain=state.base_url, api_token=state.api_token,
                    client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET,
                    seed=state.seed_kind, clock=state.clock.iso(), clock_offset=state.clock.offset,
                    faults=state.faults.snapshot(), oauth=state.oauth.snapshot())

    @bp.post("/apps")
    def add_app() -> Response:
        """Register another OAuth app, e.g. one without the admin scope."""
        body = _body()
        client_id, secret = body.get("client_id"), body.get("client_secret")
        scopes = body.get("scopes", "base deals:full contacts:full search:read")
        if not all(isinstance(v, str) and v for v in (client_id, secret, scopes)):
            raise ApiError(400, "client_id, client_secret and scopes must be non-empty strings")
        scopes = ",".join(x for x in scopes.replace(",", " ").split())
        state.oauth.apps[client_id] = {"secret": secret, "scopes": scopes,
                                       "name": body.get("name") or client_id}
        return done(client_id=client_id, scopes=scopes)

    @bp.post("/reset")
    def reset() -> Response:
        body = _body()
        seed = body.get("seed")
        if seed not in (None, "demo", "empty"):
            raise ApiError(400, "seed must be demo or empty")
        state.reset(seed)
        if "faults" in body:
            state.faults.configure(body["faults"])
        return done(seed=state.seed_kind)

    @bp.post("/seed")
    def seed() -> Response:
        body = _body()
        persons = _int(body, "persons", 0)
        deals = _int(body, "deals", 0)
        rng = random.Random(body["random_seed"]) if "random_seed" in body else None
        created = state.company.seed_bulk(persons=persons, deals=deals, rng=rng)
        return done(**created)

    def _deal_change(deal_id: int, changes: dict[str, Any]) -> Response:
        user_id = _body().get("user_id", ADMIN_USER_ID)
        deal = state.company.update_deal(deal_id, changes, source="app", user_id=user_id)
        return done(data=deal)

    @bp.post("/deals/<int:deal_id>/move")
    def move(deal_id: int) -> Response:
        return _deal_change(deal_id, {"stage_id": _int(_body(), "stage_id")})

    @bp.post("/deals/<int:deal_id>/win")
    def win(deal_id: int) -> Response:
        return _deal_change(deal_id, {"status": "won"})

    @bp.post("/deals/<int:deal_id>/lose")
    def lose(deal_id: int) -> Response:
        changes: dict[str, Any] = {"status": "lost"}
        if _body().get("lost_reason"):
            changes["lost_reason"] = str(_body()["lost_reason"])
        return _deal_change(deal_id, changes)

    @bp.post("/deals/<int:deal_id>/reopen")
    def reopen(deal_id: int) -> Response:
        return _deal_change(deal_id, {"status": "open"})

    @bp.patch("/deals/<int:deal_id>")
    def edit_deal(deal_id: int) -> Response:
        body = _body()
        body.pop("user_id", None)
        return _deal_change(deal_id, body)

    @bp.patch("/persons/<int:person_id>")
    def edit_person(person_id: int) -> Response:
        body = _body()
        user_id = body.pop("user_id", ADMIN_USER_ID)
        return done(data=state.company.update_person(person_id, body, source="app", user_id=user_id))

    @bp.post("/webhooks/drop")
    def drop() -> Response:
        state.faults.drop_next(_int(_body(), "count", 1))
        return done(faults=state.faults.snapshot())

    @bp.post("/webhooks/duplicate")
    def duplicate() -> Response:
        state.faults.duplicate_next(_int(_body(), "count", 1))
        return done(faults=state.faults.snapshot())

    @bp.get("/webhooks/deliveries")
    def deliveries() -> Response:
        webhook_id = request.args.get("webhook_id", type=int)
        with state.webhooks._cond:
            items = copy.deepcopy([d for d in state.webhooks.deliveries
                                   if webhook_id is None or d["webhook_id"] == webhook_id])
        if request.args.get("payload") in ("0", "false"):
            for item in items:
                item.pop("payload", None)
        return done(data=items, webhooks=state.webhooks.status())

    @bp.post("/webhooks/wait")
    def wait() -> Response:
        timeout = float(_body().get("timeout", 10))
        return done(idle=state.webhooks.wait_idle(min(timeout, 60.0)))

    @bp.post("/faults")
    def faults() -> Response:
        body = _body()
        if "spec" in body:
            try:
                state.faults.configure(body["spec"])
            except ValueError as exc:
                raise ApiError(400, str(exc)) from exc
        if "burst" in body:
            burst = body["burst"] or {}
            status = _int(burst, "status")
            if not 400 <= status <= 599:
                raise ApiError(400, "burst status must be 4xx or 5xx")
            state.faults.burst(status, _int(burst, "count", 1))
        if "lose" in body:
            lose = body["lose"] or {}
            try:
                state.faults.lose_next(str(lose.get("kind") or "drop_after"), _int(lose, "count", 1),
                                       lose.get("method"), lose.get("path"))
            except ValueError as exc:
                raise ApiError(400, str(exc)) from exc
        return done(faults=state.faults.snapshot())

    @bp.get("/faults")
    def faults_get() -> Response:
        return done(faults=state.faults.snapshot())

    @bp.post("/clock/advance")
    def advance() -> Response:
        body = _body()
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise ApiError(400, "'seconds' must be a non-negative number")
        state.clock.advance(seconds)
        return done(clock=state.clock.iso(), clock_offset=state.clock.offset)

    @bp.get("/usage")
    def usage() -> Response:
        return done(usage=state.limiter.usage(), faults=state.faults.snapshot())

    @bp.post("/usage/reset")
    def usage_reset() -> Response:
        state.limiter.reset()
        return done(usage=state.limiter.usage())

    return bp
