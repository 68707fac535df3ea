"""The audit log, filtered by entity, actor kind and date."""

from __future__ import annotations

import datetime as dt

from flask import render_template, request

from refstage.domain.audit import ActorKind
from refstage.services import admin_queries
from refstage.web.admin import bp
from refstage.web.admin.auth import ADMIN, requires, rt, tenant_id

PAGE = 100


def _date(value: str | None) -> dt.date | None:
    try:
        day = dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None
    # Out of range is ignored like a typo: the day after 9999-12-31 does not exist.
    return day if day is None or 1970 <= day.year <= 2999 else None


@bp.route("/audit")
@requires(*ADMIN)
def audit():
    args = request.args
    since, until = _date(args.get("since")), _date(args.get("until"))
    actor_kind = args.get("actor_kind") or None
    if actor_kind not in {k.value for k in ActorKind}:
        actor_kind = None
    page = min(max(int(args.get("page", "1")) if args.get("page", "1").isdigit() else 1, 1), 10_000)  # no offset overflow
    entries = admin_queries.audit_log(
        rt(), tenant_id(), entity_type=args.get("entity_type") or None, entity_id=(args.get("entity_id") or "").strip() or None,
        actor_kind=actor_kind,
        since=dt.datetime.combine(since, dt.time(), dt.timezone.utc) if since else None,
        until=dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.timezone.utc) if until else None,
        limit=PAGE + 1, offset=(page - 1) * PAGE)
    return render_template("admin/audit.html", entries=entries[:PAGE], more=len(entries) > PAGE, page=page,
                           entity_types=admin_queries.audit_entity_types(rt(), tenant_id()),
                           actor_kinds=[k.value for k in ActorKind],
                           filters={"entity_type": args.get("entity_type", ""), "entity_id": args.get("entity_id", ""),
                                    "actor_kind": actor_kind or "", "since": since.isoformat() if since else "",
                                    "until": until.isoformat() if until else ""})
