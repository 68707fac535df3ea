import math
from decimal import Decimal

import pytest

from refstage.domain import codes
from refstage.domain.errors import DomainError
from refstage.domain.money import Money


def test_codes_are_short_unguessable_and_unambiguous():
    seen = {codes.generate_code(lambda c: False) for _ in range(2000)}
    assert len(seen) == 2000
    for code in seen:
        assert len(code) <= 10
        assert not set(code) & set("01OIL")
        assert codes.is_well_formed(code.lower())
    assert codes.CODE_LENGTH * math.log2(len(codes.ALPHABET)) >= 40


def test_collisions_are_retried_then_refused():
    taken = iter([True, True, False])
    code = codes.generate_code(lambda c: next(taken))
    assert codes.is_well_formed(code)
    with pytest.raises(codes.CodeSpaceExhausted):
        codes.generate_code(lambda c: True)


def test_codes_are_case_insensitive_and_forgive_spacing():
    assert codes.normalise_code(" abc-def 234 ") == "ABCDEF234"
    assert not codes.is_well_formed("ABC")
    assert not codes.is_well_formed("ABCDEFGH0")  # zero is not in the alphabet
    assert codes.referral_link("https://x.test/", "ABCDEFGH2") == "https://x.test/r/ABCDEFGH2"


def test_money_is_decimal_and_refuses_mixing():
    total = Money("0.10", "USD") + Money(Decimal("0.20"), "USD")
    assert total == Money("0.30", "USD")
    assert Money(0.1, "USD").amount == Decimal("0.10")
    with pytest.raises(DomainError):
        Money("1", "USD") + Money("1", "EUR")
    with pytest.raises(DomainError):
        Money("1", "usd")
    with pytest.raises(DomainError):
        Money("NaN", "USD")
    assert Money("1000", "USD").percent(Decimal("2.5")) == Money("25.00", "USD")
