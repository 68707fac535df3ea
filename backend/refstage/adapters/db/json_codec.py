"""How JSON columns are encoded and decoded: orjson, with the standard library behind it for the few values
orjson refuses. A big sync encodes and decodes hundreds of thousands of small JSON values (audit before/after,
reward flags, CRM record fields); the standard module spent several times orjson's CPU on them."""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS  # {1: x} stores as {"1": x}, as json.dumps does
# Texts most JSON columns hold: answered without a parse (a new list or dict each time: callers may mutate).
_EMPTY_LIST, _EMPTY_DICT, _NULL = "[]", "{}", "null"


def dumps(value: Any) -> str:
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
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # NaN and Infinity, which json.dumps wrote before orjson
