"""The admin console: server-rendered pages under /admin for the revenue-ops owner.

Every view runs as a signed-in user of one tenant (`g.admin_user`, `g.tenant_id`); every read and
write goes through a service with that tenant, so another tenant's ids are 404s. Every POST carries
the CSRF token. Roles: admin (everything) and reviewer (review queue, ledger read, reports, logs).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint

_HERE = Path(__file__).resolve().parent
bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder=str(_HERE.parent / "templates"),
               static_folder=str(_HERE / "static"), static_url_path="/static")

from refstage.web.admin import (  # noqa: E402,F401
    auth, company, connections, dashboard, demo_tools, email_templates, errors, formatting, ledger, logs, outbox, people, programs, reports, review, users,
    webhooks)

__all__ = ["bp"]
