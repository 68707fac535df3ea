"""JSON API for other systems, authenticated with per-tenant API keys (stored hashed)."""

from __future__ import annotations

import datetime as dt
from functools import wraps
from typing import Any, Callable

from flask import Blueprint, current_app, g, jsonify, request

from refstage.domain.audit import Actor, ActorKind
from refstage.domain.codes import referral_link
from refstage.domain.errors import InvalidInput
from refstage.domain.referrals import AdvocateSource, Referral, ReferralSource
from refstage.domain.rewards import Reward
from refstage.services import enrolment, programs, referrals, reports, rewards, tenants
from refstage.services.runtime import Runtime
from refstage.web import schemas
from refstage.web.errors import error_response

bp = Blueprint("api", __name__)
MAX_OFFSET = 1_000_000


def rt() -> Runtime:
    return current_app.extensions["refstage"]


def require_api_key(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("X-Api-Key", "")
        found = tenants.resolve_api_key(rt(), token) if token else None
        if not found:
            resp = error_response(401, "unauthorized", "a valid API key is required (Authorization: Bearer rs_...)")
            resp[0].headers["WWW-Authenticate"] = 'Bearer realm="refstage"'
            return resp
        g.tenant_id, g.api_key_id = found
        g.actor = Actor(ActorKind.API_KEY, found[1], f"api-key:…{found[1][-8:]}")  # ids start with their creation time
        return fn(*args, **kwargs)

    return wrapper


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        from refstage.web.json_body import json_error

        raise InvalidInput(json_error() or {"_body": "send a JSON object with Content-Type: application/json"})
    return data


def page_args() -> tuple[int, int]:
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), 500)
        offset = max(int(request.args.get("offset", 0)), 0)
    except ValueError:
        raise InvalidInput({"limit": "whole numbers for limit and offset"}) from None
    if offset > MAX_OFFSET:  # found by the fuzzer: a huge offset overflowed the database's integer
        raise InvalidInput({"offset": f"at most {MAX_OFFSET}"})
    return limit, offset


def program_out(p) -> dict[str, Any]:
    data = programs.program_as_dict(p)
    data.update(id=p.id, status=p.status.value, rule_text=p.rule.describe())
    return schemas.ProgramOutSchema().dump(data)


def referral_out(r: Referral) -> dict[str, Any]:
    return schemas.ReferralOutSchema().dump({**r.__dict__, "status": r.status.value, "source": r.source.value,
                                             "crm": r.crm.to_dict(), "flags": [f.to_dict() for f in r.flags]})


def reward_out(r: Reward) -> dict[str, Any]:
    return schemas.RewardOutSchema().dump({**r.__dict__, "recipient": r.recipient.value, "kind": r.kind.value,
                                           "status": r.status.value, "amount": r.amount.to_dict(),
                                           "flags": [f.to_dict() for f in r.flags]})


def advocate_out(a) -> dict[str, Any]:
    return schemas.AdvocateOutSchema().dump({**a.__dict__, "source": a.source.value,
                                             "link": referral_link(rt().settings.base_url, a.code)})


# --- programs ---------------------------------------------------------------------------------------
@bp.get("/programs")
@require_api_key
def list_programs():
    return jsonify({"data": [program_out(p) for p in programs.list_programs(rt(), g.tenant_id)]})


@bp.post("/programs")
@require_api_key
def create_program():
    data = schemas.ProgramInSchema().load(body())
    program = programs.create_program(rt(), g.tenant_id, data, g.actor)
    return jsonify(program_out(program)), 201


@bp.get("/programs/<program_id>")
@require_api_key
def get_program(program_id: str):
    return jsonify(program_out(programs.get_program(rt(), g.tenant_id, program_id)))


@bp.patch("/programs/<program_id>")
@require_api_key
def patch_program(program_id: str):
    data = schemas.ProgramPatchSchema().load(body())
    return jsonify(program_out(programs.update_program(rt(), g.tenant_id, program_id, data, g.actor)))


@bp.post("/programs/<program_id>/status")
@require_api_key
def program_status(program_id: str):
    data = schemas.StatusInSchema().load(body())
    return jsonify(program_out(programs.set_program_status(rt(), g.tenant_id, program_id, data["status"], g.actor)))


# --- advocates --------------------------------------------------------------------------------------
@bp.post("/advocates")
@require_api_key
def create_advocate():
    data = schemas.AdvocateInSchema().load(body())
    programs.get_program(rt(), g.tenant_id, data["program_id"])  # 404 for another tenant's program
    advocate, created = enrolment.enrol_advocate(rt(), g.tenant_id, data["program_id"], name=data["name"],
                                                 email=data["email"], source=AdvocateSource.API, actor=g.actor)
    return jsonify(advocate_out(advocate)), 201 if created else 200


@bp.get("/advocates")
@require_api_key
def list_advocates():
    limit, offset = page_args()
    items = enrolment.list_advocates(rt(), g.tenant_id, program_id=request.args.get("program_id"), limit=limit, offset=offset)
    return jsonify({"data": [advocate_out(a) for a in items], "limit": limit, "offset": offset})


# --- referrals --------------------------------------------------------------------------------------
@bp.post("/referrals")
@require_api_key
def create_referral():
    data = schemas.ReferralInSchema().load(body())
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 200):
        raise InvalidInput({"Idempotency-Key": "1 to 200 characters"})
    friend = referrals.FriendInput(data["name"], data["email"], data.get("company"), data.get("phone"), data["consent"])
    try:
        referral = referrals.capture_referral(rt(), data["code"], friend, source=ReferralSource.API, actor=g.actor,
                                              idempotency_key=key, tenant_id=g.tenant_id)
    except referrals.ReferralNotAccepted as exc:
        return error_response(422, "referral_not_accepted", str(exc), {"code": [str(exc)]})
    return jsonify(referral_out(referral)), 201


@bp.get("/referrals")
@require_api_key
def list_referrals():
    limit, offset = page_args()
    items = referrals.list_referrals(rt(), g.tenant_id, program_id=request.args.get("program_id"), status=request.args.get("status"),
                                    advocate_id=request.args.get("advocate_id"), limit=limit, offset=offset)
    return jsonify({"data": [referral_out(r) for r in items], "limit": limit, "offset": offset})


@bp.get("/referrals/<referral_id>")
@require_api_key
def get_referral(referral_id: str):
    referral, rewards_for = referrals.referral_with_rewards(rt(), g.tenant_id, referral_id)
    return jsonify({**referral_out(referral), "rewards": [reward_out(r) for r in rewards_for]})


# --- rewards ----------------------------------------------------------------------------------------
@bp.get("/rewards")
@require_api_key
def list_rewards():
    limit, offset = page_args()
    items = rewards.list_rewards(rt(), g.tenant_id, status=request.args.get("status"),
                                 program_id=request.args.get("program_id"), limit=limit, offset=offset)
    return jsonify({"data": [reward_out(r) for r in items], "limit": limit, "offset": offset})


@bp.post("/rewards/<reward_id>/approve")
@require_api_key
def approve_reward(reward_id: str):
    data = schemas.DecisionInSchema().load(request.get_json(silent=True) or {})
    return jsonify(reward_out(rewards.approve_reward(rt(), g.tenant_id, reward_id, g.actor, data.get("comment"))))


@bp.post("/rewards/<reward_id>/reject")
@require_api_key
def reject_reward(reward_id: str):
    data = schemas.DecisionInSchema().load(body())
    return jsonify(reward_out(rewards.reject_reward(rt(), g.tenant_id, reward_id, g.actor, data.get("comment") or "")))


@bp.post("/rewards/<reward_id>/issue")
@require_api_key
def issue_reward(reward_id: str):
    data = schemas.IssueInSchema().load(request.get_json(silent=True) or {})
    return jsonify(reward_out(rewards.issue_reward(rt(), g.tenant_id, reward_id, g.actor, data.get("payout_reference"))))


# --- reports and audit --------------------------------------------------------------------------------
MIN_YEAR, MAX_YEAR = 1970, 2999


def _date_arg(name: str) -> dt.datetime | None:
    value = request.args.get(name)
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
        parsed = parsed.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        raise InvalidInput({name: "an ISO date such as 2026-11-01"}) from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:  # 9999-12-31 overflowed date arithmetic further down
        raise InvalidInput({name: f"a date between {MIN_YEAR} and {MAX_YEAR}"})
    return parsed


@bp.get("/reports/summary")
@require_api_key
def report_summary():
    flt = reports.ReportFilter(program_id=request.args.get("program_id"), owner_id=request.args.get("owner_id"),
                               since=_date_arg("since"), until=_date_arg("until"))
    return jsonify(reports.summary(rt(), g.tenant_id, flt, request.args.get("group_by", "program"), request.args.get("period", "month")))


@bp.get("/audit")
@require_api_key
def audit_log():
    limit, offset = page_args()
    entries = tenants.audit_log(rt(), g.tenant_id, entity_type=request.args.get("entity_type"),
                                entity_id=request.args.get("entity_id"), since=_date_arg("since"), until=_date_arg("until"),
                                limit=limit, offset=offset)
    out = [schemas.AuditOutSchema().dump({**e.__dict__, "actor": {"kind": e.actor.kind.value, "id": e.actor.id, "label": e.actor.label}}) for e in entries]
    return jsonify({"data": out, "limit": limit, "offset": offset})


# --- outbound webhooks ----------------------------------------------------------------------------------
def _endpoint_out(e: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    if secret is not None:
        return schemas.WebhookEndpointCreatedSchema().dump({**e, "secret": secret})
    return schemas.WebhookEndpointOutSchema().dump(e)


def _delivery_out(d: dict[str, Any]) -> dict[str, Any]:
    return schemas.WebhookDeliveryOutSchema().dump(d)


@bp.get("/webhooks")
@require_api_key
def list_webhooks():
    from refstage.services import webhooks

    return jsonify({"data": [_endpoint_out(e) for e in webhooks.list_endpoints(rt(), g.tenant_id)]})


@bp.post("/webhooks")
@require_api_key
def create_webhook():
    from refstage.services import webhooks

    data = schemas.WebhookEndpointInSchema().load(body())
    endpoint, secret = webhooks.create_endpoint(rt(), g.tenant_id, data["url"], data.get("events"), g.actor,
                                                data.get("description") or "")
    return jsonify(_endpoint_out(endpoint, secret)), 201


@bp.get("/webhooks/<endpoint_id>")
@require_api_key
def get_webhook(endpoint_id: str):
    from refstage.services import webhooks

    return jsonify(_endpoint_out(webhooks.get_endpoint(rt(), g.tenant_id, endpoint_id)))


@bp.patch("/webhooks/<endpoint_id>")
@require_api_key
def patch_webhook(endpoint_id: str):
    from refstage.services import webhooks

    data = schemas.WebhookEndpointPatchSchema().load(body())
    return jsonify(_endpoint_out(webhooks.update_endpoint(rt(), g.tenant_id, endpoint_id, data, g.actor)))


@bp.delete("/webhooks/<endpoint_id>")
@require_api_key
def delete_webhook(endpoint_id: str):
    from refstage.services import webhooks

    webhooks.delete_endpoint(rt(), g.tenant_id, endpoint_id, g.actor)
    return "", 204


@bp.post("/webhooks/<endpoint_id>/rotate-secret")
@require_api_key
def rotate_webhook_secret(endpoint_id: str):
    from refstage.services import webhooks

    return jsonify({"secret": webhooks.rotate_secret(rt(), g.tenant_id, endpoint_id, g.actor)})


@bp.post("/webhooks/<endpoint_id>/test")
@require_api_key
def test_webhook(endpoint_id: str):
    from refstage.services import webhooks

    return jsonify(_delivery_out(webhooks.send_test_event(rt(), g.tenant_id, endpoint_id, g.actor))), 202


@bp.get("/webhook-deliveries")
@require_api_key
def list_webhook_deliveries():
    from refstage.services import webhooks

    limit, offset = page_args()
    items = webhooks.list_deliveries(rt(), g.tenant_id, endpoint_id=request.args.get("endpoint_id"),
                                     status=request.args.get("status"), event=request.args.get("event"), limit=limit, offset=offset)
    return jsonify({"data": [_delivery_out(d) for d in items], "limit": limit, "offset": offset})


@bp.get("/webhook-deliveries/<delivery_id>")
@require_api_key
def get_webhook_delivery(delivery_id: str):
    from refstage.services import webhooks

    return jsonify(_delivery_out(webhooks.get_delivery(rt(), g.tenant_id, delivery_id)))


@bp.post("/webhook-deliveries/<delivery_id>/redeliver")
@require_api_key
def redeliver_webhook(delivery_id: str):
    from refstage.services import webhooks

    return jsonify(_delivery_out(webhooks.redeliver(rt(), g.tenant_id, delivery_id, g.actor))), 202


# --- email outbox -------------------------------------------------------------------------------------------
@bp.get("/emails")
@require_api_key
def list_emails():
    from refstage.services import notifications

    limit, offset = page_args()
    items = notifications.list_outbox(rt(), g.tenant_id, event=request.args.get("event"), status=request.args.get("status"),
                                      limit=limit, offset=offset)
    return jsonify({"data": [schemas.EmailOutSchema().dump(e) for e in items], "limit": limit, "offset": offset})
