"""Home: KPIs with definitions, the funnel, weekly trends, per-program figures and what needs attention."""

from __future__ import annotations

from flask import render_template, request

from refstage.services import dashboard as dashboard_service
from refstage.web.admin import bp
from refstage.web.admin.auth import ALL, requires, rt, tenant_id
from refstage.web.admin.charts import PALETTE, funnel_chart, grouped_bar_chart


@bp.route("/dashboard")
@requires(*ALL)
def dashboard():
    raw_days = request.args.get("days", "90")
    days = int(raw_days) if raw_days.isdigit() else 90
    d = dashboard_service.dashboard(rt(), tenant_id(), days=days, program_id=(request.args.get("program") or "")[:64])
    funnel = funnel_chart("Funnel, all time: from enrolled advocates to rewarded referrals",
                          [(label, n) for _, label, n in d.funnel], chart_id="chart-funnel")
    trend = grouped_bar_chart("Referrals per week, and how many of them qualified", d.weeks,
                              [("Referred", d.referred_by_week, PALETTE[0]), ("Qualified", d.qualified_by_week, PALETTE[1])],
                              chart_id="chart-trend", axis_title="Referrals (count), by week of referral")
    return render_template("admin/dashboard.html", d=d, funnel=funnel, trend=trend, windows=dashboard_service.WINDOWS)
