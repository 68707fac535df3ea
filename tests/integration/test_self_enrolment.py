"""Self-enrolment reaches the CRM: a form or API advocate of a CRM program is matched to its record by
email, or gets a new one, once, by a job that runs after the enrolment committed."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from refstage.adapters.db import models as m
from refstage.domain.connections import ConnectionStatus
from refstage.domain.referrals import AdvocateSource
from refstage.services import enrolment, programs
from refstage.services.enrolment import LinkOutcome, link_advocate_to_crm, unlinked_advocates
from refstage.services.ports import CrmError
from tests.integration.conftest import ADMIN


@pytest.fixture
def joining(rt, world):
    programs.update_program(rt, world.tenant.id, world.program.id, {"allow_self_enrolment": True}, ADMIN)
    return world


def _join(rt, w, email: str, name: str = "Ada Joiner", source=AdvocateSource.FORM):
    adv, created = enrolment.enrol_advocate(rt, w.tenant.id, w.program.id, name=name, email=email, source=source, actor=ADMIN)
    assert created
    return adv


def _advocate(rt, w, advocate_id):
    with rt.uow(w.tenant.id) as uow:
        return uow.advocates.get(advocate_id)


def _set_status(rt, w, status):
    with rt.uow(w.tenant.id) as uow:
        conn = uow.connections.get(w.connection.id)
        conn.status = status
        uow.connections.save(conn)
        uow.commit()


def _audit(rt, w, advocate_id):
    with rt.uow(w.tenant.id) as uow:
        return [(r.action, r.after) for r in uow.session.scalars(select(m.AuditRow).where(
            m.AuditRow.entity_type == "advocate", m.AuditRow.entity_id == advocate_id).order_by(m.AuditRow.id))]


def test_enrolment_queues_the_job_and_matches_an_existing_contact(rt, joining, clock):
    w = joining
    contact = w.crm.add_contact("Ada Lovelace", "ada@customer.test")
    adv = _join(rt, w, "Ada@Customer.test")
    # The request only enqueued: nothing external ran, the advocate has no CRM record yet.
    assert ("link_advocate", {"tenant_id": w.tenant.id, "advocate_id": adv.id}) in rt.jobs.jobs
    assert _advocate(rt, w, adv.id).crm_id is None
    assert link_advocate_to_crm(rt, w.tenant.id, adv.id) == LinkOutcome.LINKED
    linked = _advocate(rt, w, adv.id)
    assert (linked.crm_object, linked.crm_id, linked.crm_contact_id) == ("Contact", contact, contact)
    assert linked.link_written_at == clock.now
    assert w.crm.links[contact].code == adv.code and w.crm.links[contact].link == f"https://refer.example.test/r/{adv.code}"
    assert w.crm.created_for_advocates == []
    assert ("crm_linked", {"crm_object": "Contact", "crm_id": contact, "created": False}) in _audit(rt, w, adv.id)
    assert link_advocate_to_crm(rt, w.tenant.id, adv.id) == LinkOutcome.ALREADY  # nothing left to do


def test_api_enrolment_of_an_unknown_person_creates_a_referral_program_lead(rt, joining):
    w = joining
    adv = _join(rt, w, "new@person.test", source=AdvocateSource.API)
    assert link_advocate_to_crm(rt, w.tenant.id, adv.id) == LinkOutcome.LINKED
    [(obj, lead_id)] = w.crm.created_for_advocates
    record = w.crm.records[(obj, lead_id)]
    assert obj == "Lead" and record["LeadSource"] == "Referral Program" and record["RefstageAdvocateId"] == adv.id
    assert record["Referral_Code__c"] == adv.code
    linked = _advocate(rt, w, adv.id)
    assert (linked.crm_object, linked.crm_id, linked.crm_contact_id) == ("Lead", lead_id, None)


def test_program_account_files_new_advocates_as_contacts(rt, joining):
    w = joining
    account = "001000000000042AAA"
    programs.update_program(rt, w.tenant.id, w.program.id, {"routing": {"duplicate_policy": "review", "advocate_account_id": account}}, ADMIN)
    adv = _join(rt, w, "partner@person.test")
    assert link_advocate_to_crm(rt, w.tenant.id, adv.id) == LinkOutcome.LINKED
    linked = _advocate(rt, w, adv.id)
    assert linked.crm_object == "Contact" and linked.crm_account_id == account and linked.crm_contact_id == linked.crm_id


def test_a_retried_job_creates_the_record_once(rt, joining):
    w = joining
    adv = _join(rt, w, "retry@person.test")
    # Attempt 1: the CRM times out. Attempt 2: the record is made, then the worker dies before saving.
    w.crm.fail_next.append(CrmError("503 SERVER_UNAVAILABLE", transient=True))
    with pytest.raises(CrmError):
        link_advocate_to_crm(rt, w.tenant.id, adv.id)
    w.crm.link_advocate(_advocate(rt, w, adv.id), w.program, "https://refer.example.test/r/" + adv.code)
    [(obj, crm_id)] = w.crm.created_for_advocates
    # Meanwhile a rep fixed a typo in the email: the retry finds the record by our advocate id, not by email.
    w.crm.records[(obj, crm_id)]["Email"] = "retry+fixed@person.test"
    assert link_advocate_to_crm(rt, w.tenant.id, adv.id) == LinkOutcome.LINKED
    assert link_advocate_to_crm(rt, w.tenant.id, adv.id) == LinkOutcome.ALREADY
    assert w.crm.created_for_advocates == [(obj, crm_id)]
    assert _advocate(rt, w, adv.id).crm_id == crm_id


def test_a_record_that_belongs_to_another_advocate_stays_with_the_first(rt, joining):
    w = joining
    contact = w.crm.add_contact("Grace Hopper", "grace@old.test")
    enrolment.run_enrolment(rt, w.tenant.id, w.program.id)
    with rt.uow(w.tenant.id) as uow:
        first = uow.advocates.by_crm_id(w.program.id, "Contact", contact)
    # The rep changes her email in the CRM; she then joins through the form with the new one.
    w.crm.touch("Contact", contact, Email="grace@new.test")
    second = _join(rt, w, "grace@new.test", name="Grace H")
    assert link_advocate_to_crm(rt, w.tenant.id, second.id) == LinkOutcome.CONFLICT
    assert _advocate(rt, w, second.id).crm_id is None
    assert _advocate(rt, w, first.id).crm_id == contact
    [(action, after)] = [a for a in _audit(rt, w, second.id) if a[0] == "crm_link_conflict"]
    assert after == {"crm_object": "Contact", "crm_id": contact, "kept_by_advocate_id": first.id}
    # The sweep does not queue it again and again.
    assert (w.tenant.id, second.id) not in unlinked_advocates(rt, older_than=dt.timedelta(0))


def test_a_program_without_crm_does_nothing(rt):
    from refstage.services import tenants

    tenant = tenants.create_tenant(rt, "Solo", "solo")
    program = programs.create_program(rt, tenant.id, {
        "name": "Friends", "slug": "friends", "enrolment": {"kind": "form"}, "allow_self_enrolment": True,
        "rule": "Opportunity.StageName == 'Closed Won'",
        "reward_rules": [{"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "10", "currency": "USD"}}],
        "owner": {"name": "Lin", "email": "lin@solo.test"},
    }, ADMIN)
    programs.set_program_status(rt, tenant.id, program.id, "live", ADMIN)
    adv, _ = enrolment.enrol_advocate(rt, tenant.id, program.id, name="Lin", email="lin@solo.test",
                                      source=AdvocateSource.FORM, actor=ADMIN)
    assert not any(name == "link_advocate" for name, _ in rt.jobs.jobs)
    assert link_advocate_to_crm(rt, tenant.id, adv.id) == LinkOutcome.NO_CRM
    assert unlinked_advocates(rt, older_than=dt.timedelta(0)) == []


def test_sweep_requeues_advocates_whose_job_was_lost(rt, joining, clock):
    from refstage.jobs.queue import HueyQueue, make_huey

    w = joining
    adv = _join(rt, w, "lost@person.test")  # the RecordingQueue swallowed its job: as if lost
    assert unlinked_advocates(rt) == []  # too fresh: its own job may still be on its way
    clock.advance(minutes=6)
    assert unlinked_advocates(rt) == [(w.tenant.id, adv.id)]
    _set_status(rt, w, ConnectionStatus.RECONNECT_REQUIRED)  # jobs would only fail: wait for the reconnect
    assert unlinked_advocates(rt) == []
    with pytest.raises(CrmError) as failed:
        link_advocate_to_crm(rt, w.tenant.id, adv.id)
    assert failed.value.transient
    _set_status(rt, w, ConnectionStatus.ACTIVE)
    huey = make_huey(rt.settings, name="sweep-test")
    queue = HueyQueue(huey, rt)
    assert queue.tasks["sweep_unlinked_advocates"].call_local() == 1
    task = huey.dequeue()
    assert task is not None and task.name == "link_advocate"
    assert huey.execute(task) == LinkOutcome.LINKED
    assert _advocate(rt, w, adv.id).crm_object == "Lead"
    assert unlinked_advocates(rt) == [] and queue.tasks["sweep_unlinked_advocates"].call_local() == 0
    huey.storage.flush_all()
    assert clock.now - dt.timedelta(minutes=6) >= _advocate(rt, w, adv.id).enrolled_at
