"""Bulk API 2.0: ingest jobs (insert/update/upsert/delete/hardDelete from CSV) and query jobs
(query/queryAll) with CSV result pages, locators and the job state machine.

Uploaded CSV and per-record results live in temporary files and query results in a snapshot table,
so nothing proportional to the job's size is held in memory; result downloads are streamed.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from . import ids
from .errors import SFError, not_found
from .rest import api_call, body_json, next_assignee, upsert_one
from .server import json_response
from .soql import compile_soql
from .store import fmt_ms

if TYPE_CHECKING:
    from .server import Org

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
INGEST_OPS = ("insert", "update", "upsert", "delete", "hardDelete")
CHUNK = 2000
# Salesforce saves Bulk records in transactions of 200: the records of one share a SystemModstamp.
TRANSACTION_ROWS = 200


def _locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str) -> int:
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        raise SFError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str) and len(v) == 28 and v.endswith("+0000") and v[10] == "T":
        return v[:23] + "Z"  # Bulk API CSV writes datetimes in UTC with Z
    return str(v)


class Job:
    def __init__(self, kind: str, info: dict[str, Any], directory: str) -> None:
        self.kind = kind
        self.info = info
        self.dir = directory
        self.lock = threading.Lock()
        self.table: str | None = None
        self.upload_path = os.path.join(directory, "upload.csv")
        self.uploaded = False
        self.started = 0.0

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def state(self) -> str:
        return self.info["state"]


def ingest_columns(store: Any, obj: Any, header: list[str]) -> list[tuple[str, Any]]:
    """A CSV header's columns: (field name, None) or, for ``Rel__r.ExtId__c``, (lookup field, (target, field))."""
    columns: list[tuple[str, Any]] = []
    for col in header:
        if "." in col:
            rel, _, ext = col.partition(".")
            ref = obj.relationship(rel)
            target = store.objects.get(ref.reference_to[0]) if ref else None
            tf = target.field_ci(ext) if target else None
            if ref is None or tf is None:
                raise SFError(400, "InvalidBatch", f"Field name not found : {col}")
            columns.append((ref.name, (target, tf)))
            continue
        f = obj.field_ci(col)
        if f is None:
            raise SFError(400, "InvalidBatch", f"Field name not found : {col}")
        columns.append((f.name, None))
    return columns


class Bulk2:
    def __init__(self, org: Org, delay: float = 0.0) -> None:
        self.org = org
        self.delay = delay
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._root = tempfile.mkdtemp(prefix="sf-emu-bulk-")
        self._thread = threading.Thread(target=self._worker, name="sf-bulk2", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
        self.clear()
        shutil.rmtree(self._root, ignore_errors=True)

    def clear(self) -> None:
        with self._lock:
            jobs = list(self.jobs.values())
            self.jobs.clear()
        for job in jobs:
            self._drop(job)

    def _drop(self, job: Job) -> None:
        if job.table:
            with self.org.store.lock:
                self.org.store.db.execute(f'DROP TABLE IF EXISTS "{job.table}"')
        shutil.rmtree(job.dir, ignore_errors=True)

    def get(self, kind: str, job_id: str) -> Job:
        job = self.jobs.get(ids.normalize(job_id) or job_id)
        if job is None or job.kind != kind:
            raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def _new(self, kind: str, info: dict[str, Any], user_id: str, version: str) -> Job:
        job_id = ids.make_id("750", self.org.store.ids.reserve(1))
        now = fmt_ms(self.org.clock.now_ms() // 1000 * 1000)
        full = {"id": job_id, **info, "createdById": user_id, "createdDate": now, "systemModstamp": now}
        full.setdefault("concurrencyMode", "Parallel")
        full["apiVersion"] = float(version)
        directory = os.path.join(self._root, job_id)
        os.makedirs(directory, exist_ok=True)
        job = Job(kind, full, directory)
        job.info["_stats"] = {"processed": 0, "failed": 0, "retries": 0, "time": 0}
        with self._lock:
            self.jobs[job_id] = job
        return job

    def describe(self, job: Job, full: bool = True) -> dict[str, Any]:
        info = {k: v for k, v in job.info.items() if not k.startswith("_")}
        stats = job.info["_stats"]
        if job.kind == "ingest" and job.state == "Open":
            info["contentUrl"] = f"services/data/v{info['apiVersion']}/jobs/ingest/{job.id}/batches"
        if full:
            info["jobType"] = "V2Ingest" if job.kind == "ingest" else "V2Query"
            info["numberRecordsProcessed"] = stats["processed"]
            if job.kind == "ingest":
                info["numberRecordsFailed"] = stats["failed"]
            info["retries"] = stats["retries"]
            info["totalProcessingTime"] = stats["time"]
            if job.kind == "ingest":
                info["apiActiveProcessingTime"] = stats["time"]
                info["apexProcessingTime"] = 0
            else:
                info["isPkChunkingSupported"] = True
        return info

    def _set_state(self, job: Job, state: str, error: str | None = None) -> None:
        job.info["state"] = state
        job.info["systemModstamp"] = fmt_ms(self.org.clock.now_ms() // 1000 * 1000)
        if error:
            job.info["errorMessage"] = error

    # ------------------------------------------------------------------ worker
    def enqueue(self, job: Job) -> None:
        self._queue.put(job.id)

    def _worker(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            job = self.jobs.get(job_id)
            if job is None or job.state in ("Aborted", "Failed", "JobComplete"):
                continue
            if self.delay:
                self.org.stopping.wait(self.delay)
            if job.state == "Aborted":
                continue
            t0 = time.perf_counter()
            self._set_state(job, "InProgress")
            try:
                if self.org.faults.bulk_should_fail(f"/services/data/jobs/{job.kind}"):
                    if job.kind == "ingest":
                        shutil.copyfile(job.upload_path, os.path.join(job.dir, "unprocessed.csv")) \
                            if job.uploaded else None
                    self._set_state(job, "Failed", "InternalServerError : Failed to process query: retry later"
                                    if job.kind == "query" else "InternalServerError : retry later")
                    continue
                if job.kind == "query":
                    self._run_query(job)
                else:
                    self._run_ingest(job)
            except SFError as err:
                self._set_state(job, "Failed", f"{err.code} : {err.message}")
            except Exception as exc:  # pragma: no cover
                self._set_state(job, "Failed", f"InternalServerError : {exc}")
            finally:
                job.info["_stats"]["time"] = int((time.perf_counter() - t0) * 1000)

    # ------------------------------------------------------------------ query
    def _run_query(self, job: Job) -> None:
        store = self.org.store
        q = job.info["_query"]
        sql, params = q.sql(include_deleted=job.info["operation"] == "queryAll")
        table = f"_bq_{job.id}"
        with store.lock:
            store.db.execute(f'CREATE TABLE "{table}" AS {sql}', params)
            n = store.db.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()[0] or 0
        job.table = table
        job.info["_stats"]["processed"] = n
        job.info["_total"] = n
        if job.state != "Aborted":
            self._set_state(job, "JobComplete")

    def query_results(self, job: Job, locator: str | None, max_records: int | None) -> Response:
        if job.state != "JobComplete":
            raise SFError(400, "INVALIDJOBSTATE" if job.state != "Aborted" else "INVALIDJOBSTATE",
                          f"Job {job.id} is not complete. The job state is {job.state}.")
        total = job.info.get("_total", 0)
        start = _offset(locator) if locator else 0
        limit = max_records if max_records else total - start
        end = min(total, start + limit)
        q = job.info["_query"]
        delim = DELIMITERS[job.info.get("columnDelimiter", "COMMA")]
        ending = ENDINGS[job.info.get("lineEnding", "LF")]
        store = self.org.store
        table = job.table
        ncols = len(q.columns)
        join_keys = list(q.join_ids)

        def generate() -> Iterator[bytes]:
            buf = io.StringIO()
            writer = csv.writer(buf, delimiter=delim, lineterminator=ending, quoting=csv.QUOTE_ALL)
            writer.writerow(q.csv_headers())
            pos = start
            while pos < end:
                n = min(5000, end - pos)
                with store.lock:
                    rows = store.db.execute(f'SELECT * FROM "{table}" WHERE rowid > ? AND rowid <= ? ORDER BY rowid',
                                            (pos, pos + n)).fetchall()
                for row in rows:
                    join_vals = dict(zip(join_keys, row[ncols:]))
                    out = []
                    for c, v in zip(q.columns, row):
                        dead = any(join_vals.get(".".join(r for r, _ in c.path[:i + 1])) is None
                                   for i in range(len(c.path)))
                        out.append("" if dead else _csv_value(_json_value(c.field, v)))
                    writer.writerow(out)
                pos += n
                yield buf.getvalue().encode("utf-8")
                buf.seek(0)
                buf.truncate()
            if buf.tell():
                yield buf.getvalue().encode("utf-8")

        resp = Response(generate(), 200, content_type="text/csv")
        resp.headers["Sforce-Locator"] = _locator(end) if end < total else "null"
        resp.headers["Sforce-NumberOfRecords"] = str(end - start)
        return resp

    # ------------------------------------------------------------------ ingest
    def _run_ingest(self, job: Job) -> None:
        store = self.org.store
        obj = store.sobject(job.info["object"])
        op = job.info["operation"]
        delim = DELIMITERS[job.info.get("columnDelimiter", "COMMA")]
        user_id = job.info["createdById"]
        ext_field = None
        if op == "upsert":
            ext_field = obj.field_ci(job.info.get("externalIdFieldName") or "")
            if ext_field is None:
                raise SFError(400, "InvalidJob", f"External ID was blank for {obj.name}")
        rule_id = job.info.get("assignmentRuleId")
        ok_path = os.path.join(job.dir, "success.csv")
        bad_path = os.path.join(job.dir, "failed.csv")
        un_path = os.path.join(job.dir, "unprocessed.csv")
        if not job.uploaded:
            open(job.upload_path, "w").close()
        with open(job.upload_path, newline="", encoding="utf-8") as src, \
                open(ok_path, "w", newline="", encoding="utf-8") as okf, \
                open(bad_path, "w", newline="", encoding="utf-8") as badf:
            reader = csv.reader(src, delimiter=delim)
            header = next(reader, None)
            if header is None:
                self._set_state(job, "JobComplete")
                return
            ok = csv.writer(okf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            bad = csv.writer(badf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            ok.writerow(["sf__Id", "sf__Created", *header])
            bad.writerow(["sf__Id", "sf__Error", *header])
            # validate columns
            columns = ingest_columns(store, obj, header)
            stats = job.info["_stats"]
            rows_iter = iter(reader)
            aborted = False
            while True:
                chunk = [r for _, r in zip(range(CHUNK), rows_iter)]
                if not chunk:
                    break
                if job.state == "Aborted":
                    aborted = True
                    with open(un_path, "a", newline="", encoding="utf-8") as uf:
                        uw = csv.writer(uf, lineterminator="\n")
                        uw.writerow(header)
                        uw.writerows(chunk)
                        uw.writerows(rows_iter)
                    break
                with store.lock:
                    store.defer_notifications()
                    store.db.execute("BEGIN")
                    try:
                        for start in range(0, len(chunk), TRANSACTION_ROWS):
                            with store.transaction_stamp():
                                for row in chunk[start:start + TRANSACTION_ROWS]:
                                    try:
                                        rid, created = self._ingest_row(obj, op, columns, row, ext_field, rule_id,
                                                                        user_id)
                                        ok.writerow([rid, "true" if created else "false", *row])
                                    except SFError as err:
                                        stats["failed"] += 1
                                        rid = ""
                                        if op in ("update", "delete", "hardDelete"):
                                            rid = next((v for (n, _), v in zip(columns, row) if n == "Id"), "")
                                        bad.writerow([rid, f"{err.code}:{err.message}:{','.join(err.fields)} --", *row])
                                    stats["processed"] += 1
                        store.db.execute("COMMIT")
                    except BaseException:
                        store.db.execute("ROLLBACK")
                        store.discard_notifications()
                        raise
                store.flush_notifications()
            self.org.usage.add("DailyBulkV2IngestRecords", stats["processed"])
            self.org.usage.add("DailyBulkApiBatches", max(1, (stats["processed"] + 9999) // 10000))
        if not aborted:
            self._set_state(job, "JobComplete")

    def ingest_row(self, obj: Any, op: str, columns: list, row: list[str], ext_field: Any, rule_id: Any,
                   user_id: str) -> tuple[str, bool]:
        """One CSV row of an ingest (Bulk 1.0 batches share it): (record id, created)."""
        return self._ingest_row(obj, op, columns, row, ext_field, rule_id, user_id)

    def _ingest_row(self, obj: Any, op: str, columns: list, row: list[str], ext_field: Any, rule_id: Any,
                    user_id: str) -> tuple[str, bool]:
        store = self.org.store
        if len(row) != len(columns):
            raise SFError(400, "INVALID_FIELD", "Number of columns does not match the header", [])
        values: dict[str, Any] = {}
        for (name, ref), raw in zip(columns, row):
            if raw == "":
                continue  # empty means "leave as is"; #N/A sets null
            value: Any = None if raw == "#N/A" else raw
            if ref is not None and value is not None:
                target, tf = ref
                matches = store.find_by(target, tf, value)
                if len(matches) != 1:
                    raise SFError(400, "INVALID_FIELD", f"Foreign key external ID: {value} not found for field "
                                  f"{tf.name} in entity {target.name}", [name])
                value = matches[0]
            values[name] = value
        if op == "insert":
            if rule_id and obj.name == "Lead":
                owner = next_assignee(self.org, None if rule_id in (True, "TRUE", "true") else rule_id)
                if owner:
                    values["OwnerId"] = owner
            return store.insert(obj, values, user_id), True
        if op in ("update", "delete", "hardDelete"):
            rid = values.pop("Id", None)
            norm = ids.normalize(rid) if rid else None
            if not norm:
                raise SFError(400, "MISSING_ARGUMENT" if not rid else "MALFORMED_ID",
                              "Id not specified in an update call" if not rid else f"bad id {rid}", [])
            if op == "update":
                store.update(obj, norm, values, user_id)
            else:
                store.delete(obj, norm, user_id)
                if op == "hardDelete":
                    store.purge(obj, norm)
            return norm, False
        # upsert
        key = ext_field.name
        value = values.pop(key, None)
        if value in (None, ""):
            raise SFError(400, "MISSING_ARGUMENT", f"{key} not specified", [])
        res = upsert_one(self.org, None, obj, ext_field, value, values, user_id)
        if isinstance(res, SFError):
            raise res
        return res

    def ingest_file(self, job: Job, kind: str) -> Response:
        if job.state not in ("JobComplete", "Failed", "Aborted"):
            raise SFError(400, "INVALIDJOBSTATE", f"Job {job.id} is not complete. The job state is {job.state}.")
        name = {"successfulResults": "success.csv", "failedResults": "failed.csv",
                "unprocessedrecords": "unprocessed.csv"}[kind]
        path = os.path.join(job.dir, name)
        if not os.path.exists(path):
            header = {"successfulResults": "\"sf__Id\",\"sf__Created\"\n",
                      "failedResults": "\"sf__Id\",\"sf__Error\"\n"}.get(kind, "")
            return Response(header, 200, content_type="text/csv")

        def stream() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                while True:
                    block = fh.read(256 * 1024)
                    if not block:
                        return
                    yield block

        return Response(stream(), 200, content_type="text/csv")


def _json_value(f: Any, v: Any) -> Any:
    from .store import to_json

    return to_json(f, v)


# ---------------------------------------------------------------------- HTTP handlers
def _bulk_call(org: Org, request: Request, version: str) -> str:
    return api_call(org, request, version)


def ingest_jobs(org: Org, request: Request, version: str) -> Response:
    user_id = _bulk_call(org, request, version)
    if request.method == "GET":
        return _list(org, "ingest", request)
    body = body_json(request)
    op = body.get("operation")
    if op not in INGEST_OPS:
        raise SFError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {op}")
    obj_name = body.get("object")
    try:
        obj = org.store.sobject(obj_name or "")
    except SFError:
        raise SFError(400, "INVALIDJOB", f"InvalidJob : Invalid object: {obj_name}") from None
    if op == "upsert":
        ext = obj.field_ci(body.get("externalIdFieldName") or "")
        if ext is None or not (ext.external_id or ext.name == "Id"):
            raise SFError(400, "INVALIDJOB", "InvalidJob : External ID was blank for " + obj.name)
    if body.get("contentType", "CSV") != "CSV":
        raise SFError(400, "INVALIDJOB", "InvalidJob : contentType must be CSV")
    info = {"operation": op, "object": obj.name}
    if op == "upsert":
        info["externalIdFieldName"] = ext.name
    info.update({"state": "Open", "concurrencyMode": "Parallel", "contentType": "CSV",
                 "lineEnding": body.get("lineEnding", "LF"), "columnDelimiter": body.get("columnDelimiter", "COMMA")})
    if info["lineEnding"] not in ENDINGS or info["columnDelimiter"] not in DELIMITERS:
        raise SFError(400, "INVALIDJOB", "InvalidJob : invalid lineEnding or columnDelimiter")
    if body.get("assignmentRuleId"):
        info["assignmentRuleId"] = body["assignmentRuleId"]
    job = org.bulk._new("ingest", info, user_id, version)
    out = org.bulk.describe(job, full=False)
    return json_response(out, 200)


def _list(org: Org, kind: str, request: Request) -> Response:
    jobs = [j for j in org.bulk.jobs.values() if j.kind == kind]
    if kind == "ingest" and request.args.get("jobType"):
        pass
    records = []
    for j in jobs:
        d = org.bulk.describe(j, full=False)
        d["jobType"] = "V2Ingest" if kind == "ingest" else "V2Query"
        records.append(d)
    return json_response({"done": True, "records": records, "nextRecordsUrl": None})


def ingest_job(org: Org, request: Request, version: str, job_id: str) -> Response:
    _bulk_call(org, request, version)
    job = org.bulk.get("ingest", job_id)
    if request.method == "GET":
        return json_response(org.bulk.describe(job))
    if request.method == "DELETE":
        if job.state not in ("UploadComplete", "JobComplete", "Aborted", "Failed"):
            raise SFError(400, "INVALIDJOBSTATE", f"Job {job.id} can't be deleted in state {job.state}")
        with org.bulk._lock:
            org.bulk.jobs.pop(job.id, None)
        org.bulk._drop(job)
        return Response(status=204)
    state = body_json(request).get("state")
    if state == "UploadComplete":
        if job.state != "Open":
            raise SFError(409, "INVALIDJOBSTATE", f"Job {job.id} is not Open. The job state is {job.state}.")
        org.bulk._set_state(job, "UploadComplete")
        org.bulk.enqueue(job)
    elif state == "Aborted":
        if job.state in ("JobComplete", "Failed", "Aborted"):
            raise SFError(409, "INVALIDJOBSTATE", f"Job {job.id} can't be aborted in state {job.state}.")
        org.bulk._set_state(job, "Aborted")
    else:
        raise SFError(400, "INVALIDJOBSTATE", f"Invalid state: {state}")
    return json_response(org.bulk.describe(job, full=False))


def ingest_batches(org: Org, request: Request, version: str, job_id: str) -> Response:
    _bulk_call(org, request, version)
    job = org.bulk.get("ingest", job_id)
    if job.state != "Open":
        raise SFError(409, "INVALIDJOBSTATE", f"Job {job.id} is not Open. The job state is {job.state}.")
    stream = request.stream
    with job.lock, open(job.upload_path, "ab") as fh:
        first = not job.uploaded
        size = 0
        skip_header = not first
        pending = b""
        while True:
            block = stream.read(1024 * 1024)
            if not block:
                break
            if skip_header:
                pending += block
                nl = pending.find(b"\n")
                if nl < 0:
                    continue
                block, pending, skip_header = pending[nl + 1:], b"", False
            fh.write(block)
            size += len(block)
            if size > 150 * 1024 * 1024:
                raise SFError(400, "INVALIDBATCH", "Upload exceeds the 150 MB limit")
        job.uploaded = True
    return Response(status=201)


def ingest_results(org: Org, request: Request, version: str, job_id: str, kind: str) -> Response:
    _bulk_call(org, request, version)
    job = org.bulk.get("ingest", job_id)
    if kind not in ("successfulResults", "failedResults", "unprocessedrecords"):
        raise not_found()
    return org.bulk.ingest_file(job, kind)


def query_jobs(org: Org, request: Request, version: str) -> Response:
    user_id = _bulk_call(org, request, version)
    if request.method == "GET":
        return _list(org, "query", request)
    body = body_json(request)
    op = body.get("operation", "query")
    if op not in ("query", "queryAll"):
        raise SFError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {op}")
    text = body.get("query") or ""
    q = compile_soql(text, org.store.objects, org.clock.today())
    if q.count_only or q.aggregate:
        raise SFError(400, "API_ERROR", "Aggregate queries are not supported in Bulk Query")
    if q.offset:
        raise SFError(400, "API_ERROR", "OFFSET is not supported in Bulk Query")
    if org.usage.used("DailyBulkV2QueryJobs") >= org.usage.max["DailyBulkV2QueryJobs"]:
        raise SFError(400, "EXCEEDED_QUOTA", "Exceeded the daily limit of Bulk API 2.0 query jobs")
    org.usage.add("DailyBulkV2QueryJobs")
    info = {"operation": op, "object": q.obj.name, "state": "UploadComplete", "concurrencyMode": "Parallel",
            "contentType": "CSV", "lineEnding": body.get("lineEnding", "LF"),
            "columnDelimiter": body.get("columnDelimiter", "COMMA")}
    if info["lineEnding"] not in ENDINGS or info["columnDelimiter"] not in DELIMITERS:
        raise SFError(400, "INVALIDJOB", "InvalidJob : invalid lineEnding or columnDelimiter")
    job = org.bulk._new("query", info, user_id, version)
    job.info["_query"] = q
    org.bulk.enqueue(job)
    return json_response(org.bulk.describe(job, full=False))


def query_job(org: Org, request: Request, version: str, job_id: str) -> Response:
    _bulk_call(org, request, version)
    job = org.bulk.get("query", job_id)
    if request.method == "GET":
        return json_response(org.bulk.describe(job))
    if request.method == "DELETE":
        if job.state not in ("JobComplete", "Aborted", "Failed"):
            raise SFError(400, "INVALIDJOBSTATE", f"Job {job.id} can't be deleted in state {job.state}")
        with org.bulk._lock:
            org.bulk.jobs.pop(job.id, None)
        org.bulk._drop(job)
        return Response(status=204)
    state = body_json(request).get("state")
    if state != "Aborted":
        raise SFError(400, "INVALIDJOBSTATE", f"Invalid state: {state}")
    if job.state in ("JobComplete", "Failed", "Aborted"):
        raise SFError(409, "INVALIDJOBSTATE", f"Job {job.id} can't be aborted in state {job.state}.")
    org.bulk._set_state(job, "Aborted")
    return json_response(org.bulk.describe(job, full=False))


def query_results(org: Org, request: Request, version: str, job_id: str) -> Response:
    _bulk_call(org, request, version)
    job = org.bulk.get("query", job_id)
    max_records = request.args.get("maxRecords")
    try:
        mr = int(max_records) if max_records else None
    except ValueError:
        raise SFError(400, "INVALID_FIELD", "maxRecords must be a positive integer") from None
    if mr is not None and mr <= 0:
        raise SFError(400, "INVALID_FIELD", "maxRecords must be a positive integer")
    return org.bulk.query_results(job, request.args.get("locator") or None, mr)


def routes() -> list[tuple[str, list[str], Any]]:
    d = "/services/data/v<version>/jobs"
    return [
        (f"{d}/ingest", ["GET", "POST"], ingest_jobs),
        (f"{d}/ingest/<job_id>", ["GET", "PATCH", "DELETE"], ingest_job),
        (f"{d}/ingest/<job_id>/batches", ["PUT"], ingest_batches),
        (f"{d}/ingest/<job_id>/<kind>", ["GET"], ingest_results),
        (f"{d}/query", ["GET", "POST"], query_jobs),
        (f"{d}/query/<job_id>", ["GET", "PATCH", "DELETE"], query_job),
        (f"{d}/query/<job_id>/results", ["GET"], query_results),
    ]

