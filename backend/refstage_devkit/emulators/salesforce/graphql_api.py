"""GraphQL API (``/services/data/vXX.X/graphql``), the record queries ``lightning/graphql`` sends.

Covers ``uiapi { query { Object(where:, orderBy:, first:, after:) { totalCount edges { node { ... } cursor }
pageInfo { ... } } } }`` with field values as ``{ value displayValue }``, parent relationships as nested objects,
``where`` filters (eq, ne, lt, lte, gt, gte, in, nin, like; and / or / not; filters through parent
relationships), ``orderBy`` with ``order`` and ``nulls``, and variables. Documents are parsed with graphql-core;
unknown objects, fields or arguments are validation errors in the shape the API gives them
(``{"message", "locations", "extensions": {"ErrorType": "ValidationError"}}``), with ``data`` null.
"""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, parse
from graphql.language import ast
from werkzeug.wrappers import Request, Response

from . import ids
from .rest import api_call
from .schema import NUMERIC, Field, SObject
from .server import json_response
from .ui_api import _user_zone, field_value

if TYPE_CHECKING:
    import datetime as dt

    from .server import Org

DEFAULT_FIRST = 10
MAX_FIRST = 2000
MAX_BODY = 256 * 1024
OPERATORS = {"eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "like"}


class QueryError(Exception):
    def __init__(self, message: str, node: ast.Node | None = None, kind: str = "ValidationError") -> None:
        super().__init__(message)
        self.message, self.node, self.kind = message, node, kind

    def as_json(self) -> dict[str, Any]:
        locations = []
        if self.node is not None and self.node.loc is not None:
            source = self.node.loc.source.body
            start = self.node.loc.start
            line = source.count("\n", 0, start) + 1
            column = start - (source.rfind("\n", 0, start) + 1) + 1
            locations.append({"line": line, "column": column})
        return {"message": self.message, "locations": locations, "path": None,
                "extensions": {"ErrorType": self.kind, "classification": self.kind}}


def _error_response(errors: list[QueryError]) -> Response:
    return json_response({"data": None, "errors": [e.as_json() for e in errors]})


class Executor:
    def __init__(self, org: Org, variables: dict[str, Any], zone: dt.tzinfo) -> None:
        self.org, self.variables, self.zone = org, variables, zone
        self._cache: dict[str, dict[str, Any] | None] = {}

    # ------------------------------------------------------------------ values
    def value(self, node: ast.ValueNode) -> Any:
        if isinstance(node, ast.VariableNode):
            name = node.name.value
            if name not in self.variables:
                return None
            return self.variables[name]
        if isinstance(node, ast.IntValueNode):
            return int(node.value)
        if isinstance(node, ast.FloatValueNode):
            return float(node.value)
        if isinstance(node, (ast.StringValueNode, ast.EnumValueNode)):
            return node.value
        if isinstance(node, ast.BooleanValueNode):
            return node.value
        if isinstance(node, ast.NullValueNode):
            return None
        if isinstance(node, ast.ListValueNode):
            return [self.value(v) for v in node.values]
        if isinstance(node, ast.ObjectValueNode):
            return {f.name.value: self.value(f.value) for f in node.fields}
        raise QueryError("Unsupported value", node)

    # ------------------------------------------------------------------ records
    def record(self, obj: SObject, record_id: str | None) -> dict[str, Any] | None:
        if not record_id:
            return None
        if record_id not in self._cache:
            self._cache[record_id] = self.org.store.get(obj, record_id)
        return self._cache[record_id]

    def parent(self, obj: SObject, rec: dict[str, Any], rel: Field) -> tuple[SObject, dict[str, Any] | None]:
        target_id = rec.get(rel.name)
        target_obj = self.org.store.object_for_id(target_id) if target_id else None
        target_obj = target_obj or self.org.store.sobject(rel.reference_to[0])
        return target_obj, self.record(target_obj, target_id)

    # ------------------------------------------------------------------ where
    def matches(self, obj: SObject, rec: dict[str, Any], where: Any, node: ast.Node) -> bool:
        if where is None:
            return True
        if not isinstance(where, dict):
            raise QueryError(f"where on {obj.name} must be an object", node)
        for key, condition in where.items():
            if key == "and":
                if not all(self.matches(obj, rec, c, node) for c in _as_list(condition)):
                    return False
            elif key == "or":
                if not any(self.matches(obj, rec, c, node) for c in _as_list(condition)):
                    return False
            elif key == "not":
                if self.matches(obj, rec, condition, node):
                    return False
            else:
                rel = obj.relationship(key) if key.endswith("__r") or obj.field_ci(key) is None else None
                if rel is not None:
                    target_obj, target = self.parent(obj, rec, rel)
                    if target is None or not self.matches(target_obj, target, condition, node):
                        return False
                    continue
                f = obj.fields.get(key)
                if f is None:
                    raise QueryError(f"Validation error of type WrongType: argument 'where' with value "
                                     f"'{key}' contains a field not in '{obj.name}_Filter'", node)
                if not isinstance(condition, dict):
                    raise QueryError(f"Filter on {obj.name}.{key} must be an object of operators", node)
                for op, operand in condition.items():
                    if op not in OPERATORS:
                        raise QueryError(f"Validation error of type WrongType: operator '{op}' is not defined for "
                                         f"{obj.name}.{key}", node)
                    if not _compare(f, rec.get(f.name), op, operand):
                        return False
        return True

    # ------------------------------------------------------------------ selections
    def connection(self, obj: SObject, field: ast.FieldNode) -> dict[str, Any]:
        args = {a.name.value: self.value(a.value) for a in field.arguments or []}
        unknown = set(args) - {"where", "orderBy", "first", "after", "scope", "upperBound"}
        if unknown:
            raise QueryError(f"Validation error of type UnknownArgument: Unknown field argument "
                             f"{sorted(unknown)[0]} @ 'uiapi/query/{obj.name}'", field)
        first = args.get("first")
        first = DEFAULT_FIRST if first is None else first
        if not isinstance(first, int) or isinstance(first, bool) or not 1 <= first <= MAX_FIRST:
            raise QueryError(f"first must be between 1 and {MAX_FIRST}", field, "InvalidInput")
        offset = 0
        if args.get("after"):
            try:
                offset = int(json.loads(base64.b64decode(args["after"]))["offset"])
            except (ValueError, KeyError, TypeError):
                raise QueryError("Invalid cursor", field, "InvalidCursor") from None
        with self.org.store.lock:
            cur = self.org.store.db.execute(f"SELECT * FROM {obj.table} WHERE IsDeleted=0 ORDER BY Id")
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
        where = args.get("where")
        rows = [r for r in rows if self.matches(obj, r, where, field)]
        for f, descending, nulls_first in reversed(self.order(obj, args.get("orderBy"), field)):
            present = sorted((r for r in rows if r.get(f.name) is not None), key=lambda r, n=f.name: r[n],
                             reverse=descending)
            absent = [r for r in rows if r.get(f.name) is None]
            rows = absent + present if nulls_first else present + absent
        page = rows[offset:offset + first]
        out: dict[str, Any] = {}
        for sel in _fields(field):
            name, key = sel.name.value, _key(sel)
            if name == "totalCount":
                out[key] = len(rows)
            elif name == "edges":
                edges = []
                for i, rec in enumerate(page):
                    edge: dict[str, Any] = {}
                    for esel in _fields(sel):
                        if esel.name.value == "node":
                            edge[_key(esel)] = self.node(obj, rec, esel)
                        elif esel.name.value == "cursor":
                            edge[_key(esel)] = _cursor(offset + i + 1)
                        elif esel.name.value == "__typename":
                            edge[_key(esel)] = f"{obj.name}Edge"
                        else:
                            raise _undefined(esel, f"{obj.name}Edge")
                    edges.append(edge)
                out[key] = edges
            elif name == "pageInfo":
                info = {"hasNextPage": offset + first < len(rows), "hasPreviousPage": offset > 0,
                        "startCursor": _cursor(offset + 1) if page else None,
                        "endCursor": _cursor(offset + len(page)) if page else None}
                out[key] = {}
                for psel in _fields(sel):
                    if psel.name.value not in info:
                        raise _undefined(psel, "PageInfo")
                    out[key][_key(psel)] = info[psel.name.value]
            elif name == "__typename":
                out[key] = f"{obj.name}Connection"
            else:
                raise _undefined(sel, f"{obj.name}Connection")
        return out

    def order(self, obj: SObject, order_by: Any, node: ast.Node) -> list[tuple[Field, bool, bool]]:
        if order_by is None:
            return []
        out = []
        for key, spec in (order_by.items() if isinstance(order_by, dict) else []):
            f = obj.fields.get(key)
            if f is None or not isinstance(spec, dict):
                raise QueryError(f"Validation error of type WrongType: argument 'orderBy' contains a field not in "
                                 f"'{obj.name}_OrderBy': '{key}'", node)
            descending = str(spec.get("order", "ASC")).upper() == "DESC"
            nulls_first = str(spec.get("nulls", "FIRST" if not descending else "LAST")).upper() == "FIRST"
            out.append((f, descending, nulls_first))
        return out

    def node(self, obj: SObject, rec: dict[str, Any], field: ast.FieldNode) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for sel in _fields(field):
            name, key = sel.name.value, _key(sel)
            if name == "__typename":
                out[key] = obj.name
                continue
            if name == "Id":
                out[key] = rec["Id"]
                continue
            f = obj.fields.get(name)
            if f is not None and f.type != "id":
                shown = field_value(f, rec.get(f.name), self.zone)
                out[key] = {}
                for vsel in _fields(sel):
                    vname = vsel.name.value
                    if vname == "value":
                        out[key][_key(vsel)] = shown["value"]
                    elif vname == "displayValue":
                        out[key][_key(vsel)] = shown["displayValue"]
                    elif vname == "label":
                        out[key][_key(vsel)] = f.label
                    elif vname == "__typename":
                        out[key][_key(vsel)] = f"{_DATA_TYPE_NAMES.get(f.type, 'String')}Value"
                    else:
                        raise _undefined(vsel, f"{_DATA_TYPE_NAMES.get(f.type, 'String')}Value")
                continue
            rel = obj.relationship(name)
            if rel is not None and rel.relationship_name == name:
                target_obj, target = self.parent(obj, rec, rel)
                out[key] = self.node(target_obj, target, sel) if target is not None else None
                continue
            raise _undefined(sel, obj.name)
        return out


_DATA_TYPE_NAMES = {"id": "ID", "reference": "ID", "string": "String", "textarea": "TextArea", "email": "Email",
                    "phone": "Phone", "url": "Url", "picklist": "Picklist", "multipicklist": "MultiPicklist",
                    "boolean": "Boolean", "int": "Int", "double": "Double", "currency": "Currency",
                    "percent": "Percent", "date": "Date", "datetime": "DateTime", "combobox": "Picklist"}


def _undefined(node: ast.FieldNode, type_name: str) -> QueryError:
    return QueryError(f"Validation error of type FieldUndefined: Field '{node.name.value}' in type '{type_name}' "
                      "is undefined", node)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _fields(field: ast.FieldNode) -> list[ast.FieldNode]:
    if field.selection_set is None:
        return []
    out = []
    for sel in field.selection_set.selections:
        if not isinstance(sel, ast.FieldNode):
            raise QueryError("Fragments are not supported by this org's GraphQL endpoint", sel)
        out.append(sel)
    return out


def _key(field: ast.FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value


def _cursor(position: int) -> str:
    return base64.b64encode(json.dumps({"offset": position}).encode()).decode()


def _comparable(f: Field, value: Any) -> Any:
    if value is None:
        return None
    if f.type in ("id", "reference"):
        return ids.normalize(value) if isinstance(value, str) else value
    if f.type in NUMERIC:
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if f.type == "boolean":
        return bool(value)
    if f.type == "datetime" and isinstance(value, str):
        from .store import parse_datetime

        try:
            return parse_datetime(value)
        except ValueError:
            return None
    return value


def _compare(f: Field, stored: Any, op: str, operand: Any) -> bool:
    left = _comparable(f, stored)
    if op in ("in", "nin"):
        values = [_comparable(f, v) for v in _as_list(operand)]
        return (left in values) == (op == "in")
    right = _comparable(f, operand)
    if op == "eq":
        return left == right
    if op == "ne":
        return left != right
    if op == "like":
        if left is None or right is None:
            return False
        pattern = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in str(right))
        return re.fullmatch(pattern, str(left), re.IGNORECASE | re.DOTALL) is not None
    if left is None or right is None:
        return False
    try:
        return {"lt": left < right, "lte": left <= right, "gt": left > right, "gte": left >= right}[op]
    except TypeError:
        return False


def graphql(org: Org, request: Request, version: str) -> Response:
    user_id = api_call(org, request, version)
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY:
        return json_response([{"errorCode": "JSON_PARSER_ERROR", "message": "The request body is too large."}], 400)
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return json_response([{"errorCode": "JSON_PARSER_ERROR", "message": "The request body is not valid JSON."}],
                             400)
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return json_response([{"errorCode": "INVALID_INPUT", "message": "The request body needs a query string."}],
                             400)
    variables = body.get("variables") or {}
    if not isinstance(variables, dict):
        return json_response([{"errorCode": "INVALID_INPUT", "message": "variables must be a JSON object."}], 400)
    try:
        document = parse(body["query"])
    except GraphQLError as exc:
        err = QueryError(f"Invalid Syntax : {exc.message}", None, "InvalidSyntax")
        out = err.as_json()
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in exc.locations or []]
        return json_response({"data": None, "errors": [out]})
    operations = [d for d in document.definitions if isinstance(d, ast.OperationDefinitionNode)]
    wanted = body.get("operationName")
    operation = next((o for o in operations if wanted is None or (o.name and o.name.value == wanted)), None)
    if operation is None or operation.operation != ast.OperationType.QUERY:
        return _error_response([QueryError("Only query operations are answered here", operation)])
    executor = Executor(org, variables, _user_zone(org, user_id))
    try:
        data = _execute(org, executor, operation)
    except QueryError as err:
        return _error_response([err])
    return json_response({"data": data, "errors": []})


def _execute(org: Org, executor: Executor, operation: ast.OperationDefinitionNode) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for top in operation.selection_set.selections:
        if not isinstance(top, ast.FieldNode):
            raise QueryError("Fragments are not supported by this org's GraphQL endpoint", top)
        if top.name.value != "uiapi":
            raise _undefined(top, "Query")
        uiapi: dict[str, Any] = {}
        for section in _fields(top):
            if section.name.value != "query":
                raise _undefined(section, "UIAPI")
            query: dict[str, Any] = {}
            for sel in _fields(section):
                obj = org.store.objects.get(sel.name.value)
                if obj is None:
                    raise _undefined(sel, "RecordQuery")
                query[_key(sel)] = executor.connection(obj, sel)
            uiapi[_key(section)] = query
        data[_key(top)] = uiapi
    return data
