"""PipedriveGateway: the CRM port for one Pipedrive company.

Our own custom fields (created on connect if missing; their 40-character keys kept in
connection.settings["fields"]):
  person: Refstage referral code, Refstage referral link, Refstage referral id, Refstage advocate id
  deal:   Refstage referral id, Refstage referred by, Refstage referral status, Refstage reward status
The referral id on the person and the deal is what makes routing idempotent: a retried job finds
what an earlier attempt created instead of creating it again. The advocate id on a person does the
same for self-enrolment (link_advocate)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Iterator, Mapping, Sequence

from refstage.adapters.crm.pipedrive import auth
from refstage.adapters.crm.pipedrive.client import PipedriveClient
from refstage.adapters.crm.pipedrive.records import (
    DEAL_STANDARD,
    PERSON_STANDARD,
    deal_record,
    flatten,
    parse_time,
    person_record,
    primary_email,
    rfc3339,
    snake,
)
from refstage.domain.connections import CrmConnection
from refstage.domain.errors import NotFound
from refstage.domain.programs import EnrolmentKind, EnrolmentSource, FilterCondition, Program
from refstage.domain.referrals import Advocate, CrmRefs, Referral, ReferralStatus
from refstage.domain.rewards import Reward
from refstage.domain.rules import FieldSpec, Rule
from refstage.services.ports import (
    AdvocateLink,
    AdvocateRecord,
    BudgetExhausted,
    Candidate,
    ChangeBatch,
    CrmError,
    CrmGateway,
    ExistingRecord,
    Milestone,
    RouteResult,
    WriteResult,
)

log = logging.getLogger(__name__)

OVERLAP = dt.timedelta(minutes=5)
PAGE = 500
# How far before a referral's capture (or an advocate's enrolment) a person made for it may carry an
# update time: the CRM's clock and ours may disagree by this much.
RECENT_MARGIN = dt.timedelta(minutes=15)
COUNT_LIMIT = 5000  # count_matching gives up (None) above this many open deals
OUR_FIELDS = {
    "person": {"code": "Refstage referral code", "link": "Refstage referral link", "referral_id": "Refstage referral id",
               "advocate_id": "Refstage advocate id"},
    "deal": {"referral_id": "Refstage referral id", "referred_by": "Refstage referred by",
             "referral_status": "Refstage referral status", "reward_status": "Refstage reward status"},
}
NOTE_MARKER = "Refstage referral"
FIELD_ALIASES = {"owner": "owner_id", "organization": "org_id", "organization_id": "org_id", "org": "org_id",
                 "label": "label_ids", "labels": "label_ids"}


def ensure_fields(client: PipedriveClient) -> dict[str, Any]:
    """Find or create our custom fields; return {"fields": {entity: {role: key}}, "custom_names": {...},
    "options": {...}} for connection.settings."""
    fields: dict[str, dict[str, str]] = {}
    names: dict[str, dict[str, str]] = {}
    options: dict[str, dict[str, dict[str, str]]] = {}
    for entity, path in (("person", "personFields"), ("deal", "dealFields")):
        existing = list(client.iterate_v1(path))
        by_name = {str(f.get("name")): f for f in existing}
        fields[entity] = {}
        for role, label in OUR_FIELDS[entity].items():
            found = by_name.get(label)
            if found is None:
                found = client.post("v1", path, {"name": label, "field_type": "varchar"})
                existing.append(found)
            fields[entity][role] = found["key"]
        names[entity] = {}
        options[entity] = {}
        for f in existing:
            key = str(f.get("key") or "")
            if len(key) == 40 and all(c in "0123456789abcdef" for c in key):
                names[entity][key] = snake(str(f.get("name") or key))
                if f.get("options"):
                    options[entity][key] = {str(o.get("id")): str(o.get("label")) for o in f["options"] if isinstance(o, dict)}
    return {"fields": fields, "custom_names": names, "options": options}


def _match(actual: Any, cond: FilterCondition, labels: Mapping[str, str] | None = None) -> bool:
    """Structured enrolment condition against one value (lists: any member; enums: id or label)."""
    op, expected = cond.op, cond.value
    if op == "is_null":
        return actual in (None, "", [])
    if op == "not_null":
        return actual not in (None, "", [])
    values = actual if isinstance(actual, list) else [actual]
    if isinstance(actual, dict) and "value" in actual:
        values = [actual["value"]]
    texts = set()
    for v in values:
        if v is None:
            continue
        if isinstance(v, dict) and "id" in v:
            v = v["id"]
        texts.add(str(v).strip().casefold())
        if labels and str(v) in labels:
            texts.add(labels[str(v)].strip().casefold())
    wanted = [str(x).strip().casefold() for x in (expected if isinstance(expected, (list, tuple)) else [expected])]
    if op == "equals":
        return wanted[0] in texts
    if op == "not_equals":
        return wanted[0] not in texts
    if op == "in":
        return any(w in texts for w in wanted)
    if op == "not_in":
        return not any(w in texts for w in wanted)
    if op == "contains":
        return any(wanted[0] in t for t in texts)
    if op in ("gte", "lte"):
        for v in values:
            try:
                a, e = float(v), float(expected)
            except (TypeError, ValueError):
                a, e = str(v), str(expected)  # ISO dates compare as text
            if (a >= e) if op == "gte" else (a <= e):
                return True
        return False
    return False


class PipedriveGateway(CrmGateway):
    kind = "pipedrive"

    def __init__(self, rt: Any, connection: CrmConnection, client: PipedriveClient | None = None,
                 credentials: Any = None) -> None:
        self.rt = rt
        self.connection = connection
        if client is None:
            creds = credentials or auth.credentials_for(rt, connection)
            client = PipedriveClient(creds, verify=auth.tls_verify(rt.settings))
        self.client = client

    # -- settings ----------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        s = self.connection.settings
        if not (s.get("fields") or {}).get("deal") or not (s.get("fields") or {}).get("person"):
            self.prepare()
        return self.connection.settings

    def prepare(self) -> dict[str, Any]:
        """Make sure our custom fields exist; remember their keys (and every custom field's name)."""
        found = ensure_fields(self.client)
        settings = {**self.connection.settings, **found}
        if settings != self.connection.settings:
            with self.rt.uow(self.connection.tenant_id) as uow:
                conn = uow.connections.get(self.connection.id)
                conn.settings = {**conn.settings, **found}
                uow.connections.save(conn)
                uow.commit()
            self.connection.settings = settings
        return settings

    def _key(self, entity: str, role: str) -> str:
        keys = self._settings()["fields"][entity]
        if role not in keys:  # a field added since this connection was prepared
            keys = self.prepare()["fields"][entity]
        return keys[role]

    def _names(self, entity: str) -> dict[str, str]:
        return dict((self._settings().get("custom_names") or {}).get(entity) or {})

    def _calls(self, before: int) -> int:
        return self.client.calls - before

    # -- port ----------------------------------------------------------------------------------
    def describe_milestones(self) -> list[Milestone]:
        pipelines = {p["id"]: p for p in self.client.iterate("pipelines", limit=PAGE)}
        out: list[Milestone] = []
        stages = sorted(self.client.iterate("stages", limit=PAGE),
                        key=lambda s: (s.get("pipeline_id") or 0, s.get("order_nr") or 0, s["id"]))
        for stage in stages:
            if stage.get("is_deleted"):
                continue
            pipeline = pipelines.get(stage.get("pipeline_id"))
            if pipeline is None or pipeline.get("is_deleted"):
                continue
            out.append(Milestone("Deal", "stage_id", stage["id"], str(stage.get("name")), group=str(pipeline.get("name"))))
        out.append(Milestone("Deal", "status", "won", "Won", is_won=True, is_closed=True))
        out.append(Milestone("Deal", "status", "lost", "Lost", is_closed=True))
        return out

    def iter_enrolment_candidates(self, source: EnrolmentSource, since: dt.datetime | None) -> Iterator[Candidate]:
        if source.kind != EnrolmentKind.PIPEDRIVE_PERSONS:
            raise CrmError(f"a Pipedrive connection cannot enrol from {source.kind.value}", transient=False)
        settings = self._settings()
        names = dict((settings.get("custom_names") or {}).get("person") or {})
        by_name = {v: k for k, v in names.items()}
        options = (settings.get("options") or {}).get("person") or {}
        params: dict[str, Any] = {"limit": PAGE, "sort_by": "update_time", "sort_direction": "asc"}
        if since is not None:
            params["updated_since"] = rfc3339(since)
        local: list[tuple[str, str | None, FilterCondition]] = []
        for cond in source.conditions:
            name = FIELD_ALIASES.get(cond.field.lower(), cond.field)
            if name in ("owner_id", "org_id") and cond.op == "equals" and str(cond.value).isdigit() and name not in params:
                params[name] = int(cond.value)  # filtered by Pipedrive
                continue
            key = by_name.get(snake(name)) or (name if name in names else None)
            if key is None and name not in PERSON_STANDARD and name != "email":
                raise CrmError(f"unknown person field {cond.field!r} in the enrolment conditions", transient=False)
            local.append((name, key, cond))
        for person in self.client.iterate("persons", **params):
            if person.get("is_deleted"):
                continue
            if not all(_match(self._person_value(person, name, key), cond, options.get(key) if key else None)
                       for name, key, cond in local):
                continue
            org = person.get("org_id")
            yield Candidate("Person", str(person["id"]), str(person.get("name") or ""), primary_email(person),
                            contact_id=None, account_id=str(org) if org else None,
                            modified_at=parse_time(person.get("update_time")))

    @staticmethod
    def _person_value(person: Mapping[str, Any], name: str, key: str | None) -> Any:
        if key is not None:
            return (person.get("custom_fields") or {}).get(key)
        if name == "email":
            return [e.get("value") for e in person.get("emails") or [] if isinstance(e, dict)]
        return person.get(name)

    def write_advocate_links(self, links: Sequence[AdvocateLink]) -> WriteResult:
        before = self.client.calls
        code_key, link_key = self._key("person", "code"), self._key("person", "link")
        ok: list[str] = []
        failed: dict[str, str] = {}
        for i, link in enumerate(links):
            if link.crm_object != "Person" or not str(link.crm_id).isdigit():
                failed[link.advocate_id] = f"not a Pipedrive person: {link.crm_object} {link.crm_id}"
                continue
            try:
                self.client.patch("v2", f"persons/{int(link.crm_id)}",
                                  {"custom_fields": {code_key: link.code, link_key: link.link}})
                ok.append(link.advocate_id)
            except BudgetExhausted as exc:
                for rest in links[i:]:
                    failed[rest.advocate_id] = str(exc)
                break
            except CrmError as exc:
                failed[link.advocate_id] = str(exc)
        return WriteResult(ok=ok, failed=failed, api_calls=self._calls(before))

    def find_existing(self, email: str) -> ExistingRecord | None:
        term = (email or "").strip()
        if len(term) < 2:
            return None
        items = [i.get("item") or i for i in self.client.get("v2", "persons/search", term=term, fields="email",
                                                              exact_match=True, limit=10).get("items") or []]
        rid_key = self._key("person", "referral_id")
        for item in items:
            person = self.client.get("v2", f"persons/{int(item['id'])}")
            if person is None or person.get("is_deleted"):
                continue
            if self._in_flight((person.get("custom_fields") or {}).get(rid_key)):
                continue  # we created this person for a referral whose routing has not finished: a retry, not a duplicate
            won = self.client.get("v2", "deals", person_id=int(person["id"]), status="won", limit=1) or []
            org = person.get("org_id")
            return ExistingRecord("Person", str(person["id"]), primary_email(person) or term,
                                  account_id=str(org) if org else None, is_customer=bool(won))
        return None

    def _in_flight(self, referral_id: Any) -> bool:
        if not referral_id:
            return False
        try:
            with self.rt.uow(self.connection.tenant_id) as uow:
                referral = uow.referrals.get(str(referral_id))
        except NotFound:
            return False
        return referral.status == ReferralStatus.CAPTURED or (
            referral.status == ReferralStatus.DUPLICATE and not referral.crm.deal_id)

    def route_referral(self, referral: Referral, advocate: Advocate, program: Program,
                       attach_to: ExistingRecord | None) -> RouteResult:
        routing = program.routing
        person_rid = self._key("person", "referral_id")
        deal_rid = self._key("deal", "referral_id")
        # 1. The person: the one to attach to, the one an earlier attempt created, or a new one.
        person_id: int | None = int(attach_to.id) if attach_to is not None else None
        if person_id is None:
            found = self.client.get("v2", "persons/search", term=referral.friend_email, fields="email",
                                    exact_match=True, limit=10) or {}
            for item in found.get("items") or []:
                pid = int((item.get("item") or item)["id"])
                person = self.client.get("v2", f"persons/{pid}") or {}
                if (person.get("custom_fields") or {}).get(person_rid) == referral.id:
                    person_id = pid
                    break
        if person_id is None:
            # Search is index-backed and lags: a person an earlier attempt created (its response lost)
            # may not be searchable yet. The listing is not, and that person can only be recent.
            person_id = self._recent_person_with(person_rid, referral.id, referral.captured_at)
        if person_id is None:
            body: dict[str, Any] = {"name": referral.friend_name,
                                    "emails": [{"value": referral.friend_email, "primary": True, "label": "work"}],
                                    "custom_fields": {person_rid: referral.id}}
            if referral.friend_phone:
                body["phones"] = [{"value": referral.friend_phone, "primary": True, "label": "work"}]
            if routing.deal_owner_id:
                body["owner_id"] = routing.deal_owner_id
            person_id = int(self.client.post("v2", "persons", body)["id"])
        # 2. The deal: looked up by our referral id before creating, so a retried job never makes two.
        deal = None
        for candidate in self.client.iterate("deals", person_id=person_id, status="open,won,lost", limit=PAGE):
            if (candidate.get("custom_fields") or {}).get(deal_rid) == referral.id:
                deal = candidate
                break
        if deal is None:
            referred_by = advocate.name + (f" <{advocate.email}>" if advocate.email else "")
            title = f"{referral.friend_name}" + (f" ({referral.friend_company})" if referral.friend_company else "") + " – referral"
            body = {"title": title[:255], "person_id": person_id, "custom_fields": {
                deal_rid: referral.id, self._key("deal", "referred_by"): referred_by[:255],
                self._key("deal", "referral_status"): ReferralStatus.ROUTED.value}}
            if routing.pipeline_id:
                body["pipeline_id"] = routing.pipeline_id
            if routing.stage_id:
                body["stage_id"] = routing.stage_id
            if routing.deal_owner_id:
                body["owner_id"] = routing.deal_owner_id
            deal = self.client.post("v2", "deals", body)
        deal_id = int(deal["id"])
        # 3. The note saying who referred them (once).
        notes = self.client.get("v1", "notes", deal_id=deal_id, limit=100) or []
        if not any(NOTE_MARKER in str(n.get("content") or "") and referral.id in str(n.get("content") or "") for n in notes):
            self.client.post("v1", "notes", {"deal_id": deal_id, "pinned_to_deal_flag": 1, "content": _note(referral, advocate, program)})
        owner = deal.get("owner_id")
        refs = CrmRefs(person_id=str(person_id), deal_id=str(deal_id), owner_id=str(owner) if owner else None)
        return RouteResult(refs=refs, existing=attach_to, attached=attach_to is not None)

    def _recent_person_with(self, key: str, value: str, not_before: dt.datetime | None) -> int | None:
        """The person carrying our id in custom field KEY, among those changed since NOT_BEFORE (less
        a margin for clock skew), read from the listing, which, unlike search, is never behind."""
        if not_before is None:
            return None
        since = rfc3339(not_before - RECENT_MARGIN)
        for person in self.client.iterate("persons", updated_since=since, sort_by="update_time",
                                          sort_direction="desc", limit=PAGE):
            if (person.get("custom_fields") or {}).get(key) == value and not person.get("is_deleted"):
                return int(person["id"])
        return None

    def link_advocate(self, advocate: Advocate, program: Program, link: str) -> AdvocateRecord:
        """The person an earlier attempt created for this advocate (our advocate id on it), else the oldest
        person with exactly this email, else a new person carrying the advocate id, code and link."""
        email = (advocate.email or "").strip().lower()
        if not email:
            raise CrmError(f"advocate {advocate.id} has no email to match or create a person with", transient=False)
        aid_key = self._key("person", "advocate_id")
        code_key, link_key = self._key("person", "code"), self._key("person", "link")
        found = self.client.get("v2", "persons/search", term=email, fields="email", exact_match=True, limit=10) or {}
        matches: list[dict[str, Any]] = []
        for item in found.get("items") or []:
            person = self.client.get("v2", f"persons/{int((item.get('item') or item)['id'])}")
            if not person or person.get("is_deleted"):
                continue
            emails = {str(e.get("value") or "").strip().lower() for e in person.get("emails") or [] if isinstance(e, dict)}
            if email not in emails:
                continue
            if (person.get("custom_fields") or {}).get(aid_key) == advocate.id:
                matches = [person]  # ours, from an earlier attempt
                break
            matches.append(person)
        if not matches:
            ours = self._recent_person_with(aid_key, advocate.id or "", advocate.enrolled_at)
            if ours is not None:  # created by an earlier attempt whose response was lost, not yet searchable
                person = self.client.get("v2", f"persons/{ours}") or {}
                matches = [person] if person else []
        if matches:
            person = min(matches, key=lambda p: int(p["id"]))
            org = person.get("org_id")
            record = AdvocateRecord("Person", str(person["id"]), account_id=str(org) if org else None)
            custom = person.get("custom_fields") or {}
            if custom.get(code_key) != advocate.code or custom.get(link_key) != link:
                result = self.write_advocate_links([AdvocateLink("Person", record.crm_id, advocate.code, link, advocate.id or "")])
                if result.failed:
                    raise CrmError(f"writing the code onto person {record.crm_id} failed: "
                                   f"{next(iter(result.failed.values()))}", transient=True)
            return record
        body: dict[str, Any] = {"name": advocate.name or email,
                                "emails": [{"value": email, "primary": True, "label": "work"}],
                                "custom_fields": {aid_key: advocate.id, code_key: advocate.code, link_key: link}}
        if program.routing.deal_owner_id:
            body["owner_id"] = program.routing.deal_owner_id
        created = self.client.post("v2", "persons", body)
        return AdvocateRecord("Person", str(created["id"]), created=True)

    def iter_changes(self, fields: dict[str, set[str]], cursor: dict[str, Any]) -> Iterator[ChangeBatch]:
        cursor = {k: dict(v) for k, v in (cursor or {}).items() if isinstance(v, dict)}
        plan = [("deal", "deals", "Deal", deal_record)]
        if "Person" in fields:
            plan.append(("person", "persons", "Person", person_record))
        for entity, path, obj, mapper in plan:
            names = self._names(entity)
            wanted = set(fields.get(obj) or ())
            state = cursor.get(entity) or {}
            since = parse_time(state.get("since"))
            start = state.get("start") if state.get("next") else (rfc3339(since - OVERLAP) if since else None)
            high = parse_time(state.get("high")) or since
            params: dict[str, Any] = {"limit": PAGE, "sort_by": "update_time", "sort_direction": "asc",
                                      "updated_since": start, "cursor": state.get("next")}
            if entity == "deal":
                params["status"] = "open,won,lost,deleted"
            before = self.client.calls
            for items, next_cursor in self.client.pages(path, **params):
                records = [mapper(item, names, wanted) for item in items]
                for r in records:
                    if r.modified_at and (high is None or r.modified_at > high):
                        high = r.modified_at
                if next_cursor:
                    cursor[entity] = {"since": state.get("since"), "start": start, "next": next_cursor,
                                      "high": rfc3339(high) if high else None}
                else:
                    cursor[entity] = {"since": rfc3339(high) if high else state.get("since")}
                yield ChangeBatch(records, {k: dict(v) for k, v in cursor.items()}, api_calls=self._calls(before),
                                  done=not next_cursor and entity == plan[-1][0])
                before = self.client.calls

    def read_current(self, fields: dict[str, set[str]], ids: dict[str, set[str]]) -> ChangeBatch:
        """`GET /api/v2/deals?ids=…` (deleted deals included) and `/persons?ids=…`, ≤100 ids a call."""
        before = self.client.calls
        records = []
        plan = (("Deal", "deals", "deal", deal_record, {"status": "open,won,lost,deleted"}),
                ("Person", "persons", "person", person_record, {}))
        for obj, path, entity, mapper, extra in plan:
            wanted = sorted((i for i in ids.get(obj) or () if str(i).isdigit()), key=int)
            if not wanted:
                continue
            names = self._names(entity)
            want = set(fields.get(obj) or ())
            for start in range(0, len(wanted), 100):
                chunk = wanted[start:start + 100]
                for items, _ in self.client.pages(path, ids=",".join(chunk), limit=100, **extra):
                    records.extend(mapper(item, names, want) for item in items)
        return ChangeBatch(records, {}, api_calls=self._calls(before), done=True)

    def mirror(self, referrals: Sequence[tuple[Referral, Advocate, Program]], rewards: Sequence[Reward],
               record_states: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> WriteResult:
        before = self.client.calls
        status_key, reward_key = self._key("deal", "referral_status"), self._key("deal", "reward_status")
        by_referral: dict[str, list[Reward]] = {}
        ids = [r.id for r, _, _ in referrals]
        if ids:
            with self.rt.uow(self.connection.tenant_id) as uow:
                by_referral = {k: list(v) for k, v in uow.rewards.for_referrals(ids).items()}
        reward_ids_by_referral: dict[str, list[str]] = {}
        for reward in rewards:
            reward_ids_by_referral.setdefault(reward.referral_id, []).append(reward.id)
        ok: list[str] = []
        failed: dict[str, str] = {}
        for i, (referral, _advocate, _program) in enumerate(referrals):
            mine = [referral.id] + reward_ids_by_referral.get(referral.id, [])
            if not referral.crm.deal_id:
                ok.extend(mine)  # nothing in Pipedrive to write to (duplicate held, rejected before routing)
                continue
            summary = "; ".join(f"{r.rule_key} ({r.recipient.value}): {r.status.value} {r.amount.amount} {r.amount.currency}"
                                for r in sorted(by_referral.get(referral.id, []), key=lambda r: r.rule_key))
            try:
                self.client.patch("v2", f"deals/{int(referral.crm.deal_id)}", {"custom_fields": {
                    status_key: referral.status.value, reward_key: summary[:255] or None}})
                ok.extend(mine)
            except BudgetExhausted as exc:
                for rest, _, _ in referrals[i:]:
                    for rid in [rest.id] + reward_ids_by_referral.get(rest.id, []):
                        failed[rid] = str(exc)
                break
            except CrmError as exc:
                if exc.status == 404:
                    ok.extend(mine)  # the deal is gone: nothing left to mirror into
                    continue
                for rid in mine:
                    failed[rid] = str(exc)
        written = set(ok) | set(failed)
        for reward in rewards:  # rewards whose referral was not passed along: nothing to write them on
            if reward.id not in written:
                failed[reward.id] = "the reward's referral was not part of this write-back"
        return WriteResult(ok=ok, failed=failed, api_calls=self._calls(before))

    _KINDS = {"double": "number", "monetary": "number", "int": "number", "date": "date", "enum": "picklist",
              "status": "picklist", "visible_to": "picklist", "set": "multipicklist", "stage": "picklist",
              "user": "reference", "org": "reference", "people": "reference"}

    def describe_fields(self, object_name: str) -> dict[str, FieldSpec] | None:
        """dealFields: standard keys and custom fields (by key and by readable name, as rules use
        them); enum options by id and label; stage values are the live stages' ids and names."""
        if object_name != "Deal":
            return None
        out: dict[str, FieldSpec] = {}
        stages: tuple[str, ...] | None = None
        for f in self.client.iterate_v1("dealFields"):
            key = str(f.get("key") or "")
            if not key:
                continue
            kind = self._KINDS.get(str(f.get("field_type")), "text")
            values = None
            if kind == "picklist" and str(f.get("field_type")) == "stage":
                if stages is None:
                    stages = tuple(v for m in self.describe_milestones() if m.field == "stage_id"
                                   for v in (str(m.value), m.label))
                values = stages
            elif f.get("options"):
                values = tuple(str(v) for o in f["options"] if isinstance(o, dict) for v in (o.get("id"), o.get("label"))
                               if v is not None)
            spec = FieldSpec(key, kind, values, f.get("name"))
            out[key.lower()] = spec
            if len(key) == 40 and f.get("name"):
                out.setdefault(snake(str(f["name"])), FieldSpec(snake(str(f["name"])), kind, values, f.get("name")))
        for key in DEAL_STANDARD:  # always readable from a deal, whether dealFields lists them or not
            out.setdefault(key, FieldSpec(key, "number" if key.endswith("_id") or key in ("id", "value", "probability")
                                          else "text", None, key))
        if "status" in out and out["status"].values is None:
            out["status"] = FieldSpec("status", "picklist", ("open", "won", "lost", "deleted"), "Status")
        return out

    def count_matching(self, rule: Rule) -> int | None:
        if rule.objects() - {"Deal"}:
            return None
        names = self._names("deal")
        count = seen = 0
        for deal in self.client.iterate("deals", status="open", limit=PAGE):
            seen += 1
            if seen > COUNT_LIMIT:
                return None
            if rule.evaluate({"Deal": flatten(deal, deal.keys(), names)}):
                count += 1
        return count

    # -- connection management (used by services/connections) ---------------------------------
    def whoami(self) -> dict[str, Any]:
        return self.client.get("v1", "users/me") or {}


def _note(referral: Referral, advocate: Advocate, program: Program) -> str:
    who = advocate.name + (f" ({advocate.email})" if advocate.email else "")
    lines = [f"<b>{NOTE_MARKER}</b>: {_esc(referral.friend_name)} was referred by {_esc(who)} "
             f"through the program “{_esc(program.name)}”."]
    if referral.friend_company:
        lines.append(f"Company: {_esc(referral.friend_company)}")
    lines.append(f"Referral id: {referral.id}")
    return "<br>".join(lines)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
