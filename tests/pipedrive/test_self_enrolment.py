"""Self-enrolment over HTTPS against the Pipedrive emulator: a person joins through /join, the
link_advocate job (real Huey task body) matches or creates their person and writes the code on it;
running it again creates nothing."""

from __future__ import annotations

from refstage.services import programs
from refstage.services.enrolment import LinkOutcome
from tests.pipedrive.conftest import ADMIN
from tests.web.conftest import fill


def _link_jobs(jobs):
    """Run the queued link_advocate jobs through the real task bodies; their outcomes."""
    return [result.get() for _name, result in jobs(only=("link_advocate",))]


def _joined(pd_rt, w, email):
    with pd_rt.uow(w.tenant.id) as uow:
        return uow.advocates.by_email(w.program.id, email)


def _persons(api, email):
    found = api("GET", "v2/persons/search", params={"term": email, "fields": "email", "exact_match": "true"})
    return [i["item"]["id"] for i in found["items"]]


def test_join_creates_one_person_with_the_code_and_retries_do_not_double(pd_rt, connected, client, clock, jobs, api):
    w = connected
    programs.update_program(pd_rt, w.tenant.id, w.program.id, {"allow_self_enrolment": True}, ADMIN)
    resp = fill(client, clock, "/join/acme/customers", {"name": "Nia Joiner", "email": "Nia@Joiner.test"})
    assert resp.status_code == 200
    adv = _joined(pd_rt, w, "nia@joiner.test")
    assert f"https://refer.example.test/r/{adv.code}" in resp.get_data(as_text=True)
    assert adv.crm_id is None and _persons(api, "nia@joiner.test") == []  # the request did not call Pipedrive

    assert _link_jobs(jobs) == [LinkOutcome.LINKED]
    [person_id] = _persons(api, "nia@joiner.test")
    adv = _joined(pd_rt, w, "nia@joiner.test")
    assert (adv.crm_object, adv.crm_id, adv.link_written_at is not None) == ("Person", str(person_id), True)
    keys = pd_rt.gateway(w.connection).connection.settings["fields"]["person"]
    person = api("GET", f"v2/persons/{person_id}")
    assert person["name"] == "Nia Joiner"
    assert person["custom_fields"][keys["code"]] == adv.code
    assert person["custom_fields"][keys["link"]] == f"https://refer.example.test/r/{adv.code}"
    assert person["custom_fields"][keys["advocate_id"]] == adv.id

    # The job again (a duplicate delivery), and the adapter again as if the first run died before saving.
    pd_rt.jobs.enqueue("link_advocate", tenant_id=w.tenant.id, advocate_id=adv.id)
    assert _link_jobs(jobs) == [LinkOutcome.ALREADY]
    with pd_rt.uow(w.tenant.id) as uow:
        program = uow.programs.get(w.program.id)
        connection = uow.connections.get(w.connection.id)
    again = pd_rt.gateway(connection).link_advocate(adv, program, f"https://refer.example.test/r/{adv.code}")
    assert (again.crm_id, again.created) == (str(person_id), False)
    assert _persons(api, "nia@joiner.test") == [person_id]


def test_join_matches_an_existing_person_by_exact_email(pd_rt, connected, client, clock, jobs, api):
    w = connected
    programs.update_program(pd_rt, w.tenant.id, w.program.id, {"allow_self_enrolment": True}, ADMIN)
    existing = api("POST", "v2/persons", json={"name": "Olu Existing", "emails": [{"value": "olu@existing.test", "primary": True}]})
    fill(client, clock, "/join/acme/customers", {"name": "Olu", "email": "olu@existing.test"})
    assert _link_jobs(jobs) == [LinkOutcome.LINKED]
    adv = _joined(pd_rt, w, "olu@existing.test")
    assert adv.crm_id == str(existing["id"])
    keys = pd_rt.gateway(w.connection).connection.settings["fields"]["person"]
    person = api("GET", f"v2/persons/{existing['id']}")
    assert person["custom_fields"][keys["code"]] == adv.code and person["name"] == "Olu Existing"
    assert _persons(api, "olu@existing.test") == [existing["id"]]
