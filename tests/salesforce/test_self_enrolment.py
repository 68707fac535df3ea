"""Self-enrolment over HTTPS against the Salesforce emulator: a person joins through /join, the
link_advocate job matches their Contact (or Lead) by email or creates a 'Referral Program' Lead,
upserted on Refstage_Advocate_Id__c, with the code and link on it; running it again creates nothing."""

from __future__ import annotations

from refstage.jobs.queue import make_huey
from refstage.jobs.tasks import register_tasks
from refstage.services import programs
from refstage.services.enrolment import LinkOutcome
from tests.salesforce.helpers import OrgAdmin, setup_world
from tests.web.conftest import ADMIN, fill

FAST = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05}


def _run_link_jobs(rt) -> list[str]:
    """What a worker does: the queued link_advocate jobs through the real task bodies."""
    tasks = register_tasks(make_huey(rt.settings, immediate=True, name="sf-self-enrol"), rt)
    queued = [kw for name, kw in rt.jobs.jobs if name == "link_advocate"]
    rt.jobs.jobs[:] = [j for j in rt.jobs.jobs if j[0] != "link_advocate"]
    return [tasks["link_advocate"](**kw).get() for kw in queued]


def _world(rt, client, **routing):
    tenant_id, _connection_id, program_id = setup_world(rt, client, FAST)
    changes = {"allow_self_enrolment": True}
    if routing:
        changes["routing"] = {"duplicate_policy": "review", **routing}
    programs.update_program(rt, tenant_id, program_id, changes, ADMIN)
    return tenant_id, program_id


def _advocate(rt, tenant_id, program_id, email):
    with rt.uow(tenant_id) as uow:
        return uow.advocates.by_email(program_id, email)


def _relink(rt, tenant_id, program_id, advocate):
    """The adapter again, as if an earlier job died after the CRM call and before saving."""
    with rt.uow(tenant_id) as uow:
        program = uow.programs.get(program_id)
        connection = uow.connections.get(program.connection_id)
    return rt.gateway(connection).link_advocate(advocate, program, f"https://refer.example.test/r/{advocate.code}")


def test_join_creates_one_referral_program_lead(rt, client, clock, emu):
    admin = OrgAdmin(emu)
    tenant_id, program_id = _world(rt, client)
    resp = fill(client, clock, "/join/acme/customers", {"name": "Nia Joiner", "email": "Nia@Joiner.test"})
    assert resp.status_code == 200
    adv = _advocate(rt, tenant_id, program_id, "nia@joiner.test")
    link = f"https://refer.example.test/r/{adv.code}"
    assert link in resp.get_data(as_text=True)
    assert adv.crm_id is None and admin.count("SELECT COUNT() FROM Lead WHERE Email = 'nia@joiner.test'") == 0

    assert _run_link_jobs(rt) == [LinkOutcome.LINKED]
    [lead] = admin.query("SELECT Id, FirstName, LastName, Company, LeadSource, Referral_Code__c, Referral_Link__c, "
                         "Refstage_Advocate_Id__c, Refstage_Referral_Id__c FROM Lead WHERE Email = 'nia@joiner.test'")
    assert (lead["FirstName"], lead["LastName"], lead["LeadSource"]) == ("Nia", "Joiner", "Referral Program")
    assert (lead["Referral_Code__c"], lead["Referral_Link__c"]) == (adv.code, link)
    assert lead["Refstage_Advocate_Id__c"] == adv.id and lead["Refstage_Referral_Id__c"] is None
    adv = _advocate(rt, tenant_id, program_id, "nia@joiner.test")
    assert (adv.crm_object, adv.crm_id, adv.link_written_at is not None) == ("Lead", lead["Id"], True)

    rt.jobs.enqueue("link_advocate", tenant_id=tenant_id, advocate_id=adv.id)
    assert _run_link_jobs(rt) == [LinkOutcome.ALREADY]
    again = _relink(rt, tenant_id, program_id, adv)
    assert (again.crm_object, again.crm_id, again.created) == ("Lead", lead["Id"], False)
    # Even when a rep has changed the email in between, the upsert on our advocate id finds the same Lead.
    admin.update("Lead", [{"Id": lead["Id"], "Email": "nia.new@joiner.test"}])
    again = _relink(rt, tenant_id, program_id, adv)
    assert (again.crm_id, again.created) == (lead["Id"], False)
    assert admin.count(f"SELECT COUNT() FROM Lead WHERE Refstage_Advocate_Id__c = '{adv.id}'") == 1
    assert admin.query(f"SELECT Email FROM Lead WHERE Id = '{lead['Id']}'")[0]["Email"] == "nia.new@joiner.test"  # not overwritten


def test_join_matches_an_existing_contact_and_writes_the_code_on_it(rt, client, clock, emu):
    admin = OrgAdmin(emu)
    tenant_id, program_id = _world(rt, client)
    [contact] = admin.query("SELECT Id, Email, AccountId FROM Contact WHERE Email != null ORDER BY CreatedDate ASC LIMIT 1")
    email = contact["Email"].lower()
    fill(client, clock, "/join/acme/customers", {"name": "Known Customer", "email": contact["Email"]})
    assert _run_link_jobs(rt) == [LinkOutcome.LINKED]
    adv = _advocate(rt, tenant_id, program_id, email)
    assert (adv.crm_object, adv.crm_id, adv.crm_contact_id, adv.crm_account_id) == \
        ("Contact", contact["Id"], contact["Id"], contact["AccountId"])
    [after] = admin.query(f"SELECT Referral_Code__c, Referral_Link__c FROM Contact WHERE Id = '{contact['Id']}'")
    assert after == {**after, "Referral_Code__c": adv.code, "Referral_Link__c": f"https://refer.example.test/r/{adv.code}"}
    assert admin.count(f"SELECT COUNT() FROM Lead WHERE Email = '{email}' AND LeadSource = 'Referral Program'") == 0


def test_a_program_account_files_new_advocates_as_contacts(rt, client, clock, emu):
    admin = OrgAdmin(emu)
    [account] = admin.query("SELECT Id FROM Account ORDER BY CreatedDate ASC LIMIT 1")
    tenant_id, program_id = _world(rt, client, advocate_account_id=account["Id"])
    fill(client, clock, "/join/acme/customers", {"name": "Pat Partner", "email": "pat@partner.test"})
    assert _run_link_jobs(rt) == [LinkOutcome.LINKED]
    adv = _advocate(rt, tenant_id, program_id, "pat@partner.test")
    [contact] = admin.query("SELECT Id, AccountId, LeadSource, Referral_Code__c, Refstage_Advocate_Id__c FROM Contact "
                            "WHERE Email = 'pat@partner.test'")
    assert (contact["AccountId"], contact["LeadSource"], contact["Referral_Code__c"]) == (account["Id"], "Referral Program", adv.code)
    assert (adv.crm_object, adv.crm_id, adv.crm_account_id) == ("Contact", contact["Id"], account["Id"])
    assert _relink(rt, tenant_id, program_id, adv).crm_id == contact["Id"]
    assert admin.count("SELECT COUNT() FROM Contact WHERE Email = 'pat@partner.test'") == 1
