"""Errors as JSON for the API and health routes: a code, a message, field errors; never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from refstage.domain.errors import Conflict, DomainError, InvalidInput, InvalidTransition, NotFound, RuleError
from refstage.logs import redact_push_keys

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, fields: dict | None = None):
    body: dict = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    return jsonify(body), status


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/health") or request.is_json


def init_app(app: Flask) -> None:
    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return error_response(400, "invalid_input", "the request has invalid fields", exc.messages)

    @app.errorhandler(InvalidInput)
    def _invalid(exc: InvalidInput):
        return error_response(400, "invalid_input", "the request has invalid fields", exc.errors)

    @app.errorhandler(RuleError)
    def _rule(exc: RuleError):
        return error_response(400, "invalid_rule", str(exc), exc.errors if isinstance(exc.errors, dict) else {"rule": exc.errors})

    @app.errorhandler(NotFound)
    def _not_found(exc: NotFound):
        return error_response(404, "not_found", "not found")

    @app.errorhandler(InvalidTransition)
    def _transition(exc: InvalidTransition):
        return error_response(409, "invalid_transition", str(exc))

    @app.errorhandler(Conflict)
    def _conflict(exc: Conflict):
        return error_response(409, "conflict", str(exc))

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        return error_response(422, "refused", str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if not _wants_json():
            return exc
        return error_response(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, redact_push_keys(request.path))
        return error_response(500, "internal_error", "something went wrong on our side; it has been logged")
