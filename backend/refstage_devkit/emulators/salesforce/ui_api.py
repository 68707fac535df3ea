"""User Interface API: what Lightning Data Service asks an org for the package's components.

``/ui-api/records/{id}`` (getRecord, spanning fields included), ``/ui-api/related-list-records/{parent}/{list}``
(getRelatedListRecords, GET with URL parameters and POST with a request body), ``/ui-api/object-info/{object}``
and ``.../picklist-values/{recordTypeId}/{field}`` (getObjectInfo, getPicklistValues). Shapes follow the UI API
Developer Guide's Record, Field Value, Related List Record Collection, Object Info and Picklist Values
representations; errors are the UI API's ``[{"errorCode", "message"}]`` lists. The GraphQL endpoint that
``lightning/graphql`` calls lives in ``graphql_api``.

The org has no field-level security model: every existing field is readable by the session's user, so
``optionalFields`` drops only fields that do not exist, as an org drops fields the user cannot see.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zoneinfo
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from . import ids
from .rest import api_call
from .schema import Field, SObject
from .server import json_response

if TYPE_CHECKING:
    from .server import Org

MASTER_RECORD_TYPE_ID = "012000000000000AAA"
# The emulated org is a single-currency org in US English: currency display values are in its currency.
ORG_CURRENCY = "USD"
ORG_CURRENCY_SYMBOL = "$"
MAX_SPAN_DEPTH = 5  # a field path may cross at most five relationships
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1999
MAX_FIELDS = 1000

_DATA_TYPES = {
    "id": "String", "reference": "Reference", "string": "String", "textarea": "TextArea", "email": "Email",
    "phone": "Phone", "url": "Url", "picklist": "Picklist", "multipicklist": "MultiPicklist",
    "combobox": "ComboBox", "boolean": "Boolean", "int": "Int", "double": "Double", "currency": "Currency",
    "percent": "Percent", "date": "Date", "datetime": "DateTime",
}


class UiApiError(Exception):
    """A UI API error answer: HTTP status plus one ``{"errorCode", "message"}`` entry."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        return json_response([{"errorCode": self.code, "message": self.message}], self.status)


def _not_found() -> UiApiError:
    return UiApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _invalid_field(obj_name: str, path: str) -> UiApiError:
    return UiApiError(400, "INVALID_FIELD", f"No such column '{path}' on entity '{obj_name}'. If you are attempting "
                      "to use a custom field, be sure to append the '__c' after the custom field name. Please "
                      "reference your WSDL or the describe call for the appropriate names.")


# ---------------------------------------------------------------------- values
def iso_timestamp(stored: str | None) -> str | None:
    """Stored ``2026-10-01T09:30:00.000+0000`` -> the UI API's ``2026-10-01T09:30:00.000Z``."""
    if not stored:
        return None
    return stored[:-5] + "Z" if stored.endswith("+0000") else stored


def _user_zone(org: Org, user_id: str) -> dt.tzinfo:
    key = (org.oauth.user(user_id) or {}).get("TimeZoneSidKey") or "GMT"
    try:
        return zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.timezone.utc


def format_currency(amount: float) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}{ORG_CURRENCY_SYMBOL}{abs(amount):,.2f}"


def field_value(f: Field, stored: Any, zone: dt.tzinfo) -> dict[str, Any]:
    """A Field Value representation: the raw value and, where the org formats one, its display value."""
    if stored is None:
        return {"displayValue": None, "value": None}
    t = f.type
    if t == "boolean":
        return {"displayValue": None, "value": bool(stored)}
    if t == "int":
        return {"displayValue": None, "value": int(stored)}
    if t in ("double", "percent"):
        return {"displayValue": None, "value": float(stored)}
    if t == "currency":
        return {"displayValue": format_currency(float(stored)), "value": float(stored)}
    if t == "picklist":
        return {"displayValue": f.picklist_labels.get(stored, stored), "value": stored}
    if t == "multipicklist":
        labels = [f.picklist_labels.get(v, v) for v in str(stored).split(";")]
        return {"displayValue": ";".join(labels), "value": stored}
    if t == "date":
        d = dt.date.fromisoformat(stored)
        return {"displayValue": f"{d.month}/{d.day}/{d.year}", "value": stored}
    if t == "datetime":
        from .store import parse_datetime

        local = parse_datetime(stored).astimezone(zone)
        hour = local.hour % 12 or 12
        shown = f"{local.month}/{local.day}/{local.year}, {hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
        return {"displayValue": shown, "value": iso_timestamp(stored)}
    return {"displayValue": None, "value": stored}


# ---------------------------------------------------------------------- field paths
FieldTree = dict[str, "FieldTree | None"]


def _split_list(raw: Any) -> list[str]:
    """Fields arrive comma-separated (URL) or as a JSON array (request body); blanks are ignored."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else str(raw).split(",")
    if not all(isinstance(item, str) for item in items):
        raise UiApiError(400, "ILLEGAL_QUERY_PARAMETER_VALUE", "Field names must be strings.")
    return [item.strip() for item in items if item.strip()]


def _query_list(request: Request, name: str) -> list[str]:
    out: list[str] = []
    for raw in request.args.getlist(name):
        out.extend(_split_list(raw))
    return out


def resolve_fields(org: Org, obj: SObject, paths: list[str], optional: bool) -> tuple[FieldTree, list[str]]:
    """Turn ``Object.Rel__r.Field`` paths into a tree of canonical names. Unknown paths raise INVALID_FIELD
    for ``fields`` and are dropped for ``optionalFields``. Returns the tree and the accepted paths."""
    tree: FieldTree = {}
    accepted: list[str] = []
    for path in paths:
        parts = path.split(".")
        try:
            if len(parts) < 2 or parts[0].lower() != obj.name.lower():
                raise _invalid_field(obj.name, path)
            if len(parts) - 2 > MAX_SPAN_DEPTH:
                raise _invalid_field(obj.name, path)
            names: list[str] = []
            current = obj
            for rel in parts[1:-1]:
                ref = current.relationship(rel)
                if ref is None:
                    raise _invalid_field(obj.name, path)
                names.append(ref.relationship_name or rel)
                current = org.store.sobject(ref.reference_to[0])
            leaf = current.field_ci(parts[-1])
            if leaf is None:
                raise _invalid_field(obj.name, path)
            names.append(leaf.name)
        except UiApiError:
            if optional:
                continue
            raise
        node = tree
        for name in names[:-1]:
            child = node.get(name)
            if child is None:
                child = node[name] = {}
            node = child
        node.setdefault(names[-1], None)
        accepted.append(path)
    return tree, accepted


def _merge(into: FieldTree, other: FieldTree) -> FieldTree:
    for name, sub in other.items():
        if sub is None:
            into.setdefault(name, None)
        else:
            existing = into.get(name)
            into[name] = _merge(existing if isinstance(existing, dict) else {}, sub)
    return into


# ---------------------------------------------------------------------- records
def _name_of(obj: SObject, rec: dict[str, Any]) -> Any:
    name_field = next((f.name for f in obj.fields.values() if f.name_field), None)
    return rec.get(name_field) if name_field else None


def _etag(obj: SObject, rec: dict[str, Any], fields: dict[str, Any]) -> str:
    digest = hashlib.md5(json.dumps([obj.name, rec.get("Id"), rec.get("SystemModstamp"), fields],
                                    sort_keys=True, default=str).encode(), usedforsecurity=False)
    return digest.hexdigest()


def _weak_etag(rec: dict[str, Any]) -> int:
    stamp = rec.get("SystemModstamp")
    if not stamp:
        return 0
    from .store import parse_datetime

    return int(parse_datetime(stamp).timestamp() * 1000)


def record_representation(org: Org, obj: SObject, rec: dict[str, Any], tree: FieldTree, zone: dt.tzinfo,
                          nested: bool = False) -> dict[str, Any]:
    """A Record representation with the fields of ``tree``; relationships become nested records (which also
    carry their ``Id``), or ``{"displayValue": null, "value": null}`` when the lookup is empty."""
    if nested:
        tree = {"Id": None, **tree}
    fields: dict[str, Any] = {}
    for name, sub in tree.items():
        if sub is None:
            f = obj.fields[name]
            fields[name] = field_value(f, rec.get(name), zone)
            continue
        ref = obj.relationship(name)
        assert ref is not None
        target_id = rec.get(ref.name)
        target_obj = org.store.object_for_id(target_id) if target_id else None
        target = org.store.get(target_obj, target_id) if target_obj else None
        if target is None or target_obj is None:
            fields[name] = {"displayValue": None, "value": None}
            continue
        fields[name] = {"displayValue": _name_of(target_obj, target),
                        "value": record_representation(org, target_obj, target, sub, zone, nested=True)}
    return {
        "apiName": obj.name,
        "childRelationships": {},
        "eTag": _etag(obj, rec, fields),
        "fields": fields,
        "id": rec["Id"],
        "lastModifiedById": rec.get("LastModifiedById"),
        "lastModifiedDate": iso_timestamp(rec.get("LastModifiedDate")),
        "recordTypeId": MASTER_RECORD_TYPE_ID,
        "recordTypeInfo": None,
        "systemModstamp": iso_timestamp(rec.get("SystemModstamp")),
        "weakEtag": _weak_etag(rec),
    }


def _load(org: Org, record_id: str) -> tuple[SObject, dict[str, Any]]:
    rid = ids.normalize(record_id)
    obj = org.store.object_for_id(rid) if rid else None
    rec = org.store.get(obj, rid) if obj and rid else None
    if obj is None or rec is None:
        raise _not_found()
    return obj, rec


def get_record(org: Org, request: Request, version: str, record_id: str) -> Response:
    user_id = api_call(org, request, version)
    try:
        fields = _query_list(request, "fields")
        optional = _query_list(request, "optionalFields")
        if not fields and not optional and not request.args.get("layoutTypes"):
            raise UiApiError(400, "ILLEGAL_QUERY_PARAMETER_VALUE",
                             "You must specify at least one of layoutTypes, fields or optionalFields.")
        if request.args.get("layoutTypes"):
            raise UiApiError(400, "ILLEGAL_QUERY_PARAMETER_VALUE",
                             "This org answers fields and optionalFields only; it has no page layouts.")
        if len(fields) + len(optional) > MAX_FIELDS:
            raise UiApiError(400, "ILLEGAL_QUERY_PARAMETER_VALUE", f"Too many fields: at most {MAX_FIELDS}.")
        obj, rec = _load(org, record_id)
        tree, _ = resolve_fields(org, obj, fields, optional=False)
        optional_tree, _ = resolve_fields(org, obj, optional, optional=True)
        body = record_representation(org, obj, rec, _merge(tree, optional_tree), _user_zone(org, user_id))
    except UiApiError as err:
        return err.response()
    return json_response(body)


# ---------------------------------------------------------------------- related lists
def child_relationships(org: Org, parent: SObject) -> list[tuple[str, SObject, Field]]:
    """(relationship name, child object, lookup field) for every lookup onto ``parent``."""
    out = []
    for other in org.store.objects.values():
        for f in other.fields.values():
            if f.type != "reference" or parent.name not in f.reference_to:
                continue
            if f.name in ("CreatedById", "LastModifiedById", "OwnerId"):
                continue
            name = f.child_relationship_name
            if name is None and not f.custom and other.label_plural:
                name = other.label_plural.replace(" ", "")
            if name:
                out.append((name, other, f))
    return out


def _page_params(request: Request) -> dict[str, Any]:
    if request.method == "POST":
        try:
            body = json.loads(request.get_data(cache=True) or b"{}")
        except ValueError:
            raise UiApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise UiApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object.")
        return {"fields": _split_list(body.get("fields")), "optionalFields": _split_list(body.get("optionalFields")),
                "pageSize": body.get("pageSize"), "pageToken": body.get("pageToken"),
                "sortBy": _split_list(body.get("sortBy")), "where": body.get("where")}
    return {"fields": _query_list(request, "fields"), "optionalFields": _query_list(request, "optionalFields"),
            "pageSize": request.args.get("pageSize"), "pageToken": request.args.get("pageToken"),
            "sortBy": _query_list(request, "sortBy"), "where": request.args.get("where")}


def _int_param(value: Any, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
        if isinstance(value, float) or isinstance(value, bool) or str(number) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise UiApiError(400, "ILLEGAL_QUERY_PARAMETER_VALUE", f"{name} must be an integer.") from None
    if not low <= number <= high:
        raise UiApiError(400, "ILLEGAL_QUERY_PARAMETER_VALUE", f"{name} must be between {low} and {high}.")
    return number


def _sort_key(child: SObject, sort_by: list[str]) -> list[tuple[Field, bool]]:
    keys = []
    for item in sort_by:
        descending = item.startswith("-")
        path = item[1:] if descending else item
        parts = path.split(".")
        if len(parts) == 2 and parts[0].lower() == child.name.lower():
            parts = parts[1:]
        f = child.field_ci(parts[0]) if len(parts) == 1 else None
        if f is None:
            raise _invalid_field(child.name, path)
        if f.type in ("textarea", "multipicklist"):
            raise UiApiError(400, "INVALID_FIELD", f"Field {child.name}.{f.name} can't be sorted.")
        keys.append((f, descending))
    return keys


def related_list_records(org: Org, request: Request, version: str, parent_id: str, related_list_id: str) -> Response:
    user_id = api_call(org, request, version)
    try:
        params = _page_params(request)
        if params["where"]:
            raise UiApiError(400, "ILLEGAL_QUERY_PARAMETER_VALUE",
                             "This org does not filter related lists: leave out where.")
        page_size = _int_param(params["pageSize"], "pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        offset = _int_param(params["pageToken"], "pageToken", 0, 0, 2_000_000)
        parent_obj, parent = _load(org, parent_id)
        match = next(((o, f) for name, o, f in child_relationships(org, parent_obj) if name == related_list_id),
                     None)
        if match is None:
            raise UiApiError(404, "NOT_FOUND", f"The related list {related_list_id} is not available for "
                             f"{parent_obj.name}.")
        child, lookup = match
        tree, fields = resolve_fields(org, child, params["fields"], optional=False)
        optional_tree, _ = resolve_fields(org, child, params["optionalFields"], optional=True)
        tree = _merge(tree, optional_tree)
        keys = _sort_key(child, params["sortBy"])
        with org.store.lock:
            cur = org.store.db.execute(
                f'SELECT * FROM {child.table} WHERE "{lookup.name}"=? AND IsDeleted=0 ORDER BY Id', (parent["Id"],))
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
        for f, descending in reversed(keys):
            present = [r for r in rows if r.get(f.name) is not None]
            absent = [r for r in rows if r.get(f.name) is None]
            present.sort(key=lambda r, n=f.name: r[n], reverse=descending)
            rows = present + absent  # nulls last, as related lists show them
        zone = _user_zone(org, user_id)
        page = rows[offset:offset + page_size]
        records = [record_representation(org, child, r, tree, zone) for r in page]
    except UiApiError as err:
        return err.response()

    base = f"/services/data/v{version}/ui-api/related-list-records/{parent['Id']}/{related_list_id}"

    def page_url(token: int) -> str:
        query = {"fields": ",".join(params["fields"]), "optionalFields": ",".join(params["optionalFields"]),
                 "pageSize": page_size, "pageToken": token, "sortBy": ",".join(params["sortBy"])}
        return f"{base}?{urlencode({k: v for k, v in query.items() if v != ''})}"

    has_next = offset + page_size < len(rows)
    has_previous = offset > 0
    return json_response({
        "count": len(records),
        "currentPageToken": str(offset),
        "currentPageUrl": page_url(offset),
        "fields": fields,
        "listInfoETag": hashlib.md5(f"{child.name}:{related_list_id}".encode(), usedforsecurity=False).hexdigest(),
        "listReference": {"inContextOfRecordId": parent["Id"], "listViewApiName": None,
                          "objectApiName": child.name, "parentObjectApiName": parent_obj.name,
                          "recordTypeId": None, "relatedListId": related_list_id, "type": "relatedList"},
        "nextPageToken": str(offset + page_size) if has_next else None,
        "nextPageUrl": page_url(offset + page_size) if has_next else None,
        "optionalFields": params["optionalFields"],
        "pageSize": page_size,
        "previousPageToken": str(max(0, offset - page_size)) if has_previous else None,
        "previousPageUrl": page_url(max(0, offset - page_size)) if has_previous else None,
        "records": records,
        "sortBy": params["sortBy"],
    })


# ---------------------------------------------------------------------- object info
def _field_info(org: Org, f: Field) -> dict[str, Any]:
    return {
        "apiName": f.name, "calculated": f.calculated, "compound": False, "compoundComponentName": None,
        "compoundFieldName": None, "controllerName": None, "controllingFields": [], "createable": f.createable,
        "custom": f.custom, "dataType": _DATA_TYPES[f.type], "extraTypeInfo": None,
        "filterable": f.type != "textarea", "filteredLookupInfo": None, "highScaleNumber": False,
        "htmlFormatted": False, "inlineHelpText": None, "label": f.label or f.name,
        "length": f.length if f.type not in ("boolean", "int", "double", "currency", "percent", "date",
                                             "datetime") else 0,
        "nameField": f.name_field, "polymorphicForeignKey": False,
        "precision": f.precision if f.type in ("double", "currency", "percent", "int") else 0,
        "reference": f.type == "reference", "referenceTargetField": None,
        "referenceToInfos": [{"apiName": target, "nameFields": ["Name"]} for target in f.reference_to],
        "relationshipName": f.relationship_name, "required": f.required, "scale": f.scale,
        "searchPrefilterable": False, "sortable": f.type not in ("textarea", "multipicklist"),
        "unique": f.unique, "updateable": f.updateable,
    }


def object_info(org: Org, request: Request, version: str, object_name: str) -> Response:
    api_call(org, request, version)
    obj = _object(org, object_name)
    if obj is None:
        return _not_found().response()
    fields = {f.name: _field_info(org, f) for f in obj.fields.values()}
    body = {
        "apiName": obj.name, "associateEntityType": None, "associateParentEntity": None,
        "childRelationships": [{"childObjectApiName": child.name, "fieldName": f.name, "junctionIdListNames": [],
                                "junctionReferenceTo": [], "relationshipName": name}
                               for name, child, f in child_relationships(org, obj)],
        "createable": obj.createable, "custom": obj.custom, "defaultRecordTypeId": MASTER_RECORD_TYPE_ID,
        "deletable": obj.createable, "dependentFields": {}, "feedEnabled": False, "fields": fields,
        "keyPrefix": obj.key_prefix, "label": obj.label, "labelPlural": obj.label_plural, "layoutable": True,
        "mruEnabled": True, "nameFields": [f.name for f in obj.fields.values() if f.name_field],
        "queryable": obj.queryable,
        "recordTypeInfos": {MASTER_RECORD_TYPE_ID: {"available": True, "defaultRecordTypeMapping": True,
                                                    "master": True, "name": "Master",
                                                    "recordTypeId": MASTER_RECORD_TYPE_ID}},
        "searchable": True, "themeInfo": None, "updateable": obj.createable,
    }
    body["eTag"] = hashlib.md5(json.dumps(body, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
    return json_response(body)


def _object(org: Org, name: str) -> SObject | None:
    return org.store.objects.get(name) or next(
        (o for o in org.store.objects.values() if o.name.lower() == name.lower()), None)


def picklist_values(org: Org, request: Request, version: str, object_name: str, record_type_id: str,
                    field_name: str) -> Response:
    api_call(org, request, version)
    obj = _object(org, object_name)
    f = obj.field_ci(field_name) if obj else None
    if obj is None or f is None or ids.normalize(record_type_id) != MASTER_RECORD_TYPE_ID:
        return _not_found().response()
    if f.type not in ("picklist", "multipicklist"):
        return UiApiError(400, "INVALID_TYPE", f"{obj.name}.{f.name} is not a picklist field.").response()
    stage_attributes = {}
    if obj.name == "Opportunity" and f.name == "StageName":
        # Stage values carry the stage's closed/won flags, as an org's StageName picklist does.
        for api_name, probability, closed, won, forecast in org.store.stages():
            stage_attributes[api_name] = {"closed": bool(closed), "defaultProbability": probability,
                                          "forecastCategoryName": forecast,
                                          "picklistAtrributesValueType": "OpportunityStage", "won": bool(won)}
    values = [{"attributes": stage_attributes.get(v), "label": f.picklist_labels.get(v, v), "validFor": [],
               "value": v} for v in f.picklist]
    default = next((v for v in values if v["value"] == f.picklist_default), None)
    body = {"controllerValues": {}, "defaultValue": default,
            "url": f"/services/data/v{version}/ui-api/object-info/{obj.name}/picklist-values/"
                   f"{MASTER_RECORD_TYPE_ID}/{f.name}",
            "values": values}
    body["eTag"] = hashlib.md5(json.dumps(body, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
    return json_response(body)


def routes() -> list[tuple[str, list[str], Any]]:
    from . import graphql_api

    u = "/services/data/v<version>/ui-api"
    return [
        (f"{u}/records/<record_id>", ["GET"], get_record),
        (f"{u}/related-list-records/<parent_id>/<related_list_id>", ["GET", "POST"], related_list_records),
        (f"{u}/object-info/<object_name>", ["GET"], object_info),
        (f"{u}/object-info/<object_name>/picklist-values/<record_type_id>/<field_name>", ["GET"], picklist_values),
        ("/services/data/v<version>/graphql", ["POST"], graphql_api.graphql),
    ]
