"""Advocates, referred friends and the referral state machine."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from refstage.domain.audit import Change
from refstage.domain.errors import InvalidInput, InvalidTransition
from refstage.domain.review import Flag
from refstage.domain.text import unsafe_character


class ReferralStatus(StrEnum):
    CAPTURED = "captured"
    ROUTED = "routed"
    IN_PROGRESS = "in_progress"
    QUALIFIED = "qualified"
    REWARDED = "rewarded"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    DISQUALIFIED = "disqualified"


S = ReferralStatus
REFERRAL_TRANSITIONS: dict[ReferralStatus, frozenset[ReferralStatus]] = {
    S.CAPTURED: frozenset({S.ROUTED, S.DUPLICATE, S.REJECTED}),
    # A reviewer clears a duplicate (it is then routed: attached or created) or rejects it.
    S.DUPLICATE: frozenset({S.ROUTED, S.REJECTED}),
    S.ROUTED: frozenset({S.IN_PROGRESS, S.QUALIFIED, S.REJECTED}),
    S.IN_PROGRESS: frozenset({S.QUALIFIED, S.REJECTED}),
    S.QUALIFIED: frozenset({S.REWARDED, S.DISQUALIFIED, S.REJECTED}),
    # A regressed deal that reaches the milestone again qualifies again.
    S.DISQUALIFIED: frozenset({S.QUALIFIED, S.IN_PROGRESS, S.REJECTED}),
    S.REJECTED: frozenset(),
    S.REWARDED: frozenset(),
}
OPEN_STATUSES = frozenset({S.ROUTED, S.IN_PROGRESS, S.QUALIFIED, S.DISQUALIFIED})


class ReferralSource(StrEnum):
    LINK = "link"
    FORM = "form"
    API = "api"
    CRM = "crm"
    SELF_ENROLMENT = "self_enrolment"


class AdvocateSource(StrEnum):
    SALESFORCE_CONTACT = "salesforce_contact"
    SALESFORCE_LEAD = "salesforce_lead"
    SALESFORCE_ACCOUNT = "salesforce_account"
    SALESFORCE_CAMPAIGN_MEMBER = "salesforce_campaign_member"
    PIPEDRIVE_PERSON = "pipedrive_person"
    FORM = "form"
    API = "api"


# Apostrophes are legal and common in local parts (o'hara@…); they are quoted wherever they go.
_EMAIL = re.compile(r"^[^@\s<>\"(),;:\\\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_PHONE = re.compile(r"^\+?[0-9 ().\-/]{5,25}$")
_DOT_INSENSITIVE = frozenset({"gmail.com", "googlemail.com"})


def normalise_email(raw: str) -> str:
    """Trimmed and lower-cased; raises InvalidInput when it cannot be an address."""
    email = (raw or "").strip().lower()
    if unsafe_character(email):
        raise InvalidInput({"email": "enter a valid email address (no control characters)"})
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidInput({"email": "enter a valid email address"})
    return email


def canonical_email(email: str) -> str:
    """The mailbox an address really reaches: no +tags, no dots for Gmail. Used to spot self-referrals."""
    local, _, domain = email.partition("@")
    local = local.split("+", 1)[0]
    if domain in _DOT_INSENSITIVE:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def clean_text(value: str | None, field_name: str, *, required: bool, max_length: int) -> str | None:
    text = " ".join((value or "").split())
    if not text:
        if required:
            raise InvalidInput({field_name: "this field is required"})
        return None
    if len(text) > max_length:
        raise InvalidInput({field_name: f"at most {max_length} characters"})
    problem = unsafe_character(text)
    if problem:
        raise InvalidInput({field_name: problem})
    return text


def clean_phone(value: str | None) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > 40:  # the length first: a 500-digit "number" is too long, not badly written
        raise InvalidInput({"phone": "at most 40 characters"})
    if not _PHONE.match(text):
        raise InvalidInput({"phone": "enter a phone number with digits, spaces, + ( ) - or ."})
    return text


@dataclass
class Advocate:
    id: str | None
    tenant_id: str
    program_id: str
    name: str
    email: str | None
    code: str
    source: AdvocateSource
    crm_object: str | None = None  # Contact, Lead, Account, CampaignMember, Person
    crm_id: str | None = None
    crm_contact_id: str | None = None  # the Contact that stands for the advocate in Salesforce
    crm_account_id: str | None = None
    link_written_at: dt.datetime | None = None
    enrolled_at: dt.datetime | None = None
    active: bool = True


@dataclass
class CrmRefs:
    lead_id: str | None = None
    contact_id: str | None = None
    account_id: str | None = None
    opportunity_id: str | None = None
    person_id: str | None = None
    deal_id: str | None = None
    owner_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Referral:
    id: str | None
    tenant_id: str
    program_id: str
    advocate_id: str
    friend_name: str
    friend_email: str
    friend_company: str | None
    friend_phone: str | None
    source: ReferralSource
    consent_at: dt.datetime
    consent_version: str
    captured_at: dt.datetime
    status: ReferralStatus = ReferralStatus.CAPTURED
    crm: CrmRefs = field(default_factory=CrmRefs)
    flags: list[Flag] = field(default_factory=list)
    routed_at: dt.datetime | None = None
    qualified_at: dt.datetime | None = None
    rewarded_at: dt.datetime | None = None
    status_reason: str | None = None
    last_observed_at: dt.datetime | None = None  # CRM time of the newest change applied
    changes: list[Change] = field(default_factory=list, repr=False, compare=False)

    @property
    def friend_canonical_email(self) -> str:
        return canonical_email(self.friend_email)

    def _move(self, target: ReferralStatus, at: dt.datetime, reason: str | None = None, **extra: Any) -> None:
        if target not in REFERRAL_TRANSITIONS[self.status]:
            raise InvalidTransition("referral", self.status.value, target.value)
        before = {"status": self.status.value}
        self.status = target
        self.status_reason = reason
        self.changes.append(
            Change("referral", self.id, f"status:{target.value}", before, {"status": target.value, **extra}, reason, at)
        )

    def add_flags(self, flags: list[Flag], at: dt.datetime) -> None:
        new = [f for f in flags if f not in self.flags]
        if new:
            self.flags.extend(new)
            self.changes.append(
                Change("referral", self.id, "flagged", None, {"flags": [f.to_dict() for f in new]}, None, at)
            )

    def mark_routed(self, refs: CrmRefs, at: dt.datetime, reason: str | None = None) -> None:
        self._move(S.ROUTED, at, reason, crm=refs.to_dict())
        self.crm = refs
        self.routed_at = at

    def mark_duplicate(self, existing: dict[str, Any], at: dt.datetime) -> None:
        self._move(S.DUPLICATE, at, "duplicate_existing_record", existing=existing)

    def update_crm_refs(self, refs: CrmRefs, at: dt.datetime) -> bool:
        """Follow the CRM (lead conversion, a deal created later). Returns whether anything changed."""
        merged = CrmRefs(**{k: (getattr(refs, k) or getattr(self.crm, k)) for k in self.crm.__dict__})
        if merged == self.crm:
            return False
        self.changes.append(Change("referral", self.id, "crm_refs", self.crm.to_dict(), merged.to_dict(), None, at))
        self.crm = merged
        return True

    def mark_in_progress(self, at: dt.datetime) -> None:
        self._move(S.IN_PROGRESS, at)

    def qualify(self, at: dt.datetime, evidence: dict[str, Any] | None = None) -> None:
        self._move(S.QUALIFIED, at, None, evidence=evidence or {})
        self.qualified_at = at

    def disqualify(self, at: dt.datetime, reason: str = "milestone_regressed") -> None:
        self._move(S.DISQUALIFIED, at, reason)

    def reject(self, at: dt.datetime, reason: str) -> None:
        if not reason:
            raise InvalidInput({"reason": "a rejection needs a reason"})
        self._move(S.REJECTED, at, reason)

    def mark_rewarded(self, at: dt.datetime) -> None:
        self._move(S.REWARDED, at)
        self.rewarded_at = at

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES
