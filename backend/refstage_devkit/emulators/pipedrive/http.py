"""Shared HTTP helpers: the documented envelopes, errors, cursors and strict query parsing."""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Response, jsonify, request

from .company import ApiError
from .store import parse_iso, to_iso

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


def ok(data: Any, additional_data: Any = None, status: int = 200, **extra: Any) -> Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional_data is not None:
        body["additional_data"] = additional_data
    body.update(extra)
    resp = jsonify(body)
    resp.status_code = status
    return resp


def error_response(status: int, error: str, error_info: str | None = None,
                   **extra: Any) -> Response:
    body = {"success": False, "error": error, "error_info": error_info or ERROR_INFO, "data": None,
            "additional_data": None}
    body.update(extra)
    resp = jsonify(body)
    resp.status_code = status
    return resp


def api_error(exc: ApiError) -> Response:
    extra = {"code": exc.code} if exc.code else {}
    return error_response(exc.status, exc.error, exc.error_info, **extra)


def json_body() -> dict[str, Any]:
    if not request.data:
        return {}
    try:
        body = json.loads(request.data)
    except ValueError as exc:
        raise ApiError(400, "Request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


def form_or_json() -> dict[str, Any]:
    """v1 endpoints take JSON or form-encoded bodies."""
    if request.mimetype == "application/json" or (request.data and not request.form):
        return json_body()
    return {k: v for k, v in request.form.items()}


def q_int(name: str, default: int | None = None, minimum: int | None = None,
          maximum: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, f"Validation failed: {name}: Parameter '{name}' must be a integer") from exc
    if minimum is not None and value < minimum:
        raise ApiError(400, f"Validation failed: {name}: Parameter '{name}' must be greater than or equal to {minimum}")
    if maximum is not None and value > maximum:
        raise ApiError(400, f"Validation failed: {name}: Parameter '{name}' must be less than or equal to {maximum}")
    return value


def q_enum(name: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise ApiError(400, f"Validation failed: {name}: Parameter '{name}' must be one of {', '.join(allowed)}")
    return raw


def q_time(name: str) -> str | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return to_iso(parse_iso(raw))
    except ValueError as exc:
        raise ApiError(400, f"Validation failed: {name}: Parameter '{name}' must be a RFC3339 date-time") from exc


def q_bool(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise ApiError(400, f"Validation failed: {name}: Parameter '{name}' must be a boolean")


def encode_cursor(sort_by: str, direction: str, item: dict[str, Any]) -> str:
    payload = {"field": sort_by, "fieldValue": item.get(sort_by), "sortDirection": direction,
               "id": item["id"]}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort_by: str, direction: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        if payload["field"] != sort_by or payload["sortDirection"] != direction:
            raise ValueError("cursor does not match sort")
        return payload["fieldValue"], int(payload["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, "Validation failed: cursor: Invalid cursor") from exc
