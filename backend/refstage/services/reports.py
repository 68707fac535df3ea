"""Reporting read models: enrolments, referrals, qualification rate, time to qualify, rewards issued."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from refstage.domain.errors import InvalidInput
from refstage.services.runtime import Runtime

PERIODS = ("day", "week", "month")
GROUPS = ("program", "advocate", "owner", "period")


@dataclass(frozen=True)
class ReportFilter:
    program_id: str | None = None
    owner_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def _bucket(at: dt.datetime, period: str) -> str:
    if period == "day":
        return at.date().isoformat()
    if period == "week":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{at.year}-{at.month:02d}"


def summary(rt: Runtime, tenant_id: str, flt: ReportFilter, group_by: str = "program", period: str = "month") -> dict[str, Any]:
    """One row per group: enrolments, captured, routed, qualified, qualification rate, median days to
    qualify, and rewards issued (count and sum per currency)."""
    if group_by not in GROUPS:
        raise InvalidInput({"group_by": f"one of {', '.join(GROUPS)}"})
    if period not in PERIODS:
        raise InvalidInput({"period": f"one of {', '.join(PERIODS)}"})
    within = {"program_id": flt.program_id, "since": flt.since, "until": flt.until}
    with rt.uow(tenant_id, readonly=True) as uow:
        facts = uow.reports
        owners = facts.referral_owners() if group_by == "owner" else {}
        rows: dict[str, dict[str, Any]] = {}

        def row(key: str | None) -> dict[str, Any]:
            key = key or "(none)"
            return rows.setdefault(key, {"group": key, "enrolments": 0, "captured": 0, "routed": 0, "qualified": 0,
                                         "_days": [], "rewards_issued": 0, "rewards_sum": {}})

        def key_for(program_id: str, advocate_id: str | None, owner: str | None, at: dt.datetime | None) -> str | None:
            return {"program": program_id, "advocate": advocate_id, "owner": owner,
                    "period": _bucket(at, period) if at else None}[group_by]

        if group_by != "owner":
            for program_id, advocate_id, enrolled_at in facts.enrolments(**within):
                row(key_for(program_id, advocate_id, None, enrolled_at))["enrolments"] += 1
        for program_id, advocate_id, owner, captured, routed, qualified, status in facts.referrals(owner_id=flt.owner_id, **within):
            r = row(key_for(program_id, advocate_id, owner, captured))
            r["captured"] += 1
            if routed:
                r["routed"] += 1
            if qualified:
                r["qualified"] += 1
                r["_days"].append((qualified - captured).total_seconds() / 86400)
        for program_id, advocate_id, referral_id, issued_at, amount, currency in facts.issued_rewards(owner_id=flt.owner_id, **within):
            r = row(key_for(program_id, advocate_id, owners.get(referral_id), issued_at))
            r["rewards_issued"] += 1
            r["rewards_sum"][currency] = str(Decimal(r["rewards_sum"].get(currency, "0")) + Decimal(amount))
    out = []
    for r in sorted(rows.values(), key=lambda x: x["group"]):
        days = sorted(r.pop("_days"))
        r["qualification_rate"] = round(r["qualified"] / r["routed"], 4) if r["routed"] else None
        r["median_days_to_qualify"] = round(days[len(days) // 2], 2) if days else None
        out.append(r)
    return {"group_by": group_by, "period": period, "rows": out}


def count_referrals(rt: Runtime, tenant_id: str) -> dict[str, int]:
    with rt.uow(tenant_id) as uow:
        return uow.referrals.funnel_counts()
