"""SalesforceGateway: the CRM port in Salesforce terms. Translation only — the rules, states and
rewards stay in the domain; this module knows SOQL, sObjects and external ids."""

from __future__ import annotations

import datetime as dt
import logging
import time
from itertools import chain
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from refstage.adapters.crm.salesforce import soql
from refstage.adapters.crm.salesforce.auth import OAuthApp, TokenKeeper
from refstage.adapters.crm.salesforce.bulk import BulkApi, CsvSpool
from refstage.adapters.crm.salesforce.client import ApiBudget, SalesforceSession
from refstage.adapters.crm.salesforce.rest import COLLECTION_MAX, RestApi, result_error
from refstage.adapters.crm.salesforce.sync import SYNC_OBJECTS, ChangeReader, changed, fields_for, parse_time
from refstage.domain.connections import CrmConnection
from refstage.domain.programs import EnrolmentKind, EnrolmentSource, Program
from refstage.domain.referrals import Advocate, CrmRefs, Referral
from refstage.domain.review import Reason
from refstage.domain.rewards import Reward
from refstage.domain.rules import FieldSpec, Rule
from refstage.services.ports import (
    AdvocateLink,
    AdvocateRecord,
    Candidate,
    ChangeBatch,
    CrmError,
    CrmGateway,
    ExistingRecord,
    Milestone,
    MirrorBatch,
    RouteResult,
    WriteResult,
)

log = logging.getLogger(__name__)

EXTERNAL_ID = "Backend_Id__c"
LEAD_EXTERNAL_ID = "Refstage_Referral_Id__c"
ADVOCATE_EXTERNAL_ID = "Refstage_Advocate_Id__c"  # on Lead and Contact: self-enrolment creates at most once
SELF_ENROLMENT_LEAD_SOURCE = "Referral Program"
REVIEW_REASONS = {r.value for r in Reason}
CUSTOMER_TYPE_PREFIX = "Customer"
# Fixed key prefixes of the standard objects a push can name (the first three characters of their ids).
KEY_PREFIX = {"Lead": "00Q", "Contact": "003", "Account": "001", "Opportunity": "006"}
# The write-back's columns, in the order the row builders give their values.
REFERRAL_FIELDS = (EXTERNAL_ID, "Program__c", "Advocate__c", "Referred_Lead__c", "Referred_Contact__c",
                   "Referred_Account__c", "Referred_Opportunity__c", "Friend_Name__c", "Friend_Email__c",
                   "Friend_Company__c", "Referral_Code__c", "Status__c", "Source__c", "Review_Reason__c",
                   "Captured_Date__c", "Routed_Date__c", "Qualified_Date__c", "Rewarded_Date__c")
_REWARD_REST = ("Recipient__c", "Amount__c", "Currency_Code__c", "Type__c", "Status__c", "Hold_Until__c",
                "Issued_Date__c", "Review_Reason__c")
REWARD_FIELDS_BY_ID = (EXTERNAL_ID, "Referral__c", *_REWARD_REST)
REWARD_FIELDS_BY_REFERENCE = (EXTERNAL_ID, f"Referral__r.{EXTERNAL_ID}", *_REWARD_REST)


# Types of the standard fields enrolment reads, fixed by Salesforce (lower-case names, as the describe map).
STANDARD_FIELD_TYPES = {"id": "id", "systemmodstamp": "datetime", "createddate": "datetime", "name": "string",
                        "email": "email", "accountid": "reference", "contactid": "reference", "leadid": "reference"}


def _split_name(name: str) -> tuple[str | None, str]:
    parts = (name or "").strip().split()
    if len(parts) <= 1:
        return None, (parts[0] if parts else "Unknown")[:80]
    return " ".join(parts[:-1])[:40], parts[-1][:80]


_UTC = dt.timezone.utc
_last_dt: tuple[Any, Any] = (None, None)


def _dt(value: dt.datetime | None) -> str | None:
    """soql.datetime_literal, faster for a backlog's rows: the same text by isoformat (milliseconds truncated, as
    there), and the last value's text again for an equal value (rows of one batch share their timestamps)."""
    global _last_dt
    if not value:
        return None
    seen, text = _last_dt
    if value == seen:  # the same instant: the same UTC text
        return text
    if value.tzinfo is None or value.year < 1000:  # the error, or strftime's unpadded year, as there
        text = soql.datetime_literal(value)
    else:
        text = (value if value.tzinfo is _UTC else value.astimezone(_UTC)).replace(tzinfo=None).isoformat(
            "T", "milliseconds") + "Z"
    _last_dt = (value, text)  # one assignment: a thread reading it sees a matching pair
    return text


_last_date: tuple[Any, Any] = (None, None)


def _date(value: dt.datetime | None) -> str | None:
    """The UTC date; the last value's text again for an equal value (a batch's rewards share their hold date)."""
    global _last_date
    if not value:
        return None
    seen, text = _last_date
    if value == seen:
        return text
    text = (value if value.tzinfo is _UTC else value.astimezone(_UTC)).date().isoformat()
    _last_date = (value, text)
    return text


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class SalesforceGateway(CrmGateway):
    kind = "salesforce"

    def __init__(self, rt: Any, connection: CrmConnection, *, app: OAuthApp | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        s = connection.settings or {}
        self.rt = rt
        self.connection = connection
        self.keeper = TokenKeeper(rt, connection, app)
        run_limit = s.get("api_run_limit")
        self.budget = ApiBudget(org_fraction=float(s.get("api_budget_fraction", rt.settings.api_budget_fraction)),
                                run_limit=int(run_limit) if run_limit else None)
        self.session = SalesforceSession(self.keeper, self.budget, retries=int(s.get("retries", 5)),
                                         backoff=float(s.get("retry_backoff_seconds", 0.5)), sleep=sleep)
        self.rest = RestApi(self.session)
        self.bulk = BulkApi(self.rest, poll_seconds=float(s.get("bulk_poll_seconds", 0.5)))
        self.bulk_read_threshold = int(s.get("bulk_read_threshold", 10_000))
        self.bulk_write_threshold = int(s.get("bulk_write_threshold", 2_000))
        self.page_size = int(s.get("page_size", 2000))
        self._types: dict[str, dict[str, str]] = {}
        self._link_targets: dict[tuple[str, str], tuple[str, str]] = {}

    @property
    def api_calls(self) -> int:
        return self.budget.calls

    def types(self, sobject: str) -> dict[str, str]:
        if sobject not in self._types:
            described = self.rest.describe(sobject)
            self._types[sobject] = {f["name"].lower(): f["type"] for f in described.get("fields", [])}
        return self._types[sobject]

    def _conditions(self, sobject: str, conditions: Sequence[Any]) -> list[str]:
        """SOQL for a source's conditions, typed (and field names checked) by the describe — only if there are any."""
        return soql.where_all(conditions, self.types(sobject)) if conditions else []

    def _read_types(self, sobject: str, fields: Sequence[str]) -> dict[str, str]:
        """Types for a read's CSV values: the describe if we have it, else the standard fields' fixed types when
        the read asks for nothing else (an enrolment without conditions needs no describe call)."""
        if sobject in self._types:
            return self._types[sobject]
        if all("." in f or f.lower() in STANDARD_FIELD_TYPES for f in fields):
            return STANDARD_FIELD_TYPES
        return self.types(sobject)

    def check_limits(self) -> None:
        """Read the org's allowance before a run, so the budget stops us before Salesforce does."""
        daily = self.rest.limits().get("DailyApiRequests") or {}
        if daily.get("Max"):
            self.budget.used, self.budget.max = int(daily["Max"]) - int(daily.get("Remaining", 0)), int(daily["Max"])
            self.budget.check()

    # --- program editor ---------------------------------------------------------------------------
    def describe_milestones(self) -> list[Milestone]:
        out = []
        for r in self.rest.query("SELECT ApiName, MasterLabel, IsWon, IsClosed, SortOrder FROM OpportunityStage "
                                 "WHERE IsActive = true ORDER BY SortOrder"):
            out.append(Milestone("Opportunity", "StageName", r["ApiName"], r["MasterLabel"], bool(r["IsWon"]), bool(r["IsClosed"])))
        for r in self.rest.query("SELECT ApiName, MasterLabel, IsConverted, SortOrder FROM LeadStatus ORDER BY SortOrder"):
            out.append(Milestone("Lead", "Status", r["ApiName"], r["MasterLabel"], bool(r["IsConverted"]), bool(r["IsConverted"])))
        return out

    def count_matching(self, rule: Rule) -> int | None:
        objects = rule.objects()
        if len(objects) != 1:
            return None
        (obj,) = objects
        if obj not in ("Opportunity", "Lead", "Account", "Contact"):
            return None
        try:
            where = self._rule_where(rule.to_json(), obj, self.types(obj))
        except ValueError:
            return None
        return self.rest.count(soql.count(obj, [where]))

    _KINDS = {"double": "number", "currency": "number", "percent": "number", "int": "number", "long": "number",
              "date": "date", "datetime": "datetime", "boolean": "boolean", "picklist": "picklist",
              "multipicklist": "multipicklist", "reference": "reference", "id": "reference"}

    def describe_fields(self, object_name: str) -> dict[str, FieldSpec] | None:
        """The sObject describe: every field's type and, for picklists, its active values (API names)."""
        if object_name not in ("Opportunity", "Lead", "Account", "Contact"):
            return None
        described = self.rest.describe(object_name)
        out: dict[str, FieldSpec] = {}
        for f in described.get("fields", []):
            kind = self._KINDS.get(str(f.get("type")), "text")
            values = None
            if kind in ("picklist", "multipicklist"):
                values = tuple(str(v["value"]) for v in f.get("picklistValues") or [] if v.get("active", True))
            out[str(f["name"]).lower()] = FieldSpec(str(f["name"]), kind, values, f.get("label"))
        self._types[object_name] = {k: str(f.get("type")) for k, f in
                                    ((str(f["name"]).lower(), f) for f in described.get("fields", []))}
        return out

    def _rule_where(self, node: dict[str, Any], obj: str, types: dict[str, str]) -> str:
        for key, joiner in (("all", " AND "), ("any", " OR ")):
            if key in node:
                return "(" + joiner.join(self._rule_where(c, obj, types) for c in node[key]) + ")"
        op = node["op"]
        if op in ("is_won", "is_closed"):
            flag = {"Opportunity": {"is_won": "IsWon", "is_closed": "IsClosed"}, "Lead": {"is_won": "IsConverted", "is_closed": "IsConverted"}}
            name = flag.get(obj, {}).get(op)
            if not name:
                raise ValueError(f"{obj} has no {op} flag")
            return f"{name} = true"
        return soql.condition(node["field"], op, node.get("value"), types.get(node["field"].lower()))

    # --- enrolment ---------------------------------------------------------------------------------
    def _read(self, sobject: str, fields: list[str], where: list[str], since: dt.datetime | None) -> Iterator[dict[str, Any]]:
        """Matching records, REST keyset pages for small sets and a Bulk 2.0 query for large ones."""
        if since:
            where = [*where, f"SystemModstamp >= {soql.datetime_literal(since)}"]
        fields = list(dict.fromkeys(["Id", "SystemModstamp", *fields]))
        total = self.rest.count(soql.count(sobject, where))
        if total > self.bulk_read_threshold:
            for rows, _ in self.bulk.query_pages(sobject, soql.select(fields, sobject, where), {},
                                                 self._read_types(sobject, fields), include_deleted=False):
                yield from rows
            return
        pos: tuple[dt.datetime, str] | None = None
        while True:
            page_where = [*where, soql.after("SystemModstamp", pos[0], pos[1])] if pos else where
            rows = self.rest.query(soql.select(fields, sobject, page_where, ["SystemModstamp ASC", "Id ASC"], self.page_size))
            yield from rows
            if len(rows) < self.page_size:
                return
            pos = (parse_time(rows[-1]["SystemModstamp"]), rows[-1]["Id"])

    def iter_enrolment_candidates(self, source: EnrolmentSource, since: dt.datetime | None) -> Iterator[Candidate]:
        kind = source.kind
        if kind == EnrolmentKind.SALESFORCE_CONTACTS:
            where = self._conditions("Contact", source.conditions)
            for r in self._read("Contact", ["Name", "Email", "AccountId"], where, since):
                yield Candidate("Contact", r["Id"], r.get("Name") or "", r.get("Email"), contact_id=r["Id"],
                                account_id=r.get("AccountId"), modified_at=parse_time(r.get("SystemModstamp")))
        elif kind == EnrolmentKind.SALESFORCE_LEADS:
            where = ["IsConverted = false", *self._conditions("Lead", source.conditions)]
            for r in self._read("Lead", ["Name", "Email"], where, since):
                yield Candidate("Lead", r["Id"], r.get("Name") or "", r.get("Email"), modified_at=parse_time(r.get("SystemModstamp")))
        elif kind == EnrolmentKind.SALESFORCE_ACCOUNTS:
            yield from self._account_candidates(source)
        elif kind == EnrolmentKind.SALESFORCE_CAMPAIGN_MEMBERS:
            where = [soql.condition("CampaignId", "equals", soql.record_id(source.campaign_id or "")),
                     *self._conditions("CampaignMember", source.conditions)]
            for r in self._read("CampaignMember", ["Name", "ContactId", "LeadId", "Contact.Name", "Contact.Email",
                                                   "Lead.Name", "Lead.Email"], where, since):
                person = r.get("Contact") or r.get("Lead") or {}
                target = ("Contact", r["ContactId"]) if r.get("ContactId") else ("Lead", r.get("LeadId"))
                if not target[1]:
                    continue
                self._link_targets[("CampaignMember", r["Id"])] = target
                yield Candidate("CampaignMember", r["Id"], person.get("Name") or r.get("Name") or "", person.get("Email"),
                                contact_id=r.get("ContactId"), modified_at=parse_time(r.get("SystemModstamp")))
        else:
            raise CrmError(f"{kind.value} is not a Salesforce enrolment source", transient=False)

    def _primary_contacts(self, account_where: list[str], account_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """An account's primary contact: its earliest-created Contact with an email address."""
        sub = soql.select(["Id"], "Account", account_where) if account_ids is None else None
        where = ["Email != null", f"AccountId IN ({sub})" if sub else f"AccountId IN {soql.id_list(account_ids or [])}"]
        best: dict[str, dict[str, Any]] = {}
        for r in self._read("Contact", ["Name", "Email", "AccountId", "CreatedDate"], where, None):
            acc = r.get("AccountId")
            if acc and (acc not in best or (r.get("CreatedDate") or "", r["Id"]) < (best[acc].get("CreatedDate") or "", best[acc]["Id"])):
                best[acc] = r
        return best

    def _account_candidates(self, source: EnrolmentSource) -> Iterator[Candidate]:
        account_where = self._conditions("Account", source.conditions)
        for acc, r in sorted(self._primary_contacts(account_where).items()):
            self._link_targets[("Account", acc)] = ("Contact", r["Id"])
            yield Candidate("Account", acc, r.get("Name") or "", r.get("Email"), contact_id=r["Id"], account_id=acc,
                            modified_at=parse_time(r.get("SystemModstamp")))

    def _resolve_targets(self, links: Sequence[AdvocateLink]) -> None:
        accounts = [l.crm_id for l in links if l.crm_object == "Account" and ("Account", l.crm_id) not in self._link_targets]
        for chunk in _chunks(accounts, 200):
            for acc, r in self._primary_contacts([], chunk).items():
                self._link_targets[("Account", acc)] = ("Contact", r["Id"])
        members = [l.crm_id for l in links if l.crm_object == "CampaignMember" and ("CampaignMember", l.crm_id) not in self._link_targets]
        for chunk in _chunks(members, 200):
            for r in self.rest.query(soql.select(["Id", "ContactId", "LeadId"], "CampaignMember", [f"Id IN {soql.id_list(chunk)}"])):
                target = ("Contact", r["ContactId"]) if r.get("ContactId") else ("Lead", r.get("LeadId"))
                if target[1]:
                    self._link_targets[("CampaignMember", r["Id"])] = target

    def write_advocate_links(self, links: Sequence[AdvocateLink]) -> WriteResult:
        start = self.api_calls
        self._resolve_targets(links)
        by_object: dict[str, dict[str, dict[str, Any]]] = {}
        owners: dict[tuple[str, str], list[str]] = {}
        failed: dict[str, str] = {}
        for link in links:
            target = (link.crm_object, link.crm_id) if link.crm_object in ("Contact", "Lead") else \
                self._link_targets.get((link.crm_object, link.crm_id))
            if not target:
                failed[link.advocate_id] = f"no Contact or Lead found for {link.crm_object} {link.crm_id}"
                continue
            by_object.setdefault(target[0], {})[target[1]] = {"Id": target[1], "Referral_Code__c": link.code,
                                                              "Referral_Link__c": link.link}
            owners.setdefault(target, []).append(link.advocate_id)
        ok: list[str] = []
        for obj, rows in by_object.items():
            done, errors = self._write(obj, list(rows.values()), key="Id", external_id=None, want_ids=False)
            for rid in done:
                ok.extend(owners[(obj, rid)])
            for rid, message in errors.items():
                for advocate_id in owners.get((obj, rid), []):
                    failed[advocate_id] = message
        return WriteResult(ok=ok, failed=failed, api_calls=self.api_calls - start)

    def _bulk_write(self, rows: Sequence[Any]) -> bool:
        return len(rows) > self.bulk_write_threshold

    def _write(self, sobject: str, rows: list[dict[str, Any]], key: str, external_id: str | None,
               want_ids: bool = True) -> tuple[dict[str, str], dict[str, str]]:
        """Update by Id (external_id None) or upsert on an external id: collections for small sets, Bulk 2.0
        for large. Returns ({key: Salesforce id}, {key: Salesforce's error text}). Locked rows retry once.
        `want_ids` False lets a fully successful Bulk job skip its result downloads (ids are then "")."""
        if not rows:
            return {}, {}
        if self._bulk_write(rows):
            return self.bulk.ingest(sobject, "upsert" if external_id else "update", rows, key, external_id, want_ids=want_ids)
        ok: dict[str, str] = {}
        failed: dict[str, str] = {}
        pending = rows
        for attempt in range(2):
            locked: list[dict[str, Any]] = []
            for chunk in _chunks(pending, COLLECTION_MAX):
                chunk = list(chunk)
                results = self.rest.upsert_collection(sobject, external_id, chunk) if external_id else \
                    self.rest.update_collection(sobject, chunk)
                for row, result in zip(chunk, results):
                    if result.get("success"):
                        ok[row[key]] = result.get("id") or row.get("Id", "")
                        failed.pop(row[key], None)
                        continue
                    code, message = result_error(result)
                    failed[row[key]] = f"{code}: {message}" if code else message
                    if code == "UNABLE_TO_LOCK_ROW":
                        locked.append(row)
            if not locked or attempt:
                break
            self.session.sleep(self.session._delay(0))
            pending = locked
        return ok, failed

    # --- routing -------------------------------------------------------------------------------------
    def find_existing(self, email: str) -> ExistingRecord | None:
        email = email.strip().lower()
        contacts = self.rest.query(soql.select(["Id", "Email", "AccountId", "Account.Type"], "Contact",
                                               [soql.condition("Email", "equals", email)], ["CreatedDate ASC"], 5))
        if contacts:
            c = contacts[0]
            return ExistingRecord("Contact", c["Id"], email, c.get("AccountId"), self._is_customer(c))
        leads = self.rest.query(soql.select(["Id", "Email"], "Lead", [
            soql.condition("Email", "equals", email), "IsConverted = false",
            f"{LEAD_EXTERNAL_ID} = null"], ["CreatedDate ASC"], 5))
        if leads:
            return ExistingRecord("Lead", leads[0]["Id"], email)
        return None

    def find_routed(self, referral: Referral) -> CrmRefs | None:
        found = self.rest.query(soql.select(["Id", "OwnerId"], "Lead", [
            soql.condition(LEAD_EXTERNAL_ID, "equals", referral.id)], limit=1))
        return CrmRefs(lead_id=found[0]["Id"], owner_id=found[0].get("OwnerId")) if found else None

    def _is_customer(self, contact: dict[str, Any]) -> bool:
        """A customer: the Contact's Account has a Type starting "Customer", or a won opportunity."""
        account_id = contact.get("AccountId")
        if not account_id:
            return False
        prefixes = self.connection.settings.get("customer_account_types") or [CUSTOMER_TYPE_PREFIX]
        account_type = (contact.get("Account") or {}).get("Type") or ""
        if any(account_type.startswith(p) for p in prefixes):
            return True
        return self.rest.count(soql.count("Opportunity", [soql.condition("AccountId", "equals", soql.record_id(account_id)),
                                                          "IsWon = true"])) > 0

    def route_referral(self, referral: Referral, advocate: Advocate, program: Program,
                       attach_to: ExistingRecord | None) -> RouteResult:
        if attach_to is not None:
            if attach_to.object == "Lead":
                refs = CrmRefs(lead_id=attach_to.id)
            else:
                refs = CrmRefs(contact_id=attach_to.id, account_id=attach_to.account_id)
            return RouteResult(refs=refs, existing=attach_to, attached=True)
        first, last = _split_name(referral.friend_name)
        data: dict[str, Any] = {
            "FirstName": first, "LastName": last, "Email": referral.friend_email,
            "Company": (referral.friend_company or "[not provided]")[:255], "Phone": referral.friend_phone,
            "LeadSource": "Referral", "Referral_Code__c": advocate.code,
            "Description": f"Referred by {advocate.name} ({program.name}, Refstage)"[:32000],
        }
        owner = program.routing.lead_owner_id or self.connection.settings.get("lead_owner_id")
        rule = self.connection.settings.get("assignment_rule_id")
        if owner:
            data["OwnerId"] = owner
            headers = {"Sforce-Auto-Assign": "FALSE"}
        else:
            headers = {"Sforce-Auto-Assign": rule or "TRUE"}
        try:
            lead_id, _created = self.rest.upsert("Lead", LEAD_EXTERNAL_ID, referral.id, data, headers)
        except CrmError as exc:
            if exc.code != "CANNOT_UPDATE_CONVERTED_LEAD":
                raise
            found = self.rest.query(soql.select(["Id"], "Lead", [soql.condition(LEAD_EXTERNAL_ID, "equals", referral.id)]))
            if not found:
                raise
            lead_id = found[0]["Id"]
        lead = self.rest.get("Lead", lead_id, ["OwnerId"])
        return RouteResult(refs=CrmRefs(lead_id=lead_id, owner_id=lead.get("OwnerId")))

    # --- self-enrolment --------------------------------------------------------------------------------
    def link_advocate(self, advocate: Advocate, program: Program, link: str) -> AdvocateRecord:
        """Contact by exact email, else an unconverted Lead, else create a Lead (LeadSource 'Referral
        Program') or, when the program names an account, a Contact under it: upserted on our advocate id,
        so a retried job finds the record an earlier attempt made. The code and link go onto the record."""
        email = (advocate.email or "").strip().lower()
        if not email:
            raise CrmError(f"advocate {advocate.id} has no email to match or create a CRM record with", transient=False)
        record = self._match_advocate(email) or self._made_for(advocate, program)
        if record is None:
            return self._create_advocate_record(advocate, program, email, link)
        result = self.write_advocate_links([AdvocateLink(record.crm_object, record.crm_id, advocate.code, link, advocate.id or "")])
        if result.failed:
            raise CrmError(f"writing the code onto {record.crm_object} {record.crm_id} failed: "
                           f"{next(iter(result.failed.values()))}", transient=True)
        return record

    def _match_advocate(self, email: str) -> AdvocateRecord | None:
        contacts = self.rest.query(soql.select(["Id", "AccountId"], "Contact", [soql.condition("Email", "equals", email)],
                                               ["CreatedDate ASC"], 1))
        if contacts:
            return AdvocateRecord("Contact", contacts[0]["Id"], contacts[0]["Id"], contacts[0].get("AccountId"))
        leads = self.rest.query(soql.select(["Id"], "Lead", [soql.condition("Email", "equals", email), "IsConverted = false"],
                                            ["CreatedDate ASC"], 1))
        if leads:
            return AdvocateRecord("Lead", leads[0]["Id"])
        return None

    def _made_for(self, advocate: Advocate, program: Program) -> AdvocateRecord | None:
        """The record an earlier attempt created for this advocate, found by our id even if a rep has since
        changed its email (a read, so the retry does not overwrite their edits)."""
        if program.routing.advocate_account_id:
            found = self.rest.query(soql.select(["Id", "AccountId"], "Contact", [
                soql.condition(ADVOCATE_EXTERNAL_ID, "equals", advocate.id or "")]))
            return AdvocateRecord("Contact", found[0]["Id"], found[0]["Id"], found[0].get("AccountId")) if found else None
        found = self.rest.query(soql.select(["Id", "IsConverted", "ConvertedContactId", "ConvertedAccountId"], "Lead", [
            soql.condition(ADVOCATE_EXTERNAL_ID, "equals", advocate.id or "")]))
        if not found:
            return None
        if found[0].get("IsConverted") and found[0].get("ConvertedContactId"):
            contact_id = found[0]["ConvertedContactId"]
            return AdvocateRecord("Contact", contact_id, contact_id, found[0].get("ConvertedAccountId"))
        return AdvocateRecord("Lead", found[0]["Id"])

    def _create_advocate_record(self, advocate: Advocate, program: Program, email: str, link: str) -> AdvocateRecord:
        first, last = _split_name(advocate.name)
        data: dict[str, Any] = {"FirstName": first, "LastName": last, "Email": email, "LeadSource": SELF_ENROLMENT_LEAD_SOURCE,
                                "Referral_Code__c": advocate.code, "Referral_Link__c": link}
        account_id = program.routing.advocate_account_id
        if account_id:
            data["AccountId"] = account_id
            data["Description"] = f"Joined the {program.name} referral program (Refstage)"[:32000]
            contact_id, created = self.rest.upsert("Contact", ADVOCATE_EXTERNAL_ID, advocate.id or "", data)
            return AdvocateRecord("Contact", contact_id, contact_id, account_id, created=created)
        data["Company"] = "[not provided]"
        data["Description"] = f"Joined the {program.name} referral program (Refstage self-enrolment)"[:32000]
        owner = program.routing.lead_owner_id or self.connection.settings.get("lead_owner_id")
        rule = self.connection.settings.get("assignment_rule_id")
        if owner:
            data["OwnerId"] = owner
            headers = {"Sforce-Auto-Assign": "FALSE"}
        else:
            headers = {"Sforce-Auto-Assign": rule or "TRUE"}
        try:
            lead_id, created = self.rest.upsert("Lead", ADVOCATE_EXTERNAL_ID, advocate.id or "", data, headers)
        except CrmError as exc:
            if exc.code != "CANNOT_UPDATE_CONVERTED_LEAD":
                raise
            # An earlier attempt's Lead was converted since: the advocate is now its Contact.
            found = self.rest.query(soql.select(["ConvertedContactId", "ConvertedAccountId"], "Lead",
                                                [soql.condition(ADVOCATE_EXTERNAL_ID, "equals", advocate.id or "")]))
            if not found or not found[0].get("ConvertedContactId"):
                raise
            contact_id = found[0]["ConvertedContactId"]
            self.write_advocate_links([AdvocateLink("Contact", contact_id, advocate.code, link, advocate.id or "")])
            return AdvocateRecord("Contact", contact_id, contact_id, found[0].get("ConvertedAccountId"))
        return AdvocateRecord("Lead", lead_id, created=created)

    # --- sync ------------------------------------------------------------------------------------------
    def iter_changes(self, fields: dict[str, set[str]], cursor: dict[str, Any]) -> Iterator[ChangeBatch]:
        reader = ChangeReader(self.rest, self.bulk, self.types, lambda: self.api_calls,
                              server_time=lambda: self.session.server_time,
                              bulk_threshold=self.bulk_read_threshold, page_size=self.page_size,
                              first_sync_from=parse_time(self.connection.settings.get("sync_from")),
                              reconcile_every=dt.timedelta(hours=float(self.connection.settings.get("reconcile_hours", 24))),
                              now=self.rt.now)
        # No `limits/` call: the org's usage arrives in the Sforce-Limit-Info header of the first answer, and
        # the budget checks it before every further call.
        yield from reader.read(fields, cursor)

    def fetch_records(self, fields: dict[str, set[str]], ids: dict[str, set[str]]) -> ChangeBatch:
        start = self.api_calls
        records = []
        for obj, wanted in ids.items():
            if obj not in SYNC_OBJECTS or not wanted:
                continue
            names = fields_for(obj, fields)
            for chunk in _chunks(sorted(wanted), 200):
                rows = self.rest.query(soql.select(names, obj, [f"Id IN {soql.id_list(chunk)}"]), include_deleted=True)
                records.extend(changed(obj, rows))
        return ChangeBatch(records, {}, api_calls=self.api_calls - start, done=True)

    def read_current(self, fields: dict[str, set[str]], ids: dict[str, set[str]]) -> ChangeBatch:
        """One sObject Collections GET per object per ≤200 ids. Ids that cannot be a record of that object
        (another key prefix) are not asked for: Salesforce would refuse the whole call for them."""
        start = self.api_calls
        records = []
        for obj, wanted in ids.items():
            prefix = KEY_PREFIX.get(obj)
            if obj not in SYNC_OBJECTS or prefix is None:
                continue
            candidates = sorted(i for i in wanted if isinstance(i, str) and i[:3] == prefix and len(i) in (15, 18))
            names = [n for n in fields_for(obj, fields) if n != "IsDeleted"]  # a GET returns live records only
            for chunk in _chunks(candidates, COLLECTION_MAX):
                rows = self.rest.retrieve_collection(obj, list(chunk), names)
                records.extend(changed(obj, [r for r in rows if r]))
        return ChangeBatch(records, {}, api_calls=self.api_calls - start, done=True)

    # --- write-back ------------------------------------------------------------------------------------
    def mirror(self, referrals: Sequence[tuple[Referral, Advocate, Program]], rewards: Sequence[Reward],
               record_states: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> WriteResult:
        start = self.api_calls
        failed: dict[str, str] = {}
        programs = {p.id: p for _, _, p in referrals}
        program_ids, program_errors = self._write("Referral_Program__c", [self._program_row(p) for p in programs.values()],
                                                  EXTERNAL_ID, EXTERNAL_ID)
        rows = []
        for referral, advocate, program in referrals:
            if program.id in program_errors:
                failed[referral.id] = f"program mirror failed: {program_errors[program.id]}"
                continue
            rows.append(self._referral_row(referral, advocate, program_ids.get(program.id)))
        # Large follow-up writes (Bulk) point at their Referral__c by external id (`Referral__r.Backend_Id__c`),
        # so they need no Salesforce ids; only small ones (sObject Collections) need them from this write.
        links = self._link_rows([r for r, _, _ in referrals], record_states or {})
        want_ids = 0 < len(rewards) <= self.bulk_write_threshold or any(0 < len(v) <= self.bulk_write_threshold
                                                                        for v in links.values())
        referral_ids, referral_errors = self._write("Referral__c", rows, EXTERNAL_ID, EXTERNAL_ID, want_ids=want_ids)
        failed.update(referral_errors)
        by_reference = self._bulk_write(rewards)
        reward_rows = []
        for reward in rewards:
            if reward.referral_id not in referral_ids:
                failed[reward.id] = failed.get(reward.referral_id) or "its referral was not mirrored"
                continue
            reward_rows.append(self._reward_row(reward, None if by_reference else referral_ids[reward.referral_id]))
        reward_ids, reward_errors = self._write("Referral_Reward__c", reward_rows, EXTERNAL_ID, EXTERNAL_ID,
                                                want_ids=False)
        failed.update(reward_errors)
        for ref_id, message in self._link_records(links, referral_ids).items():
            # The sync reads linked records only (between reconciles): a missing link is retried, not shrugged off.
            failed.setdefault(ref_id, message)
        ok = [i for i in [*referral_ids, *reward_ids] if i not in failed]
        return WriteResult(ok=ok, failed=failed, api_calls=self.api_calls - start)

    def mirror_all(self, batches: Iterable[MirrorBatch], size: int | None) -> WriteResult:
        """A large backlog in three Bulk jobs at most (Referral__c, then Referral_Reward__c and the records'
        Referral__c links together), their CSV spooled to disk batch by batch: API calls do not grow with the
        backlog, nor memory with it. Children name their parent by external id, so no Salesforce ids are needed.
        Rewards read on demand (DeferredRewards) are read and spooled after the referrals' job is sent, so
        Salesforce works on it meanwhile; rewards given in memory are spooled with their batch, not kept.
        `size` None: the first batches decide, up to the bulk threshold."""
        if size is None:
            head: list[MirrorBatch] = []
            size, rest = 0, iter(batches)
            for batch in rest:
                head.append(batch)
                size += len(batch.referrals) + len(batch.rewards)
                if size > self.bulk_write_threshold:
                    break
            batches = chain(head, rest)
        if size <= self.bulk_write_threshold:
            return super().mirror_all(batches, size)
        start = self.api_calls
        failed: dict[str, str] = {}
        program_ids: dict[str, str] = {}
        referrals, rewards = CsvSpool(), CsvSpool()
        links: dict[str, CsvSpool] = {}
        link_owner: dict[str, dict[str, str]] = {}
        written: set[str] = set()
        reward_batches: list[Sequence[Reward]] = []
        try:
            for batch in batches:
                new = {p.id: p for _, _, p in batch.referrals if p.id not in program_ids and p.id not in failed}
                if new:
                    done, errors = self._write("Referral_Program__c", [self._program_row(p) for p in new.values()],
                                               EXTERNAL_ID, EXTERNAL_ID)
                    program_ids.update(done)
                    failed.update({pid: f"program mirror failed: {e}" for pid, e in errors.items()})
                in_batch: list[Referral] = []
                for referral, advocate, program in batch.referrals:
                    if program.id not in program_ids:
                        failed[referral.id] = failed.get(program.id) or "its program was not mirrored"
                        continue
                    referrals.add_values(REFERRAL_FIELDS, self._referral_values(referral, advocate, program_ids[program.id]))
                    written.add(referral.id)
                    in_batch.append(referral)
                targets = self._link_rows(in_batch, batch.record_states)
                for obj, by_record in targets.items():
                    if obj not in links:
                        links[obj] = CsvSpool()
                    for rid, ref in by_record.items():
                        links[obj].add({"Id": rid, f"Referral__r.{EXTERNAL_ID}": ref})
                        link_owner.setdefault(obj, {})[rid] = ref
                if getattr(batch.rewards, "release", None) is None:
                    self._spool_rewards(batch.rewards, written, failed, rewards)
                else:
                    reward_batches.append(batch.rewards)
                # Not kept while the next batch is made (a sync observes its next chunk meanwhile).
                batch = in_batch = targets = new = None  # type: ignore[assignment]
            referral_job = self.bulk.submit("Referral__c", "upsert", referrals, EXTERNAL_ID) if referrals.rows else None
            for batch_rewards in reward_batches:
                self._spool_rewards(batch_rewards, written, failed, rewards)
                batch_rewards.release()
            del reward_batches[:]
            if referral_job is not None:
                failed.update(self.bulk.finish_failed("Referral__c", referral_job, referrals.rows, EXTERNAL_ID))
            # Rewards and links both wait for the referrals; they run side by side.
            jobs = []
            if rewards.rows:
                jobs.append(("Referral_Reward__c", self.bulk.submit("Referral_Reward__c", "upsert", rewards, EXTERNAL_ID),
                             rewards.rows, EXTERNAL_ID))
            for obj, spool in links.items():
                jobs.append((obj, self.bulk.submit(obj, "update", spool, None), spool.rows, "Id"))
            for obj, job, rows, key in jobs:
                errors = self.bulk.finish_failed(obj, job, rows, key)
                if obj == "Referral_Reward__c":
                    failed.update(errors)
                    continue
                for rid, message in errors.items():
                    log.warning("could not set %s.Referral__c on %s: %s", obj, rid, message)
                    if obj != "Lead" and rid in link_owner[obj]:  # see _link_records
                        failed[link_owner[obj][rid]] = f"could not set {obj}.Referral__c on {rid}: {message}"
            return WriteResult(failed=failed, api_calls=self.api_calls - start, all_but_failed=True)
        finally:
            for spool in (referrals, rewards, *links.values()):
                spool.close()

    def _spool_rewards(self, batch_rewards: Iterable[Reward], written: set[str], failed: dict[str, str],
                       spool: CsvSpool) -> None:
        for reward in batch_rewards:
            if reward.referral_id not in written:
                failed[reward.id] = failed.get(reward.referral_id) or "its referral was not mirrored"
                continue
            spool.add_values(REWARD_FIELDS_BY_REFERENCE, self._reward_values(reward, reward.referral_id))

    @staticmethod
    def _link_rows(referrals: Sequence[Referral], record_states: Mapping[tuple[str, str], Mapping[str, Any]]
                   ) -> dict[str, dict[str, str]]:
        """{object: {record id: referral id}}: the Lead, Opportunity and Account each referral points at, left out
        where the record's last known state already carries a Referral__c (re-writing it would only bump the
        record's SystemModstamp and make the next sync read it again)."""
        by_object: dict[str, dict[str, str]] = {}
        for referral in referrals:
            crm = referral.crm
            converted = bool(crm.lead_id and (crm.contact_id or crm.opportunity_id))
            for obj, rid in (("Lead", None if converted else crm.lead_id), ("Opportunity", crm.opportunity_id),
                             ("Account", crm.account_id)):
                if rid and not (record_states.get((obj, rid)) or {}).get("Referral__c"):
                    by_object.setdefault(obj, {})[rid] = referral.id
        return by_object

    def _link_records(self, links: dict[str, dict[str, str]], referral_ids: dict[str, str]) -> dict[str, str]:
        """Point the CRM records at their Referral__c, so reps see attribution on Lead, Opportunity and Account.
        Returns {referral id: error} for links Salesforce refused."""
        failed: dict[str, str] = {}
        for obj, targets in links.items():
            mirrored = {rid: ref for rid, ref in targets.items() if ref in referral_ids}
            if self._bulk_write(mirrored):
                rows = [{"Id": rid, f"Referral__r.{EXTERNAL_ID}": ref} for rid, ref in mirrored.items()]
            else:
                rows = [{"Id": rid, "Referral__c": referral_ids[ref]} for rid, ref in mirrored.items() if referral_ids[ref]]
            _, errors = self._write(obj, rows, key="Id", external_id=None, want_ids=False)
            for rid, message in errors.items():
                # A lead's link mostly fails because the lead was converted meanwhile (its deal and account take
                # over, and the lead read sees the conversion): not worth failing the referral for.
                if rid in mirrored and obj != "Lead":
                    failed[mirrored[rid]] = f"could not set {obj}.Referral__c on {rid}: {message}"
            for rid, message in list(errors.items())[:20]:
                log.warning("could not set %s.Referral__c on %s: %s", obj, rid, message)
        return failed

    @staticmethod
    def _program_row(program: Program) -> dict[str, Any]:
        row: dict[str, Any] = {
            EXTERNAL_ID: program.id, "Name": program.name[:80], "Status__c": program.status.value,
            "Qualification_Summary__c": program.rule.describe()[:32000],
            "Automation_Owner_Name__c": program.owner.name[:255] if program.owner else None,
            "Automation_Owner_Email__c": program.owner.email if program.owner else None,
        }
        tree = program.rule.to_json()
        first = tree if "object" in tree else next((c for c in tree.get("all", []) if "object" in c), None)
        if first and first.get("object") in ("Opportunity", "Lead", "Account", "Contact"):
            row.update({"Milestone_Object__c": first["object"], "Milestone_Field__c": first.get("field"),
                        "Milestone_Value__c": None if first.get("value") is None else str(first["value"])[:255]})
        return row

    @staticmethod
    def _referral_row(referral: Referral, advocate: Advocate, program_sf_id: str | None) -> dict[str, Any]:
        return dict(zip(REFERRAL_FIELDS, SalesforceGateway._referral_values(referral, advocate, program_sf_id)))

    @staticmethod
    def _referral_values(referral: Referral, advocate: Advocate, program_sf_id: str | None) -> tuple[Any, ...]:
        """A Referral__c row's values, in the order of REFERRAL_FIELDS (a Bulk CSV row needs no dict)."""
        advocate_contact = advocate.crm_contact_id or (advocate.crm_id if advocate.crm_object == "Contact" else None)
        reason = None
        if referral.flags:
            reason = next((f.reason.value for f in referral.flags if f.reason.value in REVIEW_REASONS), None)
        if referral.status_reason in REVIEW_REASONS:
            reason = referral.status_reason
        crm = referral.crm
        return (referral.id, program_sf_id, advocate_contact, crm.lead_id, crm.contact_id, crm.account_id,
                crm.opportunity_id, referral.friend_name, referral.friend_email, referral.friend_company, advocate.code,
                referral.status.value, referral.source.value, reason, _dt(referral.captured_at), _dt(referral.routed_at),
                _dt(referral.qualified_at), _dt(referral.rewarded_at))

    @staticmethod
    def _reward_row(reward: Reward, referral_sf_id: str | None) -> dict[str, Any]:
        """The parent by Salesforce id, or (None: a Bulk write) by the referral's external id."""
        if referral_sf_id:
            return dict(zip(REWARD_FIELDS_BY_ID, SalesforceGateway._reward_values(reward, referral_sf_id)))
        return dict(zip(REWARD_FIELDS_BY_REFERENCE, SalesforceGateway._reward_values(reward, reward.referral_id)))

    @staticmethod
    def _reward_values(reward: Reward, parent: str) -> tuple[Any, ...]:
        """A Referral_Reward__c row's values, in the order of REWARD_FIELDS_BY_ID (`parent`: a Salesforce id) or
        REWARD_FIELDS_BY_REFERENCE (`parent`: the referral's id)."""
        reason = None
        if reward.flags:
            reason = next((f.reason.value for f in reward.flags if f.reason.value in REVIEW_REASONS), None)
        amount = reward.amount
        return (reward.id, parent, reward.recipient.value, float(amount.amount), amount.currency, reward.kind.value,
                reward.status.value, _date(reward.hold_until), _date(reward.issued_at), reason)

