"""REST API over HTTPS with simple-salesforce and plain requests."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sf_emu_helpers import VERSION, Api, password_token
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from refstage_devkit.emulators.salesforce import ids


def test_versions_resources_and_limit_header(shared_api):
    r = shared_api.get("/services/data/")
    assert r.status_code == 200
    versions = r.json()
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in versions
    r = shared_api.get("")
    assert r.status_code == 200
    res = r.json()
    assert res["sobjects"] == f"/services/data/v{VERSION}/sobjects"
    assert res["query"] == f"/services/data/v{VERSION}/query"
    assert re.fullmatch(r"api-usage=\d+/100000", r.headers["Sforce-Limit-Info"])
    assert shared_api.get("/services/data/v12.0/").status_code == 404


def test_limits_track_live_usage(api):
    before = api.get("limits").json()["DailyApiRequests"]
    api.get("sobjects")
    after = api.get("limits").json()
    assert after["DailyApiRequests"]["Max"] == 100000
    assert after["DailyApiRequests"]["Remaining"] == before["Remaining"] - 2
    for key in ("DailyBulkV2QueryJobs", "DailyBulkApiBatches"):
        assert set(after[key]) == {"Max", "Remaining"}
    used = int(api.get("limits").headers["Sforce-Limit-Info"].split("=")[1].split("/")[0])
    assert used == 100000 - after["DailyApiRequests"]["Remaining"] + 1


def test_sobjects_list_and_describe(shared_sf):
    names = {o["name"]: o for o in shared_sf.describe()["sobjects"]}
    for name, prefix in [("Account", "001"), ("Contact", "003"), ("Lead", "00Q"), ("Opportunity", "006"),
                         ("User", "005"), ("Campaign", "701"), ("CampaignMember", "00v"),
                         ("OpportunityStage", "01J"), ("AssignmentRule", "01Q"), ("Widget__c", None)]:
        assert name in names
        if prefix:
            assert names[name]["keyPrefix"] == prefix
    assert names["Widget__c"]["custom"] is True
    d = shared_sf.Opportunity.describe()
    fields = {f["name"]: f for f in d["fields"]}
    stage = fields["StageName"]
    assert stage["type"] == "picklist" and stage["nillable"] is False
    assert "Closed Won" in [v["value"] for v in stage["picklistValues"]]
    acc = fields["AccountId"]
    assert acc["type"] == "reference" and acc["referenceTo"] == ["Account"] and acc["relationshipName"] == "Account"
    assert fields["Name"]["length"] == 120 and fields["Amount"]["type"] == "currency"
    w = {f["name"]: f for f in shared_sf.Widget__c.describe()["fields"]}
    assert w["Backend_Id__c"]["externalId"] is True and w["Backend_Id__c"]["unique"] is True
    assert w["Backend_Id__c"]["length"] == 64
    assert w["Account__c"]["relationshipName"] == "Account__r"
    assert [v["value"] for v in w["Status__c"]["picklistValues"]] == ["Draft", "Active"]
    assert w["Active__c"]["defaultValue"] is True and w["Active__c"]["nillable"] is False


def test_crud_with_system_fields(sf):
    res = sf.Account.create({"Name": "Emulated Industries", "Industry": "Energy", "AnnualRevenue": 1500000})
    assert res["success"] is True and res["errors"] == []
    aid = res["id"]
    assert len(aid) == 18 and aid.startswith("001") and ids.to18(aid[:15]) == aid
    rec = sf.Account.get(aid)
    assert rec["attributes"] == {"type": "Account", "url": f"/services/data/v{VERSION}/sobjects/Account/{aid}"}
    assert rec["Name"] == "Emulated Industries" and rec["AnnualRevenue"] == 1500000.0
    assert rec["IsDeleted"] is False and rec["OwnerId"].startswith("005") and rec["CreatedById"] == rec["OwnerId"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", rec["CreatedDate"])
    # 15-character ids are accepted on input
    assert sf.Account.get(aid[:15])["Id"] == aid
    assert sf.Account.update(aid, {"Phone": "+1 555 0100"}) == 204
    rec2 = sf.Account.get(aid)
    assert rec2["SystemModstamp"] > rec["SystemModstamp"] and rec2["LastModifiedDate"] > rec["LastModifiedDate"]
    assert sf.Account.delete(aid) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(aid)
    # soft-deleted: visible through queryAll only
    assert sf.query(f"SELECT Id FROM Account WHERE Id = '{aid}'")["totalSize"] == 0
    rows = sf.query_all(f"SELECT Id, IsDeleted FROM Account WHERE Id = '{aid}'", include_deleted=True)["records"]
    assert rows[0]["IsDeleted"] is True


def test_system_modstamps_strictly_increase(sf):
    stamps = []
    for i in range(20):
        rid = sf.Contact.create({"LastName": f"Tick {i}"})["id"]
        stamps.append(sf.Contact.get(rid)["SystemModstamp"])
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_error_bodies(api):
    r = api.post("sobjects/Account", json={"Nope__c": 1})
    assert r.status_code == 400
    assert r.json() == [{"message": "No such column 'Nope__c' on sobject of type Account", "errorCode":
                         "INVALID_FIELD", "fields": ["Nope__c"]}]
    r = api.post("sobjects/Contact", json={"FirstName": "No last"})
    assert r.status_code == 400
    assert r.json() == [{"message": "Required fields are missing: [LastName]", "errorCode":
                         "REQUIRED_FIELD_MISSING", "fields": ["LastName"]}]
    r = api.get("sobjects/Account/001000000000000AAA")
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "NOT_FOUND"
    r = api.get("sobjects/Nope__c/describe")
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "NOT_FOUND"
    r = api.post("sobjects/Widget__c", json={"Name": "w", "Status__c": "Bogus"})
    assert r.json()[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    r = api.post("sobjects/Opportunity", json={"Name": "x", "StageName": "Prospecting", "CloseDate": "tomorrow"})
    assert r.json()[0]["errorCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    r = api.post("sobjects/Contact", json={"LastName": "x", "AccountId": "003000000000001"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] in ("INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID")
    r = api.get("query", params={"q": "SELECT Bogus FROM Account"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FIELD"
    r = api.s.get(api.url("limits"), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_upsert_by_external_id_and_duplicates(api, sf):
    r = api.patch("sobjects/Widget__c/Backend_Id__c/ref-1", json={"Name": "First", "Price__c": 10})
    assert r.status_code == 201
    body = r.json()
    assert body["created"] is True and body["success"] is True and body["id"].startswith("a")
    r2 = api.patch("sobjects/Widget__c/Backend_Id__c/ref-1", json={"Name": "First, renamed"})
    assert r2.status_code == 200 and r2.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    assert sf.Widget__c.get_by_custom_id("Backend_Id__c", "ref-1")["Name"] == "First, renamed"
    # simple-salesforce upsert
    assert sf.Widget__c.upsert("Backend_Id__c/ref-2", {"Name": "Second"}) == 201
    assert sf.Widget__c.upsert("Backend_Id__c/ref-2", {"Name": "Second again"}) == 200
    # unique values are enforced case-insensitively
    r = api.post("sobjects/Widget__c", json={"Name": "dup", "Backend_Id__c": "REF-1"})
    assert r.status_code == 400
    err = r.json()[0]
    assert err["errorCode"] == "DUPLICATE_VALUE"
    assert err["message"] == f"duplicate value found: Backend_Id__c duplicates value on record with id: {body['id']}"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Widget__c.create({"Name": "dup", "Backend_Id__c": "ref-2"})


def test_composite_sobjects_collections(api):
    recs = [{"attributes": {"type": "Account"}, "Name": f"Coll {i}"} for i in range(3)]
    r = api.post("composite/sobjects", json={"allOrNone": False, "records": recs + [
        {"attributes": {"type": "Contact"}, "FirstName": "missing last name"}]})
    assert r.status_code == 200
    out = r.json()
    assert [o["success"] for o in out] == [True, True, True, False]
    assert out[3]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    # allOrNone rolls back everything
    r = api.post("composite/sobjects", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "Name": "Rolled back"},
        {"attributes": {"type": "Account"}}]})
    out = r.json()
    assert out[0]["success"] is False
    assert out[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert api.get("query", params={"q": "SELECT Id FROM Account WHERE Name = 'Rolled back'"}).json()[
        "totalSize"] == 0
    # update, upsert and delete collections
    created = [o["id"] for o in api.post("composite/sobjects", json={"records": recs}).json()]
    r = api.patch("composite/sobjects", json={"records": [
        {"attributes": {"type": "Account"}, "Id": rid, "Phone": "1"} for rid in created]})
    assert all(o["success"] for o in r.json())
    r = api.patch("composite/sobjects/Widget__c/Backend_Id__c", json={"records": [
        {"attributes": {"type": "Widget__c"}, "Backend_Id__c": "c-1", "Name": "C1"},
        {"attributes": {"type": "Widget__c"}, "Backend_Id__c": "c-1", "Name": "C1 again"}]})
    assert [o["created"] for o in r.json()] == [True, False]
    r = api.get("composite/sobjects/Account", params={"ids": ",".join(created), "fields": "Id,Name,Phone"})
    assert [rec["Phone"] for rec in r.json()] == ["1", "1", "1"]
    r = api.delete("composite/sobjects", params={"ids": ",".join(created), "allOrNone": "false"})
    assert all(o["success"] for o in r.json())
    too_many = [{"attributes": {"type": "Account"}, "Name": str(i)} for i in range(201)]
    r = api.post("composite/sobjects", json={"records": too_many})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_get_updated_and_deleted(api, sf, emu):
    start = emu.now() - dt.timedelta(minutes=5)
    rid = sf.Lead.create({"LastName": "Replicated", "Company": "R Co"}, headers={"Sforce-Auto-Assign": "FALSE"})["id"]
    sf.Lead.delete(rid)
    other = sf.Lead.create({"LastName": "Kept", "Company": "K Co"})["id"]
    emu.control.advance_clock(120)
    end = emu.now()
    upd = sf.Lead.updated(start, end)
    assert other in upd["ids"] and rid not in upd["ids"]
    dele = sf.Lead.deleted(start, end)
    assert [d["id"] for d in dele["deletedRecords"]] == [rid]
    assert set(dele) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}


def test_lead_auto_assignment_round_robin(api, sf):
    owners = []
    for i in range(8):
        rid = sf.Lead.create({"LastName": f"RR {i}", "Company": "Round Robin"})["id"]
        owners.append(sf.Lead.get(rid)["OwnerId"])
    assert len(set(owners)) == 4 and owners[:4] == owners[4:]
    me = api.get("/services/oauth2/userinfo").json()["user_id"]
    rid = sf.Lead.create({"LastName": "Mine", "Company": "X"}, headers={"Sforce-Auto-Assign": "FALSE"})["id"]
    assert sf.Lead.get(rid)["OwnerId"] == me
    rule = sf.query("SELECT Id FROM AssignmentRule WHERE Active = true AND SobjectType = 'Lead'")["records"][0]["Id"]
    r = api.post("sobjects/Lead", json={"LastName": "ByRule", "Company": "X"}, headers={"Sforce-Auto-Assign": rule})
    assert sf.Lead.get(r.json()["id"])["OwnerId"] in set(owners)


def test_request_limit_exceeded_after_daily_allowance(api):
    api.control("usage", {"limits": {"DailyApiRequests": 5}, "reset": True})
    statuses = [api.get("limits").status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5
    r = api.get("limits")
    assert r.status_code == 403
    assert r.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED",
                         "fields": []}]
    assert r.headers["Sforce-Limit-Info"] == "api-usage=5/5"
    api.control("clock", {"advanceSeconds": 24 * 3600 + 60})
    assert api.get("limits").status_code == 401  # the idle session timed out meanwhile
    fresh = Api(api.emu, password_token(api.emu)["access_token"])
    assert fresh.get("limits").status_code == 200  # the rolling 24 h window moved on


def test_converted_lead_and_standard_objects_crud(sf):
    camp = sf.Campaign.create({"Name": "Referral push", "Type": "Referral Program"})["id"]
    lead = sf.Lead.create({"LastName": "Member", "Company": "M"})["id"]
    cm = sf.CampaignMember.create({"CampaignId": camp, "LeadId": lead})["id"]
    assert cm.startswith("00v") and sf.CampaignMember.get(cm)["Status"] == "Sent"
    stage = sf.OpportunityStage.create({"MasterLabel": "Verbal", "ApiName": "Verbal", "IsClosed": False,
                                        "IsWon": False, "DefaultProbability": 80})["id"]
    opp = sf.Opportunity.create({"Name": "Custom stage", "StageName": "Verbal", "CloseDate": "2026-12-31"})["id"]
    rec = sf.Opportunity.get(opp)
    assert rec["Probability"] == 80.0 and rec["IsClosed"] is False
    sf.Opportunity.update(opp, {"StageName": "Closed Won"})
    rec = sf.Opportunity.get(opp)
    assert rec["IsWon"] is True and rec["IsClosed"] is True and rec["Probability"] == 100.0
    sf.OpportunityStage.delete(stage)
    statuses = sf.query("SELECT ApiName, IsConverted FROM LeadStatus ORDER BY SortOrder")["records"]
    assert [s["ApiName"] for s in statuses if s["IsConverted"]] == ["Closed - Converted"]
    uid = sf.User.create({"Username": "new.rep@refstage.test", "LastName": "Rep", "Email": "new.rep@refstage.test",
                          "Alias": "nrep"})["id"]
    assert sf.User.get(uid)["Name"] == "Rep"
