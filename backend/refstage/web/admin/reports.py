"""Reports: enrolments, referred leads, qualification rate, time to qualify and rewards issued, by
period, program or owner, with SVG bar charts and the numbers in a table (services.reports.summary)."""

from __future__ import annotations

import datetime as dt

from flask import render_template, request

from refstage.domain.errors import InvalidInput
from refstage.services import admin_queries, reports
from refstage.services import programs as program_service
from refstage.web.admin import bp
from refstage.web.admin.auth import ALL, requires, rt, tenant_id
from refstage.web.admin.charts import bar_chart

GROUPS = ("period", "program", "owner")
METRICS = (
    ("enrolments", "Enrolments", ""),
    ("captured", "Referred leads", ""),
    ("qualification_rate", "Qualification rate", "%"),
    ("median_days_to_qualify", "Median days to qualify", " d"),
    ("rewards_issued", "Rewards issued", ""),
)


def _date(value: str | None) -> dt.date | None:
    try:
        day = dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None
    # Out of range is ignored like a typo: the day after 9999-12-31 does not exist.
    return day if day is None or 1970 <= day.year <= 2999 else None


@bp.route("/reports")
@requires(*ALL)
def reports_page():
    args = request.args
    group_by = args.get("group_by") if args.get("group_by") in GROUPS else "period"
    period = args.get("period") if args.get("period") in reports.PERIODS else "month"
    program_id = args.get("program") or None
    owner_id = args.get("owner") or None
    since, until = _date(args.get("since")), _date(args.get("until"))
    programs = program_service.list_programs(rt(), tenant_id())
    if program_id:
        program_service.get_program(rt(), tenant_id(), program_id)  # 404 for another tenant's program
    flt = reports.ReportFilter(
        program_id=program_id, owner_id=owner_id,
        since=dt.datetime.combine(since, dt.time(), dt.timezone.utc) if since else None,
        until=dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.timezone.utc) if until else None)
    error = None
    try:
        data = reports.summary(rt(), tenant_id(), flt, group_by=group_by, period=period)
    except InvalidInput as exc:
        data, error = {"rows": []}, str(exc)
    names = {p.id: p.name for p in programs}
    rows = data["rows"]
    labels = [names.get(r["group"], r["group"]) if group_by == "program" else r["group"] for r in rows]
    charts = []
    for key, title, unit in METRICS:
        values = []
        for r in rows:
            v = r.get(key)
            if key == "qualification_rate" and v is not None:
                v = round(v * 100, 1)
            values.append(v)
        charts.append({"key": key, "title": title, "svg": bar_chart(title, labels, values, unit=unit, chart_id=f"chart-{key}")})
    totals = {
        "enrolments": sum(r["enrolments"] for r in rows), "captured": sum(r["captured"] for r in rows),
        "routed": sum(r["routed"] for r in rows), "qualified": sum(r["qualified"] for r in rows),
        "rewards_issued": sum(r["rewards_issued"] for r in rows),
    }
    return render_template("admin/reports.html", rows=rows, labels=labels, charts=charts, totals=totals, error=error,
                           programs=programs, owners=admin_queries.referral_owners(rt(), tenant_id()),
                           filters={"group_by": group_by, "period": period, "program": program_id or "",
                                    "owner": owner_id or "", "since": args.get("since", ""), "until": args.get("until", "")},
                           groups=GROUPS, periods=reports.PERIODS)
