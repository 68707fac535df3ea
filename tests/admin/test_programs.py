"""Program editor: per-field validation, create and go live, milestone picker with the FakeCrm, preview."""

from __future__ import annotations

from refstage.services import programs
from refstage.services.ports import CrmError, Milestone
from tests.admin.conftest import field_errors, post



def form(world, **over):
    data = {
        "name": "Partners", "slug": "partners", "connection_id": world.connection.id, "enrolment_kind": "salesforce_contacts",
        "cond_field": ["Customer_Tier__c", ""], "cond_op": ["in", "equals"], "cond_value": ["Gold, Platinum", ""],
        "rule": "Opportunity.StageName == 'Closed Won'",
        "rr_key": ["adv"], "rr_recipient": ["advocate"], "rr_kind": ["fixed"], "rr_amount": ["150"], "rr_currency": ["EUR"],
        "rr_percent": [""], "rr_amount_field": [""], "rr_max_amount": [""], "rr_tier_at": [""], "rr_cap_amount": [""],
        "rr_cap_count": ["3"], "rr_cap_period": ["month"],
        "action_self_referral": "block", "action_existing_customer": "pass", "threshold_amount": "500", "threshold_currency": "EUR",
        "velocity_max": "4", "velocity_window_hours": "12", "holding_days": "30",
        "owner_name": "Riley Ops", "owner_email": "riley@acme.test", "duplicate_policy": "attach", "action": "save",
    }
    data.update(over)
    return data


def test_validation_errors_are_shown_per_field(admin_client, world):
    resp = post(admin_client, "/admin/programs/new", form(
        world, name="", slug="Bad Slug!", rule="Opportunity.StageName ==", holding_days="soon",
        rr_amount=[""], velocity_max="0", owner_email="not-an-email", cond_op=["in", "equals"], cond_value=["", ""]))
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert 'id="error-summary"' in html
    for field in ("rule", "holding_days", "reward_rules.0", "velocity_max", "enrolment"):
        assert f"<strong>{field}" in html, field
    # Messages sit next to their fields, and what was typed is kept.
    assert 'id="err-rule-1"' in html and 'id="err-holding_days-1"' in html and 'id="err-velocity_max-1"' in html
    assert 'value="Bad Slug!"' in html and "Opportunity.StageName ==</textarea>" in html
    assert field_errors(html)
    # The program's own checks (name, slug, owner) come once the parts are valid.
    html = post(admin_client, "/admin/programs/new", form(world, name="", slug="Bad Slug!", owner_email="x")).get_data(as_text=True)
    for field in ("name", "slug", "owner.email"):
        assert f"<strong>{field}" in html, field
    assert 'id="err-slug-1"' in html and 'id="err-name-1"' in html
    assert programs.list_programs(admin_client.application.extensions["refstage"], world.tenant.id)[0].slug == "customers"


def test_create_edit_and_go_live(admin_client, world, rt):
    resp = post(admin_client, "/admin/programs/new", form(world))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    created = next(p for p in programs.list_programs(rt, world.tenant.id) if p.slug == "partners")
    assert created.status.value == "draft" and created.holding_days == 30
    assert created.enrolment.to_dict()["conditions"] == [{"field": "Customer_Tier__c", "op": "in", "value": ["Gold", "Platinum"]}]
    rule = created.reward_rules[0]
    assert (str(rule.amount.amount), rule.amount.currency, rule.cap_count, rule.cap_period.value) == ("150.00", "EUR", 3, "month")
    policy = created.review_policy
    assert policy.velocity_max == 4 and policy.amount_threshold.amount == 500 and policy.actions["existing_customer"].value == "pass"
    assert created.routing.duplicate_policy.value == "attach" and created.owner.email == "riley@acme.test"

    page = admin_client.get(f"/admin/programs/{created.id}").get_data(as_text=True)
    assert 'value="Customer_Tier__c"' in page and "Gold, Platinum" in page and 'value="150.00"' in page
    # Edit keeps everything else.
    assert post(admin_client, f"/admin/programs/{created.id}", form(world, name="Partners EU")).status_code == 302
    assert programs.get_program(rt, world.tenant.id, created.id).name == "Partners EU"

    assert post(admin_client, f"/admin/programs/{created.id}/status", {"status": "live"}).status_code == 302
    assert programs.get_program(rt, world.tenant.id, created.id).status.value == "live"
    assert post(admin_client, f"/admin/programs/{created.id}/status", {"status": "paused"}).status_code == 302
    assert programs.get_program(rt, world.tenant.id, created.id).status.value == "paused"


def test_go_live_refusal_is_explained(admin_client, world, rt):
    resp = post(admin_client, "/admin/programs/new", form(world, slug="no-owner", owner_name="", owner_email=""))
    assert resp.status_code == 302
    pid = next(p.id for p in programs.list_programs(rt, world.tenant.id) if p.slug == "no-owner")
    page = post(admin_client, f"/admin/programs/{pid}/status", {"status": "live"}, follow_redirects=True).get_data(as_text=True)
    assert "automation owner" in page
    assert programs.get_program(rt, world.tenant.id, pid).status.value == "draft"


class Milestones:
    def __init__(self, crm):
        self.crm = crm
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return [
            Milestone("Opportunity", "StageName", "Prospecting", "Prospecting"),
            Milestone("Opportunity", "StageName", "Closed Won", "Closed Won", True, True),
            Milestone("Opportunity", "StageName", "Closed Lost", "Closed Lost", False, True),
            Milestone("Lead", "Status", "Closed - Converted", "Closed - Converted", True, True),
        ]


def test_milestone_picker_lists_crm_values_and_generates_the_rule(admin_client, world, rt):
    world.crm.describe_milestones = describe = Milestones(world.crm)
    page = admin_client.get(f"/admin/programs/{world.program.id}").get_data(as_text=True)
    assert '<optgroup label="Opportunity StageName">' in page and "Closed Won (won, closed)" in page
    assert "Closed Lost (closed)" in page and "Closed - Converted (won, closed)" in page
    admin_client.get(f"/admin/programs/{world.program.id}")
    assert describe.calls == 1  # cached briefly
    picked = post(admin_client, "/admin/programs/new", form(world, rule="", milestone="Opportunity|StageName|Closed Won", action="pick"))
    assert picked.status_code == 200
    assert "Opportunity.StageName == &#39;Closed Won&#39;</textarea>" in picked.get_data(as_text=True)
    # Saving with a picked milestone and no rule text generates the rule.
    resp = post(admin_client, "/admin/programs/new", form(world, slug="picked", rule="", milestone="Lead|Status|Closed - Converted"))
    assert resp.status_code == 302
    created = next(p for p in programs.list_programs(rt, world.tenant.id) if p.slug == "picked")
    assert created.rule.describe() == "Lead is_won"


def test_milestone_picker_survives_crm_errors(admin_client, world):
    def broken():
        raise CrmError("503 SERVER_UNAVAILABLE", transient=True)

    world.crm.describe_milestones = broken
    resp = admin_client.get(f"/admin/programs/{world.program.id}")
    assert resp.status_code == 200 and "could not be read just now" in resp.get_data(as_text=True)


def test_preview_counts_or_says_unknown(admin_client, world):
    resp = post(admin_client, "/admin/programs/new", form(world, action="preview"))
    assert "<strong>unknown</strong>" in resp.get_data(as_text=True)
    seen = []
    world.crm.count_matching = lambda rule: seen.append(rule.describe()) or 12
    html = post(admin_client, "/admin/programs/new", form(world, action="preview")).get_data(as_text=True)
    assert "<strong>12</strong> open opportunities would qualify under this rule today." in html
    assert seen == ["Opportunity.StageName == 'Closed Won'"]
    bad = post(admin_client, "/admin/programs/new", form(world, action="preview", rule="Opportunity.StageName ==")).get_data(as_text=True)
    assert "cannot be read" in bad


def test_enrol_now_queues_the_enrolment_job_and_the_job_enrols(admin_client, world, rt):
    world.crm.add_contact("Pat Customer", "pat@customer.test")
    page = admin_client.get("/admin/programs").get_data(as_text=True)
    assert "Enrol now" in page
    resp = post(admin_client, f"/admin/programs/{world.program.id}/enrol", {}, follow_redirects=True)
    assert "Enrolment from the CRM queued" in resp.get_data(as_text=True)
    assert ("enrol_program", {"tenant_id": world.tenant.id, "program_id": world.program.id}) in rt.jobs.jobs
    # What the worker runs for that job:
    from refstage.jobs.queue import HueyQueue, make_huey

    tasks = HueyQueue(make_huey(rt.settings, immediate=True), rt).tasks
    assert tasks["enrol_program"].call_local(world.tenant.id, world.program.id)["enrolled"] == 1
    assert tasks["enrol_program"].call_local(world.tenant.id, world.program.id)["enrolled"] == 0  # idempotent
