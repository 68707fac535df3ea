"""Salesforce record ids: 15-character case-sensitive ids plus the 3-character case-safe suffix.

An id is ``<key prefix (3)><pod (2)><reserved (1)><counter (9, base 62)>`` and the 18-character form
appends a checksum: for each 5-character chunk, a 5-bit mask with bit *i* set when character *i* is an
upper-case letter, used as an index into ``A..Z0..5``.
"""

from __future__ import annotations

import re
import threading

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
POD = "5g"  # the "instance" part of every id this org issues
ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")


def checksum(id15: str) -> str:
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def to18(value: str) -> str:
    if len(value) == 18:
        return value[:15] + checksum(value[:15])
    if len(value) != 15:
        raise ValueError(f"not a Salesforce id: {value!r}")
    return value + checksum(value)


def normalize(value: object) -> str | None:
    """Return the 18-character form of a 15/18-character id, or None when value is not id-shaped."""
    if not isinstance(value, str) or not ID_RE.match(value):
        return None
    suffix = checksum(value[:15])
    if len(value) == 18 and suffix != value[15:].upper():
        # Salesforce accepts an 18-char id whose suffix case differs; a wrong suffix is invalid.
        return None
    return value[:15] + suffix


def encode_counter(n: int, width: int = 9) -> str:
    chars = []
    for _ in range(width):
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    if n:
        raise OverflowError("id counter exhausted")
    return "".join(reversed(chars))


def make_id(prefix: str, counter: int) -> str:
    return to18(prefix + POD + "0" + encode_counter(counter))


class IdFactory:
    """Issues ids per key prefix from a shared, thread-safe counter."""

    def __init__(self, start: int = 1) -> None:
        self._lock = threading.Lock()
        self._next = start

    def reserve(self, count: int) -> int:
        with self._lock:
            first = self._next
            self._next += count
            return first

    def new(self, prefix: str) -> str:
        return make_id(prefix, self.reserve(1))

    def bump_to(self, value: int) -> None:
        with self._lock:
            self._next = max(self._next, value)
