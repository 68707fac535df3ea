"""Review: reason codes, the program's policy per reason, and the checks that raise them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Iterable, Mapping

from refstage.domain.errors import InvalidInput
from refstage.domain.money import Money


class Reason(StrEnum):
    SELF_REFERRAL = "self_referral"
    DUPLICATE_EXISTING_RECORD = "duplicate_existing_record"
    EXISTING_CUSTOMER = "existing_customer"
    OVER_AMOUNT_THRESHOLD = "over_amount_threshold"
    ADVOCATE_CAP_REACHED = "advocate_cap_reached"
    MILESTONE_REGRESSED = "milestone_regressed"
    SUSPICIOUS_VELOCITY = "suspicious_velocity"


class Action(StrEnum):
    BLOCK = "block"
    REVIEW = "review"
    PASS = "pass"


DEFAULT_ACTIONS: dict[Reason, Action] = {
    Reason.SELF_REFERRAL: Action.BLOCK,
    Reason.DUPLICATE_EXISTING_RECORD: Action.REVIEW,
    Reason.EXISTING_CUSTOMER: Action.REVIEW,
    Reason.OVER_AMOUNT_THRESHOLD: Action.REVIEW,
    Reason.ADVOCATE_CAP_REACHED: Action.BLOCK,
    Reason.MILESTONE_REGRESSED: Action.REVIEW,
    Reason.SUSPICIOUS_VELOCITY: Action.REVIEW,
}

# Same domain on a mailbox provider says nothing about who the person is.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "outlook.com", "hotmail.com",
        "live.com", "msn.com", "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com",
        "gmx.de", "gmx.net", "web.de", "mail.com", "yandex.ru", "zoho.com", "fastmail.com",
    }
)


@dataclass(frozen=True)
class Flag:
    reason: Reason
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason.value, "evidence": self.evidence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Flag":
        return cls(Reason(data["reason"]), dict(data.get("evidence") or {}))


@dataclass(frozen=True)
class ReviewPolicy:
    actions: dict[Reason, Action] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    amount_threshold: Money | None = None
    velocity_max: int = 5  # referrals by one advocate ...
    velocity_window_hours: int = 24  # ... within this window

    def action_for(self, reason: Reason) -> Action:
        return self.actions.get(reason, DEFAULT_ACTIONS[reason])

    def decide(self, flags: Iterable[Flag]) -> Action:
        """The strictest action any flag asks for."""
        worst = Action.PASS
        for flag in flags:
            action = self.action_for(flag.reason)
            if action == Action.BLOCK:
                return Action.BLOCK
            if action == Action.REVIEW:
                worst = Action.REVIEW
        return worst

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": {r.value: a.value for r, a in self.actions.items()},
            "amount_threshold": self.amount_threshold.to_dict() if self.amount_threshold else None,
            "velocity_max": self.velocity_max,
            "velocity_window_hours": self.velocity_window_hours,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "ReviewPolicy":
        data = data or {}
        errors: dict[str, str] = {}
        actions = dict(DEFAULT_ACTIONS)
        for key, value in (data.get("actions") or {}).items():
            try:
                actions[Reason(key)] = Action(value)
            except ValueError:
                errors[f"actions.{key}"] = f"unknown reason or action {key!r}: {value!r}"
        threshold = data.get("amount_threshold")
        money = None
        if threshold:
            try:
                money = Money(threshold["amount"], threshold["currency"])
            except Exception as exc:  # noqa: BLE001 - reported to the person as a field error
                errors["amount_threshold"] = str(exc)
        velocity_max = data.get("velocity_max", 5)
        window = data.get("velocity_window_hours", 24)
        if not isinstance(velocity_max, int) or velocity_max < 1:
            errors["velocity_max"] = "a whole number of at least 1"
        if not isinstance(window, int) or window < 1:
            errors["velocity_window_hours"] = "a whole number of at least 1"
        if errors:
            raise InvalidInput(errors)
        return cls(actions, money, velocity_max, window)


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower() if "@" in email else ""


def self_referral_flags(
    *,
    friend_email: str,
    friend_canonical_email: str,
    advocate_email: str | None,
    advocate_canonical_email: str | None,
    friend_account_id: str | None = None,
    advocate_account_id: str | None = None,
) -> list[Flag]:
    flags: list[Flag] = []
    if advocate_email and (
        friend_email == advocate_email or friend_canonical_email == (advocate_canonical_email or advocate_email)
    ):
        flags.append(Flag(Reason.SELF_REFERRAL, {"match": "same_email", "email": friend_email}))
        return flags
    domain = email_domain(friend_email)
    if advocate_email and domain and domain == email_domain(advocate_email) and domain not in FREE_MAIL_DOMAINS:
        flags.append(Flag(Reason.SELF_REFERRAL, {"match": "same_email_domain", "domain": domain}))
    if friend_account_id and advocate_account_id and friend_account_id == advocate_account_id:
        flags.append(Flag(Reason.SELF_REFERRAL, {"match": "same_crm_account", "account_id": friend_account_id}))
    return flags


def velocity_flag(recent_capture_times: Iterable[dt.datetime], now: dt.datetime, policy: ReviewPolicy) -> Flag | None:
    """Flags the capture that takes an advocate over the policy's count within its window."""
    window_start = now - dt.timedelta(hours=policy.velocity_window_hours)
    count = sum(1 for t in recent_capture_times if t >= window_start)
    if count + 1 > policy.velocity_max:
        return Flag(
            Reason.SUSPICIOUS_VELOCITY,
            {"referrals_in_window": count + 1, "window_hours": policy.velocity_window_hours, "max": policy.velocity_max},
        )
    return None
