import json
from decimal import Decimal

import pytest

from refstage.domain.errors import RuleError
from refstage.domain.rules import Rule


def test_issue_example_opportunity_stage_and_amount():
    rule = Rule.parse("Opportunity.StageName == 'Closed Won' AND Opportunity.Amount >= 5000")
    assert rule.evaluate({"Opportunity": {"StageName": "Closed Won", "Amount": 5000}})
    assert rule.evaluate({"Opportunity": {"StageName": "Closed Won", "Amount": "7500.50"}})
    assert not rule.evaluate({"Opportunity": {"StageName": "Closed Won", "Amount": 4999.99}})
    assert not rule.evaluate({"Opportunity": {"StageName": "Negotiation", "Amount": 9000}})
    assert not rule.evaluate({"Opportunity": {"StageName": "Closed Won", "Amount": None}})
    assert rule.required_fields() == {"Opportunity": {"StageName", "Amount"}}


def test_issue_example_lead_status_in_list():
    rule = Rule.parse("Lead.Status in ['Qualified', 'Working']")
    assert rule.evaluate({"Lead": {"Status": "Working"}})
    assert rule.evaluate({"Lead": {"Status": "qualified"}})  # picklist values compare case-insensitively
    assert not rule.evaluate({"Lead": {"Status": "Open"}})
    assert rule.required_fields() == {"Lead": {"Status"}}


def test_issue_example_pipedrive_deal_stage_or_won():
    rule = Rule.parse("Deal.stage_id == 7 OR Deal.status == 'won'")
    assert rule.evaluate({"Deal": {"stage_id": 7, "status": "open"}})
    assert rule.evaluate({"Deal": {"stage_id": 3, "status": "won"}})
    assert not rule.evaluate({"Deal": {"stage_id": 3, "status": "open"}})
    assert not rule.evaluate({})  # no deal in the snapshot: nothing qualifies


def test_json_form_round_trips_and_is_plain_json():
    rule = Rule.parse("(Opportunity.StageName not in ['Closed Lost'] AND Opportunity.Amount <= 10.5) OR Account.Type == 'Partner'")
    text = json.dumps(rule.to_json())
    again = Rule.from_json(json.loads(text))
    assert again == rule

    assert again.evaluate({"Opportunity": {"StageName": "Proposal", "Amount": Decimal("10.5")}})
    assert not again.evaluate({"Opportunity": {"StageName": "Proposal", "Amount": Decimal("10.51")}})
    assert again.evaluate({"Account": {"Type": "Partner"}})


def test_flags_is_won_and_is_closed():
    won = Rule.from_json({"object": "Opportunity", "field": "IsWon", "op": "is_won"})
    assert won.required_fields() == {"Opportunity": {"IsWon"}}
    assert won.evaluate({"Opportunity": {"IsWon": True}})
    assert won.evaluate({"Opportunity": {"IsWon": "true"}})
    assert not won.evaluate({"Opportunity": {"IsWon": False}})
    closed = Rule.parse("Deal is_closed")
    assert closed.evaluate({"Deal": {"status": "lost"}})
    assert not closed.evaluate({"Deal": {"status": "open"}})
    assert Rule.parse("Deal is_won").required_fields() == {"Deal": {"status"}}


def test_dates_compare_as_times():
    rule = Rule.parse("Opportunity.CloseDate >= '2026-01-01'")
    assert rule.evaluate({"Opportunity": {"CloseDate": "2026-03-04"}})
    assert rule.evaluate({"Opportunity": {"CloseDate": "2026-01-01T00:00:00.000+0000"}})
    assert not rule.evaluate({"Opportunity": {"CloseDate": "2025-12-31"}})


def test_not_equals_and_null():
    rule = Rule.parse("Lead.Status != 'Unqualified'")
    assert rule.evaluate({"Lead": {"Status": "Open"}})
    assert not rule.evaluate({"Lead": {"Status": "Unqualified"}})
    assert Rule.parse("Lead.OwnerId == null").evaluate({"Lead": {"OwnerId": None}})


@pytest.mark.parametrize(
    "data, where",
    [
        ({"object": "Opp", "field": "StageName", "op": "equals", "value": "x"}, "$.object"),
        ({"object": "Opportunity", "field": "Stage Name", "op": "equals", "value": "x"}, "$.field"),
        ({"object": "Opportunity", "field": "StageName", "op": "like", "value": "x"}, "$.op"),
        ({"object": "Opportunity", "field": "StageName", "op": "in", "value": "x"}, "$.value"),
        ({"object": "Opportunity", "field": "StageName", "op": "in", "value": []}, "$.value"),
        ({"object": "Opportunity", "field": "StageName", "op": "equals"}, "$.value"),
        ({"object": "Opportunity", "field": "Amount", "op": "gte", "value": True}, "$.value"),
        ({"all": [{"object": "Lead", "field": "Status", "op": "equals", "value": 1}, {"object": "Lead"}]}, "$.all[1]"),
        ({"any": []}, "$.any"),
        ({"all": [], "any": []}, "$"),
        ("not an object", "$"),
    ],
)
def test_validation_errors_name_the_bad_part(data, where):
    with pytest.raises(RuleError) as info:
        Rule.from_json(data)
    assert any(key.startswith(where) for key in info.value.errors), info.value.errors


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "write a condition"),
        ("Opportunity.StageName ==", "expected a value"),
        ("Opportunity.StageName ~ 'x'", "unexpected character"),
        ("Opportunity.StageName == 'x' AND", "at the end"),
        ("(Lead.Status == 'a'", "')'"),
        ("Lead.Status in 'a'", "'['"),
        ("Lead.Status == 'a' Lead.Status == 'b'", "unexpected"),
        ("Lead is_happy", "unknown operator"),
    ],
)
def test_text_parse_errors_are_clear(text, fragment):
    with pytest.raises(RuleError) as info:
        Rule.parse(text)
    assert fragment in json.dumps(info.value.errors)


def test_deep_nesting_is_refused():
    node = {"object": "Lead", "field": "Status", "op": "equals", "value": "x"}
    for _ in range(10):
        node = {"all": [node]}
    with pytest.raises(RuleError):
        Rule.from_json(node)


def test_string_escapes_survive_parse_and_describe():
    rule = Rule.parse(r"Account.Name == 'O\'Brien \\ Sons'")
    assert rule.tree["value"] == "O'Brien \\ Sons"
    assert Rule.parse(rule.describe()) == rule


def test_explain_reports_each_condition():
    rule = Rule.parse("Opportunity.StageName == 'Closed Won' AND Opportunity.Amount >= 5000")
    result = rule.explain({"Opportunity": {"StageName": "Closed Won", "Amount": 100}})
    assert result["passed"] is False
    assert [p["passed"] for p in result["all"]] == [True, False]
    assert result["all"][1]["actual"] == 100
