"""The emulated org's UI API and GraphQL endpoint: the answers Lightning Data Service gets, and the Jest
fixtures kept equal to them."""

from __future__ import annotations

import pytest

from refstage_devkit.emulators.salesforce.preview import fixtures

V = fixtures.VERSION


@pytest.fixture(scope="module")
def opp_org() -> fixtures.OrgClient:
    return fixtures.OrgClient(fixtures.ATTRIBUTION_RECORDS)


@pytest.fixture(scope="module")
def account_org() -> fixtures.OrgClient:
    return fixtures.OrgClient(fixtures.ACCOUNT_RECORDS)


def raw(org: fixtures.OrgClient, path: str, method: str = "GET", **kw):
    """A call with the fixtures' record ids in the path turned into the org's; the answer as the org gives it."""
    return org.client.open(f"/services/data/v{V}/{org.path(path)}", method=method, headers=org.headers, **kw)


def test_fixtures_match_what_the_org_answers() -> None:
    assert fixtures.main(["--check"]) == 0


def test_get_record_spans_relationships_and_nests_records(opp_org) -> None:
    body = opp_org.get("records/006000000000001AAA", fields=fixtures.OPPORTUNITY_FIELDS,
                       optionalFields=["Opportunity.Referral__r.Advocate__r.Name"])
    assert body["apiName"] == "Opportunity" and body["id"] == "006000000000001AAA"
    assert set(body) >= {"childRelationships", "eTag", "lastModifiedById", "lastModifiedDate", "recordTypeId",
                         "systemModstamp", "weakEtag"}
    referral = body["fields"]["Referral__r"]
    assert referral["displayValue"] == "REF-000042"
    advocate = referral["value"]["fields"]["Advocate__r"]
    assert advocate["displayValue"] == "Ada Lovelace"
    assert advocate["value"]["fields"]["Name"] == {"displayValue": None, "value": "Ada Lovelace"}
    assert advocate["value"]["fields"]["Id"]["value"] == "003000000000001AAA"
    assert body["fields"]["StageName"] == {"displayValue": "Proposal/Price Quote", "value": "Proposal/Price Quote"}


def test_optional_fields_that_do_not_exist_are_dropped_required_ones_fail(opp_org) -> None:
    body = opp_org.get("records/006000000000001AAA", fields=["Opportunity.StageName"],
                       optionalFields=["Opportunity.Nope__c", "Opportunity.Referral__r.Nope__c",
                                       "Account.Name", "Opportunity.Referral__r.Name"])
    assert set(body["fields"]) == {"StageName", "Referral__r"}
    assert set(body["fields"]["Referral__r"]["value"]["fields"]) == {"Id", "Name"}
    response = raw(opp_org, "ui-api/records/006000000000001AAA?fields=Opportunity.Nope__c")
    assert response.status_code == 400
    [error] = response.get_json()
    assert error["errorCode"] == "INVALID_FIELD" and "Nope__c" in error["message"]


def test_empty_lookup_and_unknown_record(opp_org) -> None:
    body = opp_org.get("records/006000000000002AAA", fields=["Opportunity.Referral__c"],
                       optionalFields=["Opportunity.Referral__r.Name"])
    assert body["fields"]["Referral__r"] == {"displayValue": None, "value": None}
    for record_id in ("006000000000099AAA", "not-an-id"):
        response = raw(opp_org, f"ui-api/records/{record_id}?fields=Opportunity.Name")
        assert response.status_code == 404
        assert response.get_json() == [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    response = raw(opp_org, "ui-api/records/006000000000001AAA")
    assert response.status_code == 400


def test_unauthenticated_calls_are_refused(opp_org) -> None:
    response = opp_org.client.get(f"/services/data/v{V}/ui-api/records/006000000000001AAA?fields=Opportunity.Name")
    assert response.status_code == 401


def test_related_list_records_pages_and_sorts_get_and_post(opp_org) -> None:
    path = "ui-api/related-list-records/a02000000000001AAA/Rewards__r"
    first = raw(opp_org, f"{path}?fields=Referral_Reward__c.Name&sortBy=-Referral_Reward__c.Name&pageSize=1")
    body = first.get_json()
    assert [r["fields"]["Name"]["value"] for r in body["records"]] == ["RWD-000008"]
    assert body["nextPageToken"] == "1" and body["count"] == 1 and body["pageSize"] == 1
    assert body["listReference"]["relatedListId"] == "Rewards__r"
    second = raw(opp_org, path, method="POST", json={"fields": ["Referral_Reward__c.Name"], "pageSize": 1,
                                                    "pageToken": "1", "sortBy": ["-Referral_Reward__c.Name"]})
    assert [r["fields"]["Name"]["value"] for r in second.get_json()["records"]] == ["RWD-000007"]
    assert second.get_json()["nextPageToken"] is None
    reason = raw(opp_org, f"{path}?fields=Referral_Reward__c.Review_Reason__c").get_json()["records"][0]["fields"]
    assert reason["Review_Reason__c"] == {"displayValue": "Over Amount Threshold", "value": "over_amount_threshold"}


def test_display_values_are_those_of_an_en_us_usd_org(opp_org) -> None:
    fields = opp_org.get("records/006000000000001AAA", fields=["Opportunity.Amount", "Opportunity.CloseDate",
                                                               "Opportunity.IsWon", "Opportunity.StageName"],
                         optionalFields=["Opportunity.Referral__r.Captured_Date__c"])["fields"]
    assert fields["Amount"] == {"displayValue": "$12,000.00", "value": 12000.0}
    assert fields["CloseDate"] == {"displayValue": "12/20/2026", "value": "2026-12-20"}
    assert fields["IsWon"] == {"displayValue": None, "value": False}
    captured = fields["Referral__r"]["value"]["fields"]["Captured_Date__c"]
    assert captured == {"displayValue": "10/1/2026, 9:30 AM", "value": "2026-10-01T09:30:00.000Z"}


@pytest.mark.parametrize("query,code", [
    ("fields=Referral_Reward__c.Nope__c", "INVALID_FIELD"),
    ("fields=Referral_Reward__c.Name&pageSize=0", "ILLEGAL_QUERY_PARAMETER_VALUE"),
    ("fields=Referral_Reward__c.Name&pageSize=abc", "ILLEGAL_QUERY_PARAMETER_VALUE"),
    ("fields=Referral_Reward__c.Name&sortBy=Referral_Reward__c.Nope__c", "INVALID_FIELD"),
])
def test_related_list_errors(opp_org, query, code) -> None:
    response = raw(opp_org, f"ui-api/related-list-records/a02000000000001AAA/Rewards__r?{query}")
    assert response.status_code == 400
    assert response.get_json()[0]["errorCode"] == code
    missing = raw(opp_org, "ui-api/related-list-records/a02000000000001AAA/Nothing__r?fields=Referral_Reward__c.Name")
    assert missing.status_code == 404


def test_object_info_and_picklist_values(opp_org) -> None:
    info = opp_org.get("object-info/Referral__c")
    assert info["apiName"] == "Referral__c" and info["fields"]["Status__c"]["dataType"] == "Picklist"
    assert {"childObjectApiName": "Referral_Reward__c", "fieldName": "Referral__c", "junctionIdListNames": [],
            "junctionReferenceTo": [], "relationshipName": "Rewards__r"} in info["childRelationships"]
    statuses = opp_org.get("object-info/Referral__c/picklist-values/012000000000000AAA/Status__c")
    assert {"value": "in_progress", "label": "In Progress"}.items() <= statuses["values"][2].items()
    assert statuses["defaultValue"]["value"] == "captured"
    stages = opp_org.get("object-info/Opportunity/picklist-values/012000000000000AAA/StageName")
    won = next(v for v in stages["values"] if v["value"] == "Closed Won")
    assert won["attributes"]["won"] is True and won["attributes"]["closed"] is True
    assert raw(opp_org, "ui-api/object-info/Nope__c").status_code == 404
    assert raw(opp_org, "ui-api/object-info/Opportunity/picklist-values/012000000000000AAA/Name").status_code == 400


def test_graphql_filters_through_relationships_orders_and_counts(account_org) -> None:
    data = account_org.graphql(fixtures.graphql_document("accountReferrals"),
                               {"accountId": "001000000000001AAA", "pageSize": 2})
    referrals = data["uiapi"]["query"]["Referral__c"]
    assert referrals["totalCount"] == 3
    assert [e["node"]["Friend_Name__c"]["value"] for e in referrals["edges"]] == ["Charles Babbage",
                                                                                  "Mary Somerville"]
    rewards = data["uiapi"]["query"]["Referral_Reward__c"]
    assert rewards["totalCount"] == 4  # the friend's reward is not an advocate reward


def test_graphql_errors_are_graphql_errors(account_org) -> None:
    response = raw(account_org, "graphql", method="POST", json={
        "query": "query { uiapi { query { Referral__c { edges { node { Nope__c { value } } } } } } }"})
    body = response.get_json()
    assert response.status_code == 200 and body["data"] is None
    assert "Nope__c" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["ErrorType"] == "ValidationError"
    syntax = raw(account_org, "graphql", method="POST", json={"query": "query {"}).get_json()
    assert syntax["errors"][0]["extensions"]["ErrorType"] == "InvalidSyntax"
    assert raw(account_org, "graphql", method="POST", data="nope").status_code == 400


@pytest.mark.parametrize("where,expected", [
    ('{ Friend_Name__c: { like: "%babbage" } }', ["REF-000011"]),
    ('{ Status__c: { in: ["routed", "rewarded"] } }', ["REF-000009", "REF-000012", "REF-000013"]),
    ('{ not: { Status__c: { eq: "rewarded" } } }', ["REF-000011", "REF-000012"]),
    ('{ or: [{ Name: { eq: "REF-000011" } }, { Captured_Date__c: { lt: "2026-04-01T00:00:00Z" } }] }',
     ["REF-000009", "REF-000011"]),
    ('{ Advocate__r: { Account: { Name: { eq: "Harvard Computation Lab" } } } }', ["REF-000009"]),
])
def test_graphql_where_operators(account_org, where, expected) -> None:
    query = (f"query {{ uiapi {{ query {{ Referral__c(where: {where}, orderBy: {{ Name: {{ order: ASC }} }}) "
             "{ edges { node { Name { value } } } } } } }")
    data = account_org.graphql(query, {})
    assert [e["node"]["Name"]["value"] for e in data["uiapi"]["query"]["Referral__c"]["edges"]] == expected


def test_graphql_pages_with_cursors(account_org) -> None:
    query = ("query page($after: String) { uiapi { query { Referral__c(first: 3, after: $after, orderBy: "
             "{ Name: { order: ASC } }) { totalCount edges { node { Name { value } } } "
             "pageInfo { hasNextPage endCursor } } } } }")
    first = account_org.graphql(query, {})["uiapi"]["query"]["Referral__c"]
    assert first["pageInfo"]["hasNextPage"] is True and len(first["edges"]) == 3
    rest = account_org.graphql(query, {"after": first["pageInfo"]["endCursor"]})["uiapi"]["query"]["Referral__c"]
    assert [e["node"]["Name"]["value"] for e in rest["edges"]] == ["REF-000013"]
    assert rest["pageInfo"]["hasNextPage"] is False and rest["totalCount"] == 4


def test_hostile_ui_api_input_gets_a_clear_400(opp_org) -> None:
    many = ",".join(f"Opportunity.F{i}__c" for i in range(1200))
    assert raw(opp_org, f"ui-api/records/006000000000001AAA?optionalFields={many}").status_code == 400
    deep = "Opportunity." + "Referral__r." * 7 + "Name"
    assert raw(opp_org, f"ui-api/records/006000000000001AAA?fields={deep}").status_code == 400
    body = raw(opp_org, "ui-api/related-list-records/a02000000000001AAA/Rewards__r", method="POST", data="[1]",
               content_type="application/json")
    assert body.status_code == 400
    bad_first = raw(opp_org, "graphql", method="POST", json={
        "query": "query { uiapi { query { Referral__c(first: 100000) { totalCount } } } }"}).get_json()
    assert bad_first["data"] is None and bad_first["errors"]
    mutation = raw(opp_org, "graphql", method="POST", json={"query": "mutation { x }"}).get_json()
    assert mutation["data"] is None
