"""Bulk API 1.0 with the salesforce-bulk client, unmodified: jobs, CSV and JSON batches, serial concurrency,
results, query batches and errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
import requests
from salesforce_bulk import SalesforceBulk
from salesforce_bulk.salesforce_bulk import BulkApiError, BulkBatchFailed
from sf_emu_helpers import password_token

VERSION = "62.0"


@pytest.fixture
def bulk(emu):
    return SalesforceBulk(sessionId=password_token(emu)["access_token"], host=emu.base_url, API_version=VERSION)


def _csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def test_insert_update_and_query_in_serial_mode(bulk, sf):
    job = bulk.create_insert_job("Account", contentType="CSV", concurrency="Serial")
    first = bulk.post_batch(job, _csv([{"Name": f"Bulk One {i}", "Industry": "Banking"} for i in range(250)]))
    second = bulk.post_batch(job, _csv([{"Name": "Bulk Two 0"}, {"Name": ""}]))  # the second row fails
    bulk.close_job(job)
    assert bulk.job_status(job)["state"] == "Closed"
    # Serial: reading the second batch runs the first one before it.
    bulk.wait_for_batch(job, second, timeout=5, sleep_interval=0.05)
    assert bulk.batch_state(first, job, reload=True) == "Completed"
    results = bulk.get_batch_results(first, job)
    assert len(results) == 250 and all(r.success == "true" and r.created == "true" for r in results)
    failed = bulk.get_batch_results(second, job)
    assert [r.success for r in failed] == ["true", "false"] and failed[1].error.startswith("REQUIRED_FIELD_MISSING")
    status = bulk.job_status(job)
    assert (status["numberRecordsProcessed"], status["numberRecordsFailed"], status["numberBatchesCompleted"]) == (
        "252", "1", "2")
    # One SystemModstamp per 200-record transaction.
    stamps = [r["SystemModstamp"] for r in sf.query_all("SELECT SystemModstamp FROM Account WHERE Name LIKE 'Bulk One %'")["records"]]
    assert sorted(stamps.count(s) for s in set(stamps)) == [50, 200]
    # Update by Id, then query back through a query job.
    update = bulk.create_update_job("Account", contentType="CSV")
    batch = bulk.post_batch(update, _csv([{"Id": r.id, "Industry": "Energy"} for r in results[:10]]))
    bulk.wait_for_batch(update, batch, timeout=5, sleep_interval=0.05)
    query_job = bulk.create_query_job("Account", contentType="CSV")
    qb = bulk.query(query_job, "SELECT Id, Name, Industry FROM Account WHERE Industry = 'Energy' AND Name LIKE 'Bulk One %'")
    bulk.close_job(query_job)
    bulk.wait_for_batch(query_job, qb, timeout=5, sleep_interval=0.05)
    rows = [row for result in bulk.get_all_results_for_query_batch(qb, query_job)
            for row in csv.DictReader(io.TextIOWrapper(result, encoding="utf-8"))]
    assert sorted(r["Id"] for r in rows) == sorted(r.id for r in results[:10])
    assert {r["Industry"] for r in rows} == {"Energy"}


def test_json_records_and_errors(bulk, emu):
    job = bulk.create_insert_job("Contact", contentType="JSON")
    batch = bulk.post_batch(job, json.dumps([{"LastName": "Jason", "Email": "jason@bulk.example"}]))
    bulk.wait_for_batch(job, batch, timeout=5, sleep_interval=0.05)
    result = bulk.get_batch_results(batch, job)
    assert result[0].success is True and result[0].created is True and result[0].id.startswith("003")
    bad_query = bulk.create_query_job("Contact", contentType="CSV")
    qb = bulk.query(bad_query, "SELECT Nope__c FROM Contact")
    with pytest.raises(BulkBatchFailed) as err:
        bulk.wait_for_batch(bad_query, qb, timeout=5, sleep_interval=0.05)
    assert "No such column 'Nope__c'" in err.value.state_message
    with pytest.raises(BulkApiError) as err:
        bulk.create_insert_job("NoSuchObject__c")
    assert "InvalidEntity" in str(err.value)
    stranger = SalesforceBulk(sessionId="00Dbogus!AQbogus", host=emu.base_url, API_version=VERSION)
    with pytest.raises(BulkApiError) as err:
        stranger.create_insert_job("Account")
    assert "InvalidSessionId" in str(err.value)
    closed = bulk.create_insert_job("Account")
    bulk.close_job(closed)
    r = requests.post(f"{emu.base_url}/services/async/{VERSION}/job/{closed}/batch", data=b"Name\nLate\n",
                      headers={"X-SFDC-Session": bulk.sessionId, "Content-Type": "text/csv"}, timeout=10)
    assert r.status_code == 400 and "<exceptionCode>InvalidJobState</exceptionCode>" in r.text
