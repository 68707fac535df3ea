"""The console's, the reports' and the form protection's repository reads stay in their tenant: two tenants hold
the same kinds of rows (and the same CRM owner id), and each one's unit of work sees only its own, even when it
asks for the other's ids."""

import datetime as dt

from refstage.domain.audit import AuditEntry
from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.domain.money import Money
from refstage.domain.referrals import AdvocateSource
from refstage.domain.rewards import Recipient, Reward, RewardKind, RewardStatus
from refstage.services import enrolment, programs, protection, referrals, tenants
from refstage.services.referrals import FriendInput
from tests.integration.conftest import ADMIN, PROGRAM

SHARED_OWNER = "005000000000SHARED"


class Site:
    """One tenant's rows: a connection, a live program, an advocate and a routed referral with an issued reward,
    a duplicate verdict in the audit log, a sync run, and a failed record write."""

    def __init__(self, rt, name: str, slug: str):
        self.tenant = tenants.create_tenant(rt, name, slug)
        tid = self.tenant.id
        self.user = tenants.add_user(rt, tid, f"admin@{slug}.test", "admin", "correct horse battery",
                                     salesforce_identity=(f"00D{slug}", f"005{slug}"))
        self.connection = CrmConnection(id=rt.new_id(), tenant_id=tid, kind=CrmKind.SALESFORCE, name=f"{name} org",
                                        status=ConnectionStatus.ACTIVE, external_org_id=f"00D{slug}")
        with rt.uow(tid) as uow:
            uow.connections.add(self.connection)
            uow.commit()
        self.program = programs.create_program(rt, tid, {**PROGRAM, "connection_id": self.connection.id}, ADMIN)
        programs.set_program_status(rt, tid, self.program.id, "live", ADMIN)
        self.advocate, _ = enrolment.enrol_advocate(rt, tid, self.program.id, name=f"{name} Advocate",
                                                    email=f"ada@{slug}.test", source=AdvocateSource.API, actor=ADMIN)
        self.referral = referrals.capture_referral(
            rt, self.advocate.code, FriendInput(f"{name} Friend", f"fred@{slug}.test", None, None, True))
        now = rt.now()
        self.run_id = rt.new_id()
        with rt.uow(tid) as uow:
            referral = uow.referrals.get(self.referral.id)
            referral.crm.owner_id, referral.routed_at = SHARED_OWNER, now
            uow.referrals.save(referral)
            uow.rewards.add(Reward(id=rt.new_id(), tenant_id=tid, program_id=self.program.id, referral_id=referral.id,
                                   recipient=Recipient.ADVOCATE, rule_key="adv", kind=RewardKind.FIXED,
                                   amount=Money("100", "USD"), status=RewardStatus.ISSUED, created_at=now,
                                   advocate_id=self.advocate.id, issued_at=now))
            uow.audit.append([AuditEntry(tid, "referral", referral.id, "status:duplicate", ADMIN, now, None,
                                         {"existing": {"object": "Lead", "id": f"00Q{slug}"}})])
            uow.sync_runs.start(self.run_id, self.connection.id, "sync", now)
            uow.mark_stale(self.connection.id, "referral", referral.id, now)
            uow.commit()
        with rt.uow(tid) as uow:
            [(self.pending_id, _, _)] = list(uow.pending_writes.queued(self.connection.id, 10))
            uow.pending_writes.record_failure(self.pending_id, self.connection.id, "referral", self.referral.id,
                                              f"{slug} failed", now)
            uow.commit()


def _sites(rt, fake_crm):
    rt.gateway_factory = lambda _rt, _conn: fake_crm
    return Site(rt, "Acme", "acme"), Site(rt, "Beta", "beta")


def test_console_reads_return_only_the_tenants_rows(rt, fake_crm):
    a, b = _sites(rt, fake_crm)
    for mine, theirs in ((a, b), (b, a)):
        with rt.uow(mine.tenant.id, readonly=True) as uow:
            assert uow.users.salesforce_org_ids() == {mine.user.id: f"00D{mine.tenant.slug}"}
            names = uow.referrals.ledger_names([mine.referral.id, theirs.referral.id])
            assert names == {mine.referral.id: (f"{mine.tenant.name} Friend", f"fred@{mine.tenant.slug}.test",
                                                f"{mine.tenant.name} Advocate")}
            entry = uow.audit.latest("referral", mine.referral.id, "status:duplicate")
            assert entry is not None and entry.tenant_id == mine.tenant.id
            assert entry.after == {"existing": {"object": "Lead", "id": f"00Q{mine.tenant.slug}"}}
            assert uow.audit.latest("referral", theirs.referral.id, "status:duplicate") is None
            assert "referral" in uow.audit.entity_types()
            assert [run["id"] for run in uow.sync_runs.recent(mine.connection.id, 10)] == [mine.run_id]
            assert uow.sync_runs.recent(theirs.connection.id, 10) == []
            assert uow.pending_writes.counts(mine.connection.id) == (1, 1)
            assert uow.pending_writes.counts(theirs.connection.id) == (0, 0)
            [queued] = uow.pending_writes.most_retried(mine.connection.id, 10)
            assert (queued["id"], queued["attempts"], queued["last_error"]) == (mine.pending_id, 1, f"{mine.tenant.slug} failed")
            assert uow.pending_writes.most_retried(theirs.connection.id, 10) == []
            [logged] = uow.pending_writes.write_log(mine.connection.id, 10)
            assert logged["message"] == f"{mine.tenant.slug} failed"
            assert uow.pending_writes.write_log(theirs.connection.id, 10) == []


def test_audit_entity_types_come_from_the_tenants_log_only(rt, fake_crm):
    a, b = _sites(rt, fake_crm)
    with rt.uow(b.tenant.id) as uow:
        uow.audit.append([AuditEntry(b.tenant.id, "beta_only_kind", "x1", "noted", ADMIN, rt.now())])
        uow.commit()
    with rt.uow(a.tenant.id, readonly=True) as uow:
        assert "beta_only_kind" not in uow.audit.entity_types()
    with rt.uow(b.tenant.id, readonly=True) as uow:
        assert "beta_only_kind" in uow.audit.entity_types()


def test_requeueing_failed_writes_touches_only_the_tenants_queue(rt, fake_crm):
    a, b = _sites(rt, fake_crm)
    later = rt.now() + dt.timedelta(minutes=1)
    with rt.uow(a.tenant.id) as uow:
        assert uow.pending_writes.requeue_failed(b.connection.id, later) == 0
        assert uow.pending_writes.requeue_failed(a.connection.id, later, [b.pending_id]) == 0
        assert uow.pending_writes.requeue_failed(a.connection.id, later) == 1
        uow.commit()
    with rt.uow(a.tenant.id, readonly=True) as uow:
        [fresh] = uow.pending_writes.most_retried(a.connection.id, 10)
        assert fresh["id"] != a.pending_id and (fresh["attempts"], fresh["enqueued_at"]) == (0, later)
        assert fresh["entity_id"] == a.referral.id
    with rt.uow(b.tenant.id, readonly=True) as uow:
        [untouched] = uow.pending_writes.most_retried(b.connection.id, 10)
        assert (untouched["id"], untouched["attempts"]) == (b.pending_id, 1)


def test_report_facts_stay_in_the_tenant_even_for_a_shared_crm_owner(rt, fake_crm):
    a, b = _sites(rt, fake_crm)
    for mine, theirs in ((a, b), (b, a)):
        with rt.uow(mine.tenant.id, readonly=True) as uow:
            facts = uow.reports
            assert [(p, adv) for p, adv, _ in facts.enrolments()] == [(mine.program.id, mine.advocate.id)]
            assert list(facts.enrolments(program_id=theirs.program.id)) == []
            assert [(p, adv, owner) for p, adv, owner, *_ in facts.referrals(owner_id=SHARED_OWNER)] == [
                (mine.program.id, mine.advocate.id, SHARED_OWNER)]
            assert list(facts.referrals(program_id=theirs.program.id)) == []
            assert [referral for _, _, referral, *_ in facts.issued_rewards(owner_id=SHARED_OWNER)] == [mine.referral.id]
            assert list(facts.issued_rewards(program_id=theirs.program.id)) == []
            assert facts.referral_owners() == {mine.referral.id: SHARED_OWNER}


def test_rejected_submissions_listed_for_one_tenant_leave_the_others_out(rt, fake_crm):
    a, b = _sites(rt, fake_crm)
    for site in (a, b):
        protection.record_rejected_submission(rt, form="join", reason="honeypot", client="203.0.113.9",
                                              tenant_id=site.tenant.id)
    protection.record_rejected_submission(rt, form="status", reason="too_fast", client=None)
    assert [r["tenant_id"] for r in protection.rejected_submissions(rt, a.tenant.id)] == [a.tenant.id]
    assert [r["tenant_id"] for r in protection.rejected_submissions(rt)] == [None, b.tenant.id, a.tenant.id]
