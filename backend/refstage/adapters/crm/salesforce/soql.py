"""Safe SOQL from structured conditions. Field names are checked against a strict pattern (and, where a
describe is at hand, against the object's fields); values are rendered as typed literals with
Salesforce's escaping. No user input is ever pasted into a query string as-is."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping, Sequence

from refstage.domain.errors import InvalidInput

_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*){0,4}$")
_SOBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
NUMERIC = {"int", "double", "currency", "percent", "long"}
TEXTUAL_DATES = {"date", "datetime"}


def field(name: str) -> str:
    if not isinstance(name, str) or not _FIELD.match(name):
        raise InvalidInput({"field": f"not a valid Salesforce field name: {name!r}"})
    return name


def sobject(name: str) -> str:
    if not isinstance(name, str) or not _SOBJECT.match(name):
        raise InvalidInput({"object": f"not a valid Salesforce object name: {name!r}"})
    return name


def record_id(value: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInput({"id": f"not a Salesforce id: {value!r}"})
    return value


def quote(text: str, *, like: bool = False) -> str:
    out = "".join(_ESCAPES.get(ch, ch) for ch in str(text))
    if like:
        out = out.replace("%", "\\%").replace("_", "\\_")
    return f"'{out}'"


def datetime_literal(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime in SOQL")
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def literal(value: Any, field_type: str | None = None) -> str:
    """A typed literal. With the field's describe type, dates/numbers/booleans are checked and unquoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return datetime_literal(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if field_type == "boolean":
        if str(value).lower() in ("true", "false"):
            return str(value).lower()
        raise InvalidInput({"value": f"{value!r} is not true or false"})
    if field_type in NUMERIC or (field_type is None and isinstance(value, (int, float, Decimal))):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise InvalidInput({"value": f"{value!r} is not a number"}) from None
        if not number.is_finite():
            raise InvalidInput({"value": f"{value!r} is not a number"})
        return format(number, "f")
    if field_type == "date":
        if not _DATE.match(str(value)):
            raise InvalidInput({"value": f"{value!r} is not a date (YYYY-MM-DD)"})
        return str(value)
    if field_type == "datetime":
        text = str(value).strip().replace("Z", "+00:00")
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput({"value": f"{value!r} is not a date and time"}) from None
        return datetime_literal(parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc))
    return quote(str(value))


_OPS = {"equals": "=", "not_equals": "!=", "gte": ">=", "lte": "<="}


def condition(name: str, op: str, value: Any = None, field_type: str | None = None) -> str:
    name = field(name)
    if op in _OPS:
        return f"{name} {_OPS[op]} {literal(value, field_type)}"
    if op in ("in", "not_in"):
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        if not values:
            raise InvalidInput({"value": "a non-empty list"})
        joined = ", ".join(literal(v, field_type) for v in values)
        return f"{name} {'IN' if op == 'in' else 'NOT IN'} ({joined})"
    if op == "is_null":
        return f"{name} = null"
    if op == "not_null":
        return f"{name} != null"
    if op == "contains":
        return f"{name} LIKE '%{quote(str(value), like=True)[1:-1]}%'"
    raise InvalidInput({"op": f"unsupported operator {op!r}"})


def where_all(conditions: Iterable[Any], types: Mapping[str, str] | None = None) -> list[str]:
    """Domain FilterConditions (field, op, value) → SOQL predicates, typed by the describe when known."""
    types = {k.lower(): v for k, v in (types or {}).items()}
    out = []
    for cond in conditions:
        name = field(cond.field)
        if types and "." not in name and name.lower() not in types:
            raise InvalidInput({"conditions": f"the object has no field {name}"})
        out.append(condition(name, cond.op, cond.value, types.get(name.lower())))
    return out


def select(fields: Sequence[str], from_: str, where: Sequence[str] = (), order_by: Sequence[str] = (),
           limit: int | None = None) -> str:
    names = list(dict.fromkeys(field(f) for f in fields))
    text = f"SELECT {', '.join(names)} FROM {sobject(from_)}"
    if where:
        text += " WHERE " + " AND ".join(f"({w})" if " OR " in w else w for w in where)
    if order_by:
        text += " ORDER BY " + ", ".join(order_by)
    if limit is not None:
        text += f" LIMIT {int(limit)}"
    return text


def count(from_: str, where: Sequence[str] = ()) -> str:
    text = f"SELECT COUNT() FROM {sobject(from_)}"
    if where:
        text += " WHERE " + " AND ".join(f"({w})" if " OR " in w else w for w in where)
    return text


def after(stamp_field: str, stamp: dt.datetime, last_id: str | None) -> str:
    """Keyset predicate for paging by (stamp, Id): ties on the timestamp never loop or skip."""
    lit = datetime_literal(stamp)
    if last_id:
        return f"{field(stamp_field)} > {lit} OR ({stamp_field} = {lit} AND Id > {quote(record_id(last_id))})"
    return f"{field(stamp_field)} >= {lit}"


def id_list(ids: Iterable[str]) -> str:
    return "(" + ", ".join(quote(record_id(i)) for i in ids) + ")"
