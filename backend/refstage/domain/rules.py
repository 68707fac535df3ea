"""The qualification rule language.

A rule is JSON: a condition `{"object": "Opportunity", "field": "StageName", "op": "equals",
"value": "Closed Won"}` or a group `{"all": [...]}` / `{"any": [...]}`, nested freely. It is
evaluated on CRM record snapshots `{"Opportunity": {...fields...}, "Lead": {...}}` and tells which
CRM fields it needs, so the sync pulls only those. A short text form is accepted too:
`Opportunity.StageName == 'Closed Won' AND Opportunity.Amount >= 5000`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from refstage.domain.errors import RuleError

OBJECTS = ("Lead", "Opportunity", "Account", "Contact", "Deal")
VALUE_OPS = ("equals", "not_equals", "in", "not_in", "gte", "lte")
FLAG_OPS = ("is_won", "is_closed")
OPS = VALUE_OPS + FLAG_OPS
_OP_ALIASES = {"==": "equals", "=": "equals", "!=": "not_equals", ">=": "gte", "<=": "lte"}
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")
MAX_DEPTH = 8
MAX_CONDITIONS = 50
MAX_RULE_TEXT = 10_000  # characters of rule text; a real rule is a few hundred
MAX_PARENTHESES = 32  # nesting; the parser recurses per level, so hostile text must stop here
MAX_NUMBER_DIGITS = 30

# Which snapshot fields the flag operators read, per object.
_FLAG_FIELDS = {
    ("Opportunity", "is_won"): ("IsWon",),
    ("Opportunity", "is_closed"): ("IsClosed",),
    ("Lead", "is_won"): ("IsConverted",),
    ("Lead", "is_closed"): ("IsConverted",),
    ("Deal", "is_won"): ("status",),
    ("Deal", "is_closed"): ("status",),
    ("Account", "is_won"): (),
    ("Account", "is_closed"): (),
    ("Contact", "is_won"): (),
    ("Contact", "is_closed"): (),
}


class _ConditionSchema(Schema):
    object = fields.String(required=True, validate=validate.OneOf(OBJECTS))
    field = fields.String(required=True, validate=validate.Regexp(_FIELD_NAME, error="not a valid field name"))
    op = fields.String(required=True, validate=validate.OneOf(OPS))
    value = fields.Raw(allow_none=True)

    @validates_schema
    def _check_value(self, data: dict, **_: Any) -> None:
        op = data.get("op")
        has_value = "value" in data
        if op in FLAG_OPS:
            if has_value and data["value"] not in (None, True):
                raise ValidationError(f"operator {op!r} takes no value", "value")
            if (data.get("object"), op) in _FLAG_FIELDS and not _FLAG_FIELDS[(data["object"], op)]:
                raise ValidationError(f"{data['object']} has no {op} flag", "op")
            return
        if not has_value:
            raise ValidationError(f"operator {op!r} needs a value", "value")
        value = data["value"]
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise ValidationError(f"operator {op!r} needs a non-empty list", "value")
            if any(isinstance(v, (list, dict)) for v in value):
                raise ValidationError("list items must be plain values", "value")
        elif isinstance(value, (list, dict)):
            raise ValidationError(f"operator {op!r} needs a single value", "value")
        if op in ("gte", "lte") and (value is None or isinstance(value, bool)):
            raise ValidationError(f"operator {op!r} needs a number, date or text", "value")


def _validate_node(node: Any, path: str, depth: int, counter: list[int]) -> dict[str, Any]:
    """Validate recursively; errors are keyed by a JSON-path-like location of the bad part."""
    if depth > MAX_DEPTH:
        raise RuleError("rule is nested too deeply", {path: [f"more than {MAX_DEPTH} levels"]})
    if not isinstance(node, dict):
        raise RuleError("rule parts must be objects", {path: ["expected an object"]})
    groups = [k for k in ("all", "any") if k in node]
    if groups:
        if len(node) != 1:
            raise RuleError("a group has exactly one key", {path: ["use either 'all' or 'any', alone"]})
        key = groups[0]
        children = node[key]
        if not isinstance(children, list) or not children:
            raise RuleError("a group needs conditions", {f"{path}.{key}": ["expected a non-empty list"]})
        return {key: [_validate_node(c, f"{path}.{key}[{i}]", depth + 1, counter) for i, c in enumerate(children)]}
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise RuleError("rule has too many conditions", {path: [f"more than {MAX_CONDITIONS}"]})
    node = dict(node)
    if isinstance(node.get("op"), str):
        node["op"] = _OP_ALIASES.get(node["op"], node["op"])
    try:
        clean = _ConditionSchema().load(node)
    except ValidationError as exc:
        errors = {f"{path}.{k}" if k != "_schema" else path: v for k, v in exc.messages.items()}
        raise RuleError("invalid condition at " + path, errors) from None
    if clean["op"] in FLAG_OPS:
        clean.pop("value", None)
    return clean


@dataclass(frozen=True)
class Rule:
    """A validated rule. Build with `Rule.from_json` or `Rule.parse`."""

    tree: dict[str, Any]

    @classmethod
    def from_json(cls, data: Any) -> "Rule":
        return cls(_validate_node(data, "$", 0, [0]))

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> "Rule":
        """A rule read back from our own storage, validated when it was written: skip re-validation."""
        return cls(data)

    @classmethod
    def parse(cls, text: str) -> "Rule":
        return cls.from_json(_Parser(text).parse())

    @classmethod
    def coerce(cls, value: "Rule | str | dict") -> "Rule":
        if isinstance(value, Rule):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        return cls.from_json(value)

    def to_json(self) -> dict[str, Any]:
        return self.tree

    def required_fields(self) -> dict[str, set[str]]:
        needed: dict[str, set[str]] = {}
        for cond in _conditions(self.tree):
            obj = cond["object"]
            if cond["op"] in FLAG_OPS:
                names: Iterable[str] = _FLAG_FIELDS[(obj, cond["op"])]
            else:
                names = (cond["field"],)
            needed.setdefault(obj, set()).update(names)
        return needed

    def objects(self) -> set[str]:
        return {c["object"] for c in _conditions(self.tree)}

    def evaluate(self, snapshot: Mapping[str, Mapping[str, Any]]) -> bool:
        return _evaluate(self.tree, snapshot)

    def explain(self, snapshot: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """The rule tree annotated with each part's result and the value seen, for reviewers and reps."""
        return _explain(self.tree, snapshot)

    def describe(self) -> str:
        # Kept once rendered (the rule is frozen): a mass update quotes it as evidence on every qualification.
        text = self.__dict__.get("_description")
        if text is None:
            text = self.__dict__["_description"] = _describe(self.tree, top=True)
        return text


def _conditions(node: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for key in ("all", "any"):
        if key in node:
            for child in node[key]:
                yield from _conditions(child)
            return
    yield node


def field_value(record: Mapping[str, Any], field: str) -> Any:
    """A (possibly dotted) field of a CRM record snapshot; None where the path does not lead to a value."""
    value: Any = record
    for part in field.split("."):
        # A plain dict first: the ABC check is several times slower, and a big sync looks up millions of fields.
        if value.__class__ is not dict and not isinstance(value, Mapping):
            return None
        # CRM field names are case-insensitive in Salesforce; try exact first.
        if part in value:
            value = value[part]
        else:
            lowered = {k.lower(): v for k, v in value.items()}
            value = lowered.get(part.lower())
    return value


# What as_number made of a text: a mass update compares the same few values ("Closed Won", a stage name) millions of
# times, and Decimal's refusal of a non-number is an exception each time. Decimals are immutable; kept small.
_TEXT_NUMBERS: dict[str, Decimal | None] = {}
_UNSEEN = object()


def as_number(value: Any) -> Decimal | None:
    """A CRM value read as a finite Decimal (numbers, numeric text, Pipedrive money); None if it is not one."""
    kind = value.__class__
    if kind is bool or value is None:
        return None
    if kind is int or kind is Decimal:  # the common cases, before the slower isinstance checks below
        return Decimal(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        found = _TEXT_NUMBERS.get(value, _UNSEEN)
        if found is _UNSEEN:
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                found = None
            else:
                found = number if number.is_finite() else None
            if len(value) <= 64:  # short texts only: the memo stays small whatever the CRM holds
                if len(_TEXT_NUMBERS) >= 4096:
                    _TEXT_NUMBERS.clear()
                _TEXT_NUMBERS[value] = found
        return found
    if isinstance(value, Mapping) and "value" in value:  # Pipedrive money {"value", "currency"}
        return as_number(value["value"])
    return None


def _as_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}", value):
        text = value.strip().replace("Z", "+00:00")
        text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)  # Salesforce's +0000
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    return None


def _equal(actual: Any, expected: Any) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return _as_bool(actual) == _as_bool(expected)
    a_num, e_num = as_number(actual), as_number(expected)
    if a_num is not None and e_num is not None:
        return a_num == e_num
    if actual.__class__ is not str and isinstance(actual, Mapping) and "id" in actual:  # Pipedrive nested references
        actual = actual["id"]
    return str(actual).strip().casefold() == str(expected).strip().casefold()


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, (int, Decimal)) and value in (0, 1):
        return bool(value)
    return None


def _compare(actual: Any, expected: Any, op: str) -> bool:
    a_num, e_num = as_number(actual), as_number(expected)
    if a_num is not None and e_num is not None:
        return a_num >= e_num if op == "gte" else a_num <= e_num
    a_time, e_time = _as_time(actual), _as_time(expected)
    if a_time is not None and e_time is not None:
        return a_time >= e_time if op == "gte" else a_time <= e_time
    if isinstance(actual, str) and isinstance(expected, str):
        return actual >= expected if op == "gte" else actual <= expected
    return False  # missing or incomparable values never satisfy an ordering


def _flag(obj: str, op: str, record: Mapping[str, Any]) -> bool:
    if obj == "Deal":
        status = str(field_value(record, "status") or "").lower()
        return status == "won" if op == "is_won" else status in ("won", "lost")
    (name,) = _FLAG_FIELDS[(obj, op)]
    return _as_bool(field_value(record, name)) is True


def _condition_value(cond: dict[str, Any], snapshot: Mapping[str, Mapping[str, Any]]) -> tuple[bool, Any]:
    record = snapshot.get(cond["object"])
    if record is None:
        return False, None
    op = cond["op"]
    if op in FLAG_OPS:
        return _flag(cond["object"], op, record), None
    actual = field_value(record, cond["field"])
    expected = cond.get("value")
    if op == "equals":
        return _equal(actual, expected), actual
    if op == "not_equals":
        return (not _equal(actual, expected)), actual
    if op == "in":
        return any(_equal(actual, v) for v in expected), actual
    if op == "not_in":
        return (not any(_equal(actual, v) for v in expected)), actual
    return _compare(actual, expected, op), actual


def _evaluate(node: dict[str, Any], snapshot: Mapping[str, Mapping[str, Any]]) -> bool:
    if "all" in node:
        return all(_evaluate(c, snapshot) for c in node["all"])
    if "any" in node:
        return any(_evaluate(c, snapshot) for c in node["any"])
    return _condition_value(node, snapshot)[0]


def _explain(node: dict[str, Any], snapshot: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    for key in ("all", "any"):
        if key in node:
            parts = [_explain(c, snapshot) for c in node[key]]
            combine = all if key == "all" else any
            return {key: parts, "passed": combine(p["passed"] for p in parts)}
    passed, actual = _condition_value(node, snapshot)
    return {**node, "passed": passed, "actual": actual, "text": _describe(node, top=True)}


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return str(value)


_OP_TEXT = {"equals": "==", "not_equals": "!=", "gte": ">=", "lte": "<=", "in": "in", "not_in": "not in"}


def _describe(node: dict[str, Any], top: bool = False) -> str:
    for key, word in (("all", " AND "), ("any", " OR ")):
        if key in node:
            text = word.join(_describe(c) for c in node[key])
            return text if top or len(node[key]) == 1 else f"({text})"
    target = f"{node['object']}.{node['field']}"
    if node["op"] in FLAG_OPS:
        return f"{node['object']} {node['op']}"
    return f"{target} {_OP_TEXT[node['op']]} {_literal(node.get('value'))}"


# --- text form ----------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op>==|!=|>=|<=|=)
      | (?P<punct>[()\[\],])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)


class _Parser:
    """Recursive descent over: expr := and (OR and)* ; and := atom (AND atom)* ;
    atom := '(' expr ')' | Obj.Field op value | Obj.Field [not] in [list] | Obj is_won|is_closed."""

    def __init__(self, text: str):
        if not isinstance(text, str) or not text.strip():
            raise RuleError("empty rule", {"$": ["write a condition such as Opportunity.IsWon == true"]})
        if len(text) > MAX_RULE_TEXT:
            raise RuleError("rule too long", {"$": [f"at most {MAX_RULE_TEXT} characters"]})
        self.text = text
        self.depth = 0
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if not match:
                raise RuleError("cannot read rule", {"$": [f"unexpected character at position {pos + 1}: {text[pos:pos+10]!r}"]})
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            pos = match.end()
        self.i = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _next(self, wanted: str) -> tuple[str, str, int]:
        tok = self._peek()
        if tok is None:
            raise RuleError("rule ends too early", {"$": [f"expected {wanted} at the end"]})
        self.i += 1
        return tok

    def _expect(self, literal: str) -> None:
        tok = self._next(repr(literal))
        if tok[1].upper() != literal.upper():
            raise RuleError("cannot read rule", {"$": [f"expected {literal!r} at position {tok[2] + 1}, found {tok[1]!r}"]})

    def _is_word(self, word: str) -> bool:
        tok = self._peek()
        return tok is not None and tok[0] == "word" and tok[1].upper() == word

    def parse(self) -> dict[str, Any]:
        node = self._or()
        if self._peek() is not None:
            tok = self._peek()
            raise RuleError("cannot read rule", {"$": [f"unexpected {tok[1]!r} at position {tok[2] + 1}"]})
        return node

    def _or(self) -> dict[str, Any]:
        parts = [self._and()]
        while self._is_word("OR"):
            self.i += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else {"any": parts}

    def _and(self) -> dict[str, Any]:
        parts = [self._atom()]
        while self._is_word("AND"):
            self.i += 1
            parts.append(self._atom())
        return parts[0] if len(parts) == 1 else {"all": parts}

    def _atom(self) -> dict[str, Any]:
        tok = self._next("a condition")
        if tok[1] == "(":
            self.depth += 1
            if self.depth > MAX_PARENTHESES:
                raise RuleError("rule nested too deeply", {"$": [f"at most {MAX_PARENTHESES} levels of parentheses"]})
            node = self._or()
            self._expect(")")
            self.depth -= 1
            return node
        if tok[0] != "word":
            raise RuleError("cannot read rule", {"$": [f"expected Object.Field at position {tok[2] + 1}, found {tok[1]!r}"]})
        obj, _, fld = tok[1].partition(".")
        nxt = self._next("an operator")
        if nxt[0] == "word" and nxt[1].lower() in FLAG_OPS and not fld:
            return {"object": obj, "field": nxt[1].lower(), "op": nxt[1].lower()}
        if not fld:
            if nxt[0] == "word":
                raise RuleError("cannot read rule", {"$": [f"unknown operator {nxt[1]!r} at position {nxt[2] + 1}: use is_won, is_closed or Object.Field == value"]})
            raise RuleError("cannot read rule", {"$": [f"expected Object.Field at position {tok[2] + 1}, found {tok[1]!r}"]})
        if nxt[0] == "op":
            return {"object": obj, "field": fld, "op": _OP_ALIASES[nxt[1]], "value": self._value()}
        if nxt[0] == "word" and nxt[1].upper() == "NOT":
            self._expect("in")
            return {"object": obj, "field": fld, "op": "not_in", "value": self._list()}
        if nxt[0] == "word" and nxt[1].upper() == "IN":
            return {"object": obj, "field": fld, "op": "in", "value": self._list()}
        raise RuleError("cannot read rule", {"$": [f"unknown operator {nxt[1]!r} at position {nxt[2] + 1}"]})

    def _list(self) -> list[Any]:
        self._expect("[")
        items = [self._value()]
        while self._peek() is not None and self._peek()[1] == ",":
            self.i += 1
            items.append(self._value())
        self._expect("]")
        return items

    def _value(self) -> Any:
        tok = self._next("a value")
        kind, text = tok[0], tok[1]
        if kind == "str":
            body = text[1:-1]
            return re.sub(r"\\(.)", r"\1", body)
        if kind == "num":
            if len(text.lstrip("-").replace(".", "")) > MAX_NUMBER_DIGITS:
                raise RuleError("cannot read rule", {"$": [f"a number at position {tok[2] + 1} has more than {MAX_NUMBER_DIGITS} digits"]})
            # Decimals stay text so the rule is plain JSON; comparisons read them as Decimal.
            return int(text) if re.fullmatch(r"-?\d+", text) else text
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind == "word" and text.lower() == "null":
            return None
        raise RuleError("cannot read rule", {"$": [f"expected a value at position {tok[2] + 1}, found {text!r}"]})


# --- checking a rule against the CRM's own description of its objects ------------------------------
FIELD_KINDS = ("text", "number", "date", "datetime", "boolean", "picklist", "multipicklist", "reference")


@dataclass(frozen=True)
class FieldSpec:
    """One CRM field as the CRM describes it: its API name, a kind from FIELD_KINDS, the allowed
    values of a picklist (API values and labels; None when free), and the label people see."""
    name: str
    kind: str
    values: tuple[str, ...] | None = None
    label: str | None = None


def _fits(kind: str, value: Any) -> bool:
    if value is None:
        return True  # "== null" is a fair question for any field
    if kind == "number":
        return as_number(value) is not None
    if kind in ("date", "datetime"):
        return _as_time(value) is not None
    if kind == "boolean":
        return _as_bool(value) is not None
    return True


_KIND_TEXT = {"number": "a number", "date": "a date (YYYY-MM-DD)", "datetime": "a date and time (ISO 8601)",
              "boolean": "true or false"}


def schema_errors(rule: "Rule", describe: Mapping[str, Mapping[str, FieldSpec] | None]) -> list[str]:
    """Every way the rule cannot match what the CRM has: unknown fields, an operator the field's type
    cannot take, values of the wrong type, picklist values that do not exist. `describe` maps each
    object to its fields by lower-cased API name (None: not described, nothing checked). One message
    per problem, in the rule's order, written for the person editing it."""
    out: list[str] = []
    for cond in _conditions(rule.tree):
        obj, op = cond["object"], cond["op"]
        fields_ = describe.get(obj)
        if fields_ is None or op in FLAG_OPS:
            continue
        name = cond["field"]
        if "." in name:  # a relationship path (Account.Name): the related object is not described here
            continue
        spec = fields_.get(name.lower())
        where = f"{obj}.{name}"
        if spec is None:
            close = [s.name for k, s in sorted(fields_.items()) if name.lower()[:4] in k][:3]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            out.append(f"{where}: {obj} has no field {name!r} in the connected CRM{hint}")
            continue
        values = cond.get("value")
        values = values if isinstance(values, list) else [values]
        if op in ("gte", "lte") and spec.kind in ("boolean", "picklist", "multipicklist", "reference"):
            out.append(f"{where} is a {spec.kind} field: compare it with ==, != or in, not {_OP_TEXT[op]}")
            continue
        wrong = [v for v in values if not _fits(spec.kind, v)]
        if wrong:
            out.append(f"{where} is a {spec.kind} field: {_literal(wrong[0])} is not {_KIND_TEXT[spec.kind]}")
            continue
        if spec.values is not None and spec.kind in ("picklist", "multipicklist"):
            allowed = {str(v).casefold() for v in spec.values}
            missing = [v for v in values if v is not None and str(v).casefold() not in allowed]
            if missing:
                shown = ", ".join(repr(v) for v in spec.values[:12]) + (", ..." if len(spec.values) > 12 else "")
                out.append(f"{where}: {_literal(missing[0])} is not one of its values ({shown})")
    return out
