"""Rules checked against the emulated org's describe: unknown fields, values of the wrong type,
operators a field cannot take and picklist values that do not exist are refused on save and on
go-live, inline on the editor (Preview too), never as raw JSON; a rule that fits saves."""

from __future__ import annotations

import pytest

from refstage.domain.audit import Actor
from refstage.domain.errors import InvalidInput
from refstage.services import programs, tenants
from tests.admin.conftest import PASSWORD, field_errors, post, sign_in
from tests.salesforce.helpers import PROGRAM, setup_world

ACTOR = Actor.system("test")


@pytest.mark.parametrize("rule, expected", [
    ("Opportunity.Foo__c == 'x'", "Opportunity has no field 'Foo__c'"),
    ("Opportunity.Amount >= 'lots'", "Opportunity.Amount is a number field: 'lots' is not a number"),
    ("Opportunity.StageName == 'Closed Wonn'", "'Closed Wonn' is not one of its values"),
    ("Opportunity.StageName >= 'Closed Won'", "compare it with ==, != or in, not >="),
    ("Opportunity.CloseDate >= 'soon'", "is not a date"),
])
def test_rules_that_can_never_match_are_refused(rt, client, emu, rule, expected):
    tenant_id, connection_id, program_id = setup_world(rt, client)
    with pytest.raises(InvalidInput) as refused:
        programs.create_program(rt, tenant_id, {**PROGRAM, "slug": "other", "connection_id": connection_id, "rule": rule}, ACTOR)
    assert any(expected in m for m in refused.value.errors["rule"]), refused.value.errors
    with pytest.raises(InvalidInput):  # the live program cannot be edited into it either
        programs.update_program(rt, tenant_id, program_id, {"rule": rule}, ACTOR)


def test_every_problem_is_reported_at_once_and_a_fitting_rule_saves(rt, client, emu):
    tenant_id, connection_id, _ = setup_world(rt, client)
    with pytest.raises(InvalidInput) as refused:
        programs.create_program(rt, tenant_id, {**PROGRAM, "slug": "two", "connection_id": connection_id,
                                                "rule": "Opportunity.Foo__c == 'x' AND Opportunity.Amount >= 'lots'"}, ACTOR)
    assert len(refused.value.errors["rule"]) == 2
    saved = programs.create_program(rt, tenant_id, {**PROGRAM, "slug": "fits", "connection_id": connection_id,
                                                    "rule": "Opportunity.StageName in ['Closed Won', 'Negotiation/Review'] "
                                                            "AND Opportunity.Amount >= 100"}, ACTOR)
    assert programs.set_program_status(rt, tenant_id, saved.id, "live", ACTOR).status.value == "live"


def _form(connection_id: str, rule: str, action: str = "save") -> dict:
    return {"name": "Partners", "slug": "partners", "connection_id": connection_id, "enrolment_kind": "salesforce_contacts",
            "rule": rule, "rr_key": "adv", "rr_recipient": "advocate", "rr_kind": "fixed", "rr_amount": "100",
            "rr_currency": "USD", "owner_name": "Riley", "owner_email": "riley@acme.test", "duplicate_policy": "review",
            "action": action}


def test_editor_shows_rule_errors_inline_on_save_and_preview(rt, client, app, emu):
    tenant_id, connection_id, _ = setup_world(rt, client)
    tenants.add_user(rt, tenant_id, "admin@acme.test", "admin", PASSWORD)
    c = app.test_client()
    assert sign_in(c, "admin@acme.test").status_code == 302
    for action, status in (("preview", 200), ("save", 400)):
        r = post(c, "/admin/programs/new", _form(connection_id, "Opportunity.Amount >= 'lots'", action))
        html = r.get_data(as_text=True)
        assert r.status_code == status and r.mimetype == "text/html", (action, html[:300])
        assert any("is a number field" in e for e in field_errors(html)), field_errors(html)
        assert "Opportunity.Amount &gt;= &#39;lots&#39;</textarea>" in html  # the form is kept
    r = post(c, "/admin/programs/new", _form(connection_id, "Opportunity.StageName == 'Closed Won'", "preview"))
    assert r.status_code == 200 and "would qualify under this rule today" in r.get_data(as_text=True)
    empty = post(c, "/admin/programs/new", {"action": "save", "enrolment_kind": "form"}).get_data(as_text=True)
    for key in ("name", "slug", "rule"):
        assert f'id="err-{key}-1"' in empty, key
