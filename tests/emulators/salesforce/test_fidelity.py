"""Responses compared with the example responses in Salesforce's documentation.

Each test names the documentation page its expected shape comes from (REST API Developer Guide,
Bulk API 2.0 Developer Guide, OAuth and OpenID Connect help). Values that differ per org (ids,
timestamps, tokens) are compared by pattern; keys, types, status codes and headers exactly.
"""

from __future__ import annotations

import re

ID18 = re.compile(r"^[a-zA-Z0-9]{15}[A-Z0-5]{3}$")
SF_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


def shape(value):
    """Recursively replace values by their JSON type, keeping keys."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


def test_versions_resource(shared_api):
    # REST API Dev Guide, "Versions": [{"label":"Winter '25","url":"/services/data/v62.0","version":"62.0"}, ...]
    r = shared_api.get("/services/data")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert shape(r.json()) == [{"label": "str", "url": "str", "version": "str"}]


def test_create_record_response(shared_api):
    # "Create a Record": HTTP 201, {"id" : "001D000000IqhSLIAZ", "errors" : [ ], "success" : true}
    r = shared_api.post("sobjects/Account", json={"Name": "Express Logistics and Transport"})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "errors", "success"} and body["errors"] == [] and body["success"] is True
    assert ID18.match(body["id"])
    # "Update a Record": HTTP 204 with no body
    r = shared_api.patch(f"sobjects/Account/{body['id']}", json={"BillingCity": "San Francisco"})
    assert r.status_code == 204 and r.content == b""
    # "Delete a Record": HTTP 204
    assert shared_api.delete(f"sobjects/Account/{body['id']}").status_code == 204


def test_query_response(shared_api):
    # "Execute a SOQL Query": {"done":true,"totalSize":N,"records":[{"attributes":{"type":"Account",
    #   "url":"/services/data/v62.0/sobjects/Account/001..."},"Name":"..."}]}
    r = shared_api.get("query", params={"q": "SELECT Name FROM Account LIMIT 2"})
    body = r.json()
    assert set(body) == {"totalSize", "done", "records"}
    rec = body["records"][0]
    assert list(rec) == ["attributes", "Name"]
    assert re.fullmatch(r"/services/data/v62\.0/sobjects/Account/\w{18}", rec["attributes"]["url"])
    # COUNT(): {"totalSize": 18, "done": true, "records": []}
    body = shared_api.get("query", params={"q": "SELECT COUNT() FROM Account"}).json()
    assert body["records"] == [] and body["done"] is True and isinstance(body["totalSize"], int)


def test_not_found_and_session_errors(shared_api):
    # "Status Codes and Error Responses": 404 [{"errorCode":"NOT_FOUND","message":"The requested resource
    #   does not exist"}], 401 [{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]
    r = shared_api.get("sobjects/Account/001000000000000AAA")
    assert r.status_code == 404
    assert r.json()[0]["errorCode"] == "NOT_FOUND"
    assert r.json()[0]["message"] == "The requested resource does not exist"
    r = shared_api.s.get(shared_api.url("sobjects"), headers={"Authorization": "Bearer 00Dxx!bogus"})
    assert r.status_code == 401
    assert r.json()[0]["message"] == "Session expired or invalid"
    assert r.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_upsert_responses(shared_api):
    # "Insert or Update (Upsert) a Record Using an External ID": created -> 201
    #   {"id":"00190000001pPvHAAU","errors":[],"success":true,"created":true}; updated -> 200 with created false
    r = shared_api.patch("sobjects/Widget__c/Backend_Id__c/fid-1", json={"Name": "fid"})
    assert r.status_code == 201 and set(r.json()) == {"id", "errors", "success", "created"}
    r = shared_api.patch("sobjects/Widget__c/Backend_Id__c/fid-1", json={"Name": "fid 2"})
    assert r.status_code == 200 and r.json()["created"] is False


def test_collections_all_or_none_response(shared_api):
    # "Create Records Using sObject Collections", allOrNone=true with an invalid Contact:
    # [{"success":false,"errors":[{"statusCode":"ALL_OR_NONE_OPERATION_ROLLED_BACK","message":"Record rolled
    #   back because not all records were valid and the request was using AllOrNone header","fields":[]}]},
    #  {"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are
    #   missing: [LastName]","fields":["LastName"]}]}]
    r = shared_api.post("composite/sobjects", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "Name": "example.com", "BillingCity": "San Francisco"},
        {"attributes": {"type": "Contact"}, "FirstName": "Erica"}]})
    assert r.status_code == 200
    assert r.json() == [
        {"success": False, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message":
                                       "Record rolled back because not all records were valid and the request "
                                       "was using AllOrNone header", "fields": []}]},
        {"success": False, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message":
                                       "Required fields are missing: [LastName]", "fields": ["LastName"]}]}]


def test_limits_response(shared_api):
    # "Limits": {"DailyApiRequests":{"Max":15000,"Remaining":14998}, "DailyBulkApiBatches":{...}, ...}
    r = shared_api.get("limits")
    body = r.json()
    assert shape(body["DailyApiRequests"]) == {"Max": "int", "Remaining": "int"}
    assert "DailyBulkV2QueryJobs" in body and "DataStorageMB" in body
    # "Sforce-Limit-Info: api-usage=18/5000" on every response
    assert re.fullmatch(r"api-usage=\d+/\d+", r.headers["Sforce-Limit-Info"])


def test_token_response_fields(shared_emu):
    # OAuth "Username-Password Flow": {"access_token":"00D...","instance_url":"https://...","id":
    #  "https://login.salesforce.com/id/00D.../005...","token_type":"Bearer","issued_at":"1278448832702",
    #  "signature":"..."} (no expires_in)
    from sf_emu_helpers import password_token

    body = password_token(shared_emu)
    assert set(body) == {"access_token", "instance_url", "id", "token_type", "issued_at", "signature", "scope"}
    assert body["access_token"].startswith("00D") and "!" in body["access_token"]


def test_bulk_ingest_job_create_response(shared_api):
    # Bulk API 2.0 "Create a Job": {"id":"7505fEXAMPLE4C2AAM","operation":"insert","object":"Account",
    #  "createdById":"...","createdDate":"2022-01-02T21:33:43.000+0000","systemModstamp":"...","state":"Open",
    #  "concurrencyMode":"Parallel","contentType":"CSV","apiVersion":58.0,"contentUrl":
    #  "services/data/v58.0/jobs/ingest/7505fEXAMPLE4C2AAM/batches","lineEnding":"LF","columnDelimiter":"COMMA"}
    r = shared_api.post("jobs/ingest", json={"object": "Account", "contentType": "CSV", "operation": "insert",
                                            "lineEnding": "LF"})
    body = r.json()
    assert set(body) == {"id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
                         "concurrencyMode", "contentType", "apiVersion", "contentUrl", "lineEnding",
                         "columnDelimiter"}
    assert body["apiVersion"] == 62.0 and SF_DATETIME.match(body["createdDate"])
    shared_api.patch(f"jobs/ingest/{body['id']}", json={"state": "Aborted"})


def test_bulk_query_results_headers(shared_api):
    # "Get Results for a Query Job": CSV '"Id","Name"' with Sforce-Locator (e.g. MTAwMDA, or null on the
    # last set) and Sforce-NumberOfRecords
    import time

    job = shared_api.post("jobs/query", json={"operation": "query", "query": "SELECT Id, Name FROM User"}).json()
    assert job["state"] == "UploadComplete"
    for _ in range(100):
        if shared_api.get(f"jobs/query/{job['id']}").json()["state"] == "JobComplete":
            break
        time.sleep(0.05)
    r = shared_api.get(f"jobs/query/{job['id']}/results", params={"maxRecords": 2})
    assert r.text.splitlines()[0] == '"Id","Name"'
    assert r.headers["Sforce-NumberOfRecords"] == "2" and r.headers["Sforce-Locator"] == "Mg"
    last = shared_api.get(f"jobs/query/{job['id']}/results", params={"locator": "Mg", "maxRecords": 1000})
    assert last.headers["Sforce-Locator"] == "null"
