"""Bulk API 2.0 through simple-salesforce's job client, on our SalesforceSession (so a 401 in the middle
of a job refreshes and retries). Query jobs are resumable: the caller keeps {job, locator} in its
checkpoint, and a restart continues from the last page it finished instead of starting over."""

from __future__ import annotations

import csv
import io
import logging
import tempfile
import time
from typing import Any, Callable, Iterator, Sequence

from simple_salesforce.bulk2 import Operation, SFBulk2Type

from refstage.adapters.crm.salesforce.rest import RestApi, translated
from refstage.services.ports import CrmError

log = logging.getLogger(__name__)
# Records per result call: one call per half million rows (Salesforce allows far more per page). The page is
# spooled to a temporary file and handed on in sub-batches, so memory stays bounded by SUB_BATCH, not PAGE.
PAGE = 500_000
SUB_BATCH = 10_000
# Job polls: the first after `poll_seconds`, then each gap POLL_GROWTH times the previous, at most POLL_MAX.
POLL_GROWTH = 1.5
POLL_MAX = 5.0
POLL_MAX_PROJECTED = 60.0
POLL_TIMEOUT = 3600.0
DONE_STATES = ("JobComplete", "Failed", "Aborted")
NUMERIC = {"int", "double", "currency", "percent", "long"}


def _client(rest: RestApi, sobject: str):
    bulk2_url = f"{rest.session.credentials.instance_url}/services/data/v{rest.version}/jobs/"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer (set per request)", "X-PrettyPrint": "1"}
    return SFBulk2Type(sobject, bulk2_url, headers, rest.session)._client


def _wait(client, job_id: str, is_query: bool, poll: float, sleep: Callable[[float], None] = time.sleep,
          expected: int | None = None, running_for: float = 0.0) -> dict[str, Any]:
    """Poll until the job is done. Gaps grow (a long job costs a few calls, not one per half second); for an
    ingest job of `expected` rows the next poll is aimed at the finish projected from numberRecordsProcessed, and
    once every row is processed the next comes after `poll` again (the job is only writing its results).
    `running_for`: seconds since the job was closed, before this wait began. The projection's rate counts them:
    rows processed while we were busy elsewhere otherwise look like rows processed in our first gap, and each
    poll then comes too early. Returns the final job info; a Failed or Aborted job is a transient CrmError (the
    run is retried)."""
    delay, waited, finishing = poll, 0.0, False
    while True:
        sleep(delay)
        waited += delay
        with translated():
            info = client.get_job(job_id, is_query)
        state = info.get("state")
        if state in DONE_STATES:
            if state != "JobComplete":
                message = info.get("errorMessage") or info
                raise CrmError(f"Bulk API job {job_id} did not complete: Job failure. Response content: {message}",
                               transient=True, code="BULK_JOB_FAILED")
            return info
        if waited > POLL_TIMEOUT:
            raise CrmError(f"Bulk API job {job_id} did not complete: Job timeout. Job status: {state}", transient=True,
                           code="BULK_JOB_FAILED")
        processed = int(info.get("numberRecordsProcessed") or 0)
        if expected and processed >= expected and not finishing:
            # Every row is processed and the job is writing its results: it completes within moments, so a
            # grown gap (up to POLL_MAX) would only be waited out. Gaps grow again from here.
            delay, finishing = poll, True
            continue
        delay = min(POLL_MAX, max(delay * POLL_GROWTH, 0.05))
        if expected and 0 < processed < expected:
            # The rate so far says when the rest will be done: poll just after that (within bounds).
            remaining = (running_for + waited) * (expected - processed) / processed
            delay = min(POLL_MAX_PROJECTED, max(poll, remaining * 1.1 + poll))


def _typed(raw: dict[str, str], types: dict[str, str]) -> dict[str, Any]:
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
        if "." not in key:
            record[key] = converted
            continue
        target = record
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = converted
    return record


def typed_rows(text: str, types: dict[str, str]) -> list[dict[str, Any]]:
    """Bulk CSV → records shaped like REST's: typed values, None for empty, parent paths nested."""
    return [_typed(raw, types) for raw in csv.DictReader(io.StringIO(text))]


class BulkApi:
    def __init__(self, rest: RestApi, poll_seconds: float = 0.5, page: int = PAGE, sub_batch: int = SUB_BATCH,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rest = rest
        self.poll = poll_seconds
        self.page = page
        self.sub_batch = sub_batch
        self.sleep = sleep
        self._closed_at: dict[str, float] = {}  # ingest job id -> time.monotonic() when it was closed

    def query_pages(self, sobject: str, soql: str, checkpoint: dict[str, Any], types: dict[str, str],
                    include_deleted: bool = True) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """Yield (records, checkpoint) per sub-batch of a result page; `checkpoint` ({job, soql, locator})
        resumes a job. A new job is announced first with an empty page, so the caller can persist its id
        before waiting. A page's intermediate sub-batches carry the checkpoint from before the page (a
        restart re-reads the page; re-observing a record state is harmless); its last carries the next locator."""
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
        _wait(client, job_id, True, self.poll, self.sleep)
        while True:
            before = {"job": job_id, "soql": soql, "locator": locator, "done": False}
            params: dict[str, Any] = {"maxRecords": self.page}
            if locator:
                params["locator"] = locator
            with tempfile.TemporaryFile() as spool:
                # The whole page goes to disk first: the connection is not held open while we process it.
                response = self.rest.call("GET", f"jobs/query/{job_id}/results", params=params, headers={"Accept": "text/csv"},
                                          stream=True)
                try:
                    for block in response.iter_content(1 << 20):
                        spool.write(block)
                finally:
                    response.close()
                next_locator = response.headers.get("Sforce-Locator") or ""
                if next_locator == "null":
                    next_locator = ""
                spool.seek(0)
                text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
                reader = csv.DictReader(_no_nul(text))
                batch: list[dict[str, Any]] = []
                for raw in reader:
                    batch.append(_typed(raw, types))
                    if len(batch) >= self.sub_batch:
                        yield batch, before
                        batch = []
                locator = next_locator
                position = {"job": job_id, "soql": soql, "locator": locator, "done": not locator}
                yield batch, position
            if not locator:
                return

    def ingest(self, sobject: str, operation: str, rows: list[dict[str, Any]], key: str,
               external_id_field: str | None = None, want_ids: bool = True) -> tuple[dict[str, str], dict[str, str]]:
        """Upsert/update rows; returns ({key value: record id}, {key value: Salesforce's error}).

        With `want_ids` False and a job that processed every row without a failure, the result files are
        not downloaded (three calls saved) and the ids are returned as "". Re-running after a crash is
        harmless: upserts match on the external id, updates on Id."""
        if not rows:
            return {}, {}
        spool = CsvSpool()
        try:
            for r in rows:
                spool.add(r)
            job_id = self.submit(sobject, operation, spool, external_id_field)
        finally:
            spool.close()
        return self.finish(sobject, job_id, [r[key] for r in rows], key, want_ids)

    def submit(self, sobject: str, operation: str, spool: "CsvSpool", external_id_field: str | None = None) -> str:
        """Create an ingest job, upload the spooled CSV, close it; returns the job id (processing goes on)."""
        client = _client(self.rest, sobject)
        op = Operation.upsert if operation == "upsert" else Operation.update
        with translated():
            job = client.create_job(op, external_id_field=external_id_field)
        # The upload is bytes, not a stream: a retried PUT must send the same body again.
        self.rest.call("PUT", f"jobs/ingest/{job['id']}/batches", data=spool.payload(),
                       headers={"Content-Type": "text/csv", "Accept": "application/json"})
        with translated():
            client.close_job(job["id"])
        self._closed_at[job["id"]] = time.monotonic()
        return job["id"]

    def finish(self, sobject: str, job_id: str, keys: list[str], key: str,
               want_ids: bool = True) -> tuple[dict[str, str], dict[str, str]]:
        """Wait for a submitted job; ({key: record id}, {key: error}). `keys` are the rows' key values, in order."""
        info = self._wait_ingest(sobject, job_id, len(keys))
        if not want_ids and self._all_done(info, len(keys)):
            return dict.fromkeys(keys, ""), {}
        return self._results(sobject, job_id, key)

    def finish_failed(self, sobject: str, job_id: str, rows: int, key: str) -> dict[str, str]:
        """Wait for a submitted job of `rows` rows; {key: error} for the rows Salesforce refused or did not
        process (a clean job downloads nothing)."""
        info = self._wait_ingest(sobject, job_id, rows)
        if self._all_done(info, rows):
            return {}
        return self._results(sobject, job_id, key)[1]

    def _wait_ingest(self, sobject: str, job_id: str, rows: int) -> dict[str, Any]:
        closed_at = self._closed_at.pop(job_id, None)
        running_for = 0.0 if closed_at is None else max(0.0, time.monotonic() - closed_at)
        return _wait(_client(self.rest, sobject), job_id, False, self.poll, self.sleep, expected=rows,
                     running_for=running_for)

    @staticmethod
    def _all_done(info: dict[str, Any], rows: int) -> bool:
        return int(info.get("numberRecordsFailed") or 0) == 0 and int(info.get("numberRecordsProcessed") or 0) == rows

    def _results(self, sobject: str, job_id: str, key: str) -> tuple[dict[str, str], dict[str, str]]:
        client = _client(self.rest, sobject)
        with translated():
            ok_csv = client.get_ingest_results(job_id, "successfulResults")
            failed_csv = client.get_ingest_results(job_id, "failedResults")
            unprocessed_csv = client.get_ingest_results(job_id, "unprocessedrecords")
        ok = {r[key]: r.get("sf__Id", "") for r in csv.DictReader(io.StringIO(ok_csv))}
        failed = {r[key]: r.get("sf__Error", "failed") for r in csv.DictReader(io.StringIO(failed_csv))}
        for r in csv.DictReader(io.StringIO(unprocessed_csv)):
            failed.setdefault(r.get(key, ""), "not processed by the Bulk API job")
        return ok, failed


class CsvSpool:
    """An ingest job's CSV, written row by row to a temporary file (memory stays flat however many rows).
    Columns come from the first row; rows of one kind share them. None is Salesforce's #N/A (set null)."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(mode="w+", encoding="utf-8", newline="")
        self.writer: Any = None
        self.columns: list[str] = []
        self._given: Sequence[str] | None = None  # the columns add_values() was first given
        self.rows = 0

    def add(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            self._start(list(row))
        # A column the row lacks is written empty (Bulk leaves the field as it is); keys beyond the columns are ignored.
        self.writer.writerow(["#N/A" if v is None else "true" if v is True else "false" if v is False else v
                              for v in (row.get(k, "") for k in self.columns)])
        self.rows += 1

    def add_values(self, columns: Sequence[str], values: Sequence[Any]) -> None:
        """A row as its values in the order of `columns` (every row of the spool has the same): no dict to build
        and look up for a backlog's rows. Cells as add() writes them."""
        if self.writer is None:
            self._start(list(columns))
            self._given = columns
        elif columns is not self._given and list(columns) != self.columns:
            raise ValueError(f"a row with columns {list(columns)} in a spool of {self.columns}")
        self.writer.writerow(["#N/A" if v is None else "true" if v is True else "false" if v is False else v
                              for v in values])
        self.rows += 1

    def _start(self, columns: list[str]) -> None:
        self.columns = columns
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow(columns)

    def payload(self) -> bytes:
        self.file.flush()
        self.file.seek(0)
        return self.file.buffer.read() if hasattr(self.file, "buffer") else self.file.read().encode("utf-8")

    def close(self) -> None:
        self.file.close()


def _no_nul(lines: Iterator[str]) -> Iterator[str]:
    """Salesforce CSV may carry NUL bytes (simple-salesforce filters them too); csv refuses them."""
    for line in lines:
        yield line.replace("\x00", "") if "\x00" in line else line
