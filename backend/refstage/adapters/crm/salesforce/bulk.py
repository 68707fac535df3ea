"""Bulk API 2.0 through simple-salesforce's job client, on our SalesforceSession (so a 401 in the middle
of a job refreshes and retries). Query jobs are resumable: the caller keeps {job, locator} in its
checkpoint, and a restart continues from the last page it finished instead of starting over."""

from __future__ import annotations

import csv
import io
import logging
from typing import Any, Iterator

from simple_salesforce.bulk2 import Operation, SFBulk2Type
from simple_salesforce.exceptions import SalesforceOperationError

from refstage.adapters.crm.salesforce.rest import RestApi, translated
from refstage.services.ports import CrmError

log = logging.getLogger(__name__)
PAGE = 10_000
NUMERIC = {"int", "double", "currency", "percent", "long"}


def _client(rest: RestApi, sobject: str):
    bulk2_url = f"{rest.session.credentials.instance_url}/services/data/v{rest.version}/jobs/"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer (set per request)", "X-PrettyPrint": "1"}
    return SFBulk2Type(sobject, bulk2_url, headers, rest.session)._client


def _wait(client, job_id: str, is_query: bool, poll: float) -> None:
    try:
        with translated():
            client.wait_for_job(job_id, is_query, poll)
    except SalesforceOperationError as exc:
        raise CrmError(f"Bulk API job {job_id} did not complete: {exc}", transient=True, code="BULK_JOB_FAILED") from exc


def typed_rows(text: str, types: dict[str, str]) -> list[dict[str, Any]]:
    """Bulk CSV → records shaped like REST's: typed values, None for empty, parent paths nested."""
    rows = []
    for raw in csv.DictReader(io.StringIO(text)):
        record: dict[str, Any] = {}
        for key, value in raw.items():
            if key is None:
                continue
            converted: Any = value if value != "" else None
            kind = types.get(key.lower())
            if converted is not None and kind == "boolean":
                converted = value.lower() == "true"
            elif converted is not None and kind in NUMERIC:
                try:
                    number = float(value)
                    converted = int(number) if kind == "int" and number.is_integer() else number
                except ValueError:
                    pass
            target = record
            parts = key.split(".")
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = converted
        rows.append(record)
    return rows


class BulkApi:
    def __init__(self, rest: RestApi, poll_seconds: float = 0.5) -> None:
        self.rest = rest
        self.poll = poll_seconds

    def query_pages(self, sobject: str, soql: str, checkpoint: dict[str, Any], types: dict[str, str],
                    include_deleted: bool = True) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """Yield (records, checkpoint) per result page; `checkpoint` ({job, soql, locator}) resumes a job.
        A new job is announced first with an empty page, so the caller can persist its id before waiting."""
        client = _client(self.rest, sobject)
        job_id = checkpoint.get("job") if checkpoint.get("soql") == soql else None
        locator = checkpoint.get("locator") or ""
        if job_id:
            try:
                with translated():
                    state = client.get_job(job_id, True).get("state")
            except CrmError as exc:
                if exc.transient:
                    raise
                state = None  # expired (jobs live 7 days) or deleted: start again
            if state in (None, "Failed", "Aborted"):
                job_id, locator = None, ""
        if not job_id:
            with translated():
                job = client.create_job(Operation.query_all if include_deleted else Operation.query, soql)
            job_id, locator = job["id"], ""
            yield [], {"job": job_id, "soql": soql, "locator": "", "done": False}
        _wait(client, job_id, True, self.poll)
        while True:
            with translated():
                result = client.get_query_results(job_id, locator, PAGE)
            locator = result["locator"] or ""
            position = {"job": job_id, "soql": soql, "locator": locator, "done": not locator}
            yield typed_rows(result["records"], types), position
            if not locator:
                return

    def ingest(self, sobject: str, operation: str, rows: list[dict[str, Any]], key: str,
               external_id_field: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
        """Upsert/update rows; returns ({key value: record id}, {key value: Salesforce's error}).

        Re-running after a crash is harmless: upserts match on the external id, updates on Id."""
        if not rows:
            return {}, {}
        client = _client(self.rest, sobject)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("#N/A" if v is None else ("true" if v is True else "false" if v is False else v))
                             for k, v in r.items()})
        op = Operation.upsert if operation == "upsert" else Operation.update
        with translated():
            job = client.create_job(op, external_id_field=external_id_field)
            client.upload_job_data(job["id"], buf.getvalue())
            client.close_job(job["id"])
        _wait(client, job["id"], False, self.poll)
        with translated():
            ok_csv = client.get_ingest_results(job["id"], "successfulResults")
            failed_csv = client.get_ingest_results(job["id"], "failedResults")
            unprocessed_csv = client.get_ingest_results(job["id"], "unprocessedrecords")
        ok = {r[key]: r.get("sf__Id", "") for r in csv.DictReader(io.StringIO(ok_csv))}
        failed = {r[key]: r.get("sf__Error", "failed") for r in csv.DictReader(io.StringIO(failed_csv))}
        for r in csv.DictReader(io.StringIO(unprocessed_csv)):
            failed.setdefault(r.get(key, ""), "not processed by the Bulk API job")
        return ok, failed
