"""Referral codes: short, unguessable, case-insensitive, no look-alike characters."""

from __future__ import annotations

import math
import secrets
from typing import Callable

# No 0/O, 1/I/L: a code read aloud or copied from paper survives.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 9
BITS = CODE_LENGTH * math.log2(len(ALPHABET))  # ~44.6 bits
MAX_ATTEMPTS = 10

assert CODE_LENGTH <= 10 and BITS >= 40


class CodeSpaceExhausted(RuntimeError):
    pass


def normalise_code(code: str) -> str:
    """Codes compare case-insensitively and ignore spaces and dashes a person may type."""
    return "".join(str(code).split()).upper().replace("-", "")


def is_well_formed(code: str) -> bool:
    text = normalise_code(code)
    return len(text) == CODE_LENGTH and all(ch in ALPHABET for ch in text)


def generate_code(is_taken: Callable[[str], bool], rand: Callable[[int], int] = secrets.randbelow) -> str:
    """A fresh code not yet taken. The database's unique index stays the final guard."""
    for _ in range(MAX_ATTEMPTS):
        code = "".join(ALPHABET[rand(len(ALPHABET))] for _ in range(CODE_LENGTH))
        if not is_taken(code):
            return code
    raise CodeSpaceExhausted("could not find a free referral code")


# Random bytes to characters without bias: the 248 byte values below 8 × 31 map onto the alphabet evenly (each
# character from 8 of them); the 8 above are dropped.
_KEEP = 256 - 256 % len(ALPHABET)
_TO_ALPHABET = bytes(ord(ALPHABET[b % len(ALPHABET)]) if b < _KEEP else 0 for b in range(256))
_DROP = bytes(range(_KEEP, 256))


def random_codes(count: int, random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> list[str]:
    """`count` codes from the OS's random source, as unguessable as generate_code's (uniform over the alphabet),
    at a fraction of the cost per code: an enrolment makes a hundred thousand. Not checked for being taken, nor
    for repeats among themselves: the caller does both."""
    need = count * CODE_LENGTH
    chars = b""
    while len(chars) < need:
        # About 3 % of bytes are dropped; ask for a little more than needed so one draw usually suffices.
        chars += random_bytes(need - len(chars) + need // 16 + 16).translate(_TO_ALPHABET, _DROP)
    text = chars[:need].decode("ascii")
    return [text[i:i + CODE_LENGTH] for i in range(0, need, CODE_LENGTH)]


def referral_link(base_url: str, code: str) -> str:
    return f"{base_url.rstrip('/')}/r/{code}"
