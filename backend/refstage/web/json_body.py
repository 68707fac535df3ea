"""Request JSON with limits: nesting depth, and no lone surrogates or NUL in any string (PostgreSQL cannot
store either, and nothing we accept needs them). Everything after parsing (validation, the rule
validator, the JSON columns) recurses per level, so hostile depth must stop here."""

from __future__ import annotations

import json
from typing import Any

from flask import g
from flask.json.provider import DefaultJSONProvider

MAX_DEPTH = 32  # our deepest legitimate body (a program with a nested rule) stays well under 20


class HostileJson(ValueError):
    """Raised as ValueError so Flask answers 400 (or get_json(silent=True) returns None); `fields` says where."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {v[0]}" for k, v in fields.items()))
        self.fields = fields


def _bad_string(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains an invalid character (a lone surrogate)"
    return None


def check(value: Any) -> None:
    """Walk the parsed document (iteratively); raise HostileJson at the first problem, keyed by its path."""
    stack: list[tuple[Any, str, int]] = [(value, "_body", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise HostileJson({"_body": [f"nested more than {MAX_DEPTH} levels deep"]})
        if isinstance(node, dict):
            for key, child in node.items():
                problem = _bad_string(key)
                if problem:
                    raise HostileJson({path if path != "_body" else "_body": [f"a key {problem}"]})
                stack.append((child, key if path == "_body" else f"{path}.{key}", depth + 1))
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{i}]" if path != "_body" else f"[{i}]", depth + 1) for i, child in enumerate(node))
        elif isinstance(node, str):
            problem = _bad_string(node)
            if problem:
                raise HostileJson({path: [problem]})


class BoundedJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = json.loads(s, **kwargs)
        except RecursionError:
            error = HostileJson({"_body": [f"nested more than {MAX_DEPTH} levels deep"]})
            _remember(error)
            raise error from None
        except ValueError as exc:  # also 5,000-digit integers (Python's int limit)
            _remember(HostileJson({"_body": [f"not valid JSON ({str(exc)[:120]})"]}))
            raise
        try:
            check(value)
        except HostileJson as exc:
            _remember(exc)
            raise
        return value


def _remember(error: HostileJson) -> None:
    """get_json(silent=True) swallows the error; keep its field errors for the view to report."""
    try:
        g.json_error = error.fields
    except RuntimeError:  # no app context: nothing to report to
        pass


def json_error() -> dict[str, list[str]] | None:
    return getattr(g, "json_error", None)
