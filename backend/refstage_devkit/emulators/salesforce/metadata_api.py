"""The Metadata API's SOAP endpoint (``/services/Soap/m/{version}``): ``deploy``, ``checkDeployStatus``,
``cancelDeploy``, ``describeMetadata`` and ``listMetadata``, with the request and result shapes of the
vendored metadata-v65 WSDL and SOAP faults as Salesforce sends them. The deploy itself is deploy.py.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from werkzeug.wrappers import Request, Response

from .deploy import KNOWN_TYPES, DeployJob, DeployOptions
from .errors import SFError
from .mdschema import MD_URI, XmlError, parse_xml
from .server import API_VERSIONS

if TYPE_CHECKING:
    from .server import Org

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_REQUEST_BYTES = 52428800  # 50 MB: a 39 MB zip, base64-encoded, fits


class Fault(Exception):
    def __init__(self, code: str, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _xml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def serialize(name: str, value: Any) -> str:
    """dict -> nested elements in the dict's order; list -> repeated elements; None -> omitted."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "".join(serialize(name, v) for v in value)
    if isinstance(value, dict):
        return f"<{name}>" + "".join(serialize(k, v) for k, v in value.items()) + f"</{name}>"
    return f"<{name}>{_xml(value)}</{name}>"


def envelope(body: str, status: int = 200, default_ns: bool = True) -> Response:
    text = ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"' + (f' xmlns="{MD_URI}"' if default_ns else "")
            + ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>")
    return Response(text, status=status, content_type="text/xml; charset=utf-8")


def fault_response(fault: Fault) -> Response:
    # faultcode and faultstring are unqualified: this envelope has no default namespace
    return envelope(
        f'<soapenv:Fault xmlns:sf="{MD_URI}"><faultcode>sf:{fault.code}</faultcode>'
        f"<faultstring>{escape(fault.code)}: {escape(fault.message)}</faultstring>"
        f'<detail><sf:UnexpectedErrorFault xsi:type="sf:UnexpectedErrorFault">'
        f"<sf:exceptionCode>{fault.code}</sf:exceptionCode><sf:exceptionMessage>{escape(fault.message)}"
        "</sf:exceptionMessage></sf:UnexpectedErrorFault></detail></soapenv:Fault>", fault.status, default_ns=False)


def _local(el: Any) -> str:
    return el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""


def _child(el: Any, name: str) -> Any:
    return next((c for c in el if _local(c) == name), None)


def _children(el: Any, name: str) -> list[Any]:
    return [c for c in el if _local(c) == name]


def _text(el: Any, name: str, default: str | None = None) -> str | None:
    c = _child(el, name) if el is not None else None
    return (c.text or "").strip() if c is not None else default


def _bool(el: Any, name: str, default: bool) -> bool:
    text = _text(el, name)
    return default if text is None else text.lower() in ("true", "1")


# ---------------------------------------------------------------------- endpoint
def soap(org: Org, request: Request, version: str, org_part: str | None = None) -> Response:
    try:
        if version not in API_VERSIONS:
            raise Fault("UNSUPPORTED_API_VERSION", f"Invalid Api version specified on URL: {version}")
        if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
            raise Fault("EXCEEDED_MAX_SIZE_REQUEST",
                        f"Maximum size of request reached. Maximum size of request is {MAX_REQUEST_BYTES} bytes.")
        data = request.get_data(cache=False)
        if len(data) > MAX_REQUEST_BYTES:
            raise Fault("EXCEEDED_MAX_SIZE_REQUEST",
                        f"Maximum size of request reached. Maximum size of request is {MAX_REQUEST_BYTES} bytes.")
        try:
            root, _ = parse_xml(data)
        except XmlError as exc:
            raise Fault("INVALID_XML", f"{exc} at line {exc.line}") from None
        header = _child(root, "Header")
        body = _child(root, "Body")
        if _local(root) != "Envelope" or body is None or not len(body):
            raise Fault("INVALID_XML", "The request is not a SOAP envelope with a body")
        session = None
        if header is not None:
            for el in header.iter():
                if _local(el) == "sessionId":
                    session = (el.text or "").strip()
        if not session:
            raise Fault("INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader: Illegal Session")
        try:
            user_id = org.oauth.validate(session)
        except SFError:
            raise Fault("INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader: Illegal Session") from None
        call = body[0]
        # Polling a deploy or retrieve does not count against the API allowance (checkDeployStatus docs).
        if _local(call) not in ("checkDeployStatus", "checkRetrieveStatus"):
            if org.usage.used("DailyApiRequests") >= org.usage.max["DailyApiRequests"]:
                raise Fault("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            org.usage.add("DailyApiRequests")
        operation = OPERATIONS.get(_local(call))
        if operation is None:
            raise Fault("INVALID_OPERATION", f"No operation available for request {call.tag}")
        return envelope(operation(org, call, user_id))
    except Fault as fault:
        return fault_response(fault)


# ---------------------------------------------------------------------- operations
def op_deploy(org: Org, call: Any, user_id: str) -> str:
    zip_text = _text(call, "ZipFile") or ""
    try:
        zip_data = base64.b64decode("".join(zip_text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Fault("INVALID_ZIP", "The ZipFile is not valid base64") from None
    opts_el = _child(call, "DeployOptions")
    options = DeployOptions(
        rollback_on_error=_bool(opts_el, "rollbackOnError", True),
        check_only=_bool(opts_el, "checkOnly", False),
        ignore_warnings=_bool(opts_el, "ignoreWarnings", False),
        single_package=_bool(opts_el, "singlePackage", False),
        allow_missing_files=_bool(opts_el, "allowMissingFiles", False),
        purge_on_delete=_bool(opts_el, "purgeOnDelete", False),
        test_level=_text(opts_el, "testLevel") or "NoTestRun",
        run_tests=[(c.text or "").strip() for c in _children(opts_el, "runTests")] if opts_el is not None else [])
    job = org.deployer.submit(zip_data, options, user_id)
    return serialize("deployResponse", {"result": {"done": False, "id": job.id, "state": "Queued"}})


def deploy_result(job: DeployJob, include_details: bool) -> dict[str, Any]:
    message_keys = ["changed", "columnNumber", "componentType", "created", "createdDate", "deleted", "fileName",
                    "fullName", "id", "lineNumber", "problem", "problemType", "success"]

    def ordered(msg: dict[str, Any]) -> dict[str, Any]:
        return {k: msg.get(k) for k in message_keys if msg.get(k) is not None}

    result: dict[str, Any] = {
        "canceledBy": job.created_by if job.status == "Canceled" else None,
        "canceledByName": job.created_by_name if job.status == "Canceled" else None,
        "checkOnly": job.options.check_only, "completedDate": job.completed, "createdBy": job.created_by,
        "createdByName": job.created_by_name, "createdDate": job.created,
    }
    if include_details:
        result["details"] = {
            "componentFailures": [ordered(m) for m in job.failures] if job.done else [],
            "componentSuccesses": [ordered(m) for m in job.successes] if job.done else [],
            "runTestResult": {"numFailures": 0, "numTestsRun": 0, "totalTime": 0.0},
        }
    result.update({
        "done": job.done, "errorMessage": job.error_message, "errorStatusCode": job.error_status_code,
        "id": job.id, "ignoreWarnings": job.options.ignore_warnings, "lastModifiedDate": job.completed or job.started,
        "numberComponentErrors": job.errors if job.done else 0,
        "numberComponentsDeployed": job.deployed if job.done else 0,
        "numberComponentsTotal": job.total, "numberFiles": job.number_files,
        "numberTestErrors": 0, "numberTestsCompleted": 0, "numberTestsTotal": 0,
        "rollbackOnError": job.options.rollback_on_error,
        "runTestsEnabled": job.options.test_level not in ("NoTestRun", "") or bool(job.options.run_tests),
        "startDate": job.started, "stateDetail": job.state_detail, "status": job.status, "success": job.success,
        "zipSize": job.zip_size,
    })
    return result


def op_check_deploy_status(org: Org, call: Any, user_id: str) -> str:
    job_id = _text(call, "asyncProcessId") or ""
    job = org.deployer.get(job_id)
    if job is None:
        raise Fault("INVALID_ID_FIELD", f"Invalid or null id: {job_id}")
    return serialize("checkDeployStatusResponse", {"result": deploy_result(job, _bool(call, "includeDetails", False))})


def op_cancel_deploy(org: Org, call: Any, user_id: str) -> str:
    job_id = _text(call, "String") or _text(call, "id") or ""
    job = org.deployer.cancel(job_id)
    if job is None:
        raise Fault("INVALID_ID_FIELD", f"Invalid or null id: {job_id}")
    return serialize("cancelDeployResponse", {"result": {"done": job.done, "id": job.id}})


def op_describe_metadata(org: Org, call: Any, user_id: str) -> str:
    objects = []
    for t in KNOWN_TYPES:
        objects.append({"childXmlNames": list(t.children) or None, "directoryName": t.directory,
                        "inFolder": t.in_folder, "metaFile": t.meta_file, "suffix": t.suffix, "xmlName": t.xml_name})
    return serialize("describeMetadataResponse", {"result": {
        "metadataObjects": objects, "organizationNamespace": "", "partialSaveAllowed": True,
        "testRequired": False}})


def _file_properties(org: Org, type_name: str, folder: str | None) -> list[dict[str, Any]]:
    store = org.store
    out = []
    child_of = {c: t.xml_name for t in KNOWN_TYPES for c in t.children}
    names: dict[str, str] = {}

    def user_name(uid: str) -> str:
        if uid not in names:
            names[uid] = str(org.oauth.user(uid).get("Name") or "") if uid else ""
        return names[uid]

    with store.lock:
        if type_name in child_of:
            rows = store.db.execute("SELECT full_name, file_name, id, body, created, created_by, modified, "
                                    "modified_by FROM _metadata WHERE type=?", (child_of[type_name],)).fetchall()
        else:
            rows = store.db.execute("SELECT full_name, file_name, id, body, created, created_by, modified, "
                                    "modified_by FROM _metadata WHERE type=?", (type_name,)).fetchall()
    for full_name, file_name, mid, body, created, created_by, modified, modified_by in rows:
        base = {"createdById": created_by, "createdByName": user_name(created_by), "createdDate": created,
                "fileName": file_name, "fullName": full_name, "id": mid, "lastModifiedById": modified_by,
                "lastModifiedByName": user_name(modified_by), "lastModifiedDate": modified,
                "manageableState": "unmanaged", "type": type_name}
        if type_name in child_of:
            tag = {"CustomField": "fields", "WorkflowOutboundMessage": "outboundMessages", "ListView": "listViews",
                   "ValidationRule": "validationRules", "CustomLabel": "labels"}.get(type_name)
            if tag is None:
                continue
            root, _ = parse_xml(body)
            for el in _children(root, tag):
                child = _text(el, "fullName") or ""
                out.append({**base, "fullName": child if type_name == "CustomLabel" else f"{full_name}.{child}",
                            "id": ""})
            continue
        if folder is not None and not full_name.startswith(folder + "/"):
            continue
        out.append(base)
    if type_name == "CustomObject":
        deployed = {p["fullName"] for p in out}
        for obj in org.store.objects.values():
            if not obj.custom and obj.name not in deployed:
                out.append({"createdById": org.admin_id, "createdByName": user_name(org.admin_id),
                            "createdDate": "1970-01-01T00:00:00.000Z", "fileName": f"objects/{obj.name}.object",
                            "fullName": obj.name, "id": "", "lastModifiedById": org.admin_id,
                            "lastModifiedByName": user_name(org.admin_id),
                            "lastModifiedDate": "1970-01-01T00:00:00.000Z", "type": "CustomObject"})
    return out


def op_list_metadata(org: Org, call: Any, user_id: str) -> str:
    queries = _children(call, "queries")
    if len(queries) > 3:
        raise Fault("INVALID_TYPE", "Too many queries: at most 3 ListMetadataQuery per call")
    results = []
    for q in queries:
        type_name = _text(q, "type") or ""
        results.extend(_file_properties(org, type_name, _text(q, "folder")))
    return serialize("listMetadataResponse", {"result": results})


def op_read_metadata(org: Org, call: Any, user_id: str) -> str:
    import xml.etree.ElementTree as std_et

    type_name = _text(call, "type") or ""
    names = [(c.text or "").strip() for c in _children(call, "fullNames")]
    if len(names) > 10:
        raise Fault("INVALID_TYPE", "readMetadata reads at most 10 components per call")
    stored = dict(org.store.deployed(type_name))
    records = []
    for name in names:
        body = stored.get(name)
        if body is None:
            records.append('<records xsi:nil="true"/>')
            continue
        root, _ = parse_xml(body)
        inner = "".join(std_et.tostring(child, encoding="unicode", default_namespace=MD_URI)
                        for child in root if child.tag.startswith("{" + MD_URI + "}")
                        and not child.tag.endswith("}fullName"))
        records.append(f'<records xsi:type="{escape(type_name)}"><fullName>{escape(name)}</fullName>{inner}</records>')
    return f"<readMetadataResponse><result>{''.join(records)}</result></readMetadataResponse>"


def op_retrieve(org: Org, call: Any, user_id: str) -> str:
    from .retrieve import retriever

    req = _child(call, "retrieveRequest") or _child(call, "request")  # jsforce names it "request"
    if req is None:
        raise Fault("INVALID_XML", "retrieve needs a retrieveRequest")
    api_version = _text(req, "apiVersion") or "65.0"
    if _children(req, "packageNames"):
        raise Fault("INVALID_CROSS_REFERENCE_KEY", "No package named '"
                    + (_children(req, "packageNames")[0].text or "") + "' found")
    unpackaged = _child(req, "unpackaged")
    manifest: dict[str, list[str]] = {}
    for t in _children(unpackaged, "types") if unpackaged is not None else []:
        manifest.setdefault(_text(t, "name") or "", []).extend((m.text or "").strip() for m in _children(t, "members"))
    if not manifest:
        raise Fault("INVALID_CROSS_REFERENCE_KEY", "Must specify one of packageNames, unpackaged or specificFiles")
    job = retriever(org).submit(manifest, _bool(req, "singlePackage", False), api_version)
    return serialize("retrieveResponse", {"result": {"done": False, "id": job.id, "state": "Queued"}})


def op_check_retrieve_status(org: Org, call: Any, user_id: str) -> str:
    from .retrieve import retriever

    job_id = _text(call, "asyncProcessId") or ""
    job = retriever(org).get(job_id)
    if job is None:
        raise Fault("INVALID_ID_FIELD", f"Invalid or null id: {job_id}")
    include_zip = _bool(call, "includeZip", True)
    return serialize("checkRetrieveStatusResponse", {"result": {
        "done": job.done, "errorMessage": job.error, "errorStatusCode": "UNKNOWN_EXCEPTION" if job.error else None,
        "fileProperties": job.properties, "id": job.id, "messages": job.messages, "status": job.status,
        "success": job.status == "Succeeded",
        "zipFile": base64.b64encode(job.zip_data).decode() if include_zip else None}})


OPERATIONS = {
    "retrieve": op_retrieve,
    "checkRetrieveStatus": op_check_retrieve_status,
    "readMetadata": op_read_metadata,
    "deploy": op_deploy,
    "checkDeployStatus": op_check_deploy_status,
    "cancelDeploy": op_cancel_deploy,
    "describeMetadata": op_describe_metadata,
    "listMetadata": op_list_metadata,
}


# ---------------------------------------------------------------------- REST deploy (/metadata/deployRequest)
_REST_OPTIONS = {"allowMissingFiles": "allow_missing_files", "checkOnly": "check_only",
                 "ignoreWarnings": "ignore_warnings", "purgeOnDelete": "purge_on_delete",
                 "rollbackOnError": "rollback_on_error", "singlePackage": "single_package"}


def _rest_body(job: DeployJob, include_details: bool) -> dict[str, Any]:
    result = {k: v for k, v in deploy_result(job, include_details).items() if v is not None}
    opts = job.options
    return {"id": job.id, "validatedDeployRequestId": None, "deployResult": result, "deployOptions": {
        "allowMissingFiles": opts.allow_missing_files, "autoUpdatePackage": False, "checkOnly": opts.check_only,
        "ignoreWarnings": opts.ignore_warnings, "performRetrieve": False, "purgeOnDelete": opts.purge_on_delete,
        "rollbackOnError": opts.rollback_on_error, "runTests": opts.run_tests, "singlePackage": opts.single_package,
        "testLevel": opts.test_level}}


def rest_deploy(org: Org, request: Request, version: str) -> Response:
    import json

    from .rest import api_call
    from .server import json_response

    user_id = api_call(org, request, version)
    try:
        return _rest_deploy(org, request, version, user_id)
    finally:
        request.close()  # the multipart parts are spooled to temporary files


def _rest_deploy(org: Org, request: Request, version: str, user_id: str) -> Response:
    import json

    from .server import json_response

    upload = request.files.get("file")
    if upload is None:
        raise SFError(400, "INVALID_MULTIPART_REQUEST", "A deploy request needs a 'file' part holding the zip")
    raw = request.form.get("entity_content") or request.form.get("json")
    if raw is None and "entity_content" in request.files:
        raw = request.files["entity_content"].read().decode("utf-8", "replace")
    try:
        given = (json.loads(raw) if raw else {}).get("deployOptions") or {}
        if not isinstance(given, dict):
            raise ValueError
    except (ValueError, AttributeError):
        raise SFError(400, "JSON_PARSER_ERROR", "entity_content must be a JSON object with deployOptions") from None
    options = DeployOptions()
    for key, attr in _REST_OPTIONS.items():
        if key in given:
            setattr(options, attr, bool(given[key]))
    options.test_level = str(given.get("testLevel") or "NoTestRun")
    options.run_tests = [str(t) for t in given.get("runTests") or []]
    data = upload.read(MAX_REQUEST_BYTES + 1)
    job = org.deployer.submit(data, options, user_id)
    return json_response(_rest_body(job, False), 201,
                         {"Location": f"/services/data/v{version}/metadata/deployRequest/{job.id}"})


def rest_deploy_status(org: Org, request: Request, version: str, job_id: str) -> Response:
    from .rest import api_call, body_json
    from .server import json_response

    api_call(org, request, version)
    job = org.deployer.get(job_id)
    if job is None:
        raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
    if request.method == "PATCH":
        wanted = (body_json(request) or {}).get("deployResult", {}).get("status")
        if wanted != "Canceling":
            raise SFError(400, "INVALID_FIELD", "Only deployResult.status = Canceling can be set")
        org.deployer.cancel(job.id)
        return json_response(_rest_body(job, False), 202)
    return json_response(_rest_body(job, request.args.get("includeDetails", "").lower() == "true"))


def routes() -> list[tuple[str, list[str], Any]]:
    return [
        ("/services/Soap/m/<version>", ["POST"], soap),
        ("/services/Soap/m/<version>/<org_part>", ["POST"], soap),
        ("/services/data/v<version>/metadata/deployRequest", ["POST"], rest_deploy),
        ("/services/data/v<version>/metadata/deployRequest/<job_id>", ["GET", "PATCH"], rest_deploy_status),
    ]
