"""Liveness and readiness: can the database answer, can the queue."""

from __future__ import annotations

from refstage.services.runtime import Runtime

#: The checks that make the service unhealthy when they fail (the rest are information).
REQUIRED = ("database", "queue")


def check(rt: Runtime) -> tuple[bool, dict[str, str]]:
    """(healthy, {check: "ok" or "error: <kind>", ...}). Failures are reported, never raised."""
    checks: dict[str, str] = {}
    try:
        with rt.uow(readonly=True) as uow:
            uow.ping()
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
    return all(v == "ok" for k, v in checks.items() if k in REQUIRED), checks
