"""Reward rules, reward computation, and the reward state machine."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Mapping

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from refstage.domain.audit import Change
from refstage.domain.errors import InvalidInput, InvalidTransition, RuleError
from refstage.domain.money import CENT, MAX_AMOUNT, Money
from refstage.domain.review import Flag, Reason
from refstage.domain.rules import OBJECTS, as_number, field_value


class RewardStatus(StrEnum):
    PENDING_HOLD = "pending_hold"
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    ISSUED = "issued"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


R = RewardStatus
REWARD_TRANSITIONS: dict[RewardStatus, frozenset[RewardStatus]] = {
    R.PENDING_HOLD: frozenset({R.PENDING_REVIEW, R.APPROVED, R.REJECTED, R.CANCELLED}),
    R.PENDING_REVIEW: frozenset({R.APPROVED, R.REJECTED, R.CANCELLED}),
    R.APPROVED: frozenset({R.ISSUED, R.PENDING_REVIEW, R.CANCELLED}),
    R.ISSUED: frozenset(),
    R.REJECTED: frozenset(),
    R.CANCELLED: frozenset(),
}


class Recipient(StrEnum):
    ADVOCATE = "advocate"
    FRIEND = "friend"


class RewardKind(StrEnum):
    FIXED = "fixed"
    PERCENTAGE = "percentage"
    TIER_BONUS = "tier_bonus"


class CapPeriod(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_AMOUNT_FIELD = re.compile(r"^(%s)\.[A-Za-z][A-Za-z0-9_]*$" % "|".join(OBJECTS))


class _MoneySchema(Schema):
    amount = fields.Decimal(required=True, as_string=True, validate=validate.Range(
        min=CENT, max=MAX_AMOUNT, max_inclusive=False, error="an amount from 0.01 to below 1,000,000,000,000"))
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$", error="a 3-letter ISO code"))


class RewardRuleSchema(Schema):
    key = fields.String(required=True, validate=validate.Regexp(_KEY, error="lowercase letters, digits, - and _"))
    recipient = fields.String(required=True, validate=validate.OneOf([r.value for r in Recipient]))
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in RewardKind]))
    amount = fields.Nested(_MoneySchema, allow_none=True)
    percent = fields.Decimal(allow_none=True, validate=validate.Range(min=0, max=100, min_inclusive=False), as_string=True)
    amount_field = fields.String(allow_none=True, validate=validate.Regexp(_AMOUNT_FIELD, error="Object.Field, e.g. Opportunity.Amount"))
    max_amount = fields.Nested(_MoneySchema, allow_none=True)
    currency = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    tier_at = fields.Integer(allow_none=True, validate=validate.Range(min=2))
    cap_amount = fields.Nested(_MoneySchema, allow_none=True)
    cap_count = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    cap_period = fields.String(allow_none=True, validate=validate.OneOf([p.value for p in CapPeriod]))

    @validates_schema
    def _by_kind(self, data: dict, **_: Any) -> None:
        kind = data.get("kind")
        if kind in ("fixed", "tier_bonus") and not data.get("amount"):
            raise ValidationError(f"a {kind} reward needs an amount", "amount")
        if kind == "tier_bonus" and not data.get("tier_at"):
            raise ValidationError("a tier bonus needs tier_at (the nth qualified referral)", "tier_at")
        if kind == "tier_bonus" and data.get("recipient") != "advocate":
            raise ValidationError("tier bonuses go to the advocate", "recipient")
        if kind == "percentage":
            if data.get("percent") is None:
                raise ValidationError("a percentage reward needs percent", "percent")
            if not data.get("amount_field"):
                raise ValidationError("a percentage reward needs amount_field", "amount_field")
            if not data.get("currency"):
                raise ValidationError("a percentage reward needs currency", "currency")
        if (data.get("cap_amount") or data.get("cap_count")) and not data.get("cap_period"):
            raise ValidationError("a cap needs cap_period", "cap_period")


@dataclass(frozen=True)
class RewardRule:
    key: str
    recipient: Recipient
    kind: RewardKind
    amount: Money | None = None
    percent: Decimal | None = None
    amount_field: str | None = None
    max_amount: Money | None = None
    currency: str | None = None
    tier_at: int | None = None
    cap_amount: Money | None = None
    cap_count: int | None = None
    cap_period: CapPeriod | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RewardRule":
        try:
            clean = RewardRuleSchema().load(dict(data))
        except ValidationError as exc:
            raise RuleError("invalid reward rule", exc.messages) from None

        def money(value: Any) -> Money | None:
            return Money(value["amount"], value["currency"]) if value else None

        return cls(
            key=clean["key"],
            recipient=Recipient(clean["recipient"]),
            kind=RewardKind(clean["kind"]),
            amount=money(clean.get("amount")),
            percent=clean.get("percent"),
            amount_field=clean.get("amount_field"),
            max_amount=money(clean.get("max_amount")),
            currency=clean.get("currency") or (clean["amount"]["currency"] if clean.get("amount") else None),
            tier_at=clean.get("tier_at"),
            cap_amount=money(clean.get("cap_amount")),
            cap_count=clean.get("cap_count"),
            cap_period=CapPeriod(clean["cap_period"]) if clean.get("cap_period") else None,
        )

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> "RewardRule":
        """Read back what to_dict() wrote (validated on the way in) without re-validating."""

        def money(value: Any) -> Money | None:
            return Money(Decimal(value["amount"]), value["currency"]) if value else None

        return cls(
            key=data["key"], recipient=Recipient(data["recipient"]), kind=RewardKind(data["kind"]),
            amount=money(data.get("amount")), percent=Decimal(data["percent"]) if data.get("percent") is not None else None,
            amount_field=data.get("amount_field"), max_amount=money(data.get("max_amount")), currency=data.get("currency"),
            tier_at=data.get("tier_at"), cap_amount=money(data.get("cap_amount")), cap_count=data.get("cap_count"),
            cap_period=CapPeriod(data["cap_period"]) if data.get("cap_period") else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "recipient": self.recipient.value, "kind": self.kind.value}
        for name in ("amount", "max_amount", "cap_amount"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to_dict()
        for name in ("amount_field", "currency", "tier_at", "cap_count"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.percent is not None:
            out["percent"] = str(self.percent)
        if self.cap_period:
            out["cap_period"] = self.cap_period.value
        return out

    def required_fields(self) -> dict[str, set[str]]:
        if self.amount_field:
            obj, _, name = self.amount_field.partition(".")
            return {obj: {name}}
        return {}


def period_start(at: dt.datetime, period: CapPeriod) -> dt.datetime:
    if period == CapPeriod.MONTH:
        return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if period == CapPeriod.QUARTER:
        month = 3 * ((at.month - 1) // 3) + 1
        return at.replace(month=month, day=1, hour=0, minute=0, second=0, microsecond=0)
    return at.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class AdvocateHistory:
    """What the advocate already earned, for caps and tiers."""

    qualified_count: int  # qualified referrals including the one being rewarded
    period_total: Money | None = None  # rewards of this rule in the current cap period, not rejected/cancelled
    period_count: int = 0


@dataclass(frozen=True)
class RewardDraft:
    rule: RewardRule
    amount: Money
    flags: tuple[Flag, ...] = ()


def compute_reward(
    rule: RewardRule, snapshot: Mapping[str, Mapping[str, Any]], history: AdvocateHistory
) -> RewardDraft | None:
    """The reward this rule grants for one qualified referral, or None when it grants nothing (yet)."""
    if rule.kind == RewardKind.TIER_BONUS:
        if history.qualified_count != rule.tier_at:
            return None
        amount = rule.amount
    elif rule.kind == RewardKind.FIXED:
        amount = rule.amount
    else:
        obj, _, name = (rule.amount_field or "").partition(".")
        base = as_number(field_value(snapshot.get(obj) or {}, name))
        if base is None or base <= 0:
            return None  # no amount in the CRM yet: nothing to pay; a later change may bring one
        amount = Money(base, rule.currency or "USD").percent(rule.percent or Decimal(0))
        if rule.max_amount is not None:
            amount = amount.min(rule.max_amount)
    assert amount is not None
    flags: list[Flag] = []
    if rule.recipient == Recipient.ADVOCATE and rule.cap_period:
        if rule.cap_count is not None and history.period_count >= rule.cap_count:
            flags.append(Flag(Reason.ADVOCATE_CAP_REACHED, {"cap_count": rule.cap_count, "period": rule.cap_period.value}))
        if rule.cap_amount is not None:
            earned = history.period_total or Money.zero(rule.cap_amount.currency)
            remaining = rule.cap_amount - earned
            if remaining.amount <= 0:
                flags.append(Flag(Reason.ADVOCATE_CAP_REACHED, {"cap_amount": rule.cap_amount.to_dict(), "earned": earned.to_dict()}))
            elif remaining.amount < amount.amount:
                amount = remaining  # pay up to the cap, not beyond
    if amount.amount <= 0:
        return None
    return RewardDraft(rule, amount, tuple(flags))


def amount_threshold_flag(amount: Money, threshold: Money | None) -> Flag | None:
    if threshold is not None and amount.currency == threshold.currency and amount.amount > threshold.amount:
        return Flag(Reason.OVER_AMOUNT_THRESHOLD, {"amount": amount.to_dict(), "threshold": threshold.to_dict()})
    return None


@dataclass
class Reward:
    id: str | None
    tenant_id: str
    program_id: str
    referral_id: str
    recipient: Recipient
    rule_key: str
    kind: RewardKind
    amount: Money
    status: RewardStatus
    created_at: dt.datetime
    advocate_id: str | None = None  # who earns it when the recipient is the advocate
    hold_until: dt.datetime | None = None
    flags: list[Flag] = field(default_factory=list)
    decided_by: str | None = None
    decision_comment: str | None = None
    decided_at: dt.datetime | None = None
    issued_at: dt.datetime | None = None
    payout_reference: str | None = None
    changes: list[Change] = field(default_factory=list, repr=False, compare=False)

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.referral_id, self.recipient.value, self.rule_key)

    def _move(self, target: RewardStatus, at: dt.datetime, reason: str | None = None, **extra: Any) -> None:
        if target not in REWARD_TRANSITIONS[self.status]:
            raise InvalidTransition("reward", self.status.value, target.value)
        before = {"status": self.status.value}
        self.status = target
        self.changes.append(
            Change("reward", self.id, f"status:{target.value}", before, {"status": target.value, **extra}, reason, at)
        )

    def release_hold(self, at: dt.datetime, needs_review: bool) -> None:
        if self.status != R.PENDING_HOLD:
            raise InvalidTransition("reward", self.status.value, "release_hold")
        if self.hold_until is not None and at < self.hold_until:
            raise InvalidTransition("reward", "pending_hold (until %s)" % self.hold_until.isoformat(), "release")
        self._move(R.PENDING_REVIEW if needs_review else R.APPROVED, at, "hold_period_ended")

    def send_to_review(self, at: dt.datetime, flag: Flag) -> None:
        if flag not in self.flags:
            self.flags.append(flag)
        if self.status == R.PENDING_REVIEW:
            self.changes.append(Change("reward", self.id, "flagged", None, {"flag": flag.to_dict()}, flag.reason.value, at))
            return
        if self.status == R.PENDING_HOLD:
            # Stays on hold; the flag makes review mandatory when the hold ends.
            self.changes.append(Change("reward", self.id, "flagged", None, {"flag": flag.to_dict()}, flag.reason.value, at))
            return
        self._move(R.PENDING_REVIEW, at, flag.reason.value, flag=flag.to_dict())

    def approve(self, at: dt.datetime, by: str, comment: str | None = None) -> None:
        if self.status == R.PENDING_HOLD:
            raise InvalidTransition("reward", "pending_hold", "approved (hold period not over)")
        self._move(R.APPROVED, at, comment, by=by)
        self.decided_by, self.decision_comment, self.decided_at = by, comment, at

    def reject(self, at: dt.datetime, by: str, reason: str) -> None:
        if not reason:
            raise InvalidInput({"comment": "a rejection needs a reason"})
        self._move(R.REJECTED, at, reason, by=by)
        self.decided_by, self.decision_comment, self.decided_at = by, reason, at

    def cancel(self, at: dt.datetime, reason: str) -> None:
        self._move(R.CANCELLED, at, reason)

    def issue(self, at: dt.datetime, payout_reference: str | None = None) -> None:
        self._move(R.ISSUED, at, None, payout_reference=payout_reference)
        self.issued_at = at
        self.payout_reference = payout_reference

    @property
    def is_final(self) -> bool:
        return self.status in (R.ISSUED, R.REJECTED, R.CANCELLED)
