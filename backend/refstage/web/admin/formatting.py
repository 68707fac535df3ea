"""Money and dates for people: Jinja filters using the tenant's locale and time zone (Babel's CLDR
data), so no page shows `{'amount': '250.00', ...}` or an ISO timestamp."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from flask import g

from refstage.domain.money import Money
from refstage.web.admin import bp

DEFAULT_LOCALE = "en_US"
DEFAULT_ZONE = "UTC"


def _locale() -> str:
    tenant = getattr(g, "tenant", None)
    return getattr(tenant, "locale", None) or DEFAULT_LOCALE


def _zone() -> ZoneInfo:
    tenant = getattr(g, "tenant", None)
    try:
        return ZoneInfo(getattr(tenant, "time_zone", None) or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def money_text(value: Any, locale: str | None = None) -> str:
    """Money, a {"amount", "currency"} dict, or nothing → "$250.00", "€100.00", "CHF 80.00"."""
    if value is None or value == "":
        return "—"
    if isinstance(value, Money):
        amount, currency = value.amount, value.currency
    elif isinstance(value, dict) and "amount" in value:
        amount, currency = value.get("amount"), str(value.get("currency") or "")
    else:
        return str(value)
    try:
        number = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return f"{amount} {currency}".strip()
    try:
        return format_currency(number, currency, locale=locale or _locale()) if currency else \
            format_decimal(number, locale=locale or _locale())
    except (UnknownLocaleError, ValueError):
        return f"{number} {currency}".strip()


def when_text(value: Any, locale: str | None = None, zone: ZoneInfo | None = None, with_time: bool = True) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        if not with_time:
            return format_date(aware.astimezone(zone or _zone()).date(), "medium", locale=locale or _locale())
        return format_datetime(aware, "d MMM y, HH:mm zzz", tzinfo=zone or _zone(), locale=locale or _locale())
    if isinstance(value, dt.date):
        return format_date(value, "medium", locale=locale or _locale())
    return str(value)


@bp.app_template_filter("money")
def _money(value: Any) -> str:
    return money_text(value)


@bp.app_template_filter("when")
def _when(value: Any) -> str:
    return when_text(value)


@bp.app_template_filter("day")
def _day(value: Any) -> str:
    return when_text(value, with_time=False)


@bp.app_template_filter("words")
def _words(value: Any) -> str:
    """An enum value or snake_case key as words: pending_review → pending review."""
    text = getattr(value, "value", value)
    return str(text or "").replace("_", " ")


@bp.app_template_filter("evidence")
def _evidence(value: Any) -> str:
    """A flag's evidence value for a reviewer: money as money, timestamps as dates, ids shortened to
    what a person compares, lists and small maps as plain words (never a Python dict)."""
    if isinstance(value, dict):
        if "amount" in value and "currency" in value:
            return money_text(value)
        return "; ".join(f"{_words(k)}: {_evidence(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_evidence(v) for v in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] == "T":
        return when_text(value)
    if value is None:
        return "—"
    return str(value)
