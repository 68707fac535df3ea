"""Bulk API 1.0 (``/services/async/{version}/job...``) as the ``salesforce-bulk`` client speaks it.

Jobs (``jobInfo`` in XML or JSON; ``X-SFDC-Session`` auth), batches (CSV or JSON records for insert,
update, upsert, delete; SOQL text for query/queryAll), job close and abort, batch status and lists,
results (``"Id","Success","Created","Error"`` CSV, or JSON; a query batch's result-list then its CSV),
and the original request. ``concurrencyMode`` Serial processes a job's batches one at a time in the order
they were added; Parallel processes each as soon as it is polled. Processing happens when a batch (or its
job) is next read, so a client that polls sees Queued → Completed exactly as it would in an org.
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/asynch_api_reference.htm
"""

from __future__ import annotations

import csv
import io
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from defusedxml import ElementTree as ET
from defusedxml.common import DefusedXmlException
from werkzeug.wrappers import Request, Response

from .bulk2 import _csv_value, _json_value, ingest_columns
from .errors import SFError
from .soql import compile_soql

if TYPE_CHECKING:
    from .server import Org

NS = "http://www.force.com/2009/06/asyncapi/dataload"
OPERATIONS = ("insert", "update", "upsert", "delete", "query", "queryAll")
CONTENT_TYPES = {"CSV": "text/csv", "JSON": "application/json"}
MAX_BATCH_RECORDS = 10_000
TRANSACTION_ROWS = 200


class BulkError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Batch:
    id: str
    job_id: str
    body: bytes
    created: str
    state: str = "Queued"
    state_message: str | None = None
    processed: int = 0
    failed: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)  # ingest: id, success, created, error
    query_csv: str | None = None
    modstamp: str = ""


@dataclass
class Job:
    id: str
    info: dict[str, Any]
    batches: list[Batch] = field(default_factory=list)


class Bulk1:
    def __init__(self, org: Org) -> None:
        self.org = org
        self.lock = threading.RLock()
        self.jobs: dict[str, Job] = {}
        self.batches: dict[str, Batch] = {}


def _bulk1(org: Org) -> Bulk1:
    state = getattr(org, "_bulk1", None)
    if state is None:
        state = Bulk1(org)
        org._bulk1 = state  # type: ignore[attr-defined]
    return state


# ------------------------------------------------------------------------------------------ rendering
def _wants_json(request: Request, job: Job | None = None) -> bool:
    if job is not None:
        return job.info["contentType"] == "JSON"
    return (request.content_type or "").startswith("application/json")


def _xml(root: str, fields: list[tuple[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    inner = "".join(f"<{k}>{value(v)}</{k}>" for k, v in fields if v is not None)
    return f'<{root} xmlns="{NS}">{inner}</{root}>'


def _respond(payload: dict[str, Any] | list, as_json: bool, root: str, status: int = 200) -> Response:
    if as_json:
        return Response(json.dumps(payload), status, content_type="application/json")
    if isinstance(payload, list):
        raise AssertionError("lists are rendered by their callers")
    body = '<?xml version="1.0" encoding="UTF-8"?>' + _xml(root, list(payload.items()))
    return Response(body, status, content_type="application/xml")


def _error(err: BulkError, as_json: bool) -> Response:
    if as_json:
        return Response(json.dumps({"exceptionCode": err.code, "exceptionMessage": err.message}), err.status,
                        content_type="application/json")
    body = ('<?xml version="1.0" encoding="UTF-8"?>'
            + _xml("error", [("exceptionCode", err.code), ("exceptionMessage", err.message)]))
    return Response(body, err.status, content_type="application/xml")


def _job_info(job: Job) -> dict[str, Any]:
    info = job.info
    batches = job.batches
    count = {s: sum(1 for b in batches if b.state == s) for s in ("Queued", "InProgress", "Completed", "Failed",
                                                                    "NotProcessed")}
    return {
        "id": job.id, "operation": info["operation"], "object": info["object"], "createdById": info["createdById"],
        "createdDate": info["createdDate"], "systemModstamp": info["systemModstamp"], "state": info["state"],
        "externalIdFieldName": info.get("externalIdFieldName"), "concurrencyMode": info["concurrencyMode"],
        "contentType": info["contentType"], "numberBatchesQueued": count["Queued"],
        "numberBatchesInProgress": count["InProgress"], "numberBatchesCompleted": count["Completed"],
        "numberBatchesFailed": count["Failed"], "numberBatchesTotal": len(batches),
        "numberRecordsProcessed": sum(b.processed for b in batches), "numberRetries": 0,
        "apiVersion": info["apiVersion"], "numberRecordsFailed": sum(b.failed for b in batches),
        "totalProcessingTime": 0, "apiActiveProcessingTime": 0, "apexProcessingTime": 0,
    }


def _batch_info(batch: Batch) -> dict[str, Any]:
    return {"id": batch.id, "jobId": batch.job_id, "state": batch.state, "stateMessage": batch.state_message,
            "createdDate": batch.created, "systemModstamp": batch.modstamp or batch.created,
            "numberRecordsProcessed": batch.processed, "numberRecordsFailed": batch.failed,
            "totalProcessingTime": 0, "apiActiveProcessingTime": 0, "apexProcessingTime": 0}


# ------------------------------------------------------------------------------------------ parsing
def _job_request(request: Request) -> dict[str, Any]:
    raw = request.get_data()
    if _wants_json(request):
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise BulkError("InvalidJob", "Unable to parse the job: not JSON") from None
        if not isinstance(body, dict):
            raise BulkError("InvalidJob", "Unable to parse the job: a JSON object is required")
        return {k: v for k, v in body.items() if isinstance(v, str)}
    try:
        root = ET.fromstring(raw)
    except (ET.ParseError, DefusedXmlException, ValueError):
        raise BulkError("InvalidJob", "Unable to parse the job: not XML") from None
    if root.tag not in (f"{{{NS}}}jobInfo", "jobInfo"):
        raise BulkError("InvalidJob", f"Unable to parse Job: unexpected element {root.tag}")
    return {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in root}


# ------------------------------------------------------------------------------------------ handlers
def _session(org: Org, request: Request) -> str:
    token = request.headers.get("X-SFDC-Session", "")
    if not token:
        raise BulkError("InvalidSessionId", "Invalid session id", 400)
    try:
        return org.oauth.validate(token)
    except SFError:
        raise BulkError("InvalidSessionId", "Invalid session id", 400) from None


def _job(org: Org, job_id: str) -> Job:
    job = _bulk1(org).jobs.get(job_id)
    if job is None:
        raise BulkError("InvalidJob", f"Unable to find job for the id: {job_id}")
    return job


def _batch(job: Job, batch_id: str) -> Batch:
    batch = next((b for b in job.batches if b.id == batch_id), None)
    if batch is None:
        raise BulkError("InvalidBatch", f"Unable to find batch for id: {batch_id}")
    return batch


def create_job(org: Org, request: Request, version: str) -> Response:
    body = _job_request(request)
    user_id = _session(org, request)
    operation = body.get("operation", "")
    if operation not in OPERATIONS:
        raise BulkError("InvalidJob", f"Invalid operation: {operation}" if operation else "operation is required")
    try:
        obj = org.store.sobject(body.get("object", ""))
    except SFError:
        raise BulkError("InvalidEntity", f"Entity '{body.get('object', '')}' is not supported by the Bulk API.") from None
    content_type = body.get("contentType") or "CSV"
    if content_type not in CONTENT_TYPES:
        raise BulkError("InvalidJob", f"contentType {content_type} is not supported by this org (CSV and JSON are)")
    mode = body.get("concurrencyMode") or "Parallel"
    if mode not in ("Parallel", "Serial"):
        raise BulkError("InvalidJob", f"Invalid concurrency mode: {mode}")
    if operation == "upsert":
        ext = obj.field_ci(body.get("externalIdFieldName") or "")
        if ext is None or not (ext.external_id or ext.name == "Id"):
            raise BulkError("InvalidJob", f"External ID was blank for {obj.name}. An External ID must be specified "
                            "for upsert.")
    stamp = org.clock.stamp()
    job = Job(org.store.ids.new("750"),
              {"operation": operation, "object": obj.name, "createdById": user_id, "createdDate": stamp,
               "systemModstamp": stamp, "state": "Open", "externalIdFieldName": body.get("externalIdFieldName"),
               "concurrencyMode": mode, "contentType": content_type, "apiVersion": version})
    state = _bulk1(org)
    with state.lock:
        state.jobs[job.id] = job
    org.usage.add("DailyApiRequests")
    return _respond(_job_info(job), _wants_json(request), "jobInfo", 201)


def job_detail(org: Org, request: Request, version: str, job_id: str) -> Response:
    _session(org, request)
    job = _job(org, job_id)
    if request.method == "POST":
        wanted = _job_request(request).get("state")
        with _bulk1(org).lock:
            if wanted == "Closed":
                if job.info["state"] != "Open":
                    raise BulkError("InvalidJobState", f"Job {job.id} is not open: {job.info['state']}")
                job.info["state"] = "Closed"
            elif wanted == "Aborted":
                if job.info["state"] not in ("Open", "Closed"):
                    raise BulkError("InvalidJobState", f"Job {job.id} can not be aborted: {job.info['state']}")
                job.info["state"] = "Aborted"
                for batch in job.batches:
                    if batch.state == "Queued":
                        batch.state, batch.state_message = "NotProcessed", "Job aborted"
            else:
                raise BulkError("InvalidJob", f"Invalid state: {wanted}")
            job.info["systemModstamp"] = org.clock.stamp()
    else:
        _process(org, job, None)
    return _respond(_job_info(job), _wants_json(request, job), "jobInfo")


def add_batch(org: Org, request: Request, version: str, job_id: str) -> Response:
    _session(org, request)
    job = _job(org, job_id)
    if job.info["state"] != "Open":
        raise BulkError("InvalidJobState", f"Job {job.id} is not open: {job.info['state']}")
    body = request.get_data()
    if len(body) > 10 * 1024 * 1024:
        raise BulkError("InvalidBatch", "Exceeded max size limit of 10000000")
    batch = Batch(org.store.ids.new("751"), job.id, body, org.clock.stamp())
    state = _bulk1(org)
    with state.lock:
        job.batches.append(batch)
        state.batches[batch.id] = batch
    org.usage.add("DailyBulkApiBatches")
    return _respond(_batch_info(batch), _wants_json(request, job), "batchInfo", 201)


def list_batches(org: Org, request: Request, version: str, job_id: str) -> Response:
    _session(org, request)
    job = _job(org, job_id)
    if request.method == "POST":
        return add_batch(org, request, version, job_id)
    _process(org, job, None)
    infos = [_batch_info(b) for b in job.batches]
    if _wants_json(request, job):
        return Response(json.dumps({"batchInfo": infos}), 200, content_type="application/json")
    body = ('<?xml version="1.0" encoding="UTF-8"?>' f'<batchInfoList xmlns="{NS}">'
            + "".join(_xml("batchInfo", list(i.items())).replace(f' xmlns="{NS}"', "") for i in infos)
            + "</batchInfoList>")
    return Response(body, 200, content_type="application/xml")


def batch_detail(org: Org, request: Request, version: str, job_id: str, batch_id: str) -> Response:
    _session(org, request)
    job = _job(org, job_id)
    batch = _batch(job, batch_id)
    _process(org, job, batch)
    return _respond(_batch_info(batch), _wants_json(request, job), "batchInfo")


def batch_request(org: Org, request: Request, version: str, job_id: str, batch_id: str) -> Response:
    _session(org, request)
    job = _job(org, job_id)
    batch = _batch(job, batch_id)
    kind = "text/csv" if job.info["operation"].startswith("query") else CONTENT_TYPES[job.info["contentType"]]
    return Response(batch.body, 200, content_type=kind)


def batch_result(org: Org, request: Request, version: str, job_id: str, batch_id: str) -> Response:
    _session(org, request)
    job = _job(org, job_id)
    batch = _batch(job, batch_id)
    _process(org, job, batch)
    if batch.state != "Completed":
        raise BulkError("InvalidBatch", f"Batch not completed: {batch.state}")
    as_json = _wants_json(request, job)
    if job.info["operation"].startswith("query"):
        result_id = "752" + batch.id[3:]
        if as_json:
            return Response(json.dumps([result_id]), 200, content_type="application/json")
        return Response(f'<?xml version="1.0" encoding="UTF-8"?><result-list xmlns="{NS}"><result>{result_id}'
                        "</result></result-list>", 200, content_type="application/xml")
    if as_json:
        rows = [{"id": r["id"] or None, "success": r["success"], "created": r["created"],
                 "errors": [{"message": r["error"]}] if r["error"] else []} for r in batch.results]
        return Response(json.dumps(rows), 200, content_type="application/json")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["Id", "Success", "Created", "Error"])
    for r in batch.results:
        writer.writerow([r["id"], "true" if r["success"] else "false", "true" if r["created"] else "false", r["error"]])
    return Response(buf.getvalue(), 200, content_type="text/csv")


def query_result(org: Org, request: Request, version: str, job_id: str, batch_id: str, result_id: str) -> Response:
    _session(org, request)
    job = _job(org, job_id)
    batch = _batch(job, batch_id)
    if batch.query_csv is None or result_id != "752" + batch.id[3:]:
        raise BulkError("InvalidBatch", f"Unable to find result for id: {result_id}")
    return Response(batch.query_csv, 200, content_type="text/csv")


# ------------------------------------------------------------------------------------------ processing
def _process(org: Org, job: Job, target: Batch | None) -> None:
    """Run the queued batches this read needs: in Serial mode every earlier batch of the job first (one at a
    time, in order); in Parallel mode just the one read (or all, when the job is read)."""
    with _bulk1(org).lock:
        if job.info["concurrencyMode"] == "Serial" or target is None:
            upto = job.batches if target is None else job.batches[:job.batches.index(target) + 1]
        else:
            upto = [target]
        for batch in upto:
            if batch.state == "Queued":
                _run(org, job, batch)


def _run(org: Org, job: Job, batch: Batch) -> None:
    batch.state = "InProgress"
    try:
        if job.info["operation"].startswith("query"):
            _run_query(org, job, batch)
        else:
            _run_ingest(org, job, batch)
        batch.state = "Completed"
    except (BulkError, SFError) as err:
        batch.state = "Failed"
        batch.state_message = f"{err.code} : {err.message}"
    batch.modstamp = org.clock.stamp()


def _records(job: Job, batch: Batch) -> tuple[list[str], list[list[str]]]:
    text = batch.body.decode("utf-8-sig", errors="replace")
    if job.info["contentType"] == "JSON":
        try:
            items = json.loads(text)
        except ValueError:
            raise BulkError("InvalidBatch", "Failed to parse the batch: not JSON") from None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BulkError("InvalidBatch", "Failed to parse the batch: a JSON array of records is required")
        header = sorted({k for item in items for k in item if k != "attributes"})
        rows = [["#N/A" if item.get(k, "") is None else ("" if k not in item else str(item[k]).lower()
                 if isinstance(item[k], bool) else str(item[k])) for k in header] for item in items]
        return header, rows
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise BulkError("InvalidBatch", "Failed to process query: the batch is empty")
    return header, list(reader)


def _run_ingest(org: Org, job: Job, batch: Batch) -> None:
    store = org.store
    obj = store.sobject(job.info["object"])
    header, rows = _records(job, batch)
    if len(rows) > MAX_BATCH_RECORDS:
        raise BulkError("InvalidBatch", f"Records in a batch exceed {MAX_BATCH_RECORDS}")
    columns = ingest_columns(store, obj, header)
    op = job.info["operation"]
    ext_field = obj.field_ci(job.info.get("externalIdFieldName") or "") if op == "upsert" else None
    with store.lock:
        store.defer_notifications()
        try:
            for start in range(0, len(rows), TRANSACTION_ROWS):
                with store.transaction_stamp():
                    for row in rows[start:start + TRANSACTION_ROWS]:
                        try:
                            rid, created = org.bulk.ingest_row(obj, op, columns, row, ext_field, None,
                                                               job.info["createdById"])
                            batch.results.append({"id": rid, "success": True, "created": created, "error": ""})
                        except SFError as err:
                            batch.failed += 1
                            rid = ""
                            if op in ("update", "delete"):
                                rid = next((v for (n, _), v in zip(columns, row) if n == "Id"), "")
                            batch.results.append({"id": rid, "success": False, "created": False,
                                                  "error": f"{err.code}:{err.message}:{','.join(err.fields)} --"})
                        batch.processed += 1
        finally:
            store.flush_notifications()


def _run_query(org: Org, job: Job, batch: Batch) -> None:
    text = batch.body.decode("utf-8", errors="replace").strip()
    try:
        q = compile_soql(text, org.store.objects, org.clock.today())
    except SFError as err:
        raise BulkError("InvalidBatch", f"Failed to process query: {err.code}: {err.message.strip()}") from None
    if q.obj.name != job.info["object"]:
        raise BulkError("InvalidBatch", f"Failed to process query: the query is on {q.obj.name}, the job on "
                        f"{job.info['object']}")
    if q.aggregate or q.count_only:
        raise BulkError("InvalidBatch", "Failed to process query: Aggregate Relationship is not supported by Bulk API")
    sql, params = q.sql(include_deleted=job.info["operation"] == "queryAll")
    with org.store.lock:
        rows = org.store.db.execute(sql, params).fetchall()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(q.csv_headers())
    join_keys = list(q.join_ids)
    ncols = len(q.columns)
    for row in rows:
        joins = dict(zip(join_keys, row[ncols:]))
        out = []
        for c, v in zip(q.columns, row):
            dead = any(joins.get(".".join(r for r, _ in c.path[:i + 1])) is None for i in range(len(c.path)))
            out.append("" if dead else _csv_value(_json_value(c.field, v)))
        writer.writerow(out)
    batch.query_csv = buf.getvalue()
    batch.processed = len(rows)


# ------------------------------------------------------------------------------------------ routing
def _guard(handler: Any) -> Any:
    def run(org: Org, request: Request, **kw: Any) -> Response:
        try:
            return handler(org, request, **kw)
        except BulkError as err:
            return _error(err, _wants_json(request))
    run.__name__ = handler.__name__
    return run


def routes() -> list[tuple[str, list[str], Any]]:
    base = "/services/async/<version>/job"
    return [
        (base, ["POST"], _guard(create_job)),
        (base + "/<job_id>", ["GET", "POST"], _guard(job_detail)),
        (base + "/<job_id>/batch", ["GET", "POST"], _guard(list_batches)),
        (base + "/<job_id>/batch/<batch_id>", ["GET"], _guard(batch_detail)),
        (base + "/<job_id>/batch/<batch_id>/request", ["GET"], _guard(batch_request)),
        (base + "/<job_id>/batch/<batch_id>/result", ["GET"], _guard(batch_result)),
        (base + "/<job_id>/batch/<batch_id>/result/<result_id>", ["GET"], _guard(query_result)),
    ]

