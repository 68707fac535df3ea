"""SOQL: a lark grammar, a compiler to SQLite SQL over the per-object tables, and row rendering.

Supported: field lists with parent relationship paths (``Account.Owner.Email``), ``COUNT()`` and
``COUNT(field)``, WHERE with = != <> < <= > >= LIKE IN / NOT IN (values or a semi-join sub-select),
NULL, booleans, AND/OR/NOT and parentheses, date/datetime literals and relative date literals,
ORDER BY with ASC/DESC and NULLS FIRST/LAST, LIMIT and OFFSET.  Errors carry Salesforce's wording.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ids
from .errors import SFError
from .schema import NUMERIC, STRINGY, Field, SObject
from .store import fmt_dt, parse_datetime

GRAMMAR = r"""
start: "SELECT"i select_list "FROM"i NAME alias? where? order? limit? offset? for_clause?

select_list: select_item ("," select_item)*
?select_item: count_item | path
count_item: COUNT "(" path? ")" NAME?
alias: NAME

where: "WHERE"i or_expr
?or_expr: and_expr (_OR and_expr)*  -> or_
?and_expr: not_expr (_AND not_expr)*  -> and_
?not_expr: _NOT not_expr -> not_
         | atom
?atom: "(" or_expr ")"
     | comparison
comparison: path OP value             -> cmp
          | path _LIKE value           -> like
          | path _IN "(" values ")"    -> in_
          | path _NOT _IN "(" values ")" -> not_in
          | path _IN "(" subquery ")"   -> in_sub
          | path _NOT _IN "(" subquery ")" -> not_in_sub
subquery: "SELECT"i path "FROM"i NAME where?
values: value ("," value)*
?value: STRING -> string
      | SIGNED_NUMBER -> number
      | DATETIME -> datetime
      | DATE -> date
      | TRUE -> true
      | FALSE -> false
      | NULL -> null
      | DATE_N -> date_n
      | DATE_LIT -> date_lit

order: "ORDER"i "BY"i order_item ("," order_item)*
order_item: path DIRECTION? nulls?
nulls: "NULLS"i NULLPOS
limit: "LIMIT"i INT
offset: "OFFSET"i INT
for_clause: "FOR"i NAME

path: NAME ("." NAME)*

COUNT.3: /COUNT(?=\s*\()/i
_OR.2: /OR\b/i
_AND.2: /AND\b/i
_NOT.2: /NOT\b/i
_IN.2: /IN\b/i
_LIKE.2: /LIKE\b/i
TRUE.2: /TRUE\b/i
FALSE.2: /FALSE\b/i
NULL.2: /NULL\b/i
DIRECTION.2: /(ASC|DESC)\b/i
NULLPOS.2: /(FIRST|LAST)\b/i
DATE_N.3: /(LAST_N_DAYS|NEXT_N_DAYS|N_DAYS_AGO|LAST_N_WEEKS|NEXT_N_WEEKS|LAST_N_MONTHS|NEXT_N_MONTHS|LAST_N_YEARS|NEXT_N_YEARS):\d+/i
DATE_LIT.2: /(TODAY|YESTERDAY|TOMORROW|LAST_WEEK|THIS_WEEK|NEXT_WEEK|LAST_MONTH|THIS_MONTH|NEXT_MONTH|LAST_90_DAYS|NEXT_90_DAYS|THIS_QUARTER|LAST_QUARTER|NEXT_QUARTER|THIS_YEAR|LAST_YEAR|NEXT_YEAR)\b/i
DATETIME.3: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})/
DATE.2: /\d{4}-\d{2}-\d{2}(?![T\d])/
OP: "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
STRING: /'(\\.|[^'\\])*'/
NAME: /[A-Za-z][A-Za-z0-9_]*/
INT: /\d+/
SIGNED_NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)/

%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False, propagate_positions=True)

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def unescape(literal: str, like: bool = False) -> str:
    body = literal[1:-1]
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if like and nxt in "%_":
                out.append("\\" + nxt)
            elif nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            else:
                raise SFError(400, "MALFORMED_QUERY", f"Invalid string literal '{literal}'. Illegal character sequence "
                              f"'\\{nxt}' in string literal.")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _err(query: str, token: Any, message: str, code: str = "MALFORMED_QUERY") -> SFError:
    line = getattr(token, "line", None) or getattr(getattr(token, "meta", None), "line", 1) or 1
    col = getattr(token, "column", None) or getattr(getattr(token, "meta", None), "column", 1) or 1
    lines = query.splitlines() or [query]
    text = lines[min(line, len(lines)) - 1]
    return SFError(400, code, f"\n{text}\n{' ' * (col - 1)}^\nERROR at Row:{line}:Column:{col}\n{message}")


@dataclass
class Column:
    label: str                 # "Account.Name" (canonical casing)
    path: list[tuple[str, SObject]]  # relationship steps (name, target object)
    field: Field
    sql: str
    aggregate: bool = False


@dataclass
class Query:
    text: str
    obj: SObject
    columns: list[Column]
    from_sql: str
    where_sql: str
    params: list[Any]
    order_sql: str
    limit: int | None
    offset: int | None
    count_only: bool = False
    aggregate: bool = False
    join_ids: dict[str, str] = field(default_factory=dict)  # "Account" / "Account.Owner" -> sql id expr

    def sql(self, include_deleted: bool = False, with_limit: bool = True) -> tuple[str, list[Any]]:
        where = [] if include_deleted else ["t0.IsDeleted = 0"]
        if self.where_sql:
            where.append(f"({self.where_sql})")
        where_sql = (" WHERE " + " AND ".join(where)) if where else ""
        if self.count_only:
            return f"SELECT count(*) FROM {self.from_sql}{where_sql}", list(self.params)
        select = [c.sql for c in self.columns] + list(self.join_ids.values()) + ["t0.Id"]
        sql = f"SELECT {', '.join(select)} FROM {self.from_sql}{where_sql}"
        if self.order_sql:
            sql += " ORDER BY " + self.order_sql
        if with_limit:
            if self.limit is not None or self.offset:
                sql += f" LIMIT {self.limit if self.limit is not None else -1}"
            if self.offset:
                sql += f" OFFSET {self.offset}"
        return sql, list(self.params)

    def render(self, row: tuple, version: str) -> dict[str, Any]:
        """One result row -> REST record JSON with nested parent objects."""
        from .store import to_json

        if self.aggregate:
            rec: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
            for c, v in zip(self.columns, row):
                rec[c.label] = v
            return rec
        n = len(self.columns)
        join_vals = dict(zip(self.join_ids, row[n:]))
        base_id = row[n + len(self.join_ids)]
        rec = {"attributes": {"type": self.obj.name, "url": f"{self.obj.url(version)}/{base_id}"}}
        if base_id is None:
            rec["attributes"].pop("url")
        for c, v in zip(self.columns, row):
            target = rec
            dead = False
            for i, (rel, robj) in enumerate(c.path):
                key = ".".join(r for r, _ in c.path[: i + 1])
                pid = join_vals.get(key)
                if pid is None:
                    target[rel] = None
                    dead = True
                    break
                if not isinstance(target.get(rel), dict):
                    target[rel] = {"attributes": {"type": robj.name, "url": f"{robj.url(version)}/{pid}"}}
                target = target[rel]
            if not dead:
                target[c.field.name] = to_json(c.field, v)
        return rec

    def csv_headers(self) -> list[str]:
        return [c.label for c in self.columns]


# ---------------------------------------------------------------- date literals
def _month_start(d: dt.date, delta: int = 0) -> dt.date:
    m = d.month - 1 + delta
    return dt.date(d.year + m // 12, m % 12 + 1, 1)


def date_range(literal: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """[start, end) of a relative date literal, in the org's time zone (UTC)."""
    lit = literal.upper()
    n = 0
    if ":" in lit:
        lit, num = lit.split(":")
        n = int(num)
    week_start = today - dt.timedelta(days=(today.weekday() + 1) % 7)  # weeks start on Sunday
    q_start = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    one = dt.timedelta(days=1)
    table = {
        "TODAY": (today, today + one),
        "YESTERDAY": (today - one, today),
        "TOMORROW": (today + one, today + 2 * one),
        "THIS_WEEK": (week_start, week_start + 7 * one),
        "LAST_WEEK": (week_start - 7 * one, week_start),
        "NEXT_WEEK": (week_start + 7 * one, week_start + 14 * one),
        "THIS_MONTH": (_month_start(today), _month_start(today, 1)),
        "LAST_MONTH": (_month_start(today, -1), _month_start(today)),
        "NEXT_MONTH": (_month_start(today, 1), _month_start(today, 2)),
        "LAST_90_DAYS": (today - 90 * one, today + one),
        "NEXT_90_DAYS": (today + one, today + 91 * one),
        "THIS_QUARTER": (q_start, _month_start(q_start, 3)),
        "LAST_QUARTER": (_month_start(q_start, -3), q_start),
        "NEXT_QUARTER": (_month_start(q_start, 3), _month_start(q_start, 6)),
        "THIS_YEAR": (dt.date(today.year, 1, 1), dt.date(today.year + 1, 1, 1)),
        "LAST_YEAR": (dt.date(today.year - 1, 1, 1), dt.date(today.year, 1, 1)),
        "NEXT_YEAR": (dt.date(today.year + 1, 1, 1), dt.date(today.year + 2, 1, 1)),
        "LAST_N_DAYS": (today - n * one, today + one),
        "NEXT_N_DAYS": (today + one, today + (n + 1) * one),
        "N_DAYS_AGO": (today - n * one, today - (n - 1) * one),
        "LAST_N_WEEKS": (week_start - 7 * n * one, week_start),
        "NEXT_N_WEEKS": (week_start + 7 * one, week_start + 7 * (n + 1) * one),
        "LAST_N_MONTHS": (_month_start(today, -n), _month_start(today)),
        "NEXT_N_MONTHS": (_month_start(today, 1), _month_start(today, n + 1)),
        "LAST_N_YEARS": (dt.date(today.year - n, 1, 1), dt.date(today.year, 1, 1)),
        "NEXT_N_YEARS": (dt.date(today.year + 1, 1, 1), dt.date(today.year + n + 1, 1, 1)),
    }
    return table[lit]


# ---------------------------------------------------------------- compiler
class Compiler:
    def __init__(self, text: str, objects: dict[str, SObject], today: dt.date) -> None:
        self.text = text
        self.objects = objects
        self.today = today
        self.params: list[Any] = []
        self.joins: dict[str, tuple[str, SObject]] = {}  # path key -> (alias, obj)
        self.join_sql: list[str] = []
        self.alias: str | None = None

    def _obj(self, tok: Token) -> SObject:
        name = str(tok)
        obj = self.objects.get(name) or next(
            (o for o in self.objects.values() if o.name.lower() == name.lower()), None)
        if obj is None:
            raise _err(self.text, tok, f"sObject type '{name}' is not supported. If you are attempting to use a "
                       "custom object, be sure to append the '__c' after the entity name. Please reference your "
                       "WSDL or the describe call for the appropriate names.", "INVALID_TYPE")
        return obj

    def resolve(self, obj: SObject, path: Tree, base_alias: str = "t0", register: bool = True
                ) -> tuple[str, Field, list[tuple[str, SObject]]]:
        toks: list[Token] = list(path.children)
        names = [str(t) for t in toks]
        if len(names) > 1 and (names[0].lower() == obj.name.lower() or
                               (self.alias and names[0].lower() == self.alias.lower())) \
                and obj.relationship(names[0]) is None:
            toks, names = toks[1:], names[1:]
        cur, alias, steps = obj, base_alias, []
        key = ""
        for tok, name in zip(toks[:-1], names[:-1]):
            ref = cur.relationship(name)
            if ref is None:
                raise _err(self.text, tok, f"Didn't understand relationship '{name}' in field path. If you are "
                           "attempting to use a custom relationship, be sure to append the '__r' after the custom "
                           "relationship name. Please reference your WSDL or the describe call for the appropriate "
                           "names.", "INVALID_FIELD")
            target = self.objects.get(ref.reference_to[0])
            if target is None:
                raise _err(self.text, tok, f"Didn't understand relationship '{name}'", "INVALID_FIELD")
            key = f"{key}.{ref.relationship_name}" if key else ref.relationship_name
            if base_alias == "t0" and register:
                if key not in self.joins:
                    new_alias = f"t{len(self.joins) + 1}"
                    self.joins[key] = (new_alias, target)
                    self.join_sql.append(
                        f'LEFT JOIN {target.table} AS {new_alias} ON {alias}."{ref.name}" = {new_alias}.Id')
                alias = self.joins[key][0]
            else:
                sub_alias = f"{base_alias}_{len(steps)}"
                self.join_sql_sub.append(
                    f'LEFT JOIN {target.table} AS {sub_alias} ON {alias}."{ref.name}" = {sub_alias}.Id')
                alias = sub_alias
            steps.append((ref.relationship_name, target))
            cur = target
        f = cur.field_ci(names[-1])
        if f is None:
            raise _err(self.text, toks[-1], f"No such column '{names[-1]}' on entity '{cur.name}'. If you are "
                       "attempting to use a custom field, be sure to append the '__c' after the custom field name. "
                       "Please reference your WSDL or the describe call for the appropriate names.",
                       "INVALID_FIELD")
        return f'{alias}."{f.name}"', f, steps

    # values --------------------------------------------------------
    def value(self, node: Tree, f: Field, path_tok: Any, op: str | None = None) -> Any:
        kind = node.data
        tok = node.children[0]
        t = f.type
        fname = f.name

        def wrong(expected: str, quoted: bool) -> SFError:
            return _err(self.text, tok, f"value of filter criterion for field '{fname}' must be of type {expected} "
                        f"and should {'' if quoted else 'not '}be enclosed in quotes", "INVALID_FIELD")

        if kind == "null":
            return None
        if kind in ("true", "false"):
            if t != "boolean":
                raise wrong(t, t in STRINGY or t in ("id", "reference"))
            return 1 if kind == "true" else 0
        if kind == "string":
            if t in ("date", "datetime"):
                raise wrong("dateTime" if t == "datetime" else "date", False)
            if t in NUMERIC:
                raise wrong("double" if t != "int" else "int", False)
            if t == "boolean":
                raise wrong("boolean", False)
            s = unescape(str(tok), like=op == "LIKE")
            if t in ("id", "reference") and op != "LIKE":
                norm = ids.normalize(s)
                if norm is None and s:
                    if t == "id":
                        raise _err(self.text, tok, f"invalid ID field: {s}", "INVALID_QUERY_FILTER_OPERATOR")
                    return s
                return norm
            return s
        if kind == "number":
            if t not in NUMERIC:
                raise wrong("string" if t in STRINGY or t in ("id", "reference") else t, t in STRINGY)
            text = str(tok)
            return float(text) if "." in text else int(text)
        if kind == "date":
            if t == "datetime":
                raise wrong("dateTime", False)
            if t != "date":
                raise wrong(t if t not in STRINGY else "string", t in STRINGY)
            return str(tok)
        if kind == "datetime":
            if t == "date":
                raise wrong("date", False)
            if t != "datetime":
                raise wrong(t if t not in STRINGY else "string", t in STRINGY)
            return fmt_dt(parse_datetime(str(tok)))
        if kind in ("date_lit", "date_n"):
            if t not in ("date", "datetime"):
                raise wrong("string" if t in STRINGY else t, t in STRINGY)
            start, end = date_range(str(tok), self.today)
            if t == "datetime":
                return ("range", fmt_dt(dt.datetime(start.year, start.month, start.day, tzinfo=dt.timezone.utc)),
                        fmt_dt(dt.datetime(end.year, end.month, end.day, tzinfo=dt.timezone.utc)))
            return ("range", start.isoformat(), end.isoformat())
        raise _err(self.text, tok, f"unexpected token: {tok}")

    def _p(self, v: Any) -> str:
        self.params.append(v)
        return "?"

    def cond(self, obj: SObject, node: Tree, base: str = "t0", negated: bool = False) -> str:
        d = node.data
        if d == "or_":
            return "(" + " OR ".join(self.cond(obj, c, base, negated) for c in node.children) + ")"
        if d == "and_":
            return "(" + " AND ".join(self.cond(obj, c, base, negated) for c in node.children) + ")"
        if d == "not_":
            return f"NOT {self.cond(obj, node.children[0], base, True)}"
        path = node.children[0]
        col, f, _ = self.resolve(obj, path, base)
        if not f.filterable:
            raise _err(self.text, path.children[-1], f"field '{f.name}' can not be filtered in a query call",
                       "INVALID_FIELD")
        nocase = " COLLATE NOCASE" if f.type in STRINGY else ""
        if d == "cmp":
            op_tok = node.children[1]
            op = str(op_tok)
            if op == "<>":
                op = "!="
            v = self.value(node.children[2], f, path, op)
            if isinstance(v, tuple) and v[0] == "range":
                _, start, end = v
                ranges = {
                    "=": lambda: f"({col} >= {self._p(start)} AND {col} < {self._p(end)})",
                    "!=": lambda: f"({col} IS NULL OR {col} < {self._p(start)} OR {col} >= {self._p(end)})",
                    "<": lambda: f"{col} < {self._p(start)}",
                    "<=": lambda: f"{col} < {self._p(end)}",
                    ">": lambda: f"{col} >= {self._p(end)}",
                    ">=": lambda: f"{col} >= {self._p(start)}",
                }
                sql = ranges[op]()
            elif v is None:
                if op not in ("=", "!="):
                    raise _err(self.text, op_tok, "invalid operator on null")
                sql = f"{col} IS NULL" if op == "=" else f"{col} IS NOT NULL"
            elif op == "!=":
                sql = f"({col} IS NULL OR {col} != {self._p(v)}{nocase})"
            else:
                sql = f"{col} {op} {self._p(v)}{nocase}"
        elif d == "like":
            if f.type not in STRINGY and f.type not in ("id", "reference"):
                raise _err(self.text, path.children[-1],
                           f"invalid operator on field: {f.name}. LIKE only applies to string fields",
                           "INVALID_FIELD")
            v = self.value(node.children[1], f, path, "LIKE")
            sql = f"{col} LIKE {self._p(v)} ESCAPE '\\'"
        elif d in ("in_", "not_in"):
            vals = [self.value(c, f, path, "IN") for c in node.children[1].children]
            placeholders = ", ".join(self._p(v) for v in vals if v is not None)
            has_null = any(v is None for v in vals)
            if d == "in_":
                parts = [f"{col}{nocase} IN ({placeholders})"] if placeholders else []
                if has_null:
                    parts.append(f"{col} IS NULL")
                sql = "(" + (" OR ".join(parts) or "0") + ")"
            else:
                parts = [f"({col} IS NULL OR {col}{nocase} NOT IN ({placeholders}))"] if placeholders else []
                if has_null:
                    parts.append(f"{col} IS NOT NULL")
                sql = "(" + (" AND ".join(parts) or "1") + ")"
        elif d in ("in_sub", "not_in_sub"):
            sub = node.children[1]
            sub_obj = self._obj(sub.children[1])
            n = len(self.sub_counter)
            self.sub_counter.append(1)
            sbase = f"s{n}"
            saved = self.join_sql_sub
            self.join_sql_sub = []
            scol, sfield, _ = self.resolve(sub_obj, sub.children[0], sbase)
            where = f"{sbase}.IsDeleted = 0"
            if len(sub.children) > 2:
                where += " AND " + self.cond(sub_obj, sub.children[2].children[0], sbase)
            joins = " ".join(self.join_sql_sub)
            self.join_sql_sub = saved
            inner = f"SELECT {scol} FROM {sub_obj.table} AS {sbase} {joins} WHERE {where}"
            sql = f"{col} {'IN' if d == 'in_sub' else 'NOT IN'} ({inner})"
        else:
            raise _err(self.text, path.children[0], "unexpected token")
        return f"COALESCE({sql}, 0)" if negated else sql

    def compile(self) -> Query:
        try:
            tree = _PARSER.parse(self.text)
        except UnexpectedEOF:
            raise SFError(400, "MALFORMED_QUERY", "unexpected token: <EOF>") from None
        except UnexpectedToken as exc:
            tok = exc.token
            shown = "<EOF>" if tok.type == "$END" else str(tok)
            raise _err(self.text, tok if tok.type != "$END" else exc, f"unexpected token: {shown}") from None
        except UnexpectedCharacters as exc:
            bad = self.text[exc.pos_in_stream] if exc.pos_in_stream < len(self.text) else ""
            raise _err(self.text, exc, f"unexpected token: {bad}") from None
        except UnexpectedInput as exc:  # pragma: no cover - other lark errors
            raise SFError(400, "MALFORMED_QUERY", str(exc)) from None
        self.sub_counter: list[int] = []
        self.join_sql_sub: list[str] = []
        kids = tree.children
        select_list, obj_tok = kids[0], kids[1]
        obj = self._obj(obj_tok)
        rest = {c.data: c for c in kids[2:] if isinstance(c, Tree)}
        if "alias" in rest:
            self.alias = str(rest["alias"].children[0])
        columns: list[Column] = []
        count_only = False
        aggregate = False
        expr_n = 0
        for item in select_list.children:
            if item.data == "count_item":
                inner = [c for c in item.children if isinstance(c, Tree)]
                alias_tok = [c for c in item.children if isinstance(c, Token) and c.type == "NAME"]
                if not inner:
                    if len(select_list.children) > 1:
                        raise _err(self.text, item.children[0], "COUNT() may only be used alone in the select list")
                    count_only = True
                    continue
                col, f, _ = self.resolve(obj, inner[0])
                label = str(alias_tok[0]) if alias_tok else f"expr{expr_n}"
                if not alias_tok:
                    expr_n += 1
                columns.append(Column(label, [], f, f"count({col})", aggregate=True))
                aggregate = True
                continue
            col, f, steps = self.resolve(obj, item)
            label = ".".join([s for s, _ in steps] + [f.name])
            if any(c.label.lower() == label.lower() for c in columns):
                raise _err(self.text, item.children[-1], f"duplicate field selected: {label}")
            columns.append(Column(label, steps, f, col))
        if aggregate and any(not c.aggregate for c in columns):
            bad = next(c for c in columns if not c.aggregate)
            raise SFError(400, "MALFORMED_QUERY", f"Field must be grouped or aggregated: {bad.field.name}")
        where_sql = self.cond(obj, rest["where"].children[0]) if "where" in rest else ""
        order_parts = []
        if "order" in rest:
            for it in rest["order"].children:
                col, f, _ = self.resolve(obj, it.children[0])
                if not f.sortable:
                    raise _err(self.text, it.children[0].children[-1],
                               f"field '{f.name}' can not be sorted in a query call")
                direction = "ASC"
                nulls = None
                for c in it.children[1:]:
                    if isinstance(c, Token) and c.type == "DIRECTION":
                        direction = str(c).upper()
                    elif isinstance(c, Tree) and c.data == "nulls":
                        nulls = str(c.children[0]).upper()
                if nulls is None:
                    nulls = "FIRST" if direction == "ASC" else "LAST"
                collate = " COLLATE NOCASE" if f.type in STRINGY else ""
                order_parts.append(f"{col}{collate} {direction} NULLS {nulls}")
        limit = int(rest["limit"].children[0]) if "limit" in rest else None
        offset = int(rest["offset"].children[0]) if "offset" in rest else None
        if offset is not None and offset > 2000:
            raise SFError(400, "NUMBER_OUTSIDE_VALID_RANGE",
                          f"Maximum SOQL offset allowed is 2000")
        from_sql = f"{obj.table} AS t0 " + " ".join(self.join_sql)
        join_ids = {key: f"{alias}.Id" for key, (alias, _) in self.joins.items()}
        return Query(self.text, obj, columns, from_sql, where_sql, self.params, ", ".join(order_parts), limit,
                     offset, count_only, aggregate, join_ids)


def compile_soql(text: str, objects: dict[str, SObject], today: dt.date) -> Query:
    return Compiler(text, objects, today).compile()


_FORMAT_RE = re.compile(r"\{(\w*)\}")


def quote(value: Any) -> str:
    """Quote a Python value as a SOQL literal (what simple-salesforce's format_soql does)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"
