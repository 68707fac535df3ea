"""Email outbox: every advocate (and admin) email Refstage wrote — kept here by the embedded default
(status `stored`) or sent over SMTP (`sent`, `retrying`, `failed`) — filterable by event and status, and
readable one by one. Admins and reviewers may read it; nothing here changes anything."""

from __future__ import annotations

from flask import render_template, request

from refstage.services import notifications
from refstage.web.admin import bp
from refstage.web.admin.auth import ALL, requires, rt, tenant_id

EVENTS = notifications.EMAIL_EVENTS + (notifications.RECONNECT_REQUIRED,)
STATUSES = ("pending", "sending", "retrying", "sent", "stored", "failed")
PAGE = 100


def _offset() -> int:
    try:
        return min(max(int(request.args.get("offset", 0)), 0), 1_000_000)
    except ValueError:
        return 0


@bp.route("/outbox")
@requires(*ALL)
def outbox():
    event = request.args.get("event") or None
    status = request.args.get("status") or None
    event = event if event in EVENTS else None
    status = status if status in STATUSES else None
    offset = _offset()
    rows = notifications.list_outbox(rt(), tenant_id(), event=event, status=status, limit=PAGE + 1, offset=offset)
    more = len(rows) > PAGE
    smtp = bool(rt().settings.smtp_url)
    return render_template("admin/outbox.html", rows=rows[:PAGE], more=more, offset=offset, page=PAGE, event=event or "",
                           status=status or "", events=EVENTS, statuses=STATUSES, smtp=smtp)


@bp.route("/outbox/<outbox_id>")
@requires(*ALL)
def outbox_email(outbox_id: str):
    email = notifications.get_outbox_email(rt(), tenant_id(), outbox_id)  # NotFound (404) across tenants
    return render_template("admin/outbox_email.html", email=email)
