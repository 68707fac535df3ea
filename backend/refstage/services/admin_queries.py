"""Read models for the admin console.

Everything here is scoped to one tenant through `rt.uow(tenant_id)`; ids from another tenant raise
NotFound exactly like the repositories do. The console calls the real use cases (programs, rewards,
referrals, tenants, connections, sync) for every change; this module only adds what those do not offer:
joined lists for pages, the sync log, and the CRM's milestones for the picker (kept briefly in the
runtime's `milestone_cache`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any, Iterable

from refstage.domain.audit import AuditEntry
from refstage.domain.connections import CrmConnection
from refstage.domain.errors import DomainError, InvalidInput, NotFound, RuleError
from refstage.domain.programs import Program
from refstage.domain.referrals import Referral, ReferralStatus
from refstage.domain.rewards import Reward, RewardStatus
from refstage.domain.rules import Rule
from refstage.services.ports import CrmError, Milestone, UnitOfWork
from refstage.services.runtime import Runtime

# --- review queue -------------------------------------------------------------------------------------


@dataclass
class RewardItem:
    reward: Reward
    referral: Referral
    program: Program
    advocate_name: str
    advocate_email: str | None
    explanation: dict[str, Any] | None = None  # the program rule explained on the latest CRM snapshot


@dataclass
class DuplicateItem:
    referral: Referral
    program: Program
    advocate_name: str
    existing: dict[str, Any] = field(default_factory=dict)  # what routing found in the CRM


def review_queue(rt: Runtime, tenant_id: str, program_id: str | None = None, limit: int = 200) -> tuple[list[RewardItem], list[DuplicateItem]]:
    with rt.uow(tenant_id) as uow:
        rewards = uow.rewards.list(status=RewardStatus.PENDING_REVIEW.value, program_id=program_id, limit=limit)
        duplicates = uow.referrals.list(status=ReferralStatus.DUPLICATE.value, program_id=program_id, limit=limit)
        programs = {p.id: p for p in uow.programs.list()}
        advocates: dict[str, Any] = {}

        def advocate(aid: str):
            if aid not in advocates:
                advocates[aid] = uow.advocates.get(aid)
            return advocates[aid]

        items = []
        for reward in rewards:
            referral = uow.referrals.get(reward.referral_id)
            adv = advocate(referral.advocate_id)
            explanation = None
            connection_id = uow.referrals.connection_id(referral.id)
            if connection_id:
                snapshot = _snapshot(uow, connection_id, referral)
                if snapshot:
                    explanation = programs[reward.program_id].rule.explain(snapshot)
            items.append(RewardItem(reward, referral, programs[reward.program_id], adv.name, adv.email, explanation))
        dups = []
        for referral in duplicates:
            existing = _duplicate_evidence(uow, referral)
            dups.append(DuplicateItem(referral, programs[referral.program_id], advocate(referral.advocate_id).name, existing))
    return items, dups


_LINKS = {"Lead": "lead_id", "Contact": "contact_id", "Account": "account_id", "Opportunity": "opportunity_id",
          "Person": "person_id", "Deal": "deal_id"}


def _snapshot(uow: UnitOfWork, connection_id: str, referral: Referral) -> dict[str, dict[str, Any]]:
    """The latest stored CRM state of the records linked to a referral: what the rule was evaluated on."""
    linked = {obj: [crm_id] for obj, col in _LINKS.items() if (crm_id := getattr(referral.crm, col, None))}
    states = uow.crm_records.load(connection_id, linked)
    return {obj: dict(state.fields) for (obj, _), state in states.items() if not state.deleted}


def _duplicate_evidence(uow: UnitOfWork, referral: Referral) -> dict[str, Any]:
    entry = uow.audit.latest("referral", referral.id, "status:duplicate")
    if entry is not None and entry.after:
        return dict(entry.after.get("existing") or {})
    return {}


def count_pending_review(rt: Runtime, tenant_id: str) -> int:
    with rt.uow(tenant_id) as uow:
        return uow.attention.pending_review()


# --- ledger -------------------------------------------------------------------------------------------


@dataclass
class LedgerRow:
    reward: Reward
    program_name: str
    advocate_name: str
    friend_name: str
    friend_email: str


def ledger(rt: Runtime, tenant_id: str, *, status: str | None = None, program_id: str | None = None,
           limit: int = 500, offset: int = 0) -> list[LedgerRow]:
    if status and status not in {s.value for s in RewardStatus}:
        raise InvalidInput({"status": "unknown reward status"})
    with rt.uow(tenant_id) as uow:
        if program_id:
            uow.programs.get(program_id)  # NotFound for another tenant's program
        rewards = uow.rewards.list(status=status or None, program_id=program_id or None, limit=limit, offset=offset)
        names = {p.id: p.name for p in uow.programs.list()}
        referrals = uow.referrals.ledger_names(sorted({r.referral_id for r in rewards}))
    out = []
    for r in rewards:
        friend_name, friend_email, advocate_name = referrals.get(r.referral_id, ("", "", ""))
        out.append(LedgerRow(r, names.get(r.program_id, ""), advocate_name, friend_name, friend_email))
    return out


# Full-width forms too: some spreadsheets read "＝1+1" as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_safe(value: Any) -> str:
    """Spreadsheet formula injection: a cell a spreadsheet would evaluate is prefixed with a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


LEDGER_COLUMNS = ("reward_id", "program", "advocate", "friend_name", "friend_email", "recipient", "rule_key", "kind",
                  "amount", "currency", "status", "created_at", "decided_by", "decision_comment", "issued_at",
                  "payout_reference", "referral_id")


def ledger_csv(rows: Iterable[LedgerRow]) -> str:
    buf = io.StringIO()
    # Every cell quoted: in locales whose list separator is ";" (or ",") a bare value with that character
    # would otherwise split into cells of its own when the file is opened.
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(LEDGER_COLUMNS)
    for row in rows:
        r = row.reward
        writer.writerow([csv_safe(v) for v in (
            r.id, row.program_name, row.advocate_name, row.friend_name, row.friend_email, r.recipient.value, r.rule_key,
            r.kind.value, r.amount.amount, r.amount.currency, r.status.value, _iso(r.created_at), r.decided_by,
            r.decision_comment, _iso(r.issued_at), r.payout_reference, r.referral_id)])
    return buf.getvalue()


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat() if value else ""


# --- connections and their sync log -------------------------------------------------------------------------


@dataclass
class ConnectionView:
    connection: CrmConnection
    pending_writes: int
    failed_writes: int
    last_run: dict[str, Any] | None


def connections_overview(rt: Runtime, tenant_id: str) -> list[ConnectionView]:
    with rt.uow(tenant_id) as uow:
        out = []
        for conn in uow.connections.list():
            pending, failed = uow.pending_writes.counts(conn.id)
            runs = uow.sync_runs.recent(conn.id, 1)
            out.append(ConnectionView(conn, pending, failed, runs[0] if runs else None))
    return out


@dataclass
class SyncLog:
    connection: CrmConnection
    runs: list[dict[str, Any]]
    records: list[dict[str, Any]]
    pending: list[dict[str, Any]]


def sync_log(rt: Runtime, tenant_id: str, connection_id: str, limit: int = 100) -> SyncLog:
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        runs = uow.sync_runs.recent(connection_id, limit)
        records = uow.pending_writes.write_log(connection_id, limit)
        pending = uow.pending_writes.most_retried(connection_id, limit)
    return SyncLog(conn, runs, records, pending)


# --- milestones (cached briefly) ------------------------------------------------------------------------------

# The picker asks the CRM (describe calls that spend its API allowance) on every editor page and post.
_MILESTONE_TTL = 120.0


@dataclass
class MilestoneChoice:
    milestones: list[Milestone]
    error: str | None = None
    cached: bool = False


def milestones(rt: Runtime, tenant_id: str, connection_id: str, refresh: bool = False) -> MilestoneChoice:
    """The CRM's real stages and statuses for the picker. A CRM failure becomes a message, not an error page."""
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
    key = (tenant_id, connection_id)
    now = rt.now().timestamp()
    hit = rt.milestone_cache.get(key)
    if hit and not refresh and 0 <= now - hit[0] < _MILESTONE_TTL:
        return MilestoneChoice(hit[1], cached=True)
    if not conn.usable:
        return MilestoneChoice([], f"the connection is {conn.status.value.replace('_', ' ')}; connect it to list its stages")
    try:
        found = list(rt.gateway(conn).describe_milestones())
    except CrmError as exc:
        return MilestoneChoice(hit[1] if hit else [], f"the CRM could not be read just now ({exc}); try again in a moment")
    rt.milestone_cache.put(key, now, found)
    return MilestoneChoice(found)


def rule_for_milestone(m_: Milestone) -> str:
    """The rule text a picked milestone stands for."""
    obj = m_.object
    if obj == "Opportunity" and m_.is_won and m_.field == "StageName":
        return f"Opportunity.StageName == {_lit(m_.value)}"
    if obj == "Lead" and m_.is_won:
        return "Lead is_won"
    return f"{obj}.{m_.field} == {_lit(m_.value)}"


def _lit(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def milestone_token(m_: Milestone) -> str:
    return f"{m_.object}|{m_.field}|{m_.value}"


def preview_count(rt: Runtime, tenant_id: str, connection_id: str | None, rule_text: str) -> tuple[int | None, str | None]:
    """How many open CRM records satisfy the rule today: (count or None for unknown, error text)."""
    try:
        rule = Rule.coerce(rule_text)
    except RuleError as exc:
        return None, f"the rule cannot be read: {exc}"
    if not connection_id:
        return None, "no CRM connection chosen"
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
    if not conn.usable:
        return None, f"the connection is {conn.status.value.replace('_', ' ')}"
    try:
        return rt.gateway(conn).count_matching(rule), None
    except CrmError as exc:
        return None, f"the CRM could not be asked ({exc})"
    except (ValueError, DomainError) as exc:  # a value the CRM's query language cannot take
        return None, f"the CRM cannot count this rule ({exc})"


@dataclass
class RulePreview:
    count: int | None
    note: str | None  # why the count is unknown
    problems: list[str]  # the rule against the CRM's describe: shown inline on the rule field


def preview_rule(rt: Runtime, tenant_id: str, connection_id: str | None, rule_text: str) -> RulePreview:
    """The editor's Preview: the rule checked against the CRM first (fields, types, picklist values);
    only a rule that can match is counted."""
    from refstage.services.programs import check_rule_against_crm

    try:
        rule = Rule.coerce(rule_text)
    except RuleError as exc:
        return RulePreview(None, None, [f"the rule cannot be read: {exc}"])
    try:
        problems = check_rule_against_crm(rt, tenant_id, connection_id, rule)
    except CrmError as exc:
        return RulePreview(None, f"the rule could not be checked against the CRM ({exc})", [])
    if problems:
        return RulePreview(None, "the rule cannot match anything as written", problems)
    count, note = preview_count(rt, tenant_id, connection_id, rule_text)
    return RulePreview(count, note, [])


# --- audit log, users, keys -----------------------------------------------------------------------------------


def audit_log(rt: Runtime, tenant_id: str, *, entity_type: str | None = None, entity_id: str | None = None,
              actor_kind: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
              limit: int = 200, offset: int = 0) -> list[AuditEntry]:
    with rt.uow(tenant_id) as uow:
        return uow.audit.list(entity_type=entity_type or None, entity_id=entity_id or None, actor_kind=actor_kind or None,
                              since=since, until=until, limit=limit, offset=offset)


def audit_entity_types(rt: Runtime, tenant_id: str) -> list[str]:
    with rt.uow(tenant_id) as uow:
        return uow.audit.entity_types()


def users_and_keys(rt: Runtime, tenant_id: str) -> tuple[list[Any], list[dict[str, Any]]]:
    with rt.uow(tenant_id) as uow:
        users = uow.users.list()
        orgs = uow.users.salesforce_org_ids()
        for u in users:
            u.salesforce_org_id = orgs.get(u.id)  # type: ignore[attr-defined]
        return users, uow.api_keys.list()


def get_user(rt: Runtime, tenant_id: str, user_id: str):
    with rt.uow(tenant_id) as uow:
        return uow.users.get(user_id)


def referral_owners(rt: Runtime, tenant_id: str) -> list[str]:
    """CRM owner ids seen on referrals, for the reports' owner filter."""
    with rt.uow(tenant_id) as uow:
        return uow.referrals.owners()


__all__ = ["review_queue", "ledger", "ledger_csv", "csv_safe", "connections_overview", "sync_log", "milestones",
           "preview_count", "audit_log", "users_and_keys", "NotFound"]


@dataclass
class DisconnectImpact:
    connection: CrmConnection
    programs: list[Program]  # the programs on this connection

    @property
    def live(self) -> list[Program]:
        return [p for p in self.programs if p.status.value == "live"]


def disconnect_impact(rt: Runtime, tenant_id: str, connection_id: str) -> DisconnectImpact:
    """What a disconnect stops: shown on the confirmation page before anything is revoked."""
    with rt.uow(tenant_id, readonly=True) as uow:
        conn = uow.connections.get(connection_id)  # NotFound for another tenant's id
        return DisconnectImpact(conn, [p for p in uow.programs.list() if p.connection_id == connection_id])


def referral_explanation(rt: Runtime, tenant_id: str, referral_id: str) -> dict[str, Any] | None:
    """The program rule explained on the latest stored CRM state of the referral's records: the
    qualification evidence a reviewer or a rep reads."""
    with rt.uow(tenant_id) as uow:
        referral = uow.referrals.get(referral_id)
        connection_id = uow.referrals.connection_id(referral.id)
        if not connection_id:
            return None
        snapshot = _snapshot(uow, connection_id, referral)
        program = uow.programs.get(referral.program_id)
    return program.rule.explain(snapshot) if snapshot else None


def ledger_row(rt: Runtime, tenant_id: str, reward_id: str) -> LedgerRow:
    """One reward with the names a person checks before paying it."""
    with rt.uow(tenant_id, readonly=True) as uow:
        reward = uow.rewards.get(reward_id)  # NotFound for another tenant's reward
        referral = uow.referrals.get(reward.referral_id)
        advocate = uow.advocates.get(referral.advocate_id)
        program = uow.programs.get(reward.program_id)
    return LedgerRow(reward, program.name, advocate.name, referral.friend_name, referral.friend_email)
