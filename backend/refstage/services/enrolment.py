"""Enrolment: advocates from CRM records, a form or the API, each with one referral code per program."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Callable, Iterable

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.codes import generate_code, random_codes, referral_link
from refstage.domain.errors import InvalidInput, NotFound
from refstage.domain.programs import EnrolmentKind, Program
from refstage.domain.referrals import Advocate, AdvocateSource, clean_text, normalise_email
from refstage.services.ports import AdvocateLink, Candidate, CrmError, ReconnectRequired, StorageConflict, UnitOfWork
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)
OVERLAP = dt.timedelta(minutes=10)

_SOURCE_FOR_OBJECT = {
    "Contact": AdvocateSource.SALESFORCE_CONTACT,
    "Lead": AdvocateSource.SALESFORCE_LEAD,
    "Account": AdvocateSource.SALESFORCE_ACCOUNT,
    "CampaignMember": AdvocateSource.SALESFORCE_CAMPAIGN_MEMBER,
    "Person": AdvocateSource.PIPEDRIVE_PERSON,
}


def link_for(rt: Runtime, code: str) -> str:
    return referral_link(rt.settings.base_url, code)


def enrol_advocate(rt: Runtime, tenant_id: str, program_id: str, *, name: str, email: str,
                   source: AdvocateSource, actor: Actor) -> tuple[Advocate, bool]:
    """Enrol one person from a form or the API. Idempotent on (program, email): returns (advocate, created)."""
    clean_name = clean_text(name, "name", required=True, max_length=200)
    clean_email = normalise_email(email)
    with rt.uow(tenant_id) as uow:
        program = uow.programs.get(program_id)
        if source == AdvocateSource.FORM and not (program.allow_self_enrolment and program.accepts_referrals):
            raise InvalidInput({"program": "this program does not take self-enrolment"})
        existing = uow.advocates.by_email(program_id, clean_email)
        if existing:
            return existing, False
        advocate = Advocate(
            id=rt.new_id(), tenant_id=tenant_id, program_id=program_id, name=clean_name or "", email=clean_email,
            code=generate_code(uow.directory.code_taken), source=source, enrolled_at=rt.now(),
        )
        uow.advocates.add(advocate)
        uow.audit.append([AuditEntry(tenant_id, "advocate", advocate.id, "enrolled", actor, rt.now(), None,
                                     {"program_id": program_id, "source": source.value, "code": advocate.code})])
        try:
            uow.commit()
        except StorageConflict:
            # A concurrent request enrolled the same email first (or took the code): return theirs.
            uow.rollback()
            found = uow.advocates.by_email(program_id, clean_email)
            if found:
                return found, False
            raise
    if program.connection_id:
        # The CRM record is matched or created by a job: nothing external runs inside this request.
        rt.jobs.enqueue("link_advocate", tenant_id=tenant_id, advocate_id=advocate.id)
    return advocate, True


class LinkOutcome:
    LINKED = "linked"  # matched or created, code and link written
    ALREADY = "already"  # the advocate had a CRM record already
    NO_CRM = "no_crm"  # the program has no CRM connection (or the advocate no email)
    CONFLICT = "conflict"  # the matched record belongs to another advocate of the program, who keeps it


def link_advocate_to_crm(rt: Runtime, tenant_id: str, advocate_id: str) -> str:
    """Give a form- or API-enrolled advocate their CRM record: match by email or create (the adapter is
    idempotent on our advocate id), write their code and link onto it, and remember it on the advocate.
    Safe to run any number of times; the CRM is called between units of work, never inside one."""
    with rt.uow(tenant_id) as uow:
        advocate = uow.advocates.get(advocate_id)
        if advocate.crm_id:
            return LinkOutcome.ALREADY
        program = uow.programs.get(advocate.program_id)
        if not program.connection_id or not advocate.email:
            return LinkOutcome.NO_CRM
        connection = uow.connections.get(program.connection_id)
    if not connection.usable:
        raise CrmError(f"connection {connection.name} is {connection.status.value}", transient=True)
    gateway = rt.gateway(connection)
    try:
        record = gateway.link_advocate(advocate, program, link_for(rt, advocate.code))
    except ReconnectRequired:
        from refstage.services.referrals import mark_reconnect_required

        mark_reconnect_required(rt, tenant_id, connection.id, "linking a self-enrolled advocate")
        raise
    now = rt.now()
    actor = Actor.sync(connection.id)
    ref = {"crm_object": record.crm_object, "crm_id": record.crm_id}
    with rt.uow(tenant_id) as uow:
        current = uow.advocates.get(advocate_id)
        if current.crm_id:
            return LinkOutcome.ALREADY  # another worker finished first; the CRM side was idempotent
        owner = uow.advocates.by_crm_id(program.id, record.crm_object, record.crm_id)
        if owner is None:
            try:
                uow.advocates.link_crm(advocate_id, record.crm_object, record.crm_id, record.contact_id,
                                       record.account_id, now)
                uow.audit.append([AuditEntry(tenant_id, "advocate", advocate_id, "crm_linked", actor, now, None,
                                             {**ref, "created": record.created})])
                uow.commit()
                return LinkOutcome.LINKED
            except StorageConflict:
                uow.rollback()  # another advocate claimed the record between our read and our write
    return _record_conflict(rt, tenant_id, advocate_id, program.id, record, actor)


def _record_conflict(rt: Runtime, tenant_id: str, advocate_id: str, program_id: str, record, actor: Actor) -> str:
    """The record already stands for another advocate of the program: the first keeps it. Said once in the
    audit log (which also keeps the sweep from queueing this advocate again)."""
    with rt.uow(tenant_id) as uow:
        owner = uow.advocates.by_crm_id(program_id, record.crm_object, record.crm_id)
        log.warning("advocate %s matched %s %s, which belongs to advocate %s; the first keeps it",
                    advocate_id, record.crm_object, record.crm_id, owner.id if owner else "?")
        uow.audit.append([AuditEntry(
            tenant_id, "advocate", advocate_id, "crm_link_conflict", actor, rt.now(), None,
            {"crm_object": record.crm_object, "crm_id": record.crm_id, "kept_by_advocate_id": owner.id if owner else None},
            "the CRM record already belongs to another advocate of this program; that advocate keeps it")])
        uow.commit()
    return LinkOutcome.CONFLICT


def unlinked_advocates(rt: Runtime, *, older_than: dt.timedelta = dt.timedelta(minutes=5),
                       limit: int = 500) -> list[tuple[str, str]]:
    """(tenant, advocate) pairs whose CRM linking job looks lost: for the periodic sweep."""
    before = rt.now() - older_than
    with rt.uow() as uow:
        tenants = uow.directory.tenants_with_unlinked_advocates()
    out: list[tuple[str, str]] = []
    for tenant_id in tenants:
        with rt.uow(tenant_id) as uow:
            out.extend((tenant_id, a) for a in uow.advocates.unlinked_in_crm_programs(before, limit))
    return out


def _fresh_codes(uow, count: int) -> list[str]:
    """Codes for a batch: random, de-duplicated within the batch and against the database."""
    codes: set[str] = set()
    while len(codes) < count:
        batch = set(random_codes(count - len(codes)))
        batch -= codes
        batch -= uow.directory.codes_taken(sorted(batch))
        codes |= batch
    return list(codes)


@dataclass
class EnrolmentProgress:
    seen: int = 0
    enrolled: int = 0
    already: int = 0
    links_written: int = 0
    links_failed: int = 0
    api_calls: int = 0


def enrol_candidates(rt: Runtime, tenant_id: str, program: Program, candidates: list[Candidate],
                     progress: EnrolmentProgress) -> None:
    """Create advocates for CRM records not yet enrolled. Idempotent on (program, CRM object, CRM id)."""
    if not candidates:
        return
    with rt.uow(tenant_id) as uow:
        by_object: dict[str, list[Candidate]] = {}
        for c in candidates:
            by_object.setdefault(c.crm_object, []).append(c)
        new: list[Candidate] = []
        for obj, group in by_object.items():
            known = uow.advocates.existing_crm_ids(program.id, obj, [c.crm_id for c in group])
            seen_here: set[str] = set()
            for c in group:
                if c.crm_id in known or c.crm_id in seen_here:
                    progress.already += 1
                else:
                    seen_here.add(c.crm_id)
                    new.append(c)
        codes = _fresh_codes(uow, len(new))
        now = rt.now()
        advocates = [
            Advocate(id=rt.new_id(), tenant_id=tenant_id, program_id=program.id, name=(c.name or c.email or c.crm_id)[:200],
                     email=(c.email or None) and c.email.strip().lower()[:254], code=code,
                     source=_SOURCE_FOR_OBJECT.get(c.crm_object, AdvocateSource.API), crm_object=c.crm_object, crm_id=c.crm_id,
                     crm_contact_id=c.contact_id, crm_account_id=c.account_id, enrolled_at=now)
            for c, code in zip(new, codes)
        ]
        uow.advocates.add_many(advocates)
        uow.audit.append([AuditEntry(tenant_id, "advocate", a.id, "enrolled", Actor.sync(program.connection_id), now, None,
                                     {"program_id": program.id, "crm_object": a.crm_object, "crm_id": a.crm_id}) for a in advocates])
        uow.commit()
    progress.enrolled += len(advocates)
    progress.seen += len(candidates)


def run_enrolment(rt: Runtime, tenant_id: str, program_id: str, *, batch_size: int = 10_000,
                  on_progress: Callable[[EnrolmentProgress], None] | None = None) -> EnrolmentProgress:
    """Pull matching CRM records, enrol the new ones, write codes and links back. Safe to re-run."""
    progress = EnrolmentProgress()
    with rt.uow(tenant_id) as uow:
        program = uow.programs.get(program_id)
        if not program.enrolment.crm:
            raise InvalidInput({"enrolment": f"{program.enrolment.kind.value} programs enrol through the form or the API"})
        if not program.connection_id:
            raise InvalidInput({"connection_id": "the program has no CRM connection"})
        connection = uow.connections.get(program.connection_id)
        state_key = f"enrol:{program.id}"
        since = _enrol_watermark(uow, connection.id, state_key)
    gateway = rt.gateway(connection)
    newest = since
    batch: list[Candidate] = []
    for candidate in gateway.iter_enrolment_candidates(program.enrolment, since):
        if candidate.modified_at and (newest is None or candidate.modified_at > newest):
            newest = candidate.modified_at
        batch.append(candidate)
        if len(batch) >= batch_size:
            enrol_candidates(rt, tenant_id, program, batch, progress)
            batch = []
            if on_progress:
                on_progress(progress)
    enrol_candidates(rt, tenant_id, program, batch, progress)
    write_pending_links(rt, tenant_id, program, gateway, progress, on_progress)
    if newest is not None and newest != since:
        with rt.uow(tenant_id) as uow:
            # The CRM's own clock, minus an overlap window: re-reads are harmless, gaps are not.
            _set_enrol_watermark(uow, connection.id, state_key, newest - OVERLAP)
            uow.commit()
    if on_progress:
        on_progress(progress)
    return progress


def write_pending_links(rt: Runtime, tenant_id: str, program: Program, gateway, progress: EnrolmentProgress,
                        on_progress: Callable[[EnrolmentProgress], None] | None = None, chunk: int = 200_000) -> None:
    while True:
        with rt.uow(tenant_id) as uow:
            pending = uow.advocates.pending_links(program.id, chunk)
        if not pending:
            return
        links = [AdvocateLink(crm_object or "", crm_id or "", code, link_for(rt, code), advocate_id)
                 for advocate_id, crm_object, crm_id, code in pending]
        result = gateway.write_advocate_links(links)
        progress.api_calls += result.api_calls
        progress.links_written += len(result.ok)
        progress.links_failed += len(result.failed)
        with rt.uow(tenant_id) as uow:
            uow.advocates.mark_links_written(result.ok, rt.now())
            uow.commit()
        if on_progress:
            on_progress(progress)
        if result.failed:
            for advocate_id, message in list(result.failed.items())[:20]:
                log.warning("link write-back failed for advocate %s: %s", advocate_id, message)
            return  # failed rows stay pending; the next run retries them
        if len(pending) < chunk:
            return


def _enrol_watermark(uow: UnitOfWork, connection_id: str, key: str) -> dt.datetime | None:
    return uow.sync_state.watermark(connection_id, key)


def _set_enrol_watermark(uow: UnitOfWork, connection_id: str, key: str, value: dt.datetime) -> None:
    uow.sync_state.set_watermark(connection_id, key, value)


def list_advocates(rt: Runtime, tenant_id: str, **filters) -> list[Advocate]:
    """AdvocateRepository.list filters: program_id, limit, offset."""
    with rt.uow(tenant_id, readonly=True) as uow:
        return uow.advocates.list(**filters)


def get_advocate_by_code(rt: Runtime, code: str) -> tuple[Advocate, Program] | None:
    from refstage.domain.codes import is_well_formed, normalise_code

    if not is_well_formed(code):
        return None
    code = normalise_code(code)
    with rt.uow(readonly=True) as uow:
        tenant_id = uow.directory.tenant_for_code(code)
        if not tenant_id:
            return None
        uow.scope(tenant_id)
        advocate = uow.advocates.by_code(code)
        if advocate is None:
            return None
        try:
            return advocate, uow.programs.get(advocate.program_id)
        except NotFound:
            return None


