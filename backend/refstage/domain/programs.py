"""Programs: what counts as a referral, what it earns, and who answers for it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Mapping

from marshmallow import Schema, ValidationError, fields, validate

from refstage.domain.audit import Change
from refstage.domain.errors import InvalidInput, InvalidTransition, RuleError
from refstage.domain.review import ReviewPolicy
from refstage.domain.rewards import RewardRule
from refstage.domain.rules import Rule
from refstage.domain.text import unsafe_character


class ProgramStatus(StrEnum):
    DRAFT = "draft"
    LIVE = "live"
    PAUSED = "paused"


PROGRAM_TRANSITIONS = {
    ProgramStatus.DRAFT: frozenset({ProgramStatus.LIVE}),
    ProgramStatus.LIVE: frozenset({ProgramStatus.PAUSED}),
    ProgramStatus.PAUSED: frozenset({ProgramStatus.LIVE}),
}


class EnrolmentKind(StrEnum):
    SALESFORCE_CONTACTS = "salesforce_contacts"
    SALESFORCE_LEADS = "salesforce_leads"
    SALESFORCE_ACCOUNTS = "salesforce_accounts"  # the account's primary contact
    SALESFORCE_CAMPAIGN_MEMBERS = "salesforce_campaign_members"
    PIPEDRIVE_PERSONS = "pipedrive_persons"
    FORM = "form"
    API = "api"


CRM_ENROLMENT = {
    EnrolmentKind.SALESFORCE_CONTACTS: "salesforce",
    EnrolmentKind.SALESFORCE_LEADS: "salesforce",
    EnrolmentKind.SALESFORCE_ACCOUNTS: "salesforce",
    EnrolmentKind.SALESFORCE_CAMPAIGN_MEMBERS: "salesforce",
    EnrolmentKind.PIPEDRIVE_PERSONS: "pipedrive",
}

FILTER_OPS = ("equals", "not_equals", "in", "not_in", "gte", "lte", "is_null", "not_null", "contains")


class _FilterSchema(Schema):
    field = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$", error="not a valid field name"))
    op = fields.String(required=True, validate=validate.OneOf(FILTER_OPS))
    value = fields.Raw(allow_none=True)


class _EnrolmentSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in EnrolmentKind]))
    conditions = fields.List(fields.Nested(_FilterSchema), load_default=list, validate=validate.Length(max=20))
    campaign_id = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$"))


@dataclass(frozen=True)
class FilterCondition:
    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class EnrolmentSource:
    """Where advocates come from. Conditions are structured; adapters turn them into safe queries."""

    kind: EnrolmentKind
    conditions: tuple[FilterCondition, ...] = ()
    campaign_id: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EnrolmentSource":
        try:
            clean = _EnrolmentSchema().load(dict(data))
        except ValidationError as exc:
            raise RuleError("invalid enrolment source", exc.messages) from None
        conditions = []
        for i, cond in enumerate(clean["conditions"]):
            op, value = cond["op"], cond.get("value")
            if op in ("in", "not_in") and (not isinstance(value, list) or not value):
                raise RuleError("invalid enrolment source", {f"conditions.{i}.value": ["a non-empty list"]})
            if op in ("is_null", "not_null"):
                value = None
            elif op not in ("in", "not_in") and isinstance(value, (list, dict)):
                raise RuleError("invalid enrolment source", {f"conditions.{i}.value": ["a single value"]})
            conditions.append(FilterCondition(cond["field"], op, tuple(value) if isinstance(value, list) else value))
        kind = EnrolmentKind(clean["kind"])
        if kind == EnrolmentKind.SALESFORCE_CAMPAIGN_MEMBERS and not clean.get("campaign_id"):
            raise RuleError("invalid enrolment source", {"campaign_id": ["campaign members need a campaign id"]})
        return cls(kind, tuple(conditions), clean.get("campaign_id"))

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> "EnrolmentSource":
        conditions = tuple(
            FilterCondition(c["field"], c["op"], tuple(c["value"]) if isinstance(c.get("value"), list) else c.get("value"))
            for c in data.get("conditions") or ()
        )
        return cls(EnrolmentKind(data["kind"]), conditions, data.get("campaign_id"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind.value,
            "conditions": [
                {"field": c.field, "op": c.op, "value": list(c.value) if isinstance(c.value, tuple) else c.value}
                for c in self.conditions
            ],
        }
        if self.campaign_id:
            out["campaign_id"] = self.campaign_id
        return out

    @property
    def crm(self) -> str | None:
        return CRM_ENROLMENT.get(self.kind)


class DuplicatePolicy(StrEnum):
    REVIEW = "review"  # record the referral as a duplicate for a reviewer
    ATTACH = "attach"  # attach the referral to the existing CRM record
    CREATE = "create"  # create a new record anyway


@dataclass(frozen=True)
class Routing:
    duplicate_policy: DuplicatePolicy = DuplicatePolicy.REVIEW
    lead_owner_id: str | None = None  # user or queue; None = the org's assignment rules
    pipeline_id: int | None = None  # Pipedrive
    stage_id: int | None = None
    deal_owner_id: int | None = None
    # Salesforce: a self-enrolled advocate not yet in the CRM becomes a Contact under this Account
    # (None: a Lead with LeadSource 'Referral Program'). See docs/decisions/2026-11-22-self-enrolment-crm.md.
    advocate_account_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Routing":
        data = dict(data or {})
        try:
            policy = DuplicatePolicy(data.get("duplicate_policy", "review"))
        except ValueError:
            raise InvalidInput({"routing.duplicate_policy": "one of review, attach, create"}) from None
        errors = {}
        for name in ("pipeline_id", "stage_id", "deal_owner_id"):
            if data.get(name) is not None and (not isinstance(data[name], int) or isinstance(data[name], bool)):
                errors[f"routing.{name}"] = "a whole number"
        owner = data.get("lead_owner_id")
        if owner is not None and not re.match(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$", str(owner)):
            errors["routing.lead_owner_id"] = "a Salesforce user or queue id"
        account = data.get("advocate_account_id")
        if account is not None and not re.match(r"^001[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$", str(account)):
            errors["routing.advocate_account_id"] = "a Salesforce Account id"
        if errors:
            raise InvalidInput(errors)
        return cls(policy, owner, data.get("pipeline_id"), data.get("stage_id"), data.get("deal_owner_id"), account)


@dataclass(frozen=True)
class Owner:
    name: str
    email: str


@dataclass(frozen=True)
class LandingPage:
    headline: str = "You've been referred"
    message: str = ""
    brand_color: str = "#0b5cab"
    consent_text: str = "I agree that my details are shared with the company so they can contact me."
    consent_version: str = "1"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)



def name_and_slug_errors(name: str, slug: str) -> dict[str, str]:
    """The two fields every program needs, checked alongside the rest so a form shows all at once."""
    errors: dict[str, str] = {}
    if not (name or "").strip():
        errors["name"] = "a program needs a name"
    elif unsafe_character(name):
        errors["name"] = unsafe_character(name) or ""
    if not (slug or "").strip():
        errors["slug"] = "a program needs a slug (its address: lowercase letters, digits and dashes)"
    elif not re.match(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$", slug):
        errors["slug"] = "lowercase letters, digits and dashes"
    return errors

@dataclass
class Program:
    id: str | None
    tenant_id: str
    name: str
    slug: str
    connection_id: str | None
    enrolment: EnrolmentSource
    rule: Rule
    reward_rules: list[RewardRule]
    review_policy: ReviewPolicy = field(default_factory=ReviewPolicy)
    holding_days: int = 0
    owner: Owner | None = None
    status: ProgramStatus = ProgramStatus.DRAFT
    routing: Routing = field(default_factory=Routing)
    landing: LandingPage = field(default_factory=LandingPage)
    allow_self_enrolment: bool = False
    changes: list[Change] = field(default_factory=list, repr=False, compare=False)

    def validate(self) -> None:
        errors: dict[str, str] = name_and_slug_errors(self.name, self.slug)
        if not isinstance(self.holding_days, int) or not 0 <= self.holding_days <= 365:
            errors["holding_days"] = "between 0 and 365 days"
        keys = [r.key for r in self.reward_rules]
        if len(keys) != len(set(keys)):
            errors["reward_rules"] = "reward rule keys must be unique"
        if self.enrolment.crm and not self.connection_id:
            errors["connection_id"] = f"enrolling from {self.enrolment.kind.value} needs a CRM connection"
        if self.owner is not None and "@" not in self.owner.email:
            errors["owner.email"] = "enter a valid email address"
        if errors:
            raise InvalidInput(errors)

    def required_fields(self) -> dict[str, set[str]]:
        needed = {k: set(v) for k, v in self.rule.required_fields().items()}
        for rule in self.reward_rules:
            for obj, names in rule.required_fields().items():
                needed.setdefault(obj, set()).update(names)
        return needed

    def set_status(self, target: ProgramStatus, at: dt.datetime) -> None:
        if target not in PROGRAM_TRANSITIONS[self.status]:
            raise InvalidTransition("program", self.status.value, target.value)
        if target == ProgramStatus.LIVE:
            errors = {}
            if not self.reward_rules:
                errors["reward_rules"] = "a live program needs at least one reward rule"
            if self.owner is None:
                errors["owner"] = "a live program needs an automation owner (name and email)"
            if errors:
                raise InvalidInput(errors)
            self.validate()
        before = {"status": self.status.value}
        self.status = target
        self.changes.append(Change("program", self.id, f"status:{target.value}", before, {"status": target.value}, None, at))

    @property
    def accepts_referrals(self) -> bool:
        return self.status == ProgramStatus.LIVE

    def hold_until(self, qualified_at: dt.datetime) -> dt.datetime | None:
        return qualified_at + dt.timedelta(days=self.holding_days) if self.holding_days else None
