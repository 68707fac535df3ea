"""Liveness and readiness: is the database reachable, is the queue reachable (`services.health`)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from refstage.services import health as health_service

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    healthy, checks = health_service.check(current_app.extensions["refstage"])
    return jsonify({"status": "ok" if healthy else "degraded", "checks": checks}), 200 if healthy else 503
