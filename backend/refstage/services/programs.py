"""Program use cases: create, edit, go live, pause."""

from __future__ import annotations

from typing import Any, Mapping

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.errors import Conflict, DomainError, InvalidInput, RuleError
from refstage.domain.programs import (EnrolmentSource, LandingPage, Owner, Program, ProgramStatus, Routing,
                                      name_and_slug_errors)
from refstage.domain.review import ReviewPolicy
from refstage.domain.rewards import RewardRule
from refstage.domain.rules import Rule, schema_errors
from refstage.services.ports import CrmError
from refstage.services.runtime import Runtime

_LANDING_FIELDS = set(LandingPage.__dataclass_fields__)


def _build(rt: Runtime, tenant_id: str, data: Mapping[str, Any], program_id: str, status: ProgramStatus) -> Program:
    """Turn editor/API input into a Program, collecting every field's error before raising."""
    errors: dict[str, Any] = {}

    def attempt(key: str, fn):
        try:
            return fn()
        except RuleError as exc:
            errors[key] = exc.errors or [str(exc)]
        except InvalidInput as exc:
            errors.update(exc.errors)
        except (DomainError, TypeError, ValueError, KeyError) as exc:
            errors[key] = [str(exc)]
        return None

    rule = attempt("rule", lambda: Rule.coerce(data.get("rule") or ""))
    enrolment = attempt("enrolment", lambda: EnrolmentSource.from_dict(data.get("enrolment") or {}))
    rewards = []
    for i, raw in enumerate(data.get("reward_rules") or []):
        rewards.append(attempt(f"reward_rules.{i}", lambda raw=raw: RewardRule.from_dict(raw)))
    policy = attempt("review_policy", lambda: ReviewPolicy.from_dict(data.get("review_policy")))
    routing = attempt("routing", lambda: Routing.from_dict(data.get("routing")))
    landing_data = dict(data.get("landing") or {})
    unknown = set(landing_data) - _LANDING_FIELDS
    if unknown:
        errors["landing"] = [f"unknown fields: {', '.join(sorted(unknown))}"]
    landing = LandingPage(**{k: str(v) for k, v in landing_data.items() if k in _LANDING_FIELDS})
    owner_data = data.get("owner")
    owner = None
    if owner_data:
        if not isinstance(owner_data, Mapping) or not owner_data.get("name") or not owner_data.get("email"):
            errors["owner"] = ["name and email of the person who answers for this program"]
        else:
            owner = Owner(str(owner_data["name"]).strip(), str(owner_data["email"]).strip().lower())
            if "@" not in owner.email:
                errors["owner.email"] = ["enter a valid email address"]
    for key, message in name_and_slug_errors(str(data.get("name") or ""), str(data.get("slug") or "").strip().lower()).items():
        errors.setdefault(key, [message])
    holding = data.get("holding_days", 0)
    if not isinstance(holding, int) or isinstance(holding, bool):
        errors["holding_days"] = ["a whole number of days"]
        holding = 0
    elif not 0 <= holding <= 365:
        errors["holding_days"] = ["between 0 and 365 days"]
    if errors:
        raise InvalidInput(errors)
    program = Program(
        id=program_id, tenant_id=tenant_id, name=str(data.get("name") or "").strip(),
        slug=str(data.get("slug") or "").strip().lower(), connection_id=data.get("connection_id") or None,
        enrolment=enrolment, rule=rule, reward_rules=rewards, review_policy=policy, holding_days=holding,
        owner=owner, status=status, routing=routing, landing=landing,
        allow_self_enrolment=bool(data.get("allow_self_enrolment", False)),
    )
    program.validate()
    return program


def _check_connection(uow, program: Program) -> None:
    if program.connection_id:
        conn = uow.connections.get(program.connection_id)  # NotFound for another tenant's id
        if program.enrolment.crm and program.enrolment.crm != conn.kind.value:
            raise InvalidInput({"enrolment.kind": f"{program.enrolment.kind.value} does not fit a {conn.kind.value} connection"})


def check_rule_against_crm(rt: Runtime, tenant_id: str, connection_id: str | None, rule: Rule) -> list[str]:
    """Describe each object the rule reads (through the CRM port) and list every field, type and
    picklist problem. A connection that is not usable, or a CRM that cannot be asked, raises
    CrmError: saving goes on without the check, going live does not."""
    if not connection_id:
        return []
    with rt.uow(tenant_id, readonly=True) as uow:
        conn = uow.connections.get(connection_id)
    if not conn.usable:
        raise CrmError(f"the connection {conn.name!r} is {conn.status.value.replace('_', ' ')}", transient=False)
    gateway = rt.gateway(conn)
    described = {obj: gateway.describe_fields(obj) for obj in sorted(rule.objects())}
    return schema_errors(rule, described)


def _checked(rt: Runtime, tenant_id: str, program: Program, *, strict: bool) -> None:
    try:
        problems = check_rule_against_crm(rt, tenant_id, program.connection_id, program.rule)
    except CrmError as exc:
        if strict:
            raise InvalidInput({"rule": [f"the rule could not be checked against the CRM ({exc}); try again"]}) from None
        return
    if problems:
        raise InvalidInput({"rule": problems})


def create_program(rt: Runtime, tenant_id: str, data: Mapping[str, Any], actor: Actor) -> Program:
    program = _build(rt, tenant_id, data, rt.new_id(), ProgramStatus.DRAFT)
    _checked(rt, tenant_id, program, strict=False)
    with rt.uow(tenant_id) as uow:
        _check_connection(uow, program)
        if uow.programs.by_slug(program.slug):
            raise InvalidInput({"slug": "another program uses this slug"})
        uow.programs.add(program)
        uow.audit.append([AuditEntry(tenant_id, "program", program.id, "created", actor, rt.now(), None, _summary(program))])
        uow.commit()
    return program


def update_program(rt: Runtime, tenant_id: str, program_id: str, data: Mapping[str, Any], actor: Actor) -> Program:
    with rt.uow(tenant_id, readonly=True) as uow:
        current = uow.programs.get(program_id)
    program = _build(rt, tenant_id, {**_as_input(current), **data}, program_id, current.status)
    if program.rule.to_json() != current.rule.to_json() or program.connection_id != current.connection_id:
        _checked(rt, tenant_id, program, strict=program.status == ProgramStatus.LIVE)
    with rt.uow(tenant_id) as uow:
        current = uow.programs.get(program_id)
        merged = {**_as_input(current), **data}
        program = _build(rt, tenant_id, merged, program_id, current.status)
        _check_connection(uow, program)
        other = uow.programs.by_slug(program.slug)
        if other and other.id != program_id:
            raise InvalidInput({"slug": "another program uses this slug"})
        uow.programs.save(program)
        uow.audit.append([AuditEntry(tenant_id, "program", program_id, "updated", actor, rt.now(), _summary(current), _summary(program))])
        uow.commit()
    return program


def set_program_status(rt: Runtime, tenant_id: str, program_id: str, status: str, actor: Actor) -> Program:
    try:
        target = ProgramStatus(status)
    except ValueError:
        raise InvalidInput({"status": "draft, live or paused"}) from None
    if target == ProgramStatus.LIVE:
        with rt.uow(tenant_id, readonly=True) as uow:
            candidate = uow.programs.get(program_id)
            conn = uow.connections.get(candidate.connection_id) if candidate.connection_id else None
        if conn is None or conn.usable:  # an unusable connection is refused below, with its own message
            _checked(rt, tenant_id, candidate, strict=True)
    with rt.uow(tenant_id) as uow:
        program = uow.programs.get(program_id)
        if target == ProgramStatus.LIVE and program.connection_id:
            conn = uow.connections.get(program.connection_id)
            if not conn.usable:
                raise InvalidInput({"connection_id": f"the CRM connection {conn.name!r} is {conn.status.value.replace('_', ' ')}: "
                                                     "reconnect it before going live"})
        program.set_status(target, rt.now())
        uow.programs.save(program)
        uow.record(program.changes, actor, program.id)
        uow.commit()
    return program


def get_program(rt: Runtime, tenant_id: str, program_id: str) -> Program:
    with rt.uow(tenant_id, readonly=True) as uow:
        return uow.programs.get(program_id)


def list_programs(rt: Runtime, tenant_id: str) -> list[Program]:
    with rt.uow(tenant_id, readonly=True) as uow:
        return uow.programs.list()


def by_slugs(rt: Runtime, tenant_slug: str, program_slug: str) -> tuple[Any, Program | None]:
    """(tenant, program) by their public slugs (the self-enrolment page): (None, None) for an unknown tenant,
    (tenant, None) for a program it does not have."""
    with rt.uow(readonly=True) as uow:
        tenant = uow.tenants.by_slug(tenant_slug)
        if tenant is None:
            return None, None
        return tenant, uow.scope(tenant.id).programs.by_slug(program_slug)


def _as_input(p: Program) -> dict[str, Any]:
    return {
        "name": p.name, "slug": p.slug, "connection_id": p.connection_id, "enrolment": p.enrolment.to_dict(),
        "rule": p.rule.to_json(), "reward_rules": [r.to_dict() for r in p.reward_rules],
        "review_policy": p.review_policy.to_dict(), "holding_days": p.holding_days,
        "owner": {"name": p.owner.name, "email": p.owner.email} if p.owner else None,
        "routing": p.routing.to_dict(), "landing": p.landing.to_dict(), "allow_self_enrolment": p.allow_self_enrolment,
    }


program_as_dict = _as_input


def _summary(p: Program) -> dict[str, Any]:
    return {**_as_input(p), "status": p.status.value}


__all__ = ["check_rule_against_crm", "create_program", "update_program", "set_program_status", "get_program", "list_programs", "Conflict"]
