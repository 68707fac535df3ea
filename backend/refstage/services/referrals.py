"""Referral use cases: capture (commit first, CRM later), routing into the CRM, duplicate review."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.codes import is_well_formed, normalise_code
from refstage.domain.errors import DomainError, InvalidInput, NotFound
from refstage.domain.programs import DuplicatePolicy
from refstage.domain.referrals import (
    Referral,
    ReferralSource,
    ReferralStatus,
    canonical_email,
    clean_phone,
    clean_text,
    normalise_email,
)
from refstage.domain.review import Action, Flag, Reason, self_referral_flags, velocity_flag
from refstage.services.ports import CrmError, ReconnectRequired, RouteResult, StorageConflict
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)


class ReferralNotAccepted(DomainError):
    """The code is unknown, or its program or advocate does not take referrals now."""


@dataclass(frozen=True)
class FriendInput:
    name: str
    email: str
    company: str | None = None
    phone: str | None = None
    consent: bool = False


def validate_friend(data: FriendInput) -> dict[str, Any]:
    """Field-level validation of the friend form; all errors at once."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for key, fn in (
        ("name", lambda: clean_text(data.name, "name", required=True, max_length=200)),
        ("email", lambda: normalise_email(data.email)),
        ("company", lambda: clean_text(data.company, "company", required=False, max_length=200)),
        ("phone", lambda: clean_phone(data.phone)),
    ):
        try:
            clean[key] = fn()
        except InvalidInput as exc:
            errors.update(exc.errors)
    if data.consent is not True:
        errors["consent"] = ["please agree so we can pass your details on"]
    if errors:
        raise InvalidInput(errors)
    return clean


def capture_referral(rt: Runtime, code: str, friend: FriendInput, *, source: ReferralSource = ReferralSource.LINK,
                     actor: Actor | None = None, idempotency_key: str | None = None,
                     tenant_id: str | None = None, received_at: dt.datetime | None = None,
                     consent_version: str | None = None) -> Referral:
    """Record a referral before anything external happens, then queue its routing into the CRM.
    From the public form's intake, `received_at` and `consent_version` are what the friend sent and saw."""
    clean = validate_friend(friend)
    if not is_well_formed(code):
        raise ReferralNotAccepted("unknown referral code")
    code = normalise_code(code)
    now = received_at or rt.now()
    with rt.uow() as uow:
        owner_tenant = uow.directory.tenant_for_code(code)
        if owner_tenant is None or (tenant_id is not None and owner_tenant != tenant_id):
            raise ReferralNotAccepted("unknown referral code")
        uow.scope(owner_tenant)
        if idempotency_key:
            earlier = uow.referrals.by_idempotency_key(idempotency_key)
            if earlier:
                return earlier
        advocate = uow.advocates.by_code(code)
        program = uow.programs.get(advocate.program_id)
        if not program.accepts_referrals or not advocate.active:
            raise ReferralNotAccepted("this referral program is not taking referrals right now")
        referral = Referral(
            id=rt.new_id(), tenant_id=owner_tenant, program_id=program.id, advocate_id=advocate.id,
            friend_name=clean["name"], friend_email=clean["email"], friend_company=clean["company"],
            friend_phone=clean["phone"], source=source, consent_at=now,
            consent_version=consent_version or program.landing.consent_version,
            captured_at=now,
        )
        flags = self_referral_flags(
            friend_email=referral.friend_email, friend_canonical_email=referral.friend_canonical_email,
            advocate_email=advocate.email, advocate_canonical_email=canonical_email(advocate.email) if advocate.email else None,
        )
        velocity = velocity_flag(
            uow.referrals.recent_capture_times(advocate.id, now - dt.timedelta(hours=program.review_policy.velocity_window_hours)),
            now, program.review_policy)
        if velocity:
            flags.append(velocity)
        referral.changes.append(_captured_change(referral, now))
        referral.add_flags(flags, now)
        earlier = uow.referrals.find_open_by_email(program.id, referral.friend_canonical_email)
        if program.review_policy.decide(flags) == Action.BLOCK:
            blocked = sorted({f.reason.value for f in flags if program.review_policy.action_for(f.reason) == Action.BLOCK})
            referral.reject(now, "blocked by review policy: " + ", ".join(blocked))
        elif earlier is not None:
            # The same person again (a reload, a second visit, another advocate's link): the first
            # referral stands and keeps its attribution; the attempt is kept in its audit trail, and
            # the friend sees the same thanks. Nothing new for the review queue or the advocate's inbox.
            same = earlier.advocate_id == advocate.id
            uow.audit.append([AuditEntry(
                owner_tenant, "referral", earlier.id, "repeat_submission",
                actor or Actor(kind=_friend_kind(), label=referral.friend_email), now, None,
                {"advocate_code": code, "source": source.value, "idempotency_key": idempotency_key},
                "the same person submitted again" if same else
                f"submitted again through another advocate's link ({code}); the first referral keeps the attribution")])
            uow.commit()
            return earlier
        uow.referrals.add(referral, program.connection_id, idempotency_key)
        uow.record(referral.changes, actor or Actor(kind=_friend_kind(), label=referral.friend_email), referral.id)
        try:
            uow.commit()
        except StorageConflict:
            uow.rollback()
            if idempotency_key:
                with rt.uow(owner_tenant) as again:
                    found = again.referrals.by_idempotency_key(idempotency_key)
                    if found:
                        return found
            raise
    if referral.status == ReferralStatus.CAPTURED:
        rt.jobs.enqueue("route_referral", tenant_id=referral.tenant_id, referral_id=referral.id)
    rt.jobs.enqueue("notify", tenant_id=referral.tenant_id, event="referral.captured", entity_id=referral.id)
    return referral


def _friend_kind():
    from refstage.domain.audit import ActorKind

    return ActorKind.FRIEND


def _captured_change(referral: Referral, now: dt.datetime):
    from refstage.domain.audit import Change

    return Change("referral", referral.id, "captured", None,
                  {"status": "captured", "program_id": referral.program_id, "advocate_id": referral.advocate_id,
                   "source": referral.source.value, "consent_version": referral.consent_version}, None, now)


ACCEPTED_DUPLICATE = "duplicate_accepted"


def _routable(referral: Referral) -> bool:
    return referral.status == ReferralStatus.CAPTURED or (
        referral.status == ReferralStatus.DUPLICATE and referral.status_reason == ACCEPTED_DUPLICATE)


def route_referral(rt: Runtime, tenant_id: str, referral_id: str, attach: bool = False) -> ReferralStatus:
    """Put a captured referral into the CRM (Lead, or Person + Deal). Safe to run any number of times:
    only a routable referral is routed, and the adapter creates CRM records idempotently.
    A duplicate a reviewer accepted is attached to the record that exists."""
    with rt.uow(tenant_id) as uow:
        referral = uow.referrals.get(referral_id)
        if not _routable(referral):
            return referral.status
        accepted = referral.status == ReferralStatus.DUPLICATE
        program = uow.programs.get(referral.program_id)
        advocate = uow.advocates.get(referral.advocate_id)
        if not program.connection_id:
            raise InvalidInput({"connection_id": "the program has no CRM connection to route into"})
        connection = uow.connections.get(program.connection_id)
    if not connection.usable:
        raise CrmError(f"connection {connection.name} is {connection.status.value}", transient=True)
    gateway = rt.gateway(connection)
    try:
        routed = None if accepted else gateway.find_routed(referral)
        existing = None if routed else gateway.find_existing(referral.friend_email)
        flags: list[Flag] = []
        attach_to = None
        duplicate_review = False
        if existing is not None:
            flags.append(Flag(Reason.DUPLICATE_EXISTING_RECORD, {"object": existing.object, "id": existing.id}))
            if existing.is_customer:
                flags.append(Flag(Reason.EXISTING_CUSTOMER, {"object": existing.object, "id": existing.id, "account_id": existing.account_id}))
            policy = program.routing.duplicate_policy
            if accepted:
                attach_to = existing
            elif policy == DuplicatePolicy.REVIEW:
                duplicate_review = True
            elif policy == DuplicatePolicy.ATTACH:
                attach_to = existing
        if routed is not None:
            result = RouteResult(refs=routed)
        else:
            result = None if duplicate_review else gateway.route_referral(referral, advocate, program, attach_to)
    except ReconnectRequired:
        mark_reconnect_required(rt, tenant_id, connection.id, "routing a referral")
        raise
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        referral = uow.referrals.get(referral_id)
        if not _routable(referral):
            return referral.status  # another worker finished first; the CRM write was idempotent
        referral.add_flags(flags, now)
        if duplicate_review:
            referral.mark_duplicate({"object": existing.object, "id": existing.id}, now)
        else:
            referral.mark_routed(result.refs, now, "attached to existing record" if result.attached else None)
        uow.referrals.save(referral)
        uow.record(referral.changes, Actor.sync(connection.id), referral.id)
        _queue_mirror(uow, connection.id, "referral", referral.id, now)
        try:
            uow.commit()
        except StorageConflict as exc:
            # The CRM record is already linked to another referral: that one keeps the attribution.
            uow.rollback()
            return _mark_conflict(rt, tenant_id, referral_id, connection.id, exc.detail)
    return referral.status


def _mark_conflict(rt: Runtime, tenant_id: str, referral_id: str, connection_id: str, detail: str) -> ReferralStatus:
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        referral = uow.referrals.get(referral_id)
        if not _routable(referral) or referral.status == ReferralStatus.DUPLICATE:
            return referral.status
        referral.mark_duplicate({"conflict": "CRM record already attributed to another referral"}, now)
        uow.referrals.save(referral)
        uow.record(referral.changes, Actor.sync(connection_id), referral.id)
        uow.commit()
        return referral.status


def _queue_mirror(uow, connection_id: str, entity_type: str, entity_id: str, now: dt.datetime) -> None:
    uow.mark_stale(connection_id, entity_type, entity_id, now)


queue_mirror = _queue_mirror


def mark_reconnect_required(rt: Runtime, tenant_id: str, connection_id: str, during: str) -> None:
    from refstage.domain.connections import ConnectionStatus

    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        if conn.status == ConnectionStatus.RECONNECT_REQUIRED:
            return
        before = conn.status.value
        conn.status = ConnectionStatus.RECONNECT_REQUIRED
        conn.status_message = f"The CRM refused our stored credentials while {during}. An admin must connect again."
        uow.connections.save(conn)
        uow.audit.append([AuditEntry(tenant_id, "connection", connection_id, "reconnect_required", Actor.sync(connection_id),
                                     rt.now(), {"status": before}, {"status": conn.status.value}, conn.status_message)])
        uow.commit()
    rt.jobs.enqueue("notify", tenant_id=tenant_id, event="connection.reconnect_required", entity_id=connection_id)


def resolve_duplicate(rt: Runtime, tenant_id: str, referral_id: str, *, accept: bool, actor: Actor, comment: str) -> Referral:
    """A reviewer decides on a referral held as a duplicate: accept (route it) or reject it."""
    if not comment or not comment.strip():
        raise InvalidInput({"comment": "say why, for the audit log"})
    with rt.uow(tenant_id) as uow:
        referral = uow.referrals.get(referral_id)
        if referral.status != ReferralStatus.DUPLICATE:
            raise InvalidInput({"referral": f"only duplicates are resolved here; this one is {referral.status.value}"})
        now = rt.now()
        if accept:
            # Stays a duplicate until routing attaches it to the existing record (duplicate -> routed).
            referral.status_reason = ACCEPTED_DUPLICATE
            referral.changes.append(_reopen_change(referral, now, comment))
        else:
            referral.reject(now, comment.strip())
        uow.referrals.save(referral)
        uow.record(referral.changes, actor, referral.id)
        connection_id = uow.referrals.connection_id(referral_id)
        uow.commit()
    if accept:
        rt.jobs.enqueue("route_referral", tenant_id=tenant_id, referral_id=referral_id, attach=True)
    elif connection_id:
        with rt.uow(tenant_id) as uow:
            _queue_mirror(uow, connection_id, "referral", referral_id, rt.now())
            uow.commit()
        rt.jobs.enqueue("write_back", tenant_id=tenant_id, connection_id=connection_id)  # reaches the CRM now
    return referral


def _reopen_change(referral: Referral, now: dt.datetime, comment: str):
    from refstage.domain.audit import Change

    return Change("referral", referral.id, ACCEPTED_DUPLICATE, {"status": "duplicate"}, {"status": "duplicate", "next": "route and attach"}, comment, now)


def get_referral(rt: Runtime, tenant_id: str, referral_id: str) -> Referral:
    with rt.uow(tenant_id, readonly=True) as uow:
        return uow.referrals.get(referral_id)


def referral_with_rewards(rt: Runtime, tenant_id: str, referral_id: str) -> tuple[Referral, list]:
    """A referral and every reward it earned."""
    with rt.uow(tenant_id, readonly=True) as uow:
        return uow.referrals.get(referral_id), uow.rewards.for_referral(referral_id)


def list_referrals(rt: Runtime, tenant_id: str, **filters) -> list[Referral]:
    """ReferralRepository.list filters: program_id, status, advocate_id, limit, offset."""
    with rt.uow(tenant_id, readonly=True) as uow:
        return uow.referrals.list(**filters)


__all__ = ["capture_referral", "route_referral", "resolve_duplicate", "FriendInput", "ReferralNotAccepted", "NotFound"]
