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


def test_batch_codes_map_random_bytes_onto_the_alphabet_evenly():
    """random_codes: byte b < 248 becomes ALPHABET[b % 31] (each character from exactly 8 byte values); the 8
    values above are dropped, not folded onto the first characters."""
    alphabet, n = codes.ALPHABET, len(codes.ALPHABET)
    assert codes._KEEP == 248 and 248 % n == 0
    given = bytes([0, 1, 2, 30, 31, 248, 255, 247, 62, 93]) + bytes([5]) * 40
    first = codes.random_codes(1, lambda k: given[:k])[0]
    # 248 and 255 are skipped: the code is 0, 1, 2, 30, 31, 247, 62, 93, 5 mapped.
    assert first == "".join(alphabet[b % n] for b in (0, 1, 2, 30, 31, 247, 62, 93, 5))
    assert all(codes.is_well_formed(c) for c in codes.random_codes(500))


def test_batch_codes_ask_again_when_dropped_bytes_leave_them_short():
    drawn = iter([bytes([250]) * 30, bytes([3]) * 200])  # the first draw is all dropped values
    out = codes.random_codes(2, lambda k: next(drawn))
    assert out == [codes.ALPHABET[3] * codes.CODE_LENGTH] * 2


def test_batch_codes_are_uniform():
    """Chi-square over 310,000 characters from a seeded source: far below the 0.1 % critical value for 30
    degrees of freedom (59.7) when uniform; folding the 8 top byte values onto the first 8 characters instead of
    dropping them lands near 900."""
    import random

    rng = random.Random(20261123)
    chars = "".join(codes.random_codes(310_000 // codes.CODE_LENGTH + 1, rng.randbytes))[:310_000]
    expected = len(chars) / len(codes.ALPHABET)
    chi2 = sum((chars.count(ch) - expected) ** 2 / expected for ch in codes.ALPHABET)
    assert chi2 < 59.7


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
