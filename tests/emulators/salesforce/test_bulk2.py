"""Bulk API 2.0 ingest and query jobs with simple-salesforce's bulk2 client and plain requests."""

from __future__ import annotations

import csv
import io
import time

import pytest
from sf_emu_helpers import make_emulator


def wait(api, kind, job_id, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = api.get(f"jobs/{kind}/{job_id}").json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return info
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_ingest_insert_with_failures_over_plain_requests(api):
    r = api.post("jobs/ingest", json={"object": "Contact", "operation": "insert", "contentType": "CSV",
                                      "lineEnding": "LF"})
    assert r.status_code == 200
    job = r.json()
    assert job["state"] == "Open" and job["id"].startswith("750") and job["object"] == "Contact"
    assert job["contentUrl"] == f"services/data/v62.0/jobs/ingest/{job['id']}/batches"
    data = "FirstName,LastName,Email\nAda,Lovelace,ada@x.example\nNo,,nolast@x.example\nAlan,Turing,\n"
    r = api.put(f"jobs/ingest/{job['id']}/batches", data=data.encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 201
    r = api.patch(f"jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
    assert r.status_code == 200 and r.json()["state"] == "UploadComplete"
    info = wait(api, "ingest", job["id"])
    assert info["state"] == "JobComplete" and info["jobType"] == "V2Ingest"
    assert info["numberRecordsProcessed"] == 3 and info["numberRecordsFailed"] == 1
    ok = rows(api.get(f"jobs/ingest/{job['id']}/successfulResults").text)
    assert [o["LastName"] for o in ok] == ["Lovelace", "Turing"]
    assert all(o["sf__Id"].startswith("003") and o["sf__Created"] == "true" for o in ok)
    bad = rows(api.get(f"jobs/ingest/{job['id']}/failedResults").text)
    assert bad[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]")
    assert bad[0]["Email"] == "nolast@x.example"
    un = api.get(f"jobs/ingest/{job['id']}/unprocessedrecords")
    assert un.status_code == 200 and un.text == ""
    listing = api.get("jobs/ingest").json()
    assert listing["done"] is True and job["id"] in [j["id"] for j in listing["records"]]
    assert api.delete(f"jobs/ingest/{job['id']}").status_code == 204
    assert api.get(f"jobs/ingest/{job['id']}").status_code == 404


def test_ingest_upsert_update_delete_with_simple_salesforce(sf):
    first = [{"Name": "One", "Backend_Id__c": "b-1", "Price__c": 1.5}, {"Name": "Two", "Backend_Id__c": "b-2",
                                                                           "Price__c": 2}]
    res = sf.bulk2.Widget__c.upsert(records=first, external_id_field="Backend_Id__c", wait=0.05)
    assert res[0]["numberRecordsProcessed"] == 2 and res[0]["numberRecordsFailed"] == 0
    res = sf.bulk2.Widget__c.upsert(records=[{"Name": "One again", "Backend_Id__c": "b-1"},
                                             {"Name": "Three", "Backend_Id__c": "b-3"}],
                                    external_id_field="Backend_Id__c", wait=0.05)
    assert res[0]["numberRecordsProcessed"] == 2
    got = {r["Backend_Id__c"]: r for r in sf.query("SELECT Id, Name, Backend_Id__c, Price__c FROM Widget__c")["records"]}
    assert got["b-1"]["Name"] == "One again" and got["b-1"]["Price__c"] == 1.5 and set(got) == {"b-1", "b-2", "b-3"}
    upd = [{"Id": r["Id"], "Name": f"Renamed {k}"} for k, r in got.items()]
    assert sf.bulk2.Widget__c.update(records=upd, wait=0.05)[0]["numberRecordsFailed"] == 0
    dele = [{"Id": r["Id"]} for r in got.values()]
    assert sf.bulk2.Widget__c.delete(records=dele, wait=0.05)[0]["numberRecordsProcessed"] == 3
    assert sf.query("SELECT COUNT() FROM Widget__c")["totalSize"] == 0


def test_query_job_paging_with_locator(api):
    api.control("seed", {"accounts": 1234})
    r = api.post("jobs/query", json={"operation": "query", "query": "SELECT Id, Name, Owner.Email FROM Account"})
    assert r.status_code == 200
    job = r.json()
    assert job["state"] == "UploadComplete" and job["operation"] == "query" and job["object"] == "Account"
    info = wait(api, "query", job["id"])
    assert info["state"] == "JobComplete" and info["jobType"] == "V2Query"
    total = info["numberRecordsProcessed"]
    seen, locator, pages = [], None, 0
    while True:
        params = {"maxRecords": 500}
        if locator:
            params["locator"] = locator
        page = api.get(f"jobs/query/{job['id']}/results", params=params)
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/csv")
        recs = rows(page.text)
        assert int(page.headers["Sforce-NumberOfRecords"]) == len(recs)
        assert page.text.splitlines()[0] == '"Id","Name","Owner.Email"'
        seen += [x["Id"] for x in recs]
        pages += 1
        locator = page.headers["Sforce-Locator"]
        if locator == "null":
            break
    assert len(seen) == len(set(seen)) == total >= 1234 and pages == -(-total // 500)
    assert api.delete(f"jobs/query/{job['id']}").status_code == 204


def test_query_job_with_simple_salesforce_and_query_all(sf, api):
    rid = sf.Lead.create({"LastName": "BulkGone", "Company": "B"})["id"]
    sf.Lead.delete(rid)
    out = "".join(sf.bulk2.Lead.query("SELECT Id, LastName, IsDeleted FROM Lead WHERE LastName = 'BulkGone'", wait=0.05))
    assert rows(out) == []
    out = "".join(sf.bulk2.Lead.query_all("SELECT Id, LastName, IsDeleted FROM Lead WHERE LastName = 'BulkGone'", wait=0.05))
    assert rows(out) == [{"Id": rid, "LastName": "BulkGone", "IsDeleted": "true"}]
    r = api.post("jobs/query", json={"operation": "query", "query": "SELECT Nope FROM Lead"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FIELD"
    listing = api.get("jobs/query").json()
    assert len(listing["records"]) >= 2


def test_abort_and_bad_columns(cert_dir):
    with make_emulator(cert_dir, seed="empty", bulk_delay=0.5) as emu:
        from sf_emu_helpers import Api, password_token

        api = Api(emu, password_token(emu)["access_token"])
        job = api.post("jobs/ingest", json={"object": "Account", "operation": "insert"}).json()
        api.put(f"jobs/ingest/{job['id']}/batches", data=b"Name\nA\nB\n", headers={"Content-Type": "text/csv"})
        api.patch(f"jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
        r = api.patch(f"jobs/ingest/{job['id']}", json={"state": "Aborted"})
        assert r.json()["state"] == "Aborted"
        assert wait(api, "ingest", job["id"])["state"] == "Aborted"
        job = api.post("jobs/ingest", json={"object": "Account", "operation": "insert"}).json()
        api.put(f"jobs/ingest/{job['id']}/batches", data=b"Name,Bogus\nA,1\n", headers={"Content-Type": "text/csv"})
        api.patch(f"jobs/ingest/{job['id']}", json={"state": "UploadComplete"})
        info = wait(api, "ingest", job["id"])
        assert info["state"] == "Failed" and "Bogus" in info["errorMessage"]


def test_bulk_fault_makes_jobs_fail(cert_dir):
    with make_emulator(cert_dir, seed="demo", faults="bulkfail:#1") as emu:
        from sf_emu_helpers import Api, password_token

        api = Api(emu, password_token(emu)["access_token"])
        job = api.post("jobs/query", json={"operation": "query", "query": "SELECT Id FROM Account"}).json()
        info = wait(api, "query", job["id"])
        assert info["state"] == "Failed" and info["errorMessage"]
        job = api.post("jobs/query", json={"operation": "query", "query": "SELECT Id FROM Account"}).json()
        assert wait(api, "query", job["id"])["state"] == "JobComplete"


@pytest.mark.slow
def test_one_million_rows_seeded_and_streamed(api):
    t0 = time.perf_counter()
    r = api.control("seed", {"opportunities": 1_000_000})
    assert r.status_code == 200 and time.perf_counter() - t0 < 60
    job = api.post("jobs/query", json={"operation": "query",
                                       "query": "SELECT Id, Name, Amount, StageName FROM Opportunity"}).json()
    info = wait(api, "query", job["id"], timeout=120)
    total = info["numberRecordsProcessed"]
    assert total >= 1_000_000
    with api.s.get(api.url(f"jobs/query/{job['id']}/results"), stream=True, timeout=300) as page:
        assert page.headers["Sforce-Locator"] == "null"
        n = sum(chunk.count(b"\n") for chunk in page.iter_content(1 << 20))
    assert n == total + 1
