"""REST API: versions, resources, sObjects (describe, CRUD, upsert), collections, query, limits."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from . import ids
from .errors import SFError, not_found
from .schema import SObject
from .server import API_VERSIONS, json_response, version_label
from .soql import compile_soql
from .store import fmt_dt, parse_datetime

if TYPE_CHECKING:
    from .server import Org

MAX_BATCH = 2000
MIN_BATCH = 200


def api_call(org: Org, request: Request, version: str) -> str:
    """Authenticate, check the version and the daily allowance, count the call. Returns the user id."""
    if version not in API_VERSIONS:
        raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
    user_id = org.oauth.authenticate(request)
    if org.usage.used("DailyApiRequests") >= org.usage.max["DailyApiRequests"]:
        raise SFError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    org.usage.add("DailyApiRequests")
    return user_id


def body_json(request: Request) -> Any:
    data = request.get_data(cache=True)
    if not data:
        return {}
    try:
        return json.loads(data)
    except ValueError as exc:
        raise SFError(400, "JSON_PARSER_ERROR", f"Unexpected character: was expecting a value at [line:1, "
                      f"column:{getattr(exc, 'colno', 1)}]") from None


# ---------------------------------------------------------------------- versions & resources
def versions(org: Org, request: Request) -> Response:
    return json_response([{"label": version_label(v), "url": f"/services/data/v{v}", "version": v}
                          for v in API_VERSIONS])


def resources(org: Org, request: Request, version: str) -> Response:
    api_call(org, request, version)
    base = f"/services/data/v{version}"
    names = ["tooling", "metadata", "eclair", "folders", "prechatForms", "contact-tracing", "jsonxform", "chatter",
             "tabs", "appMenu", "quickActions", "queryAll", "commerce", "wave", "iot", "analytics", "search",
             "smartdatadiscovery", "identity", "composite", "parameterizedSearch", "fingerprint", "theme",
             "nouns", "domino", "event", "serviceTemplates", "recent", "connect", "licensing", "limits",
             "process", "async-queries", "query", "match", "emailConnect", "compactLayouts", "knowledgeManagement",
             "sobjects", "actions", "support", "jobs", "localizedvalue", "mobile", "ui-api", "scheduling"]
    out = {n: f"{base}/{n}" for n in names}
    out["identity"] = org.oauth.identity_url(org.oauth.authenticate(request))
    return json_response(out)


def limits(org: Org, request: Request, version: str) -> Response:
    api_call(org, request, version)
    return json_response(org.usage.limits_json())


# ---------------------------------------------------------------------- sobjects
def sobjects_list(org: Org, request: Request, version: str) -> Response:
    api_call(org, request, version)
    return json_response({"encoding": "UTF-8", "maxBatchSize": 200,
                          "sobjects": [o.describe_global(version) for o in org.store.objects.values()]})


def describe(org: Org, obj: SObject, version: str) -> dict[str, Any]:
    out = obj.describe_global(version)
    children = []
    for other in org.store.objects.values():
        for f in other.fields.values():
            if f.type == "reference" and obj.name in f.reference_to and f.name not in (
                    "CreatedById", "LastModifiedById"):
                rel = None
                if f.custom:
                    rel = f.name[:-3] + "s__r" if f.name.endswith("__c") else None
                elif other.label_plural:
                    rel = other.label_plural.replace(" ", "")
                children.append({"cascadeDelete": f.cascade_delete, "childSObject": other.name,
                                 "deprecatedAndHidden": False, "field": f.name, "junctionIdListNames": [],
                                 "junctionReferenceTo": [], "relationshipName": rel, "restrictedDelete": False})
    out.update({
        "actionOverrides": [], "childRelationships": children, "compactLayoutable": True,
        "defaultImplementation": None, "extendedBy": None, "extendsInterfaces": None,
        "fields": [f.describe() for f in obj.fields.values()], "implementedBy": None,
        "implementsInterfaces": None, "listviewable": None, "lookupLayoutable": None,
        "namedLayoutInfos": [], "networkScopeFieldName": None, "recordTypeInfos": [{
            "active": True, "available": True, "defaultRecordTypeMapping": True, "developerName": "Master",
            "master": True, "name": "Master", "recordTypeId": "012000000000000AAA",
            "urls": {"layout": f"{obj.url(version)}/describe/layouts/012000000000000AAA"}}],
        "searchLayoutable": True, "supportedScopes": [{"label": "All " + obj.label_plural.lower(),
                                                      "name": "everything"}],
        "sobjectDescribeOption": "FULL",
    })
    out["urls"].update({"compactLayouts": f"{obj.url(version)}/describe/compactLayouts",
                        "approvalLayouts": f"{obj.url(version)}/describe/approvalLayouts",
                        "listviews": f"{obj.url(version)}/listviews",
                        "quickActions": f"{obj.url(version)}/quickActions",
                        "layouts": f"{obj.url(version)}/describe/layouts"})
    return out


def sobject_describe(org: Org, request: Request, version: str, sobject: str) -> Response:
    api_call(org, request, version)
    obj = _obj(org, sobject)
    return json_response(describe(org, obj, version))


def _obj(org: Org, name: str) -> SObject:
    try:
        return org.store.sobject(name)
    except SFError:
        raise SFError(404, "NOT_FOUND", "The requested resource does not exist") from None


def auto_assign(org: Org, request: Request | None, obj: SObject, values: dict[str, Any]) -> None:
    """Apply the Lead assignment rule per Sforce-Auto-Assign (TRUE/absent: active rule; FALSE: none)."""
    if obj.name != "Lead":
        return
    header = (request.headers.get("Sforce-Auto-Assign", "TRUE") if request is not None else "FALSE").strip()
    rule_id = None
    if header.upper() in ("FALSE", "0", "F"):
        return
    if header.upper() not in ("TRUE", "1", "T"):
        rule_id = ids.normalize(header)
        if rule_id is None:
            raise SFError(400, "INVALID_ASSIGNMENT_RULE", "invalid assignment rule id: " + header)
    owner = next_assignee(org, rule_id)
    if owner:
        values["OwnerId"] = owner


def next_assignee(org: Org, rule_id: str | None) -> str | None:
    store = org.store
    rules = store.objects["AssignmentRule"]
    with store.lock:
        if rule_id is None:
            row = store.db.execute(f"SELECT Id FROM {rules.table} WHERE Active=1 AND SobjectType='Lead' "
                                   "AND IsDeleted=0 LIMIT 1").fetchone()
            if row is None:
                return None
            rule_id = row[0]
        elif store.get(rules, rule_id) is None:
            raise SFError(400, "INVALID_ASSIGNMENT_RULE", "invalid assignment rule id: " + rule_id)
        owners = json.loads(store.kv_get(f"assignment:{rule_id}", "[]") or "[]")
        if not owners:
            return None
        n = int(store.kv_get(f"assignment_cursor:{rule_id}", "0") or 0)
        store.kv_set(f"assignment_cursor:{rule_id}", str(n + 1))
        return owners[n % len(owners)]


def create(org: Org, request: Request, version: str, sobject: str) -> Response:
    user_id = api_call(org, request, version)
    obj = _obj(org, sobject)
    if not obj.createable:
        raise SFError(400, "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", f"entity type cannot be inserted: {obj.name}")
    values = body_json(request)
    if not isinstance(values, dict):
        raise SFError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of " + obj.name + " from START_ARRAY")
    auto_assign(org, request, obj, values)
    rid = org.store.insert(obj, values, user_id)
    return json_response({"id": rid, "success": True, "errors": []}, 201,
                         {"Location": f"{obj.url(version)}/{rid}"})


def _fields_param(obj: SObject, request: Request) -> list[str] | None:
    raw = request.args.get("fields")
    if not raw:
        return None
    out = []
    for name in raw.split(","):
        f = obj.field_ci(name.strip())
        if f is None:
            raise SFError(400, "INVALID_FIELD", f"No such column '{name.strip()}' on sobject of type {obj.name}")
        out.append(f.name)
    return out


def record(org: Org, request: Request, version: str, sobject: str, record_id: str) -> Response:
    user_id = api_call(org, request, version)
    obj = _obj(org, sobject)
    if record_id in ("describe", "updated", "deleted") and request.method == "GET":
        raise not_found()
    rid = ids.normalize(record_id)
    if request.method == "GET":
        fields = _fields_param(obj, request)
        rec = org.store.get(obj, rid) if rid else None
        if rec is None or org.store.object_for_id(rid or "") is not obj:
            raise not_found()
        return json_response(org.store.record_json(obj, rec, version, fields))
    if rid is None:
        raise SFError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {record_id}")
    if org.store.object_for_id(rid) is not obj:
        raise SFError(400, "MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {record_id}", ["Id"])
    if request.method == "PATCH":
        values = body_json(request)
        org.store.update(obj, rid, values, user_id)
        return Response(status=204)
    org.store.delete(obj, rid, user_id)
    return Response(status=204)


def by_external_id(org: Org, request: Request, version: str, sobject: str, field: str, value: str) -> Response:
    user_id = api_call(org, request, version)
    obj = _obj(org, sobject)
    f = obj.field_ci(field)
    if f is None or not (f.external_id or f.name == "Id" or (f.unique and f.type in ("string", "email"))):
        raise SFError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field}")
    lookup_value: Any = value
    if f.type in ("id", "reference"):
        lookup_value = ids.normalize(value) or value
    matches = org.store.find_by(obj, f, lookup_value)
    if request.method == "GET":
        if not matches:
            raise not_found()
        if len(matches) > 1:
            return json_response([f"{obj.url(version)}/{m}" for m in matches], 300)
        return json_response(org.store.record_json(obj, org.store.get(obj, matches[0]), version,
                                                   _fields_param(obj, request)))
    if request.method == "DELETE":
        if not matches:
            raise not_found()
        if len(matches) > 1:
            return json_response([f"{obj.url(version)}/{m}" for m in matches], 300)
        org.store.delete(obj, matches[0], user_id)
        return Response(status=204)
    values = body_json(request)
    if not isinstance(values, dict):
        raise SFError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of " + obj.name + " from START_ARRAY")
    result = upsert_one(org, request, obj, f, lookup_value, values, user_id)
    if isinstance(result, SFError):
        raise result
    rid, created = result
    return json_response({"id": rid, "success": True, "errors": [], "created": created}, 201 if created else 200,
                         {"Location": f"{obj.url(version)}/{rid}"} if created else None)


def upsert_one(org: Org, request: Request | None, obj: SObject, f: Any, value: Any, values: dict[str, Any],
               user_id: str) -> tuple[str, bool] | SFError:
    key_in_body = next((k for k in values if k.lower() == f.name.lower()), None)
    if key_in_body is not None and f.name != "Id" and values[key_in_body] not in (None, value):
        return SFError(400, "INVALID_FIELD", f"Field {f.name} is specified in the URL and the request body; "
                       "please remove it from the body.", [f.name])
    values = {k: v for k, v in values.items() if k != key_in_body}
    with org.store.lock:
        matches = org.store.find_by(obj, f, value) if value not in (None, "") else []
        if len(matches) > 1:
            return SFError(300, "MULTIPLE_CHOICES", f"Multiple records found for {f.name}={value}", [f.name])
        if matches:
            org.store.update(obj, matches[0], values, user_id)
            return matches[0], False
        if f.name == "Id":
            return SFError(404, "NOT_FOUND", "The requested resource does not exist")
        if value not in (None, ""):
            values[f.name] = value
        auto_assign(org, request, obj, values)
        return org.store.insert(obj, values, user_id), True


# ---------------------------------------------------------------------- getUpdated / getDeleted
def _window(org: Org, request: Request) -> tuple[str, str]:
    try:
        start = parse_datetime(request.args["start"])
        end = parse_datetime(request.args["end"])
    except (KeyError, ValueError):
        raise SFError(400, "INVALID_REPLICATION_DATE", "start and end must be valid dateTime values") from None
    now = org.clock.now()
    if end <= start:
        raise SFError(400, "INVALID_REPLICATION_DATE", "EndDate must be greater than StartDate")
    if start < now - dt.timedelta(days=30):
        raise SFError(400, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago")
    end = min(end, now)
    start = start.replace(second=0, microsecond=0)
    end = end.replace(second=0, microsecond=0)
    return fmt_dt(start), fmt_dt(end)


def updated(org: Org, request: Request, version: str, sobject: str) -> Response:
    api_call(org, request, version)
    obj = _obj(org, sobject)
    start, end = _window(org, request)
    return json_response({"ids": org.store.updated_between(obj, start, end), "latestDateCovered": end})


def deleted(org: Org, request: Request, version: str, sobject: str) -> Response:
    api_call(org, request, version)
    obj = _obj(org, sobject)
    start, end = _window(org, request)
    rows = org.store.deleted_between(obj, start, end)
    earliest = fmt_dt(org.clock.now() - dt.timedelta(days=15))
    return json_response({"deletedRecords": [{"id": r[0], "deletedDate": r[1]} for r in rows],
                          "earliestDateAvailable": earliest, "latestDateCovered": end})


# ---------------------------------------------------------------------- collections
def _rollback_results(results: list[dict], creating: bool) -> list[dict]:
    out = []
    for r in results:
        if r["success"]:
            head = {} if creating else {"id": r.get("id")}
            out.append({**head, "success": False, "errors": [{
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using "
                           "AllOrNone header", "fields": []}]})
        else:
            out.append(r)
    return out


def _run_collection(org: Org, all_or_none: bool, items: list[Any], op: Any, creating: bool = False) -> list[dict]:
    store = org.store
    results: list[dict] = []
    with store.lock:
        store.db.execute("SAVEPOINT collection")
        store.defer_notifications()
        ok = True
        with store.transaction_stamp():  # one transaction: one SystemModstamp for every record written
            for item in items:
                store.db.execute("SAVEPOINT item")
                try:
                    results.append(op(item))
                    store.db.execute("RELEASE item")
                except SFError as err:
                    store.db.execute("ROLLBACK TO item")
                    store.db.execute("RELEASE item")
                    ok = False
                    rid = item.get("Id") if isinstance(item, dict) else (item if isinstance(item, str) else None)
                    res: dict[str, Any] = {"success": False, "errors": [err.item()]}
                    if rid:
                        res = {"id": rid, **res}
                    results.append(res)
        if all_or_none and not ok:
            store.db.execute("ROLLBACK TO collection")
            store.db.execute("RELEASE collection")
            store.discard_notifications()
            return _rollback_results(results, creating)
        store.db.execute("RELEASE collection")
        store.flush_notifications()
    return results


def collections(org: Org, request: Request, version: str) -> Response:
    user_id = api_call(org, request, version)
    if request.method == "GET":
        raise SFError(400, "INVALID_TYPE", "Use GET composite/sobjects/{SObjectName}?ids=&fields=")
    if request.method == "DELETE":
        raw = request.args.get("ids", "")
        rids = [r for r in raw.split(",") if r]
        if len(rids) > 200:
            raise SFError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records "
                          "into this call")
        aon = request.args.get("allOrNone", "false").lower() == "true"

        def op_delete(rid: str) -> dict:
            norm = ids.normalize(rid)
            obj = org.store.object_for_id(norm or "")
            if obj is None:
                raise SFError(400, "MALFORMED_ID", f"malformed id {rid}", [])
            org.store.delete(obj, norm, user_id)
            return {"id": norm, "success": True, "errors": []}
        return json_response(_run_collection(org, aon, rids, op_delete))
    body = body_json(request)
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise SFError(400, "JSON_PARSER_ERROR", "records is required")
    if len(records) > 200:
        raise SFError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into "
                      "this call")
    aon = bool(body.get("allOrNone", False))

    def obj_of(rec: dict) -> SObject:
        t = (rec.get("attributes") or {}).get("type")
        if not t:
            raise SFError(400, "INVALID_TYPE", "Must send a concrete entity type.", [])
        try:
            return org.store.sobject(t)
        except SFError:
            raise SFError(400, "INVALID_TYPE", f"sObject type '{t}' is not supported.", []) from None

    if request.method == "POST":
        def op_create(rec: dict) -> dict:
            obj = obj_of(rec)
            if rec.get("Id") or rec.get("id"):
                raise SFError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            values = {k: v for k, v in rec.items() if k != "attributes"}
            auto_assign(org, request, obj, values)
            return {"id": org.store.insert(obj, values, user_id), "success": True, "errors": []}
        return json_response(_run_collection(org, aon, records, op_create, creating=True))

    def op_update(rec: dict) -> dict:
        obj = obj_of(rec)
        rid = rec.get("Id") or rec.get("id")
        if not rid:
            raise SFError(400, "MISSING_ARGUMENT", "Id not specified in an update call", [])
        values = {k: v for k, v in rec.items() if k not in ("attributes", "Id", "id")}
        org.store.update(obj, rid, values, user_id)
        return {"id": ids.normalize(rid), "success": True, "errors": []}
    return json_response(_run_collection(org, aon, records, op_update))


def collections_upsert(org: Org, request: Request, version: str, sobject: str, field: str) -> Response:
    user_id = api_call(org, request, version)
    obj = _obj(org, sobject)
    if request.method == "GET":
        raw = request.args.get("ids", "")
        fields = _fields_param(obj, request)
        if not fields:
            raise SFError(400, "MALFORMED_QUERY", "fields parameter is required")
        out = []
        for rid in [r for r in raw.split(",") if r]:
            rec = org.store.get(obj, rid)
            out.append(org.store.record_json(obj, rec, version, fields) if rec else None)
        return json_response(out)
    f = obj.field_ci(field)
    if f is None or not (f.external_id or f.name == "Id"):
        raise SFError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field}")
    body = body_json(request)
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise SFError(400, "JSON_PARSER_ERROR", "records is required")
    if len(records) > 200:
        raise SFError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into "
                      "this call")

    def op(rec: dict) -> dict:
        key = next((k for k in rec if k.lower() == f.name.lower()), None)
        if key is None or rec[key] in (None, ""):
            raise SFError(400, "MISSING_ARGUMENT", f"{f.name} not specified", [])
        value = ids.normalize(rec[key]) or rec[key] if f.type in ("id", "reference") else rec[key]
        values = {k: v for k, v in rec.items() if k not in ("attributes", key)}
        res = upsert_one(org, request, obj, f, value, values, user_id)
        if isinstance(res, SFError):
            raise res
        return {"id": res[0], "success": True, "errors": [], "created": res[1]}
    return json_response(_run_collection(org, bool(body.get("allOrNone", False)), records, op))


# ---------------------------------------------------------------------- query
# A query locator lives 15 minutes after its last use, then INVALID_QUERY_LOCATOR:
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query_more_results.htm
CURSOR_IDLE_MS = 15 * 60 * 1000


class Cursors:
    """Server-side query cursors: results larger than a page are snapshotted into a temp table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def add(self, entry: dict[str, Any]) -> str:
        key = "01g" + ids.POD + secrets.token_hex(5).upper()[:10]
        with self._lock:
            self.items[key] = entry
            while len(self.items) > 50:
                _, old = self.items.popitem(last=False)
                old["drop"]()
        return key

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self.items.get(key)

    def expire(self, now_ms: int) -> None:
        """Drop the cursors idle for longer than CURSOR_IDLE_MS (Salesforce: 15 minutes)."""
        with self._lock:
            stale = [k for k, e in self.items.items() if now_ms - e["touched"] > CURSOR_IDLE_MS]
            dropped = [self.items.pop(k) for k in stale]
        for entry in dropped:
            entry["drop"]()

    def pop(self, key: str) -> None:
        with self._lock:
            entry = self.items.pop(key, None)
        if entry:
            entry["drop"]()


def batch_size(request: Request) -> int:
    raw = request.headers.get("Sforce-Query-Options", "")
    for part in raw.split(","):
        k, _, v = part.partition("=")
        if k.strip().lower() == "batchsize":
            try:
                return max(MIN_BATCH, min(MAX_BATCH, int(v)))
            except ValueError:
                pass
    return MAX_BATCH


def run_query(org: Org, request: Request, version: str, text: str, include_deleted: bool) -> dict[str, Any]:
    store = org.store
    q = compile_soql(text, store.objects, org.clock.today())
    if q.count_only:
        sql, params = q.sql(include_deleted)
        with store.lock:
            n = store.db.execute(sql, params).fetchone()[0]
        if q.limit is not None:
            n = min(n, q.limit)
        return {"totalSize": n, "done": True, "records": []}
    size = batch_size(request)
    sql, params = q.sql(include_deleted)
    if q.aggregate:
        with store.lock:
            rows = store.db.execute(sql, params).fetchall()
        return {"totalSize": len(rows), "done": True, "records": [q.render(r, version) for r in rows]}
    with store.lock:
        cur = store.db.execute(sql, params)
        first = cur.fetchmany(size + 1)
        if len(first) <= size:
            return {"totalSize": len(first), "done": True, "records": [q.render(r, version) for r in first]}
        table = f"_cursor_{secrets.token_hex(6)}"
        cur.close()
        store.db.execute(f"CREATE TEMP TABLE {table} AS {sql}", params)
        total = store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def drop() -> None:
        with store.lock:
            store.db.execute(f"DROP TABLE IF EXISTS temp.{table}")

    cursors = org_cursors(org)
    cursors.expire(org.clock.now_ms())
    key = cursors.add({"table": table, "query": q, "total": total, "size": size, "drop": drop,
                       "touched": org.clock.now_ms()})
    return {"totalSize": total, "done": False,
            "nextRecordsUrl": f"/services/data/v{version}/query/{key}-{size}",
            "records": [q.render(r, version) for r in first[:size]]}


def org_cursors(org: Org) -> Cursors:
    cursors = getattr(org, "_cursors", None)
    if cursors is None:
        cursors = Cursors()
        org._cursors = cursors  # type: ignore[attr-defined]
    return cursors


def query(org: Org, request: Request, version: str) -> Response:
    api_call(org, request, version)
    text = request.args.get("q")
    if text is None:
        raise SFError(400, "MALFORMED_QUERY", "A query string has to be specified")
    include_deleted = request.path.rstrip("/").endswith("queryAll")
    if request.args.get("columns", "").lower() == "true":
        return json_response(query_columns(org, text))
    return json_response(run_query(org, request, version, text, include_deleted))


_APEX_TYPES = {"id": "Id", "reference": "Id", "boolean": "Boolean", "int": "Integer", "double": "Decimal",
               "currency": "Decimal", "percent": "Decimal", "date": "Date", "datetime": "Datetime"}


def query_columns(org: Org, text: str) -> dict[str, Any]:
    """``query?q=...&columns=true``: the query's columns (parent fields nested in ``joinColumns``), no rows."""
    q = compile_soql(text, org.store.objects, org.clock.today())

    def column(name: str, display: str, f: Any, aggregate: bool = False) -> dict[str, Any]:
        apex = "Integer" if aggregate else _APEX_TYPES.get(f.type, "String")
        return {"aggregate": aggregate, "apexType": apex, "booleanType": apex == "Boolean", "columnName": name,
                "custom": bool(f.custom) and not aggregate, "displayName": display, "foreignKeyName": None,
                "insertable": bool(f.createable) and not aggregate, "joinColumns": [],
                "numberType": apex in ("Integer", "Decimal"), "textType": apex in ("String", "Id"),
                "updatable": bool(f.updateable) and not aggregate}

    def relationship(name: str, display: str, f: Any) -> dict[str, Any]:
        return {"aggregate": False, "apexType": None, "booleanType": False, "columnName": name, "custom": f.custom,
                "displayName": display, "foreignKeyName": f.name, "insertable": False, "joinColumns": [],
                "numberType": False, "textType": False, "updatable": False}

    out: list[dict[str, Any]] = []
    for c in q.columns:
        if c.aggregate:
            out.append(column(c.label, f"COUNT({c.field.name})", c.field, aggregate=True))
            continue
        level, obj, prefix = out, q.obj, []
        for rel, target in c.path:
            prefix.append(rel)
            entry = next((e for e in level if e["columnName"] == rel and e["apexType"] is None), None)
            if entry is None:
                ref = obj.relationship(rel)
                entry = relationship(rel, ".".join(prefix), ref)
                level.append(entry)
            level, obj = entry["joinColumns"], target
        level.append(column(c.field.name, ".".join(prefix + [c.field.name]), c.field))
    return {"columnMetadata": out, "entityName": q.obj.name, "groupBy": False,
            "idSelected": any(not c.path and c.field.name == "Id" for c in q.columns),
            "keyPrefix": q.obj.key_prefix}


def query_more(org: Org, request: Request, version: str, locator: str) -> Response:
    api_call(org, request, version)
    key, _, pos_text = locator.rpartition("-")
    org_cursors(org).expire(org.clock.now_ms())
    entry = org_cursors(org).get(key)
    try:
        pos = int(pos_text)
    except ValueError:
        entry = None
    if entry is None:
        raise SFError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    size, total, q = entry["size"], entry["total"], entry["query"]
    entry["touched"] = org.clock.now_ms()
    with org.store.lock:
        rows = org.store.db.execute(f"SELECT * FROM temp.{entry['table']} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                    (pos, size)).fetchall()
    nxt = pos + len(rows)
    body: dict[str, Any] = {"totalSize": total, "done": nxt >= total}
    if nxt < total:
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{key}-{nxt}"
    else:
        org_cursors(org).pop(key)
    body["records"] = [q.render(r, version) for r in rows]
    return json_response(body)


def routes() -> list[tuple[str, list[str], Any]]:
    d = "/services/data/v<version>"
    return [
        ("/services/data", ["GET"], versions),
        (f"{d}", ["GET"], resources),
        (f"{d}/limits", ["GET"], limits),
        (f"{d}/sobjects", ["GET"], sobjects_list),
        (f"{d}/sobjects/<sobject>", ["GET"], sobject_info),
        (f"{d}/sobjects/<sobject>", ["POST"], create),
        (f"{d}/sobjects/<sobject>/describe", ["GET"], sobject_describe),
        (f"{d}/sobjects/<sobject>/updated", ["GET"], updated),
        (f"{d}/sobjects/<sobject>/deleted", ["GET"], deleted),
        (f"{d}/sobjects/<sobject>/<record_id>", ["GET", "PATCH", "DELETE"], record),
        (f"{d}/sobjects/<sobject>/<field>/<path:value>", ["GET", "PATCH", "POST", "DELETE"], by_external_id),
        (f"{d}/composite/sobjects", ["POST", "PATCH", "DELETE", "GET"], collections),
        (f"{d}/composite/sobjects/<sobject>", ["GET"], collections_get),
        (f"{d}/composite/sobjects/<sobject>/<field>", ["PATCH"], collections_upsert),
        (f"{d}/query", ["GET"], query),
        (f"{d}/queryAll", ["GET"], query),
        (f"{d}/query/<locator>", ["GET"], query_more),
        (f"{d}/queryAll/<locator>", ["GET"], query_more),
    ]


def collections_get(org: Org, request: Request, version: str, sobject: str) -> Response:
    return collections_upsert(org, request, version, sobject, "Id")


def sobject_info(org: Org, request: Request, version: str, sobject: str) -> Response:
    api_call(org, request, version)
    obj = _obj(org, sobject)
    with org.store.lock:
        rows = org.store.db.execute(
            f"SELECT Id{', Name' if 'Name' in obj.fields else ''} FROM {obj.table} WHERE IsDeleted=0 "
            "ORDER BY LastModifiedDate DESC LIMIT 5").fetchall()
    recent = []
    for r in rows:
        item: dict[str, Any] = {"attributes": {"type": obj.name, "url": f"{obj.url(version)}/{r[0]}"}, "Id": r[0]}
        if len(r) > 1:
            item["Name"] = r[1]
        recent.append(item)
    return json_response({"objectDescribe": obj.describe_global(version), "recentItems": recent})
