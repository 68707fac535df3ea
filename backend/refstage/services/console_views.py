"""Read models for the console's Referrals, Advocates and program pages: search and filters, a
referral's timeline, an advocate's page (link, QR code, share links), a program's funnel, and the CSV
exports. Storage only through the unit of work and its repositories; nothing here changes state."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from refstage.domain.audit import AuditEntry
from refstage.domain.codes import referral_link
from refstage.domain.connections import CrmConnection, CrmKind
from refstage.domain.errors import InvalidInput
from refstage.domain.money import Money
from refstage.domain.programs import Program
from refstage.domain.referrals import Advocate, AdvocateSource, Referral, ReferralStatus
from refstage.domain.rewards import Reward, RewardStatus
from refstage.services.admin_queries import csv_safe
from refstage.services.runtime import Runtime

PER_PAGE = 50
EXPORT_LIMIT = 50_000


# --- filters -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferralFilters:
    text: str = ""
    program_id: str = ""
    status: str = ""
    owner_id: str = ""
    since: dt.date | None = None
    until: dt.date | None = None  # inclusive, as people read a date range

    @classmethod
    def parse(cls, args: Any) -> "ReferralFilters":
        """From a query string; a malformed date or an unknown status is an InvalidInput per field."""
        errors: dict[str, str] = {}
        status = (args.get("status") or "").strip()
        if status and status not in {s.value for s in ReferralStatus}:
            errors["status"] = "choose a status from the list"
        dates: dict[str, dt.date | None] = {}
        for key in ("since", "until"):
            raw = (args.get(key) or "").strip()
            try:
                dates[key] = dt.date.fromisoformat(raw) if raw else None
            except ValueError:
                errors[key] = "a date as YYYY-MM-DD"
                dates[key] = None
        if errors:
            raise InvalidInput(errors)
        return cls(" ".join((args.get("q") or "").split())[:200], (args.get("program") or "").strip()[:64], status,
                   (args.get("owner") or "").strip()[:64], dates["since"], dates["until"])

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        since = dt.datetime.combine(self.since, dt.time(), dt.timezone.utc) if self.since else None
        until = dt.datetime.combine(self.until + dt.timedelta(days=1), dt.time(), dt.timezone.utc) if self.until else None
        return since, until

    def query(self) -> dict[str, str]:
        out = {"q": self.text, "program": self.program_id, "status": self.status, "owner": self.owner_id,
               "since": self.since.isoformat() if self.since else "", "until": self.until.isoformat() if self.until else ""}
        return {k: v for k, v in out.items() if v}


# --- referrals ---------------------------------------------------------------------------------------
@dataclass
class ReferralLine:
    referral: Referral
    program: Program
    advocate: Advocate
    rewards: list[Reward]


@dataclass
class ReferralList:
    lines: list[ReferralLine]
    total: int
    page: int
    pages: int
    programs: list[Program]
    owners: list[str]
    filters: ReferralFilters


def _lines(uow, referrals: Sequence[Referral]) -> list[ReferralLine]:
    programs = {p.id: p for p in uow.programs.list()}
    advocates = {a.id: a for a in uow.advocates.get_many(sorted({r.advocate_id for r in referrals}))}
    rewards = uow.rewards.for_referrals([r.id for r in referrals]) if referrals else {}
    return [ReferralLine(r, programs[r.program_id], advocates[r.advocate_id], rewards.get(r.id, [])) for r in referrals]


def referral_list(rt: Runtime, tenant_id: str, filters: ReferralFilters, page: int = 1, per_page: int = PER_PAGE) -> ReferralList:
    since, until = filters.bounds()
    page = max(1, page)
    with rt.uow(tenant_id, readonly=True) as uow:
        found, total = uow.referrals.search(text=filters.text, program_id=filters.program_id or None,
                                            status=filters.status or None, owner_id=filters.owner_id or None,
                                            since=since, until=until, limit=per_page, offset=(page - 1) * per_page)
        return ReferralList(_lines(uow, found), total, page, max(1, -(-total // per_page)), uow.programs.list(),
                            uow.referrals.owners(), filters)


REFERRAL_COLUMNS = ("referral_id", "captured_at", "program", "status", "friend_name", "friend_email", "friend_company",
                    "advocate", "advocate_code", "crm_owner_id", "lead_id", "contact_id", "opportunity_id", "person_id",
                    "deal_id", "routed_at", "qualified_at", "rewarded_at", "rewards")


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Every cell quoted, and a cell a spreadsheet would evaluate as a formula prefixed with a quote."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_safe(v) for v in row])
    return buf.getvalue()


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat() if value else ""


def referrals_csv(rt: Runtime, tenant_id: str, filters: ReferralFilters) -> str:
    listing = referral_list(rt, tenant_id, filters, 1, EXPORT_LIMIT)
    return _csv(REFERRAL_COLUMNS, (
        (x.referral.id, _iso(x.referral.captured_at), x.program.name, x.referral.status.value, x.referral.friend_name,
         x.referral.friend_email, x.referral.friend_company, x.advocate.name, x.advocate.code, x.referral.crm.owner_id,
         x.referral.crm.lead_id, x.referral.crm.contact_id, x.referral.crm.opportunity_id, x.referral.crm.person_id,
         x.referral.crm.deal_id, _iso(x.referral.routed_at), _iso(x.referral.qualified_at), _iso(x.referral.rewarded_at),
         "; ".join(f"{r.rule_key} {r.amount} {r.status.value}" for r in x.rewards))
        for x in listing.lines))


# --- a referral's timeline -----------------------------------------------------------------------------
@dataclass
class CrmLink:
    label: str
    crm_id: str
    url: str | None


@dataclass
class TimelineEvent:
    at: dt.datetime
    title: str
    detail: str = ""


@dataclass
class ReferralDetail:
    referral: Referral
    program: Program
    advocate: Advocate
    connection: CrmConnection | None
    crm_links: list[CrmLink]
    rewards: list[Reward]
    explanation: dict[str, Any] | None
    events: list[TimelineEvent]
    audit: list[AuditEntry]


_SF_OBJECTS = (("Lead", "lead_id"), ("Contact", "contact_id"), ("Account", "account_id"), ("Opportunity", "opportunity_id"))
_PD_OBJECTS = (("Person", "person_id", "person"), ("Deal", "deal_id", "deal"))


def crm_links(conn: CrmConnection | None, refs: Any) -> list[CrmLink]:
    """Links that open each CRM record in the org (Lightning record pages) or company (Pipedrive)."""
    out: list[CrmLink] = []
    base = (conn.instance_url or "").rstrip("/") if conn else ""
    if conn is None or conn.kind == CrmKind.SALESFORCE:
        for label, attr in _SF_OBJECTS:
            crm_id = getattr(refs, attr, None)
            if crm_id:
                out.append(CrmLink(label, crm_id, f"{base}/lightning/r/{label}/{quote(crm_id)}/view" if base else None))
    if conn is None or conn.kind == CrmKind.PIPEDRIVE:
        domain = (conn.settings.get("company_domain") if conn else None)
        web = f"https://{domain}.pipedrive.com" if domain and "." not in str(domain) else base
        for label, attr, path in _PD_OBJECTS:
            crm_id = getattr(refs, attr, None)
            if crm_id:
                out.append(CrmLink(label, crm_id, f"{web}/{path}/{quote(str(crm_id))}" if web else None))
    return out


_ACTION_TITLES = {"captured": "Captured", "status:routed": "Routed to the CRM", "status:in_progress": "In progress in the CRM",
                  "status:qualified": "Qualified", "status:rewarded": "Rewarded", "status:duplicate": "Held as a duplicate",
                  "status:rejected": "Rejected", "status:disqualified": "Disqualified", "repeat_submission": "Submitted again"}


def referral_detail(rt: Runtime, tenant_id: str, referral_id: str) -> ReferralDetail:
    from refstage.services.admin_queries import referral_explanation

    with rt.uow(tenant_id, readonly=True) as uow:
        referral = uow.referrals.get(referral_id)  # NotFound for another tenant's id
        program = uow.programs.get(referral.program_id)
        advocate = uow.advocates.get(referral.advocate_id)
        connection_id = uow.referrals.connection_id(referral.id)
        conn = uow.connections.get(connection_id) if connection_id else None
        rewards = uow.rewards.for_referral(referral.id)
        audit = uow.audit.list(entity_type="referral", entity_id=referral.id, limit=200)
        for reward in rewards:
            audit += uow.audit.list(entity_type="reward", entity_id=reward.id, limit=100)
    explanation = referral_explanation(rt, tenant_id, referral.id) if referral.qualified_at or referral.crm.opportunity_id \
        or referral.crm.deal_id else None
    events = [TimelineEvent(referral.captured_at, "Captured",
                            f"{referral.friend_name} referred by {advocate.name} through {referral.source.value}")]
    if referral.routed_at:
        links = ", ".join(f"{lk.label} {lk.crm_id}" for lk in crm_links(conn, referral.crm))
        events.append(TimelineEvent(referral.routed_at, "Routed to the CRM", links))
    if referral.qualified_at:
        events.append(TimelineEvent(referral.qualified_at, "Qualified", program.rule.describe()))
    for reward in rewards:
        events.append(TimelineEvent(reward.created_at, f"Reward {reward.rule_key} created",
                                    f"{reward.amount} for the {reward.recipient.value}, {reward.status.value.replace('_', ' ')}"))
        if reward.decided_at:
            events.append(TimelineEvent(reward.decided_at, f"Reward {reward.rule_key} {reward.status.value.replace('_', ' ')}",
                                        " · ".join(x for x in (reward.decided_by, reward.decision_comment) if x)))
        if reward.issued_at:
            events.append(TimelineEvent(reward.issued_at, f"Reward {reward.rule_key} issued", reward.payout_reference or ""))
    if referral.rewarded_at:
        events.append(TimelineEvent(referral.rewarded_at, "Rewarded"))
    for entry in audit:
        if entry.action in ("repeat_submission",) or (entry.action.startswith("status:") and entry.action not in
                                                        ("status:routed", "status:qualified", "status:rewarded")):
            events.append(TimelineEvent(entry.at, _ACTION_TITLES.get(entry.action, entry.action.replace("_", " ")),
                                        entry.reason or ""))
    events.sort(key=lambda e: e.at)
    audit.sort(key=lambda e: e.at, reverse=True)
    return ReferralDetail(referral, program, advocate, conn, crm_links(conn, referral.crm), rewards, explanation, events, audit)


# --- advocates ---------------------------------------------------------------------------------------
@dataclass
class AdvocateLine:
    advocate: Advocate
    program: Program
    referrals: dict[str, int]

    @property
    def referred(self) -> int:
        return sum(self.referrals.values())

    @property
    def qualified(self) -> int:
        return sum(n for s, n in self.referrals.items() if s in ("qualified", "rewarded"))


@dataclass
class AdvocateList:
    lines: list[AdvocateLine]
    total: int
    page: int
    pages: int
    programs: list[Program]
    sources: list[str]
    text: str
    program_id: str
    source: str

    def query(self) -> dict[str, str]:
        return {k: v for k, v in (("q", self.text), ("program", self.program_id), ("source", self.source)) if v}


def advocate_list(rt: Runtime, tenant_id: str, *, text: str = "", program_id: str = "", source: str = "", page: int = 1,
                  per_page: int = PER_PAGE) -> AdvocateList:
    text = " ".join((text or "").split())[:200]
    if source and source not in {s.value for s in AdvocateSource}:
        raise InvalidInput({"source": "choose a source from the list"})
    page = max(1, page)
    with rt.uow(tenant_id, readonly=True) as uow:
        found, total = uow.advocates.search(text=text, program_id=program_id or None, source=source or None,
                                            limit=per_page, offset=(page - 1) * per_page)
        counts = uow.advocates.referral_counts([a.id for a in found])
        programs = uow.programs.list()
    by_id = {p.id: p for p in programs}
    return AdvocateList([AdvocateLine(a, by_id[a.program_id], counts.get(a.id, {})) for a in found], total, page,
                        max(1, -(-total // per_page)), programs, [s.value for s in AdvocateSource], text, program_id, source)


ADVOCATE_COLUMNS = ("advocate_id", "name", "email", "program", "code", "link", "source", "enrolled_at", "crm_object",
                    "crm_id", "referred", "qualified")


def advocates_csv(rt: Runtime, tenant_id: str, *, text: str = "", program_id: str = "", source: str = "") -> str:
    listing = advocate_list(rt, tenant_id, text=text, program_id=program_id, source=source, per_page=EXPORT_LIMIT)
    base = rt.settings.base_url
    return _csv(ADVOCATE_COLUMNS, (
        (x.advocate.id, x.advocate.name, x.advocate.email, x.program.name, x.advocate.code, referral_link(base, x.advocate.code),
         x.advocate.source.value, _iso(x.advocate.enrolled_at), x.advocate.crm_object, x.advocate.crm_id, x.referred, x.qualified)
        for x in listing.lines))


@dataclass
class ShareLink:
    network: str
    url: str


def share_links(link: str, message: str) -> list[ShareLink]:
    """Share intents that need no SDK and no tracking script: each network's documented URL."""
    text = quote(message)
    url = quote(link, safe="")
    return [
        ShareLink("LinkedIn", f"https://www.linkedin.com/sharing/share-offsite/?url={url}"),
        ShareLink("X", f"https://x.com/intent/post?text={text}&url={url}"),
        ShareLink("WhatsApp", f"https://wa.me/?text={quote(message + ' ' + link)}"),
        ShareLink("Email", f"mailto:?subject={text}&body={quote(message + chr(10) + chr(10) + link)}"),
    ]


def qr_svg(link: str, scale: int = 4) -> str:
    """The link as an inline SVG QR code (segno: pure Python, no image library), dark on light for
    phone cameras, error correction M with the quiet zone the standard asks for."""
    import segno

    code = segno.make_qr(link, error="m")
    buf = io.BytesIO()
    code.save(buf, kind="svg", scale=scale, border=4, dark="#111111", light="#ffffff", xmldecl=False, svgns=True,
              title="QR code of the referral link", nl=False)
    return buf.getvalue().decode()


@dataclass
class AdvocateDetail:
    advocate: Advocate
    program: Program
    link: str
    qr: str
    shares: list[ShareLink]
    referrals: list[Referral]
    rewards: list[Reward]
    audit: list[AuditEntry]
    earned: dict[str, Money] = field(default_factory=dict)  # per currency, rewards not rejected


def advocate_detail(rt: Runtime, tenant_id: str, advocate_id: str, company_name: str | None = None) -> AdvocateDetail:
    with rt.uow(tenant_id, readonly=True) as uow:
        advocate = uow.advocates.get(advocate_id)  # NotFound for another tenant's id
        program = uow.programs.get(advocate.program_id)
        referrals = uow.referrals.list(advocate_id=advocate.id, limit=500)
        by_referral = uow.rewards.for_referrals([r.id for r in referrals]) if referrals else {}
        audit = uow.audit.list(entity_type="advocate", entity_id=advocate.id, limit=100)
    rewards = [w for ws in by_referral.values() for w in ws if w.recipient.value == "advocate"]
    earned: dict[str, Money] = {}
    for w in rewards:
        if w.status not in (RewardStatus.REJECTED,):
            earned[w.amount.currency] = earned.get(w.amount.currency, Money.zero(w.amount.currency)) + w.amount
    link = referral_link(rt.settings.base_url, advocate.code)
    message = f"I use {company_name} and think you would like it too." if company_name else "Worth a look:"
    return AdvocateDetail(advocate, program, link, qr_svg(link), share_links(link, message), referrals,
                          sorted(rewards, key=lambda w: w.created_at, reverse=True), audit, earned)


# --- a program's page ----------------------------------------------------------------------------------
FUNNEL = (("referred", "Referred"), ("routed", "Routed to the CRM"), ("qualified", "Qualified"), ("rewarded", "Rewarded"))
_REACHED = {
    "routed": {"routed", "in_progress", "qualified", "rewarded", "disqualified"},
    "qualified": {"qualified", "rewarded"},
    "rewarded": {"rewarded"},
}


def funnel_from_counts(advocates: int, by_status: dict[str, int]) -> list[tuple[str, str, int]]:
    """(key, label, count): enrolled advocates, then referrals that reached each stage at least."""
    referred = sum(by_status.values())
    out = [("enrolled", "Advocates enrolled", advocates), ("referred", "Referred", referred)]
    for key, label in FUNNEL[1:]:
        out.append((key, label, sum(n for s, n in by_status.items() if s in _REACHED[key])))
    return out


@dataclass
class ProgramOverview:
    program: Program
    connection: CrmConnection | None
    funnel: list[tuple[str, str, int]]
    by_status: dict[str, int]
    recent: list[ReferralLine]
    top_advocates: list[AdvocateLine]
    link_example: str | None


def program_overview(rt: Runtime, tenant_id: str, program_id: str) -> ProgramOverview:
    with rt.uow(tenant_id, readonly=True) as uow:
        program = uow.programs.get(program_id)
        conn = uow.connections.get(program.connection_id) if program.connection_id else None
        by_status = uow.referrals.funnel_counts(program_id)
        advocates = uow.advocates.count(program_id)
        recent, _ = uow.referrals.search(program_id=program_id, limit=10)
        lines = _lines(uow, recent)
        top, _ = uow.advocates.search(program_id=program_id, limit=200)
        counts = uow.advocates.referral_counts([a.id for a in top])
    ranked = sorted((AdvocateLine(a, program, counts.get(a.id, {})) for a in top), key=lambda x: (-x.referred, x.advocate.name))
    return ProgramOverview(program, conn, funnel_from_counts(advocates, by_status), by_status, lines,
                           [x for x in ranked if x.referred][:10], None)


__all__ = ["ReferralFilters", "referral_list", "referrals_csv", "referral_detail", "advocate_list", "advocates_csv",
           "advocate_detail", "program_overview", "share_links", "qr_svg", "crm_links", "funnel_from_counts"]
