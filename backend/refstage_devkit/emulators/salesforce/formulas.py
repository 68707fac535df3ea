"""Formula fields and roll-up summary fields, computed as an org computes them.

A field's metadata decides everything: ``<formula>`` (with ``<formulaTreatBlanksAs>`` and the return
``<type>``/``<scale>``) or ``<summaryOperation>`` (count/sum/min/max) over ``<summaryForeignKey>``
children, ``<summarizedField>`` and ``<summaryFilterItems>``. Values are written into the record's
columns when the record is saved (formulas) or when one of its master-detail children is created,
changed, deleted or undeleted (roll-ups), so SOQL filters and sorts on them like on any column.

The formula language covered: number, text and boolean literals, field references (``Field__c``,
``Parent__r.Field__c``), ``+ - * / ^ &``, ``= == != <> < <= > >=``, ``&& || !``, and the functions
in FUNCTIONS (IF, CASE, AND, OR, NOT, ISBLANK, ISNULL, BLANKVALUE, NULLVALUE, ISPICKVAL, TEXT, VALUE,
ROUND, ABS, MIN, MAX, LEN, CONTAINS, BEGINS, UPPER, LOWER, TRIM, TODAY, NOW, ...). Salesforce's
formula reference: https://help.salesforce.com/s/articleView?id=sf.customize_functions.htm
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable, Iterable

from lark import Lark, Token, Tree
from lark.exceptions import LarkError

if TYPE_CHECKING:
    from .schema import Field, SObject

GRAMMAR = r"""
?start: expr
?expr: or_
?or_: and_ | or_ "||" and_ -> or_op
?and_: cmp | and_ "&&" cmp -> and_op
?cmp: add | cmp CMP add -> compare
?add: mul | add ADD mul -> arith
?mul: pow | mul MUL pow -> arith
?pow: unary | unary "^" pow -> power
?unary: atom | "-" unary -> neg | "+" unary | "!" unary -> not_op
?atom: NUMBER -> number
     | STRING -> string
     | NAME "(" [expr ("," expr)*] ")" -> call
     | NAME ("." NAME)* -> ref
     | "(" expr ")"
CMP: "==" | "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
ADD: "+" | "-" | "&"
MUL: "*" | "/"
NUMBER: /\d+(\.\d+)?|\.\d+/
STRING: /"(\\.|[^"\\])*"/ | /'(\\.|[^'\\])*'/
NAME: /\$?[A-Za-z_][A-Za-z0-9_]*/
COMMENT: /\/\*(.|\n)*?\*\//
%import common.WS
%ignore WS
%ignore COMMENT
"""

_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)
_PARSED: dict[str, Tree] = {}
_PARSED_LOCK = threading.Lock()


class FormulaError(ValueError):
    """A formula the emulator cannot compile (syntax, unknown field or function)."""


def parse(formula: str) -> Tree:
    with _PARSED_LOCK:
        tree = _PARSED.get(formula)
    if tree is None:
        try:
            tree = _PARSER.parse(formula)
        except LarkError as exc:
            raise FormulaError(f"Syntax error in formula: {exc}".splitlines()[0]) from None
        with _PARSED_LOCK:
            _PARSED[formula] = tree
    return tree


# ---------------------------------------------------------------------------------------- values
def _blank(value: Any) -> bool:
    return value is None or value == ""


def _num(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise FormulaError(f"not a number: {value!r}") from None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
    if isinstance(value, float):
        return _text(Decimal(repr(value)))
    return str(value)


def _unquote(token: str) -> str:
    body = token[1:-1]
    out, i = [], 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(escapes.get(body[i + 1], body[i + 1]))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass
class Context:
    """What a formula reads: the record's own values and, for Parent__r.Field, a lookup of the parent."""

    obj: "SObject"
    record: dict[str, Any]
    fetch: Callable[["SObject", str], dict[str, Any] | None]
    objects: dict[str, "SObject"]
    blank_as_zero: bool
    today: dt.date
    now: dt.datetime


class Evaluator:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def run(self, node: Any) -> Any:
        if isinstance(node, Token):
            raise FormulaError(f"unexpected token {node}")
        method = getattr(self, "_" + node.data, None)
        if method is None:
            raise FormulaError(f"unsupported construct {node.data}")
        return method(node)

    # literals and references
    def _number(self, node: Tree) -> Decimal:
        return Decimal(str(node.children[0]))

    def _string(self, node: Tree) -> str:
        return _unquote(str(node.children[0]))

    def _ref(self, node: Tree) -> Any:
        parts = [str(t) for t in node.children]
        if len(parts) == 1 and parts[0].upper() in ("TRUE", "FALSE"):
            return parts[0].upper() == "TRUE"
        if len(parts) == 1 and parts[0].upper() == "NULL":
            return None
        obj, record = self.ctx.obj, self.ctx.record
        for rel in parts[:-1]:
            ref_field = obj.relationship(rel)
            if ref_field is None:
                raise FormulaError(f"Field {rel} does not exist. Check spelling.")
            target_id = record.get(ref_field.name) if record else None
            target = self.ctx.objects.get(ref_field.reference_to[0]) if ref_field.reference_to else None
            if target is None:
                raise FormulaError(f"Field {rel} does not exist. Check spelling.")
            obj, record = target, (self.ctx.fetch(target, target_id) if target_id else None) or {}
        f = obj.field_ci(parts[-1])
        if f is None:
            raise FormulaError(f"Field {parts[-1]} does not exist. Check spelling.")
        value = record.get(f.name) if record else None
        if f.type == "boolean":
            return bool(value)
        if f.type in ("double", "currency", "percent", "int"):
            number = _num(value)
            return Decimal(0) if number is None and self.ctx.blank_as_zero else number
        if f.type == "date" and isinstance(value, str):
            return dt.date.fromisoformat(value[:10])
        return value

    # operators
    def _neg(self, node: Tree) -> Decimal | None:
        value = _num(self.run(node.children[0]))
        return None if value is None else -value

    def _not_op(self, node: Tree) -> bool:
        return not self._bool(self.run(node.children[0]))

    def _or_op(self, node: Tree) -> bool:
        return self._bool(self.run(node.children[0])) or self._bool(self.run(node.children[1]))

    def _and_op(self, node: Tree) -> bool:
        return self._bool(self.run(node.children[0])) and self._bool(self.run(node.children[1]))

    def _power(self, node: Tree) -> Decimal | None:
        base, exp = _num(self.run(node.children[0])), _num(self.run(node.children[1]))
        if base is None or exp is None:
            return None
        return base ** int(exp) if exp == exp.to_integral() else Decimal(float(base) ** float(exp))

    def _arith(self, node: Tree) -> Any:
        left, op, right = self.run(node.children[0]), str(node.children[1]), self.run(node.children[2])
        if op == "&":
            return _text(left) + _text(right)
        if op == "+" and (isinstance(left, str) or isinstance(right, str)):
            return _text(left) + _text(right)
        if isinstance(left, dt.date) and op in "+-":
            days = _num(right)
            if isinstance(right, dt.date) and op == "-":
                return Decimal((left - right).days)
            return None if days is None else left + dt.timedelta(days=float(days) * (1 if op == "+" else -1))
        a, b = _num(left), _num(right)
        if a is None or b is None:
            return None
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if b == 0:
            raise FormulaError("Error: Division by zero")  # the field shows #Error!; stored blank
        return a / b

    def _compare(self, node: Tree) -> bool:
        left, op, right = self.run(node.children[0]), str(node.children[1]), self.run(node.children[2])
        if isinstance(left, (Decimal, int, float)) or isinstance(right, (Decimal, int, float)):
            a, b = _num(left), _num(right)
            if a is None or b is None:
                return op in ("!=", "<>") and not (a is None and b is None)
        elif isinstance(left, bool) or isinstance(right, bool):
            a, b = bool(left), bool(right)
        else:
            a = "" if left is None else left
            b = "" if right is None else right
        if op in ("=", "=="):
            return a == b
        if op in ("!=", "<>"):
            return a != b
        try:
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        except TypeError:
            raise FormulaError(f"Incorrect parameter type for operator '{op}'") from None

    @staticmethod
    def _bool(value: Any) -> bool:
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        raise FormulaError("Incorrect parameter type: expected Boolean")

    # functions
    def _call(self, node: Tree) -> Any:
        name = str(node.children[0]).upper()
        args = list(node.children[1:])
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise FormulaError(f"Unknown function {name}. Check spelling.")
        return fn(self, args)


def _arity(name: str, args: list, low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(args) <= high:
        raise FormulaError(f"Incorrect number of parameters for function '{name}()'. Expected {low}, received {len(args)}")


def _if(ev: Evaluator, args: list) -> Any:
    _arity("IF", args, 3)
    return ev.run(args[1]) if ev._bool(ev.run(args[0])) else ev.run(args[2])


def _case(ev: Evaluator, args: list) -> Any:
    if len(args) < 4 or len(args) % 2:
        raise FormulaError("Incorrect number of parameters for function 'CASE()'")
    subject = ev.run(args[0])
    for i in range(1, len(args) - 1, 2):
        candidate = ev.run(args[i])
        if _num(subject) == _num(candidate) if isinstance(subject, Decimal) else _text(subject) == _text(candidate):
            return ev.run(args[i + 1])
    return ev.run(args[-1])


def _and(ev: Evaluator, args: list) -> bool:
    return all(ev._bool(ev.run(a)) for a in args)


def _or(ev: Evaluator, args: list) -> bool:
    return any(ev._bool(ev.run(a)) for a in args)


def _not(ev: Evaluator, args: list) -> bool:
    _arity("NOT", args, 1)
    return not ev._bool(ev.run(args[0]))


def _isblank(ev: Evaluator, args: list) -> bool:
    _arity("ISBLANK", args, 1)
    # ISBLANK sees the stored value, whatever formulaTreatBlanksAs says.
    saved, ev.ctx.blank_as_zero = ev.ctx.blank_as_zero, False
    try:
        return _blank(ev.run(args[0]))
    finally:
        ev.ctx.blank_as_zero = saved


def _blankvalue(ev: Evaluator, args: list) -> Any:
    _arity("BLANKVALUE", args, 2)
    saved, ev.ctx.blank_as_zero = ev.ctx.blank_as_zero, False
    try:
        value = ev.run(args[0])
    finally:
        ev.ctx.blank_as_zero = saved
    return ev.run(args[1]) if _blank(value) else value


def _ispickval(ev: Evaluator, args: list) -> bool:
    _arity("ISPICKVAL", args, 2)
    return _text(ev.run(args[0])) == _text(ev.run(args[1]))


def _text_fn(ev: Evaluator, args: list) -> str:
    _arity("TEXT", args, 1)
    value = ev.run(args[0])
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return _text(value)


def _value(ev: Evaluator, args: list) -> Decimal | None:
    _arity("VALUE", args, 1)
    text = _text(ev.run(args[0])).strip()
    return _num(text) if text else None


def _round(ev: Evaluator, args: list) -> Decimal | None:
    _arity("ROUND", args, 2)
    value, digits = _num(ev.run(args[0])), _num(ev.run(args[1]))
    if value is None or digits is None:
        return None
    return value.quantize(Decimal(1).scaleb(-int(digits)), rounding=ROUND_HALF_UP)


def _numeric(name: str, fn: Callable[..., Any], low: int = 1, high: int | None = None) -> Callable:
    def call(ev: Evaluator, args: list) -> Any:
        if high != -1:
            _arity(name, args, low, high)
        values = [_num(ev.run(a)) for a in args]
        return None if any(v is None for v in values) else fn(*values)
    return call


def _textual(name: str, fn: Callable[..., Any], count: int = 1) -> Callable:
    def call(ev: Evaluator, args: list) -> Any:
        _arity(name, args, count)
        return fn(*[_text(ev.run(a)) for a in args])
    return call


FUNCTIONS: dict[str, Callable[[Evaluator, list], Any]] = {
    "IF": _if, "CASE": _case, "AND": _and, "OR": _or, "NOT": _not,
    "ISBLANK": _isblank, "ISNULL": _isblank, "BLANKVALUE": _blankvalue, "NULLVALUE": _blankvalue,
    "ISPICKVAL": _ispickval, "TEXT": _text_fn, "VALUE": _value, "ROUND": _round,
    "ABS": _numeric("ABS", abs), "FLOOR": _numeric("FLOOR", lambda v: v.to_integral_value(rounding="ROUND_FLOOR")),
    "CEILING": _numeric("CEILING", lambda v: v.to_integral_value(rounding="ROUND_CEILING")),
    "MOD": _numeric("MOD", lambda a, b: a % b, 2),
    "MIN": _numeric("MIN", lambda *v: min(v), 1, -1), "MAX": _numeric("MAX", lambda *v: max(v), 1, -1),
    "LEN": _textual("LEN", lambda s: Decimal(len(s))), "UPPER": _textual("UPPER", str.upper),
    "LOWER": _textual("LOWER", str.lower), "TRIM": _textual("TRIM", str.strip),
    "CONTAINS": _textual("CONTAINS", lambda s, part: part in s, 2),
    "BEGINS": _textual("BEGINS", lambda s, part: s.startswith(part), 2),
    "TODAY": lambda ev, args: (_arity("TODAY", args, 0), ev.ctx.today)[1],
    "NOW": lambda ev, args: (_arity("NOW", args, 0), ev.ctx.now)[1],
}


def _names(tree: Tree) -> Iterable[list[str]]:
    for node in tree.iter_subtrees():
        if node.data == "ref":
            yield [str(t) for t in node.children]
        elif node.data == "call" and str(node.children[0]).upper() not in FUNCTIONS:
            raise FormulaError(f"Unknown function {str(node.children[0]).upper()}. Check spelling.")


# ---------------------------------------------------------------------------------------- roll-ups
@dataclass
class Summary:
    operation: str  # count | sum | min | max
    child: str  # object holding the master-detail field
    foreign_key: str  # that field
    summarized: str | None  # child field summed / compared (None for count)
    filters: list[tuple[str, str, str]] = field(default_factory=list)  # (child field, operation, value)
    boolean_filter: str | None = None


def _filter_values(raw: str) -> list[str]:
    return [v.strip() for v in raw.split(",")] if raw else [""]


def _passes(child: "SObject", row: dict[str, Any], f: tuple[str, str, str]) -> bool:
    name, operation, raw = f
    spec = child.field_ci(name)
    value = row.get(spec.name) if spec else None
    values = _filter_values(raw)
    if spec is not None and spec.type == "boolean":
        actual: Any = bool(value)
        wanted: list[Any] = [v.lower() == "true" for v in values]
    elif spec is not None and spec.type in ("double", "currency", "percent", "int"):
        actual = _num(value)
        wanted = [_num(v) if v else None for v in values]
    else:
        actual = "" if value is None else str(value).lower()
        wanted = [v.lower() for v in values]
    if operation == "equals":
        return actual in wanted
    if operation == "notEqual":
        return actual not in wanted
    if operation in ("lessThan", "greaterThan", "lessOrEqual", "greaterOrEqual"):
        if actual is None or actual == "" or wanted[0] is None:
            return False
        w = wanted[0]
        return {"lessThan": actual < w, "greaterThan": actual > w, "lessOrEqual": actual <= w,
                "greaterOrEqual": actual >= w}[operation]
    if operation == "contains":
        return any(w in str(actual) for w in wanted)
    if operation == "notContain":
        return not any(w in str(actual) for w in wanted)
    if operation == "startsWith":
        return any(str(actual).startswith(w) for w in wanted)
    if operation in ("includes", "excludes"):
        chosen = {p.strip() for p in str(actual).split(";") if p.strip()}
        hit = any(w in chosen for w in wanted)
        return hit if operation == "includes" else not hit
    raise FormulaError(f"unsupported roll-up filter operation {operation}")


def summarize(summary: Summary, child: "SObject", rows: list[dict[str, Any]]) -> Any:
    """The roll-up value over the live children ROWS (already the master's), as Salesforce shows it:
    COUNT and SUM are 0 over no rows, MIN and MAX blank."""
    kept = [r for r in rows if all(_passes(child, r, f) for f in summary.filters)]
    if summary.operation == "count":
        return len(kept)
    spec = child.field_ci(summary.summarized or "")
    values = [r.get(spec.name) for r in kept] if spec else []
    values = [v for v in values if v is not None]
    if summary.operation == "sum":
        return float(sum((_num(v) for v in values), Decimal(0)))
    if not values:
        return None
    return (min if summary.operation == "min" else max)(values)


# ---------------------------------------------------------------------------------------- the plan
class Calculations:
    """Which fields are calculated, in what order, and which masters a child's write touches."""

    def __init__(self, objects: dict[str, "SObject"]) -> None:
        self.objects = objects
        self.formulas: dict[str, list["Field"]] = {}
        self.summaries_by_child: dict[str, list[tuple["SObject", "Field"]]] = {}
        self.summaries: dict[str, list["Field"]] = {}
        for obj in objects.values():
            for f in obj.fields.values():
                if getattr(f, "formula", None):
                    self.formulas.setdefault(obj.name, []).append(f)
                spec: Summary | None = getattr(f, "summary", None)
                if spec is not None:
                    self.summaries.setdefault(obj.name, []).append(f)
                    self.summaries_by_child.setdefault(spec.child, []).append((obj, f))

    def check(self) -> list[str]:
        """Compile every formula against its object: the problems, one line each."""
        problems = []
        for name, fields in self.formulas.items():
            obj = self.objects[name]
            for f in fields:
                try:
                    for parts in _names(parse(f.formula)):
                        self._resolvable(obj, parts)
                except FormulaError as exc:
                    problems.append(f"{name}.{f.name}: {exc}")
        for name, fields in self.summaries.items():
            for f in fields:
                child = self.objects.get(f.summary.child)
                if child is None or child.field_ci(f.summary.foreign_key) is None:
                    problems.append(f"{name}.{f.name}: summaryForeignKey {f.summary.child}.{f.summary.foreign_key} "
                                    "does not exist")
        return problems

    def _resolvable(self, obj: "SObject", parts: list[str]) -> None:
        if len(parts) == 1 and parts[0].upper() in ("TRUE", "FALSE", "NULL"):
            return
        for rel in parts[:-1]:
            ref = obj.relationship(rel)
            if ref is None or not ref.reference_to or ref.reference_to[0] not in self.objects:
                raise FormulaError(f"Field {rel} does not exist. Check spelling.")
            obj = self.objects[ref.reference_to[0]]
        if obj.field_ci(parts[-1]) is None:
            raise FormulaError(f"Field {parts[-1]} does not exist. Check spelling.")

    def compute_formulas(self, obj: "SObject", rec: dict[str, Any], fetch: Callable, today: dt.date,
                         now: dt.datetime) -> None:
        """Write each formula field's value into REC (blank where the formula errors, as #Error! reads)."""
        for f in self.formulas.get(obj.name, ()):
            ctx = Context(obj, rec, fetch, self.objects, f.formula_blank_as_zero, today, now)
            try:
                value = Evaluator(ctx).run(parse(f.formula))
            except (FormulaError, InvalidOperation, ArithmeticError):
                value = None
            rec[f.name] = store_value(f, value)


def store_value(f: "Field", value: Any) -> Any:
    """A computed value as the column holds it for the field's return type."""
    if value is None or value == "":
        return 0 if f.type == "boolean" else None
    if f.type == "boolean":
        return 1 if (value is True or (not isinstance(value, bool) and _num(value))) else 0
    if f.type in ("double", "currency", "percent", "int"):
        number = _num(value)
        return float(number.quantize(Decimal(1).scaleb(-(f.scale or 0)), rounding=ROUND_HALF_UP))
    if f.type == "date":
        return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]
    if isinstance(value, Decimal):
        return _text(value)
    return _text(value) if not isinstance(value, str) else value


def resolve_summary_types(objects: dict[str, "SObject"]) -> None:
    """A SUM/MIN/MAX roll-up takes the summarized field's type (currency, date, ...) and scale; COUNT stays
    a number with scale 0."""
    for obj in objects.values():
        for f in obj.fields.values():
            spec: Summary | None = getattr(f, "summary", None)
            if spec is None or spec.operation == "count" or not spec.summarized:
                continue
            child = objects.get(spec.child)
            source = child.field_ci(spec.summarized) if child else None
            if source is not None:
                f.type, f.precision, f.scale = source.type, source.precision or 18, source.scale
