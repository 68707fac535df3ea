"""Money as Decimal plus an ISO currency code. Never a float."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from refstage.domain.errors import DomainError

_CURRENCY = re.compile(r"^[A-Z]{3}$")
CENT = Decimal("0.01")
# No reward, threshold or deal amount we handle comes near this; anything larger is hostile input
# (1E+1000000 would otherwise make quantize() raise deep inside a request).
MAX_AMOUNT = Decimal("1000000000000")


def check_range(value: Decimal, raw: object = None) -> Decimal:
    if not value.is_finite():
        raise DomainError(f"not a finite number: {raw if raw is not None else value!r}")
    if abs(value) >= MAX_AMOUNT:
        raise DomainError(f"an amount must be below {MAX_AMOUNT:,}")
    return value


def to_decimal(value: object) -> Decimal:
    if isinstance(value, float):
        # Floats reach us only from JSON payloads of CRMs; go through str to keep the shown digits.
        value = repr(value)
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise DomainError(f"not a number: {value!r}") from exc
    return check_range(result, value)


@dataclass(frozen=True, order=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            object.__setattr__(self, "amount", to_decimal(self.amount))
        check_range(self.amount)
        if not _CURRENCY.match(self.currency or ""):
            raise DomainError(f"currency must be a 3-letter ISO code, got {self.currency!r}")
        object.__setattr__(self, "amount", self.amount.quantize(CENT, rounding=ROUND_HALF_UP))

    @classmethod
    def zero(cls, currency: str) -> "Money":
        return cls(Decimal("0"), currency)

    def _same(self, other: "Money") -> None:
        if self.currency != other.currency:
            raise DomainError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: "Money") -> "Money":
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def min(self, other: "Money") -> "Money":
        self._same(other)
        return self if self.amount <= other.amount else other

    def percent(self, pct: Decimal) -> "Money":
        return Money(self.amount * pct / Decimal(100), self.currency)

    def to_dict(self) -> dict:
        return {"amount": str(self.amount), "currency": self.currency}

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
