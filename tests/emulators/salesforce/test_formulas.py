"""Formula and roll-up summary fields: computed from the package's metadata, recomputed when children
change, read-only to writes, filterable in SOQL and marked calculated in describe."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sf_emu_helpers import VERSION, Api, make_emulator, password_token
from simple_salesforce import Salesforce

from refstage_devkit.emulators.salesforce.formulas import (Calculations, Context, Evaluator, FormulaError, Summary, parse,
                                                    summarize)
from refstage_devkit.emulators.salesforce.schema import Field, SObject, default_metadata_dir


# Roll-ups the tests add to a copy of the package (its own may change with the package): sums, a max,
# a currency sum, over the package's Referral_Reward__c children.
EXTRA_FIELDS = {
    "Referral_Reward__c/fields/Test_Fee__c": "<type>Currency</type><precision>16</precision><scale>2</scale>",
    "Referral__c/fields/Test_Total_Amount__c": (
        "<summarizedField>Referral_Reward__c.Amount__c</summarizedField><summaryFilterItems>"
        "<field>Referral_Reward__c.Status__c</field><operation>notEqual</operation><value>cancelled, rejected</value>"
        "</summaryFilterItems><summaryForeignKey>Referral_Reward__c.Referral__c</summaryForeignKey>"
        "<summaryOperation>sum</summaryOperation><type>Summary</type>"),
    "Referral__c/fields/Test_Issued_Amount__c": (
        "<summarizedField>Referral_Reward__c.Amount__c</summarizedField><summaryFilterItems>"
        "<field>Referral_Reward__c.Status__c</field><operation>equals</operation><value>issued</value>"
        "</summaryFilterItems><summaryForeignKey>Referral_Reward__c.Referral__c</summaryForeignKey>"
        "<summaryOperation>sum</summaryOperation><type>Summary</type>"),
    "Referral__c/fields/Test_Total_Fee__c": (
        "<summarizedField>Referral_Reward__c.Test_Fee__c</summarizedField><summaryForeignKey>"
        "Referral_Reward__c.Referral__c</summaryForeignKey><summaryOperation>sum</summaryOperation><type>Summary</type>"),
    "Referral__c/fields/Test_Is_Qualified__c": (
        "<formula>IF(OR(ISPICKVAL(Status__c, \"qualified\"), ISPICKVAL(Status__c, \"rewarded\")), 1, 0)</formula>"
        "<formulaTreatBlanksAs>BlankAsZero</formulaTreatBlanksAs><precision>18</precision><scale>0</scale>"
        "<type>Number</type>"),
}


@pytest.fixture(scope="module")
def package_emu(cert_dir, tmp_path_factory):
    """An org holding the package's own objects and fields, plus EXTRA_FIELDS."""
    import shutil

    objects = tmp_path_factory.mktemp("package") / "objects"
    shutil.copytree(default_metadata_dir(), objects)
    for path, body in EXTRA_FIELDS.items():
        name = path.rsplit("/", 1)[1]
        (objects / f"{path}.field-meta.xml").write_text(
            '<?xml version="1.0" encoding="UTF-8"?><CustomField xmlns="http://soap.sforce.com/2006/04/metadata">'
            f"<fullName>{name}</fullName><label>{name}</label>{body}</CustomField>")
    with make_emulator(cert_dir, seed="empty", metadata_dir=objects) as emu:
        yield emu


@pytest.fixture
def sf(package_emu):
    return Salesforce(instance_url=package_emu.base_url,
                      session_id=Api(package_emu, password_token(package_emu)["access_token"]).token, version=VERSION)


def _obj() -> SObject:
    obj = SObject("Thing__c", "a0T", "Thing", "Things", custom=True)
    for f in (Field("Amount__c", "currency", scale=2), Field("Qty__c", "double"), Field("Name", "string"),
              Field("Status__c", "picklist", picklist=["new", "won", "lost"]), Field("Flag__c", "boolean"),
              Field("Due__c", "date")):
        obj.add(f)
    return obj


def _eval(formula: str, record: dict, blank_as_zero: bool = False):
    ctx = Context(_obj(), record, lambda o, i: None, {}, blank_as_zero, dt.date(2026, 12, 2),
                  dt.datetime(2026, 12, 2, 10, tzinfo=dt.timezone.utc))
    return Evaluator(ctx).run(parse(formula))


@pytest.mark.parametrize("formula, record, expected", [
    ("Amount__c * 2 + Qty__c / 4 - 1", {"Amount__c": 10.5, "Qty__c": 2}, Decimal("20.5")),
    ("2 ^ 3 * -1", {}, Decimal(-8)),
    ("Amount__c >= 10 && Qty__c < 3", {"Amount__c": 10, "Qty__c": 2}, True),
    ("Amount__c <> 10 || NOT(Flag__c)", {"Amount__c": 10, "Flag__c": 1}, False),
    ("IF(ISPICKVAL(Status__c, \"won\"), 1, 0)", {"Status__c": "won"}, Decimal(1)),
    ("IF(OR(ISPICKVAL(Status__c, 'won'), ISPICKVAL(Status__c, 'lost')), 'closed', 'open')", {"Status__c": "new"}, "open"),
    ("TEXT(Status__c) & \"-\" & TEXT(Qty__c)", {"Status__c": "won", "Qty__c": 3}, "won-3"),
    ("BLANKVALUE(Name, \"(none)\")", {"Name": None}, "(none)"),
    ("BLANKVALUE(Name, \"(none)\")", {"Name": "Acme"}, "Acme"),
    ("ISBLANK(Amount__c)", {"Amount__c": None}, True),
    ("AND(ISBLANK(Name), NOT(ISBLANK(Qty__c)))", {"Qty__c": 0}, True),
    ("Amount__c + 1", {"Amount__c": None}, None),
    ("CASE(Status__c, 'won', 'W', 'lost', 'L', '?')", {"Status__c": "lost"}, "L"),
    ("ROUND(Amount__c / 3, 2)", {"Amount__c": 10}, Decimal("3.33")),
    ("MAX(Qty__c, 4, 2) + MIN(1, Qty__c)", {"Qty__c": 7}, Decimal(8)),
    ("Due__c + 3 > TODAY()", {"Due__c": "2026-11-30"}, True),
    ("/* qualified? */ LEN(UPPER(Name)) = 4 && CONTAINS(Name, 'cm') && BEGINS(Name, 'A')", {"Name": "Acme"}, True),
])
def test_formula_language(formula, record, expected):
    assert _eval(formula, record) == expected


def test_blank_as_zero_and_errors():
    assert _eval("Amount__c + 1", {"Amount__c": None}, blank_as_zero=True) == Decimal(1)
    assert _eval("ISBLANK(Amount__c)", {"Amount__c": None}, blank_as_zero=True) is True  # sees the real blank
    with pytest.raises(FormulaError, match="Unknown function"):
        _eval("FROB(1)", {})
    with pytest.raises(FormulaError, match="does not exist"):
        _eval("Nope__c + 1", {})
    with pytest.raises(FormulaError, match="Syntax error"):
        parse("IF(1, 2")
    with pytest.raises(FormulaError, match="Division by zero"):
        _eval("1 / 0", {})


def test_summaries_count_sum_min_max_with_filters():
    child = _obj()
    rows = [{"Amount__c": 10.0, "Status__c": "won"}, {"Amount__c": 5.5, "Status__c": "lost"},
            {"Amount__c": 7.0, "Status__c": "new"}, {"Amount__c": None, "Status__c": "won"}]
    s = lambda op, *filters: Summary(op, "Thing__c", "Parent__c", "Amount__c", list(filters))  # noqa: E731
    assert summarize(s("count"), child, rows) == 4
    assert summarize(s("sum"), child, rows) == 22.5
    assert summarize(s("sum", ("Status__c", "notEqual", "lost, new")), child, rows) == 10.0
    assert summarize(s("count", ("Status__c", "equals", "won")), child, rows) == 2
    assert summarize(s("min"), child, rows) == 5.5 and summarize(s("max"), child, rows) == 10.0
    assert summarize(s("max", ("Amount__c", "greaterThan", "100")), child, rows) is None
    assert summarize(s("sum", ("Amount__c", "lessThan", "8")), child, rows) == 12.5
    assert summarize(s("sum"), child, []) == 0 and summarize(s("count"), child, []) == 0


def test_package_formulas_compile(package_emu):
    calcs = Calculations(package_emu.org.store.objects)
    assert calcs.check() == []
    assert {f.name for f in calcs.formulas["Referral__c"]} >= {"Test_Is_Qualified__c"}
    assert {f.name for f in calcs.summaries["Referral__c"]} >= {"Test_Total_Amount__c", "Test_Issued_Amount__c"}


def _referral(sf, status="routed") -> str:
    return sf.Referral__c.create({"Friend_Name__c": "Fran Friend", "Friend_Email__c": "fran@newco.example",
                                  "Status__c": status})["id"]


def _reward(sf, referral_id, amount, status, kind="advocate") -> str:
    return sf.Referral_Reward__c.create({"Referral__c": referral_id, "Amount__c": amount, "Status__c": status,
                                         "Type__c": kind if kind else None})["id"]


def _rollups(sf, rid):
    rec = sf.Referral__c.get(rid)
    return rec["Reward_Count__c"], rec["Test_Total_Amount__c"], rec["Test_Issued_Amount__c"], rec["Test_Is_Qualified__c"]


def test_rollups_follow_children_and_formula_follows_status(sf):
    rid = _referral(sf)
    assert _rollups(sf, rid) == (0, 0, 0, 0)
    a = _reward(sf, rid, 100, "approved", None)
    b = _reward(sf, rid, 50.25, "pending_review", None)
    assert _rollups(sf, rid) == (2, 150.25, 0, 0)
    sf.Referral_Reward__c.update(a, {"Status__c": "issued"})
    sf.Referral_Reward__c.update(b, {"Status__c": "rejected"})
    assert _rollups(sf, rid) == (2, 100, 100, 0)
    sf.Referral__c.update(rid, {"Status__c": "qualified"})
    assert _rollups(sf, rid)[3] == 1
    sf.Referral__c.update(rid, {"Status__c": "rewarded"})
    assert _rollups(sf, rid)[3] == 1
    sf.Referral_Reward__c.delete(a)
    assert _rollups(sf, rid) == (1, 0, 0, 1)
    # SOQL filters and sorts on calculated columns like on any other.
    other = _referral(sf, "captured")
    _reward(sf, other, 10, "issued", None)
    found = sf.query("SELECT Id, Test_Issued_Amount__c FROM Referral__c WHERE Test_Issued_Amount__c > 0 "
                     "AND Test_Is_Qualified__c = 0 ORDER BY Reward_Count__c DESC")["records"]
    assert [r["Id"] for r in found] == [other] and found[0]["Test_Issued_Amount__c"] == 10
    # Deleting the master removes its children (master-detail) and nothing else moves.
    sf.Referral__c.delete(other)
    assert sf.query("SELECT COUNT() FROM Referral_Reward__c WHERE Referral__c = '%s'" % other)["totalSize"] == 0


@pytest.mark.parametrize("field", ["Reward_Count__c", "Test_Is_Qualified__c", "Test_Total_Amount__c"])
def test_calculated_fields_are_read_only(sf, field):
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Referral__c.create({"Friend_Name__c": "X", field: 1})
    body = err.value.content[0]
    assert body["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE" and body["fields"] == [field]
    rid = _referral(sf)
    with pytest.raises(SalesforceMalformedRequest) as err:
        sf.Referral__c.update(rid, {field: 2})
    assert err.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_describe_marks_calculated_fields(sf):
    fields = {f["name"]: f for f in sf.Referral__c.describe()["fields"]}
    q = fields["Test_Is_Qualified__c"]
    assert q["calculated"] is True and q["createable"] is False and q["updateable"] is False
    assert q["calculatedFormula"].startswith("IF(OR(ISPICKVAL(Status__c")
    total = fields["Test_Total_Fee__c"]
    assert total["calculated"] is True and total["type"] == "currency" and total["scale"] == 2
    assert fields["Test_Total_Amount__c"]["type"] == "double"  # a SUM takes the summed field's type
    count = fields["Reward_Count__c"]
    assert count["calculated"] is True and count["type"] == "double" and count["scale"] == 0
    assert fields["Friend_Name__c"]["calculated"] is False

