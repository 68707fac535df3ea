"""OpenAPI 3 document of the JSON API, generated from the marshmallow schemas with apispec, served at
/api/openapi.json, and a readable page at /api/docs rendered here from the same document (no CDN)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app, jsonify, render_template

from refstage.web import schemas as s

bp = Blueprint("openapi", __name__)
API_PREFIX = "/api/v1"
OPENAPI_VERSION = "3.0.3"

ERRORS = {"400": "invalid input (field errors under error.fields)", "401": "missing or invalid API key",
          "404": "not found (or another tenant's)", "409": "conflict or invalid state transition",
          "422": "refused by a business rule"}


def _param(name: str, where: str = "query", schema: dict[str, Any] | None = None, description: str = "",
           required: bool | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path" if required is None else required,
            "schema": schema or {"type": "string"}, "description": description}


PAGE = [_param("limit", schema={"type": "integer", "minimum": 1, "maximum": 500, "default": 100}),
        _param("offset", schema={"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0})]


def _op(summary: str, tag: str, ok: tuple[int, Any] | None, *, body: Any = None, params: list[dict[str, Any]] | None = None,
        errors: tuple[str, ...] = ("401",), description: str = "", body_required: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {}}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": body}}}
    if ok is not None:
        code, schema = ok
        op["responses"][str(code)] = ({"description": "OK", "content": {"application/json": {"schema": schema}}}
                                      if schema is not None else {"description": "No content"})
    for code in errors:
        op["responses"][code] = {"description": ERRORS[code], "content": {"application/json": {"schema": s.ErrorSchema}}}
    return op


def _paths() -> list[tuple[str, dict[str, Any]]]:
    pid = [_param("program_id", "path")]
    rid = [_param("referral_id", "path")]
    wid = [_param("reward_id", "path")]
    eid = [_param("endpoint_id", "path")]
    did = [_param("delivery_id", "path")]
    date = {"type": "string", "format": "date-time"}
    return [
        ("/programs", {
            "get": _op("List programs", "programs", (200, s.ProgramListSchema)),
            "post": _op("Create a program (draft)", "programs", (201, s.ProgramOutSchema), body=s.ProgramInSchema,
                        errors=("400", "401", "404", "422")),
        }),
        ("/programs/{program_id}", {
            "parameters": pid,
            "get": _op("Get a program", "programs", (200, s.ProgramOutSchema), errors=("401", "404")),
            "patch": _op("Change a program", "programs", (200, s.ProgramOutSchema), body=s.ProgramPatchSchema,
                         errors=("400", "401", "404", "409", "422")),
        }),
        ("/programs/{program_id}/status", {
            "parameters": pid,
            "post": _op("Set a program live, paused or back to draft", "programs", (200, s.ProgramOutSchema),
                        body=s.StatusInSchema, errors=("400", "401", "404", "409", "422")),
        }),
        ("/advocates", {
            "get": _op("List advocates", "advocates", (200, s.AdvocateListSchema), params=[_param("program_id"), *PAGE],
                       errors=("400", "401")),
            "post": _op("Enrol an advocate (idempotent on program and email: 200 when already enrolled)", "advocates",
                        (201, s.AdvocateOutSchema), body=s.AdvocateInSchema, errors=("400", "401", "404", "422")),
        }),
        ("/referrals", {
            "get": _op("List referrals", "referrals", (200, s.ReferralListSchema),
                       params=[_param("program_id"), _param("status"), _param("advocate_id"), *PAGE], errors=("400", "401")),
            "post": _op("Capture a referral for an advocate's code", "referrals", (201, s.ReferralOutSchema), body=s.ReferralInSchema,
                        params=[_param("Idempotency-Key", "header", schema={"type": "string", "minLength": 1, "maxLength": 200},
                                       description="repeat-safe retries: the same key returns the same referral")],
                        errors=("400", "401", "422")),
        }),
        ("/referrals/{referral_id}", {
            "parameters": rid,
            "get": _op("Get a referral with its rewards", "referrals", (200, s.ReferralDetailSchema), errors=("401", "404")),
        }),
        ("/rewards", {
            "get": _op("List rewards", "rewards", (200, s.RewardListSchema), params=[_param("status"), _param("program_id"), *PAGE],
                       errors=("400", "401")),
        }),
        ("/rewards/{reward_id}/approve", {
            "parameters": wid,
            "post": _op("Approve a reward", "rewards", (200, s.RewardOutSchema), body=s.DecisionInSchema, body_required=False,
                        errors=("400", "401", "404", "409", "422")),
        }),
        ("/rewards/{reward_id}/reject", {
            "parameters": wid,
            "post": _op("Reject a reward (a comment is required)", "rewards", (200, s.RewardOutSchema), body=s.DecisionInSchema,
                        errors=("400", "401", "404", "409", "422")),
        }),
        ("/rewards/{reward_id}/issue", {
            "parameters": wid,
            "post": _op("Mark an approved reward as issued (paid)", "rewards", (200, s.RewardOutSchema), body=s.IssueInSchema,
                        body_required=False, errors=("400", "401", "404", "409", "422")),
        }),
        ("/reports/summary", {
            "get": _op("Summary report", "reports", (200, s.ReportSummarySchema), errors=("400", "401"), params=[
                _param("program_id"), _param("owner_id"), _param("since", schema=date), _param("until", schema=date),
                _param("group_by", schema={"type": "string", "enum": ["program", "advocate", "owner", "period"], "default": "program"}),
                _param("period", schema={"type": "string", "enum": ["day", "week", "month"], "default": "month"})]),
        }),
        ("/audit", {
            "get": _op("Audit log (newest first)", "audit", (200, s.AuditListSchema), errors=("400", "401"), params=[
                _param("entity_type"), _param("entity_id"), _param("since", schema=date), _param("until", schema=date), *PAGE]),
        }),
        ("/webhooks", {
            "get": _op("List webhook endpoints", "webhooks", (200, s.WebhookEndpointListSchema)),
            "post": _op("Add a webhook endpoint; the response carries its signing secret, shown once", "webhooks",
                        (201, s.WebhookEndpointCreatedSchema), body=s.WebhookEndpointInSchema, errors=("400", "401")),
        }),
        ("/webhooks/{endpoint_id}", {
            "parameters": eid,
            "get": _op("Get a webhook endpoint", "webhooks", (200, s.WebhookEndpointOutSchema), errors=("401", "404")),
            "patch": _op("Change a webhook endpoint (URL, events, active)", "webhooks", (200, s.WebhookEndpointOutSchema),
                         body=s.WebhookEndpointPatchSchema, errors=("400", "401", "404")),
            "delete": _op("Remove a webhook endpoint and its delivery log", "webhooks", (204, None), errors=("401", "404")),
        }),
        ("/webhooks/{endpoint_id}/rotate-secret", {
            "parameters": eid,
            "post": _op("Replace the signing secret", "webhooks", (200, s.WebhookSecretSchema), errors=("401", "404")),
        }),
        ("/webhooks/{endpoint_id}/test", {
            "parameters": eid,
            "post": _op("Send a `ping` event to the endpoint", "webhooks", (202, s.WebhookDeliveryOutSchema), errors=("401", "404")),
        }),
        ("/webhook-deliveries", {
            "get": _op("Webhook delivery log (newest first)", "webhooks", (200, s.WebhookDeliveryListSchema), errors=("400", "401"),
                       params=[_param("endpoint_id"), _param("status"), _param("event"), *PAGE]),
        }),
        ("/webhook-deliveries/{delivery_id}", {
            "parameters": did,
            "get": _op("Get one delivery with its payload", "webhooks", (200, s.WebhookDeliveryOutSchema), errors=("401", "404")),
        }),
        ("/webhook-deliveries/{delivery_id}/redeliver", {
            "parameters": did,
            "post": _op("Send a delivered or failed event again", "webhooks", (202, s.WebhookDeliveryOutSchema), errors=("401", "404")),
        }),
        ("/emails", {
            "get": _op("Email outbox: notifications sent or stored (newest first)", "notifications", (200, s.EmailListSchema),
                       errors=("400", "401"), params=[_param("event"), _param("status"), *PAGE]),
        }),
    ]


WEBHOOK_DOC = """Refstage POSTs JSON to each endpoint for the events it subscribes to:
`referral.captured`, `referral.qualified`, `reward.approved`, `reward.issued` (and `ping` from the test button).
Body: `{"id": <delivery id>, "event": ..., "created_at": ..., "tenant_id": ..., "data": {...}}`.

Headers: `Refstage-Event`, `Refstage-Delivery` (the delivery id: deduplicate on it), `Refstage-Attempt`, and
`Refstage-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. Verify the HMAC over the raw
body in constant time and refuse timestamps more than 5 minutes old. Answer 2xx within 10 seconds; anything else is
retried with exponential backoff (10 s, 20 s, 40 s … up to 8 attempts), except 4xx other than 408/409/425/429, which
fail at once. Every attempt is in the delivery log (`GET /webhook-deliveries`)."""


def build_spec(base_url: str = "") -> dict[str, Any]:
    spec = APISpec(
        title="Refstage API", version="1.0.0", openapi_version=OPENAPI_VERSION, plugins=[MarshmallowPlugin()],
        info={"description": "Referral programs, advocates, referrals, rewards, reports and outbound webhooks. "
                             "Authenticate with a per-tenant API key: `Authorization: Bearer rs_...` (or `X-Api-Key`). "
                             "Keys are stored hashed; create them in the admin console or with `refstage`.\n\n" + WEBHOOK_DOC},
        servers=[{"url": f"{base_url.rstrip('/')}{API_PREFIX}"}],
        security=[{"bearerAuth": []}, {"apiKeyHeader": []}],
    )
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "description": "rs_<prefix>_<secret>"})
    spec.components.security_scheme("apiKeyHeader", {"type": "apiKey", "in": "header", "name": "X-Api-Key"})
    for path, operations in _paths():
        shared = operations.pop("parameters", None)
        spec.path(path=path, operations=operations, parameters=shared)
    return spec.to_dict()


@lru_cache(maxsize=8)
def _cached(base_url: str) -> str:
    return json.dumps(build_spec(base_url))


def spec_for_app() -> dict[str, Any]:
    return json.loads(_cached(current_app.extensions["refstage"].settings.base_url))


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(spec_for_app())


def _ref_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref") or (schema.get("items") or {}).get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return f"{name}[]" if "items" in schema else name
    return schema.get("type", "object")


@bp.get("/docs")
def docs():
    spec = spec_for_app()
    operations = []
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method in ("get", "post", "patch", "put", "delete"):
            op = item.get(method)
            if not op:
                continue
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
            responses = [(code, r.get("description", ""), _ref_name(r["content"]["application/json"]["schema"]) if r.get("content") else "")
                         for code, r in op["responses"].items()]
            operations.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""), "tag": op["tags"][0],
                               "description": op.get("description", "") if op.get("description") != op.get("summary") else "",
                               "params": shared + op.get("parameters", []), "body": _ref_name(body) if body else None,
                               "body_required": (op.get("requestBody") or {}).get("required", False), "responses": responses,
                               "anchor": f"{method}-{path.strip('/').replace('/', '-').replace('{', '').replace('}', '')}"})
    components = spec["components"]["schemas"]
    return render_template("public/api_docs.html", spec=spec, operations=operations, components=components,
                           server=spec["servers"][0]["url"])
