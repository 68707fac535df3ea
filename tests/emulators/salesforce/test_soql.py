"""SOQL through the REST query resources, with simple-salesforce and plain requests."""

from __future__ import annotations

import datetime as dt

import pytest
from sf_emu_helpers import VERSION, password_token
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceMalformedRequest

from refstage_devkit.emulators.salesforce.soql import date_range


@pytest.fixture(scope="module")
def data(shared_sf):
    """A few accounts/contacts with known values in the shared org."""
    sf = shared_sf
    acc = sf.Account.create({"Name": "SOQL O'Reilly & Sons", "Industry": "Media", "AnnualRevenue": 42})["id"]
    acc2 = sf.Account.create({"Name": "SOQL Null Industry"})["id"]
    c1 = sf.Contact.create({"LastName": "Soqlson", "FirstName": "Ann", "AccountId": acc, "Email": "ann@x.example"})["id"]
    c2 = sf.Contact.create({"LastName": "Soqlson", "FirstName": "Bob", "AccountId": acc2})["id"]
    c3 = sf.Contact.create({"LastName": "Soqlson", "FirstName": "Cy"})["id"]
    return {"acc": acc, "acc2": acc2, "c1": c1, "c2": c2, "c3": c3}


def names(res):
    return [r["FirstName"] for r in res["records"]]


def test_parent_relationship_fields(shared_sf, data):
    res = shared_sf.query("SELECT Id, FirstName, Account.Name, Account.Owner.Email, Owner.Email FROM Contact "
                          "WHERE LastName = 'Soqlson' ORDER BY FirstName")
    recs = res["records"]
    assert recs[0]["Account"]["Name"] == "SOQL O'Reilly & Sons"
    assert recs[0]["Account"]["attributes"]["type"] == "Account"
    assert recs[0]["Account"]["Owner"]["Email"] == "admin@refstage.test"
    assert recs[2]["Account"] is None
    assert recs[0]["Owner"]["Email"] == "admin@refstage.test"


def test_where_operators(shared_sf, data):
    q = shared_sf.query
    base = "SELECT FirstName FROM Contact WHERE LastName = 'Soqlson' AND "
    assert names(q(base + "FirstName IN ('Ann', 'Cy') ORDER BY FirstName")) == ["Ann", "Cy"]
    assert names(q(base + "FirstName NOT IN ('Ann') ORDER BY FirstName")) == ["Bob", "Cy"]
    assert names(q(base + "Email = null ORDER BY FirstName")) == ["Bob", "Cy"]
    assert names(q(base + "Email != null")) == ["Ann"]
    assert names(q(base + "FirstName LIKE 'b%'")) == ["Bob"]
    assert names(q(base + "(FirstName = 'Ann' OR FirstName = 'Bob') AND NOT FirstName = 'Bob'")) == ["Ann"]
    assert names(q(base + "FirstName = 'ANN'")) == ["Ann"]  # case-insensitive like Salesforce
    assert names(q(base + "Account.Industry = 'Media'")) == ["Ann"]
    # != includes nulls in SOQL
    assert names(q(base + "Account.Industry != 'Media' ORDER BY FirstName")) == ["Bob", "Cy"]
    assert q("SELECT Id FROM Account WHERE AnnualRevenue > 41.5 AND AnnualRevenue <= 42 AND Name LIKE 'SOQL%'")[
        "totalSize"] == 1
    assert q("SELECT Id FROM User WHERE IsActive = true")["totalSize"] >= 5


def test_escaping_rules(shared_sf, data):
    soql = format_soql("SELECT Id FROM Account WHERE Name = {}", "SOQL O'Reilly & Sons")
    assert soql.endswith("'SOQL O\\'Reilly & Sons'")
    assert shared_sf.query(soql)["totalSize"] == 1
    assert shared_sf.query(r"SELECT Id FROM Account WHERE Name LIKE 'SOQL O\'R%'")["totalSize"] == 1


def test_count_order_limit_offset(shared_sf, data):
    assert shared_sf.query("SELECT COUNT() FROM Contact WHERE LastName = 'Soqlson'")["totalSize"] == 3
    res = shared_sf.query("SELECT COUNT(Id) n FROM Contact WHERE LastName = 'Soqlson'")
    assert res["records"][0]["n"] == 3 and res["records"][0]["attributes"] == {"type": "AggregateResult"}
    q = "SELECT FirstName FROM Contact WHERE LastName = 'Soqlson' ORDER BY FirstName DESC LIMIT 2 OFFSET 1"
    assert names(shared_sf.query(q)) == ["Bob", "Ann"]
    res = shared_sf.query("SELECT FirstName, Email FROM Contact WHERE LastName = 'Soqlson' "
                          "ORDER BY Email ASC NULLS LAST, FirstName")
    assert names(res) == ["Ann", "Bob", "Cy"]
    res = shared_sf.query("SELECT FirstName, Email FROM Contact WHERE LastName = 'Soqlson' ORDER BY Email, FirstName")
    assert names(res) == ["Bob", "Cy", "Ann"]  # ASC defaults to NULLS FIRST


def test_date_literals_and_datetimes(sf, emu):
    rid = sf.Opportunity.create({"Name": "Dated", "StageName": "Prospecting",
                                 "CloseDate": (emu.now().date() + dt.timedelta(days=3)).isoformat()})["id"]
    q = sf.query
    assert rid in {r["Id"] for r in q("SELECT Id FROM Opportunity WHERE CreatedDate = TODAY")["records"]}
    assert rid in {r["Id"] for r in q("SELECT Id FROM Opportunity WHERE CreatedDate = LAST_N_DAYS:1")["records"]}
    assert rid not in {r["Id"] for r in q("SELECT Id FROM Opportunity WHERE CreatedDate = YESTERDAY")["records"]}
    assert rid in {r["Id"] for r in q("SELECT Id FROM Opportunity WHERE CloseDate = NEXT_N_DAYS:5")["records"]}
    day = emu.now().date().isoformat()
    assert q(f"SELECT Id FROM Opportunity WHERE Id = '{rid}' AND CreatedDate >= {day}T00:00:00Z")["totalSize"] == 1
    assert q(f"SELECT Id FROM Opportunity WHERE Id = '{rid}' AND CloseDate > {day}")["totalSize"] == 1
    emu.control.advance_clock(86400 * 2)
    q = Salesforce(instance_url=emu.base_url, session_id=password_token(emu)["access_token"], version=VERSION).query
    assert rid not in {r["Id"] for r in q("SELECT Id FROM Opportunity WHERE CreatedDate = TODAY")["records"]}
    assert rid in {r["Id"] for r in q("SELECT Id FROM Opportunity WHERE CreatedDate = LAST_N_DAYS:2")["records"]}


def test_date_range_literals():
    today = dt.date(2026, 11, 22)  # a Sunday
    assert date_range("TODAY", today) == (today, dt.date(2026, 11, 23))
    assert date_range("LAST_N_DAYS:7", today) == (dt.date(2026, 11, 15), dt.date(2026, 11, 23))
    assert date_range("THIS_MONTH", today) == (dt.date(2026, 11, 1), dt.date(2026, 12, 1))
    assert date_range("LAST_MONTH", dt.date(2026, 1, 5)) == (dt.date(2025, 12, 1), dt.date(2026, 1, 1))
    assert date_range("THIS_WEEK", today) == (today, dt.date(2026, 11, 29))


def test_errors_are_worded_like_salesforce(shared_api):
    def err(q):
        r = shared_api.get("query", params={"q": q})
        assert r.status_code == 400
        return r.json()[0]

    e = err("SELECT Namee FROM Account")
    assert e["errorCode"] == "INVALID_FIELD"
    assert e["message"] == ("\nSELECT Namee FROM Account\n       ^\nERROR at Row:1:Column:8\nNo such column 'Namee' "
                            "on entity 'Account'. If you are attempting to use a custom field, be sure to append the "
                            "'__c' after the custom field name. Please reference your WSDL or the describe call for "
                            "the appropriate names.")
    e = err("SELECT Id FROM Acount")
    assert e["errorCode"] == "INVALID_TYPE" and "sObject type 'Acount' is not supported." in e["message"]
    e = err("SELECT Id FROM Account WHERE")
    assert e["errorCode"] == "MALFORMED_QUERY" and "unexpected token: <EOF>" in e["message"]
    e = err("SELECT Id FROM Account WHERE CreatedDate > '2020-01-01'")
    assert e["errorCode"] == "INVALID_FIELD" and "must be of type dateTime and should not be enclosed in quotes" in \
        e["message"]
    e = err("SELECT Id, Foo.Name FROM Contact")
    assert "Didn't understand relationship 'Foo' in field path." in e["message"]


def test_simple_salesforce_raises_malformed(shared_sf):
    with pytest.raises(SalesforceMalformedRequest):
        shared_sf.query("SELECT FROM Account")


def test_paging_honours_batch_size(api):
    api.control("seed", {"contacts": 1100})
    r = api.get("query", params={"q": "SELECT Id, Name FROM Contact ORDER BY Id"},
                headers={"Sforce-Query-Options": "batchSize=500"})
    body = r.json()
    assert body["done"] is False and len(body["records"]) == 500 and body["totalSize"] >= 1100
    seen = [x["Id"] for x in body["records"]]
    while not body["done"]:
        assert body["nextRecordsUrl"].startswith("/services/data/v62.0/query/01g")
        body = api.get(body["nextRecordsUrl"]).json()
        seen += [x["Id"] for x in body["records"]]
        assert "nextRecordsUrl" in body or body["done"]
    assert len(seen) == len(set(seen)) == body["totalSize"] and seen == sorted(seen)


def test_query_all_pages_with_simple_salesforce(sf, api):
    api.control("seed", {"accounts": 2500})
    res = sf.query_all("SELECT Id FROM Account")
    assert res["totalSize"] == len(res["records"]) >= 2500
    assert res["done"] is True


def test_query_all_includes_deleted(sf):
    rid = sf.Lead.create({"LastName": "Gone", "Company": "G"})["id"]
    sf.Lead.delete(rid)
    assert sf.query(f"SELECT Id FROM Lead WHERE Id = '{rid}'")["totalSize"] == 0
    res = sf.query_all(f"SELECT Id, IsDeleted FROM Lead WHERE Id = '{rid}'", include_deleted=True)
    assert res["records"][0]["IsDeleted"] is True
