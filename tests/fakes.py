"""An in-memory CRM for service tests. The real adapters are tested against the emulators over HTTP."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any, Iterator, Mapping, Sequence

from refstage.domain.programs import EnrolmentSource, Program
from refstage.domain.referrals import Advocate, CrmRefs, Referral
from refstage.domain.rewards import Reward
from refstage.services.ports import (
    AdvocateLink,
    AdvocateRecord,
    Candidate,
    ChangeBatch,
    ChangedRecord,
    CrmError,
    CrmGateway,
    ExistingRecord,
    Milestone,
    RouteResult,
    WriteResult,
)


class FakeCrm(CrmGateway):
    kind = "salesforce"

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.modified: dict[tuple[str, str], dt.datetime] = {}
        self.ids = itertools.count(1)
        self.fail_next: list[CrmError] = []
        self.mirrored: dict[str, dict[str, Any]] = {}
        self.links: dict[str, AdvocateLink] = {}
        self.created_leads: list[str] = []
        self.created_for_advocates: list[tuple[str, str]] = []  # (object, id) created by link_advocate
        self.clock = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    def touch(self, obj: str, crm_id: str, **fields: Any) -> ChangedRecord:
        self.clock += dt.timedelta(minutes=11)  # past the overlap window, so incremental reads can be told apart
        rec = self.records.setdefault((obj, crm_id), {"Id": crm_id})
        rec.update(fields)
        self.modified[(obj, crm_id)] = self.clock
        return ChangedRecord(obj, crm_id, dict(rec), self.clock)

    def add_contact(self, name: str, email: str) -> str:
        crm_id = f"003{next(self.ids):015d}"
        self.touch("Contact", crm_id, Name=name, Email=email)
        return crm_id

    def describe_milestones(self) -> list[Milestone]:
        return [Milestone("Opportunity", "StageName", "Closed Won", "Closed Won", True, True)]

    def iter_enrolment_candidates(self, source: EnrolmentSource, since: dt.datetime | None) -> Iterator[Candidate]:
        self._maybe_fail()
        for (obj, crm_id), rec in sorted(self.records.items()):
            if obj == "Contact" and (since is None or self.modified[(obj, crm_id)] >= since):
                yield Candidate("Contact", crm_id, rec.get("Name", ""), rec.get("Email"), contact_id=crm_id,
                                modified_at=self.modified[(obj, crm_id)])

    def write_advocate_links(self, links: Sequence[AdvocateLink]) -> WriteResult:
        self._maybe_fail()
        for link in links:
            self.links[link.crm_id] = link
        return WriteResult(ok=[l.advocate_id for l in links], api_calls=1)

    def find_existing(self, email: str) -> ExistingRecord | None:
        self._maybe_fail()
        for (obj, crm_id), rec in self.records.items():
            if obj in ("Lead", "Contact") and (rec.get("Email") or "").lower() == email and not rec.get("RefstageReferralId"):
                return ExistingRecord(obj, crm_id, email, rec.get("AccountId"), bool(rec.get("IsCustomer")))
        return None

    def route_referral(self, referral: Referral, advocate: Advocate, program: Program,
                       attach_to: ExistingRecord | None) -> RouteResult:
        self._maybe_fail()
        if attach_to is not None:
            refs = CrmRefs(lead_id=attach_to.id) if attach_to.object == "Lead" else CrmRefs(contact_id=attach_to.id)
            return RouteResult(refs=refs, existing=attach_to, attached=True)
        for (obj, crm_id), rec in self.records.items():  # idempotent on our referral id
            if obj == "Lead" and rec.get("RefstageReferralId") == referral.id:
                return RouteResult(refs=CrmRefs(lead_id=crm_id, owner_id=rec.get("OwnerId")))
        lead_id = f"00Q{next(self.ids):015d}"
        self.touch("Lead", lead_id, Email=referral.friend_email, Status="Open - Not Contacted",
                   RefstageReferralId=referral.id, OwnerId="005000000000001AAA", IsConverted=False)
        self.created_leads.append(lead_id)
        return RouteResult(refs=CrmRefs(lead_id=lead_id, owner_id="005000000000001AAA"))

    def link_advocate(self, advocate: Advocate, program: Program, link: str) -> AdvocateRecord:
        """Like the Salesforce adapter: Contact by exact email, then an unconverted Lead, then the record an
        earlier attempt created for this advocate, else a new Lead (or a Contact under the program's account)."""
        self._maybe_fail()
        email = (advocate.email or "").lower()
        record: AdvocateRecord | None = None
        for wanted in ("Contact", "Lead"):
            for (obj, crm_id), rec in sorted(self.records.items()):
                if obj == wanted and email and (rec.get("Email") or "").lower() == email and not rec.get("IsConverted"):
                    record = AdvocateRecord(obj, crm_id, crm_id if obj == "Contact" else None, rec.get("AccountId"))
                    break
            if record:
                break
        if record is None:
            for (obj, crm_id), rec in self.records.items():
                if rec.get("RefstageAdvocateId") == advocate.id:
                    record = AdvocateRecord(obj, crm_id, crm_id if obj == "Contact" else None, rec.get("AccountId"))
        if record is None:
            account = program.routing.advocate_account_id
            obj, prefix = ("Contact", "003") if account else ("Lead", "00Q")
            crm_id = f"{prefix}{next(self.ids):015d}"
            fields: dict[str, Any] = {"Name": advocate.name, "Email": email, "RefstageAdvocateId": advocate.id}
            if account:
                fields["AccountId"] = account
            else:
                fields.update(LeadSource="Referral Program", Status="Open - Not Contacted", IsConverted=False)
            self.touch(obj, crm_id, **fields)
            self.created_for_advocates.append((obj, crm_id))
            record = AdvocateRecord(obj, crm_id, crm_id if obj == "Contact" else None, account, created=True)
        self.write_advocate_links([AdvocateLink(record.crm_object, record.crm_id, advocate.code, link, advocate.id or "")])
        self.records[(record.crm_object, record.crm_id)].update(Referral_Code__c=advocate.code, Referral_Link__c=link)
        return record

    def convert(self, lead_id: str, amount: float = 10000, stage: str = "Prospecting") -> str:
        opp_id = f"006{next(self.ids):015d}"
        acc_id = f"001{next(self.ids):015d}"
        self.touch("Opportunity", opp_id, StageName=stage, Amount=amount, IsWon=False, IsClosed=False, AccountId=acc_id)
        self.touch("Lead", lead_id, IsConverted=True, ConvertedOpportunityId=opp_id, ConvertedAccountId=acc_id)
        return opp_id

    def iter_changes(self, fields: dict[str, set[str]], cursor: dict[str, Any]) -> Iterator[ChangeBatch]:
        self._maybe_fail()
        since = dt.datetime.fromisoformat(cursor["since"]) if cursor.get("since") else None
        wanted = set(fields) | {"Lead"}
        changed = [
            ChangedRecord(obj, crm_id, dict(rec), self.modified[(obj, crm_id)])
            for (obj, crm_id), rec in self.records.items()
            if obj in wanted and (since is None or self.modified[(obj, crm_id)] > since)
        ]
        newest = max((c.modified_at for c in changed), default=since)
        yield ChangeBatch(changed, {"since": newest.isoformat() if newest else None}, api_calls=1)

    def mirror(self, referrals: Sequence[tuple[Referral, Advocate, Program]], rewards: Sequence[Reward],
               record_states: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> WriteResult:
        self._maybe_fail()
        ok = []
        for referral, _advocate, _program in referrals:
            self.mirrored[referral.id] = {"status": referral.status.value}
            ok.append(referral.id)
        for reward in rewards:
            self.mirrored[reward.id] = {"status": reward.status.value, "amount": str(reward.amount.amount)}
            ok.append(reward.id)
        return WriteResult(ok=ok, api_calls=1)
