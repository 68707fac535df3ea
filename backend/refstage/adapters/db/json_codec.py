"""How JSON columns are encoded and decoded: orjson, with the standard library behind it for the few values
orjson refuses. A big sync encodes and decodes hundreds of thousands of small JSON values (audit before/after,
reward flags, CRM record fields); the standard module spent several times orjson's CPU on them."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# {1: x} stores as {"1": x}, as json.dumps does. Datetimes, dataclasses and str subclasses go to the standard module,
# which writes a str subclass as text and refuses the others, as before: a datetime that reaches a JSON column is a bug.
_OPTIONS = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
            | orjson.OPT_PASSTHROUGH_SUBCLASS)
# orjson reads an integer of 2**64 or more as a float; the standard module keeps it exact.
_LONG_INTEGER, _LONG_INTEGER_BYTES = re.compile(r"\d{20}"), re.compile(rb"\d{20}")
# Texts most JSON columns hold: answered without a parse (a new list or dict each time: callers may mutate).
_EMPTY_LIST, _EMPTY_DICT, _NULL = "[]", "{}", "null"


def dumps(value: Any) -> str:
    """JSON text. NaN and infinities are written as null (PostgreSQL's json refuses them; SQLite kept them)."""
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):
        # Integers beyond 64 bits and the like: the standard module's text (and its error for what it refuses).
        return json.dumps(value)


def loads(text: str | bytes) -> Any:
    if text == _EMPTY_LIST:
        return []
    if text == _EMPTY_DICT:
        return {}
    if text == _NULL:
        return None
    if (_LONG_INTEGER if isinstance(text, str) else _LONG_INTEGER_BYTES).search(text):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # NaN and Infinity, which json.dumps wrote before orjson
