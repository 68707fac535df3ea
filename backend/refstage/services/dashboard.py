"""The console's home: KPIs with their definitions, the funnel, weekly trends, per-program figures
(money kept per currency: EUR is never added to USD) and what needs someone's attention."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from refstage.domain.money import Money
from refstage.domain.programs import Program
from refstage.services import reports
from refstage.services.connections import ConnectionAlert, alerts
from refstage.services.console_views import funnel_from_counts
from refstage.services.runtime import Runtime

WINDOWS = (30, 90, 365)
TREND_WEEKS = 12


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    value: str  # already formatted for people where it is not money
    definition: str
    money: tuple[Money, ...] = ()  # per currency, never summed across currencies


@dataclass(frozen=True)
class AttentionItem:
    kind: str  # review | sync | connection | webhooks | writes | payouts
    text: str
    count: int
    endpoint: str  # the console page that deals with it
    severity: str = "warn"  # warn | error


@dataclass
class ProgramFigures:
    program: Program
    enrolments: int
    referred: int
    routed: int
    qualified: int
    rate: float | None
    issued: tuple[Money, ...]


@dataclass
class Dashboard:
    days: int
    program_id: str
    programs: list[Program]
    kpis: list[Kpi]
    funnel: list[tuple[str, str, int]]
    weeks: list[str]
    referred_by_week: list[int]
    qualified_by_week: list[int]
    per_program: list[ProgramFigures]
    attention: list[AttentionItem]
    alerts: list[ConnectionAlert] = field(default_factory=list)


def _money(sums: dict[str, str]) -> tuple[Money, ...]:
    return tuple(Money(Decimal(v), cur) for cur, v in sorted(sums.items()))


def _merge(into: dict[str, str], sums: dict[str, str]) -> None:
    for cur, v in sums.items():
        into[cur] = str(Decimal(into.get(cur, "0")) + Decimal(v))


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _week_starts(now: dt.datetime, weeks: int) -> list[dt.date]:
    monday = (now - dt.timedelta(days=now.weekday())).date()
    return [monday - dt.timedelta(weeks=i) for i in range(weeks - 1, -1, -1)]


def dashboard(rt: Runtime, tenant_id: str, *, days: int = 90, program_id: str = "") -> Dashboard:
    days = days if days in WINDOWS else 90
    now = rt.now()
    since = now - dt.timedelta(days=days)
    with rt.uow(tenant_id, readonly=True) as uow:
        programs = uow.programs.list()
        if program_id:
            uow.programs.get(program_id)  # NotFound for another tenant's program
        by_status = uow.referrals.funnel_counts(program_id or None)
        advocates = uow.advocates.count(program_id or None)
        pending_review = uow.attention.pending_review()
        webhook_failures = uow.attention.failed_webhook_deliveries(now - dt.timedelta(days=7))
        failed_writes = uow.attention.failed_crm_writes()
        approved = uow.attention.approved_not_issued()
    flt = reports.ReportFilter(program_id=program_id or None, since=since)
    window = reports.summary(rt, tenant_id, flt, group_by="program")["rows"]
    names = {p.id: p for p in programs}
    per_program, issued_total = [], {}
    totals = {"enrolments": 0, "captured": 0, "routed": 0, "qualified": 0, "rewards_issued": 0}
    days_to_qualify = []
    for row in window:
        for k in totals:
            totals[k] += row[k]
        _merge(issued_total, row["rewards_sum"])
        if row["median_days_to_qualify"] is not None:
            days_to_qualify.append(row["median_days_to_qualify"])
        program = names.get(row["group"])
        if program is not None:
            per_program.append(ProgramFigures(program, row["enrolments"], row["captured"], row["routed"], row["qualified"],
                                              _pct(row["qualified"], row["routed"]), _money(row["rewards_sum"])))
    starts = _week_starts(now, TREND_WEEKS)
    trend_since = dt.datetime.combine(starts[0], dt.time(), dt.timezone.utc)
    weekly = {r["group"]: r for r in reports.summary(
        rt, tenant_id, reports.ReportFilter(program_id=program_id or None, since=trend_since), group_by="period",
        period="week")["rows"]}
    keys = [f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}" for d in starts]
    rate = _pct(totals["qualified"], totals["routed"])
    kpis = [
        Kpi("enrolments", "Advocates enrolled", f"{totals['enrolments']:,}",
            f"People enrolled as advocates in the last {days} days (from the CRM, the form or the API)."),
        Kpi("referred", "Referrals", f"{totals['captured']:,}",
            f"Friends referred through an advocate's link or the API in the last {days} days, duplicates included."),
        Kpi("qualified", "Qualified", f"{totals['qualified']:,}",
            f"Referrals of the last {days} days whose CRM records met the program's rule."),
        Kpi("rate", "Qualification rate", "—" if rate is None else f"{rate} %",
            "Qualified ÷ routed: of the referrals that reached the CRM, the share that met the rule "
            f"({totals['qualified']} of {totals['routed']})."),
        Kpi("days", "Median days to qualify",
            "—" if not days_to_qualify else f"{sorted(days_to_qualify)[len(days_to_qualify) // 2]:.1f}",
            "From the friend's form to the CRM meeting the rule, the middle value (per program, then across programs)."),
        Kpi("issued", "Rewards issued", f"{totals['rewards_issued']:,}",
            f"Rewards issued in the last {days} days; the amounts are per currency and never added across currencies.",
            _money(issued_total)),
    ]
    attention: list[AttentionItem] = []
    if pending_review:
        attention.append(AttentionItem("review", f"{pending_review} waiting in the review queue", pending_review, "admin.review"))
    if approved:
        attention.append(AttentionItem("payouts", f"{approved} approved rewards not issued yet", approved, "admin.ledger"))
    conn_alerts = alerts(rt, tenant_id)
    for a in conn_alerts:
        attention.append(AttentionItem("sync" if a.problem == "sync_failed" else "connection", a.message, 1,
                                       "admin.connections", "error"))
    if failed_writes:
        attention.append(AttentionItem("writes", f"{failed_writes} writes to the CRM failed and wait for a retry",
                                       failed_writes, "admin.connections", "error"))
    if webhook_failures:
        attention.append(AttentionItem("webhooks", f"{webhook_failures} webhook deliveries failed in the last 7 days",
                                       webhook_failures, "admin.webhooks", "error"))
    return Dashboard(days, program_id, programs, kpis, funnel_from_counts(advocates, by_status),
                     [d.strftime("%d %b") for d in starts], [weekly.get(k, {}).get("captured", 0) for k in keys],
                     [weekly.get(k, {}).get("qualified", 0) for k in keys], per_program, attention, conn_alerts)


__all__ = ["dashboard", "Dashboard", "Kpi", "AttentionItem", "WINDOWS"]
