"""Liveness and readiness: is the database reachable, is the queue reachable."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    rt = current_app.extensions["refstage"]
    checks: dict[str, str] = {}
    try:
        with rt.session_factory() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is the health check
        checks["database"] = f"error: {type(exc).__name__}"
    huey = getattr(rt.jobs, "huey", None)
    if huey is not None:
        try:
            checks["queue"] = "ok" if huey.storage.queue_size() >= 0 else "error"
            checks["queue_size"] = str(huey.storage.queue_size())
        except Exception as exc:  # noqa: BLE001
            checks["queue"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for k, v in checks.items() if k in ("database", "queue"))
    return jsonify({"status": "ok" if healthy else "degraded", "checks": checks}), 200 if healthy else 503
