"""Seeding and the control API under ``/_emulator/`` (and the same operations as Python methods)."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from . import ids
from .errors import SFError
from .faults import parse_spec
from .schema import INDUSTRIES, LEAD_SOURCES, LEAD_STATUSES, STAGES
from .server import json_response
from .store import fmt_dt, fmt_ms

if TYPE_CHECKING:
    from .server import Org

FIRST = ["Ava", "Ben", "Chloe", "Diego", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas", "Kara", "Liam", "Maya",
         "Noah", "Olivia", "Priya", "Quinn", "Ravi", "Sofia", "Tom", "Uma", "Victor", "Wen", "Yara", "Zoe", "Amir",
         "Bea", "Carlos", "Dana", "Elif", "Felix", "Gita", "Hannah", "Ivan", "Julia", "Kenji", "Lena", "Marco"]
LAST = ["Patel", "Okafor", "Martin", "Alvarez", "Schmidt", "Nguyen", "Kowalski", "Rossi", "Haddad", "Johansson",
        "Moreau", "Tanaka", "Silva", "Brennan", "Cohen", "Dubois", "Fischer", "Garcia", "Ivanova", "Kim", "Larsen",
        "Mensah", "Novak", "O'Brien", "Park", "Quispe", "Rahman", "Sato", "Turner", "Weber", "Young", "Zhou"]
CO_A = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Hooli",
        "Vandelay", "Pied Piper", "Massive", "Aperture", "Oscorp", "Wonka", "Gringotts", "Nakatomi", "Monarch",
        "Blue Sun", "Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Adatum", "Proseware", "Lucerne"]
CO_B = ["Analytics", "Logistics", "Systems", "Health", "Foods", "Energy", "Labs", "Robotics", "Media", "Capital",
        "Software", "Manufacturing", "Partners", "Networks", "Bio", "Retail", "Holdings", "Cloud", "Security"]
SUFFIX = ["Inc.", "Ltd", "GmbH", "SA", "LLC", "plc", "Group", "Corp."]
PRODUCTS = ["Platform License", "Annual Renewal", "Expansion", "Pilot", "Enterprise Upgrade", "Services",
            "Add-on Seats", "Data Package", "Onboarding", "Multi-year Deal"]
REPS = [("Ava", "Patel"), ("Ben", "Okafor"), ("Chloe", "Martin"), ("Diego", "Alvarez")]
STAGE_WEIGHTS = [14, 12, 10, 9, 7, 6, 8, 7, 15, 12]


def _company(rng: random.Random) -> str:
    return f"{rng.choice(CO_A)} {rng.choice(CO_B)} {rng.choice(SUFFIX)}"


def seed_org(org: Org, seed: str = "demo") -> None:
    """Create the admin user, picklist rows, and (for ``demo``) a small realistic data set."""
    store = org.store
    if seed not in ("demo", "empty"):
        raise ValueError("seed must be 'demo' or 'empty'")
    user = store.objects["User"]
    admin_id = ids.make_id("005", store.ids.reserve(1))
    stamp = org.clock.stamp()
    with store.lock:
        store.db.execute(
            f'INSERT INTO {user.table} (Id, IsDeleted, CreatedDate, CreatedById, LastModifiedDate, LastModifiedById, '
            'SystemModstamp, Username, FirstName, LastName, Name, Email, Alias, Title, IsActive, TimeZoneSidKey, '
            'UserType, CompanyName) VALUES (?,0,?,?,?,?,?,?,?,?,?,?,?,?,1,?,?,?)',
            (admin_id, stamp, admin_id, stamp, admin_id, stamp, org.admin_username, "Admin", "User", "Admin User",
             org.admin_username, "admin", "System Administrator", "GMT", "Standard", "Refstage Demo"))
    store.kv_set("admin_id", admin_id)
    organization = store.objects["Organization"]
    with store.lock:
        store.db.execute(
            f'INSERT INTO {organization.table} (Id, IsDeleted, CreatedDate, CreatedById, LastModifiedDate, '
            'LastModifiedById, SystemModstamp, Name, Country, DefaultLocaleSidKey, LanguageLocaleKey, TimeZoneSidKey, '
            'InstanceName, IsSandbox, OrganizationType, IsReadOnly, DefaultCurrencyIsoCode, PrimaryContact) '
            'VALUES (?,0,?,?,?,?,?,?,?,?,?,?,?,0,?,0,?,?)',
            (org.org_id, stamp, admin_id, stamp, admin_id, stamp, "Refstage Demo", "United States", "en_US", "en_US",
             "GMT", "EMU1", "Developer Edition", "USD", "Admin User"))
    store.kv_set(f"password:{admin_id}", org.admin_password)
    org.admin_id = admin_id
    for i, (name, prob, closed, won, fc) in enumerate(STAGES):
        store.insert(store.objects["OpportunityStage"], {
            "MasterLabel": name, "ApiName": name, "IsActive": True, "SortOrder": i + 1, "IsClosed": closed,
            "IsWon": won, "ForecastCategory": {"Pipeline": "Pipeline", "Closed": "Closed"}.get(fc, "Omitted"),
            "ForecastCategoryName": fc, "DefaultProbability": prob}, admin_id, notify=False)
    for i, (name, converted, default) in enumerate(LEAD_STATUSES):
        store.insert(store.objects["LeadStatus"], {"MasterLabel": name, "ApiName": name, "SortOrder": i + 1,
                                                   "IsDefault": default, "IsConverted": converted}, admin_id,
                     notify=False)
    store.kv_set("seeded", seed)
    if seed == "demo":
        seed_demo(org)


def seed_demo(org: Org) -> None:
    store, admin = org.store, org.admin_id
    rng = random.Random(20261122)
    o = store.objects
    reps = []
    for first, last in REPS:
        uname = f"{first.lower()}.{last.lower()}@refstage.test"
        uid = store.insert(o["User"], {"Username": uname, "FirstName": first, "LastName": last, "Email": uname,
                                       "Alias": (first[0] + last[:4]).lower(), "Title": "Account Executive",
                                       "IsActive": True}, admin, notify=False)
        store.kv_set(f"password:{uid}", org.admin_password)
        reps.append(uid)
    rule = store.insert(o["AssignmentRule"], {"Name": "Round robin to account executives", "SobjectType": "Lead",
                                              "Active": True}, admin, notify=False)
    store.kv_set(f"assignment:{rule}", json.dumps(reps))
    referral_campaign = store.insert(o["Campaign"], {
        "Name": "Customer Referral Program", "Type": "Referral Program", "Status": "In Progress",
        "IsActive": True, "StartDate": (org.clock.today() - dt.timedelta(days=90)).isoformat(),
        "BudgetedCost": 25000}, admin, notify=False)
    store.insert(o["Campaign"], {"Name": "Spring Webinar Series", "Type": "Seminar / Conference",
                                 "Status": "Completed", "IsActive": False}, admin, notify=False)
    accounts = []
    for i in range(12):
        name = _company(rng)
        while any(a[1] == name for a in accounts):
            name = _company(rng)
        aid = store.insert(o["Account"], {
            "Name": name, "Type": rng.choice(["Prospect", "Customer - Direct", "Customer - Channel"]),
            "Industry": rng.choice(INDUSTRIES), "AnnualRevenue": rng.choice([5, 12, 40, 120, 800]) * 1_000_000,
            "NumberOfEmployees": rng.choice([25, 80, 250, 1200, 9000]), "Phone": f"+1 415 555 {1000 + i:04d}",
            "Website": f"https://www.{name.split()[0].lower()}.example", "BillingCity": rng.choice(
                ["San Francisco", "London", "Berlin", "Paris", "Toronto", "Austin"]),
            "OwnerId": reps[i % len(reps)]}, admin, notify=False)
        accounts.append((aid, name))
    contacts = []
    for i in range(30):
        aid, aname = accounts[i % len(accounts)]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first.lower()}.{last.lower().replace(chr(39), '')}{i}@{aname.split()[0].lower()}.example"
        contacts.append(store.insert(o["Contact"], {
            "AccountId": aid, "FirstName": first, "LastName": last, "Email": email,
            "Title": rng.choice(["CEO", "VP Sales", "Head of Marketing", "Procurement Lead", "CTO"]),
            "LeadSource": rng.choice(LEAD_SOURCES), "OwnerId": reps[i % len(reps)]}, admin, notify=False))
    for i in range(25):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = _company(rng)
        store.insert(o["Lead"], {
            "FirstName": first, "LastName": last, "Company": company,
            "Email": f"{first.lower()}.{last.lower().replace(chr(39), '')}@{company.split()[0].lower()}.example",
            "Status": rng.choice(["Open - Not Contacted", "Working - Contacted"]),
            "LeadSource": rng.choice(LEAD_SOURCES), "Industry": rng.choice(INDUSTRIES),
            "Rating": rng.choice(["Hot", "Warm", "Cold"]), "OwnerId": reps[i % len(reps)]}, admin, notify=False)
    for i in range(20):
        aid, aname = accounts[i % len(accounts)]
        stage = rng.choices(STAGES, STAGE_WEIGHTS)[0]
        store.insert(o["Opportunity"], {
            "AccountId": aid, "Name": f"{aname.split()[0]} - {rng.choice(PRODUCTS)}", "StageName": stage[0],
            "Amount": rng.choice([8, 15, 24, 36, 50, 75, 120, 250]) * 1000,
            "CloseDate": (org.clock.today() + dt.timedelta(days=rng.randint(-120, 150))).isoformat(),
            "Type": rng.choice(["New Business", "Existing Business"]), "LeadSource": rng.choice(LEAD_SOURCES),
            "CampaignId": referral_campaign if i % 4 == 0 else None, "OwnerId": reps[i % len(reps)]},
            admin, notify=False)


# ---------------------------------------------------------------------- fast bulk seeding
def seed_records(org: Org, accounts: int = 0, contacts: int = 0, leads: int = 0, opportunities: int = 0,
                 seed: int = 1) -> dict[str, int]:
    """Insert N realistic records per object with executemany; ~1M opportunities in well under a minute."""
    rng = random.Random(seed)
    store = org.store
    o = store.objects
    admin = org.admin_id
    with store.lock:
        owners = [r[0] for r in store.db.execute(f"SELECT Id FROM {o['User'].table} WHERE IsActive=1")]
    now_ms = org.clock.now_ms()
    today = org.clock.today()
    day_ms = 86400000

    def base_rows(obj_name: str, n: int):  # yields (id, created, stamp, owner) per row
        prefix = o[obj_name].key_prefix
        first = store.ids.reserve(n)
        first_stamp = org.clock.stamp_ms(n // 1000 + 1)
        created_pool = [fmt_ms(now_ms - rng.randrange(365 * day_ms)) for _ in range(min(n, 20000))]
        make_id, choice, randrange = ids.make_id, rng.choice, rng.randrange
        stamp = ""
        for i in range(n):
            if i % 1000 == 0:
                stamp = fmt_ms(first_stamp + i // 1000)  # Bulk-style writes share a millisecond
            yield make_id(prefix, first + i), created_pool[randrange(len(created_pool))], stamp, choice(owners)

    sys_cols = ["Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                "SystemModstamp", "OwnerId"]
    counts = {}
    if accounts:
        def acc_rows():
            for rid, created, stamp, owner in base_rows("Account", accounts):
                yield (rid, 0, created, admin, stamp, admin, stamp, owner,
                       f"{_company(rng)} #{rng.randrange(10**6)}", rng.choice(INDUSTRIES),
                       rng.choice(["Prospect", "Customer - Direct", "Customer - Channel"]),
                       float(rng.randrange(1, 500) * 100000), rng.randrange(5, 20000),
                       rng.choice(LEAD_SOURCES))
        store.bulk_insert_rows(o["Account"], sys_cols + ["Name", "Industry", "Type", "AnnualRevenue",
                                                          "NumberOfEmployees", "AccountSource"], acc_rows())
        counts["accounts"] = accounts
    with store.lock:
        account_ids = [r[0] for r in store.db.execute(
            f"SELECT Id FROM {o['Account'].table} WHERE IsDeleted=0 ORDER BY rowid DESC LIMIT 100000")]
    if contacts:
        def con_rows():
            for rid, created, stamp, owner in base_rows("Contact", contacts):
                first, last = rng.choice(FIRST), rng.choice(LAST)
                yield (rid, 0, created, admin, stamp, admin, stamp, owner,
                       rng.choice(account_ids) if account_ids else None, first, last, f"{first} {last}",
                       f"{first.lower()}.{rng.randrange(10**9)}@example.com", rng.choice(LEAD_SOURCES))
        store.bulk_insert_rows(o["Contact"], sys_cols + ["AccountId", "FirstName", "LastName", "Name", "Email",
                                                          "LeadSource"], con_rows())
        counts["contacts"] = contacts
    if leads:
        statuses = [s[0] for s in LEAD_STATUSES if not s[1]]

        def lead_rows():
            for rid, created, stamp, owner in base_rows("Lead", leads):
                first, last = rng.choice(FIRST), rng.choice(LAST)
                yield (rid, 0, created, admin, stamp, admin, stamp, owner, first, last, f"{first} {last}",
                       _company(rng), f"{first.lower()}.{rng.randrange(10**9)}@example.com",
                       rng.choice(statuses), rng.choice(LEAD_SOURCES), 0, 1)
        store.bulk_insert_rows(o["Lead"], sys_cols + ["FirstName", "LastName", "Name", "Company", "Email",
                                                       "Status", "LeadSource", "IsConverted", "IsUnreadByOwner"],
                               lead_rows())
        counts["leads"] = leads
    if opportunities:
        stages = STAGES
        weights = STAGE_WEIGHTS

        def opp_rows():
            picks = rng.choices(range(len(stages)), weights, k=opportunities)
            for k, (rid, created, stamp, owner) in enumerate(base_rows("Opportunity", opportunities)):
                st = stages[picks[k]]
                close = (today + dt.timedelta(days=rng.randrange(-365, 180))).isoformat()
                yield (rid, 0, created, admin, stamp, admin, stamp, owner,
                       rng.choice(account_ids) if account_ids else None,
                       f"{rng.choice(CO_A)} - {rng.choice(PRODUCTS)}", st[0],
                       float(rng.randrange(5, 500) * 500), float(st[1]), close,
                       rng.choice(("New Business", "Existing Business")), int(st[2]), int(st[3]), st[4])
        store.bulk_insert_rows(o["Opportunity"], sys_cols + [
            "AccountId", "Name", "StageName", "Amount", "Probability", "CloseDate", "Type", "IsClosed", "IsWon",
            "ForecastCategoryName"], opp_rows())
        counts["opportunities"] = opportunities
    return counts


# ---------------------------------------------------------------------- lead conversion
def convert_lead(org: Org, lead_id: str, account_id: str | None = None, contact_id: str | None = None,
                 create_opportunity: bool = True, opportunity_name: str | None = None,
                 converted_status: str | None = None, owner_id: str | None = None,
                 map_custom_fields: bool = False, user_id: str | None = None) -> dict[str, Any]:
    store = org.store
    o = store.objects
    user_id = user_id or org.admin_id
    lead_obj = o["Lead"]
    lead = store.get(lead_obj, lead_id) if ids.normalize(lead_id) else None
    if lead is None:
        raise SFError(400, "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {lead_id}", ["leadId"])
    if lead["IsConverted"]:
        raise SFError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
    status_rows = store.db.execute('SELECT ApiName FROM "o_LeadStatus" WHERE IsConverted=1 AND IsDeleted=0') \
        .fetchall()
    statuses = [r[0] for r in status_rows]
    status = converted_status or (statuses[0] if statuses else "Closed - Converted")
    if statuses and status not in statuses:
        raise SFError(400, "INVALID_STATUS", f"invalid convertedStatus: {status}", ["convertedStatus"])
    owner = owner_id or lead.get("OwnerId") or user_id

    def custom(target: str) -> dict[str, Any]:
        if not map_custom_fields:
            return {}
        out = {}
        for f in lead_obj.fields.values():
            tf = o[target].fields.get(f.name)
            if f.custom and tf is not None and tf.createable and lead.get(f.name) is not None:
                out[f.name] = lead[f.name] if f.type != "boolean" else bool(lead[f.name])
        return out

    with store.lock:
        store.db.execute("SAVEPOINT convert")
        try:
            if account_id:
                if store.get(o["Account"], account_id) is None:
                    raise SFError(400, "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {account_id}",
                                  ["accountId"])
                account_id = ids.normalize(account_id)
            else:
                account_id = store.insert(o["Account"], {
                    "Name": lead.get("Company") or lead.get("Name"), "Industry": lead.get("Industry"),
                    "AnnualRevenue": lead.get("AnnualRevenue"), "NumberOfEmployees": lead.get("NumberOfEmployees"),
                    "Phone": lead.get("Phone"), "Website": lead.get("Website"), "BillingStreet": lead.get("Street"),
                    "BillingCity": lead.get("City"), "BillingState": lead.get("State"),
                    "BillingPostalCode": lead.get("PostalCode"), "BillingCountry": lead.get("Country"),
                    "AccountSource": lead.get("LeadSource"), "OwnerId": owner, **custom("Account")}, user_id)
            if contact_id:
                contact = store.get(o["Contact"], contact_id)
                if contact is None:
                    raise SFError(400, "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {contact_id}",
                                  ["contactId"])
                contact_id = ids.normalize(contact_id)
                if contact.get("AccountId") != account_id:
                    store.update(o["Contact"], contact_id, {"AccountId": account_id}, user_id)
            else:
                contact_id = store.insert(o["Contact"], {
                    "AccountId": account_id, "Salutation": lead.get("Salutation"),
                    "FirstName": lead.get("FirstName"), "LastName": lead.get("LastName"),
                    "Email": lead.get("Email"), "Phone": lead.get("Phone"), "Title": lead.get("Title"),
                    "LeadSource": lead.get("LeadSource"), "MailingCity": lead.get("City"),
                    "MailingCountry": lead.get("Country"), "Description": lead.get("Description"),
                    "OwnerId": owner, **custom("Contact")}, user_id)
            opp_id = None
            if create_opportunity:
                first_stage = next((s[0] for s in store.stages() if not s[2]), "Prospecting")
                today = org.clock.today()
                q_end_month = 3 * ((today.month - 1) // 3) + 3
                q_end = (dt.date(today.year + (q_end_month // 12), q_end_month % 12 + 1, 1)
                         - dt.timedelta(days=1))
                opp_id = store.insert(o["Opportunity"], {
                    "AccountId": account_id, "Name": opportunity_name or f"{lead.get('Company')}-",
                    "StageName": first_stage, "CloseDate": q_end.isoformat(), "LeadSource": lead.get("LeadSource"),
                    "OwnerId": owner, **custom("Opportunity")}, user_id)
            store.set_system(lead_obj, lead["Id"], {
                "IsConverted": 1, "ConvertedDate": org.clock.today().isoformat(), "Status": status,
                "ConvertedAccountId": account_id, "ConvertedContactId": contact_id,
                "ConvertedOpportunityId": opp_id, "OwnerId": owner}, user_id)
            store.db.execute("RELEASE convert")
        except BaseException:
            store.db.execute("ROLLBACK TO convert")
            store.db.execute("RELEASE convert")
            raise
    return {"leadId": lead["Id"], "accountId": account_id, "contactId": contact_id, "opportunityId": opp_id,
            "success": True, "errors": []}


# ---------------------------------------------------------------------- Control (Python API)
class Control:
    """The control API as Python methods: ``emu.control.reset()``, ``emu.control.seed(opportunities=...)``."""

    def __init__(self, org: Org) -> None:
        self.org = org

    def reset(self, seed: str | None = None) -> dict[str, Any]:
        org = self.org
        org.bulk.clear()
        org.outbound.clear()
        org.store.reset()
        org.usage.reset()
        org.clock.offset = dt.timedelta()
        org.oauth.__init__(org)  # type: ignore[misc]
        seed_org(org, seed or org.seed_name)
        org.install_package()
        org.automation.reload()
        return {"reset": True, "seed": seed or org.seed_name}

    def seed(self, accounts: int = 0, contacts: int = 0, leads: int = 0, opportunities: int = 0,
             seed: int = 1) -> dict[str, int]:
        return seed_records(self.org, accounts, contacts, leads, opportunities, seed)

    def set_faults(self, spec: str | None) -> dict[str, Any]:
        parse_spec(spec)  # validate first
        self.org.faults.set(spec)
        return self.faults()

    def faults(self) -> dict[str, Any]:
        return {**self.org.faults.plan.to_json(), "injected": dict(self.org.faults.injected)}

    def usage(self) -> dict[str, Any]:
        u = self.org.usage
        return {name: {"Max": mx, "Used": u.used(name), "Remaining": u.remaining(name)}
                for name, mx in sorted(u.max.items())}

    def set_limits(self, **limits: int) -> dict[str, Any]:
        for name, value in limits.items():
            self.org.usage.max[name] = int(value)
        return self.usage()

    def reset_usage(self) -> dict[str, Any]:
        self.org.usage.reset()
        return self.usage()

    def use_api(self, counter: str = "DailyApiRequests", n: int = 1) -> dict[str, Any]:
        self.org.usage.add(counter, n)
        return self.usage()

    def convert_lead(self, lead_id: str, **kw: Any) -> dict[str, Any]:
        return convert_lead(self.org, lead_id, **kw)

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        self.org.clock.advance(seconds)
        return self.clock()

    def clock(self) -> dict[str, Any]:
        return {"now": fmt_dt(self.org.clock.now()), "offsetSeconds": self.org.clock.offset.total_seconds()}

    def expire_sessions(self) -> dict[str, Any]:
        self.org.oauth.expire_sessions()
        return {"expired": True}

    def revoke_tokens(self, user_id: str | None = None) -> dict[str, Any]:
        self.org.oauth.revoke_all(user_id)
        return {"revoked": True}

    def add_outbound_rule(self, **rule: Any) -> dict[str, Any]:
        return self.org.outbound.add_rule(rule)

    def outbound_rules(self) -> list[dict[str, Any]]:
        return self.org.outbound.list_rules()

    def delete_outbound_rule(self, rule_id: str) -> None:
        self.org.outbound.delete_rule(rule_id)

    def deliveries(self) -> list[dict[str, Any]]:
        return self.org.outbound.deliveries()

    def reload_metadata(self) -> list[str]:
        return self.org.install_package()


# ---------------------------------------------------------------------- HTTP control API
def _body(request: Request) -> dict[str, Any]:
    data = request.get_data()
    if not data:
        return {}
    try:
        body = json.loads(data)
    except ValueError:
        raise SFError(400, "JSON_PARSER_ERROR", "control API bodies are JSON") from None
    if not isinstance(body, dict):
        raise SFError(400, "JSON_PARSER_ERROR", "control API bodies are JSON objects")
    return body


def _ctl(org: Org) -> Control:
    return Control(org)


def c_reset(org: Org, request: Request) -> Response:
    return json_response(_ctl(org).reset(_body(request).get("seed")))


def c_seed(org: Org, request: Request) -> Response:
    b = _body(request)
    import time

    t0 = time.perf_counter()
    counts = _ctl(org).seed(**{k: int(b.get(k, 0)) for k in ("accounts", "contacts", "leads", "opportunities")},
                            seed=int(b.get("seed", 1)))
    return json_response({"created": counts, "seconds": round(time.perf_counter() - t0, 3)})


def c_faults(org: Org, request: Request) -> Response:
    ctl = _ctl(org)
    if request.method == "GET":
        return json_response(ctl.faults())
    if request.method == "DELETE":
        return json_response(ctl.set_faults(None))
    spec = _body(request).get("spec")
    try:
        return json_response(ctl.set_faults(spec))
    except ValueError as exc:
        raise SFError(400, "INVALID_FAULT_SPEC", str(exc)) from None


def c_usage(org: Org, request: Request) -> Response:
    ctl = _ctl(org)
    if request.method == "GET":
        return json_response(ctl.usage())
    b = _body(request)
    if b.get("reset"):
        ctl.reset_usage()
    if b.get("limits"):
        ctl.set_limits(**b["limits"])
    if b.get("use"):
        for name, n in b["use"].items():
            ctl.use_api(name, int(n))
    return json_response(ctl.usage())


def c_convert(org: Org, request: Request) -> Response:
    b = _body(request)
    if not b.get("leadId"):
        raise SFError(400, "REQUIRED_FIELD_MISSING", "leadId is required", ["leadId"])
    return json_response(convert_lead(
        org, b["leadId"], account_id=b.get("accountId"), contact_id=b.get("contactId"),
        create_opportunity=not b.get("doNotCreateOpportunity", False), opportunity_name=b.get("opportunityName"),
        converted_status=b.get("convertedStatus"), owner_id=b.get("ownerId"),
        map_custom_fields=bool(b.get("mapCustomFields", False))))


def c_clock(org: Org, request: Request) -> Response:
    ctl = _ctl(org)
    if request.method == "GET":
        return json_response(ctl.clock())
    b = _body(request)
    return json_response(ctl.advance_clock(float(b.get("advanceSeconds", 0))))


def c_sessions(org: Org, request: Request, action: str) -> Response:
    ctl = _ctl(org)
    if action == "expire":
        return json_response(ctl.expire_sessions())
    if action == "revoke":
        return json_response(ctl.revoke_tokens(_body(request).get("userId")))
    raise SFError(404, "NOT_FOUND", "unknown sessions action")


def c_rules(org: Org, request: Request) -> Response:
    if request.method == "GET":
        return json_response(org.outbound.list_rules())
    try:
        return json_response(org.outbound.add_rule(_body(request)), 201)
    except ValueError as exc:
        raise SFError(400, "INVALID_RULE", str(exc)) from None


def c_rule(org: Org, request: Request, rule_id: str) -> Response:
    org.outbound.delete_rule(rule_id)
    return Response(status=204)


def c_deliveries(org: Org, request: Request) -> Response:
    return json_response(org.outbound.deliveries())


def c_metadata(org: Org, request: Request) -> Response:
    return json_response({"objects": org.install_package()})


def c_info(org: Org, request: Request) -> Response:
    return json_response({"instanceUrl": org.base_url, "organizationId": org.org_id, "adminUserId": org.admin_id,
                          "adminUsername": org.admin_username, "clientId": org.client_id,
                          "seed": org.store.kv_get("seeded"), **_ctl(org).clock()})


def routes() -> list[tuple[str, list[str], Any]]:
    return [
        ("/_emulator", ["GET"], c_info),
        ("/_emulator/reset", ["POST"], c_reset),
        ("/_emulator/seed", ["POST"], c_seed),
        ("/_emulator/faults", ["GET", "POST", "PUT", "DELETE"], c_faults),
        ("/_emulator/usage", ["GET", "POST"], c_usage),
        ("/_emulator/convert-lead", ["POST"], c_convert),
        ("/_emulator/clock", ["GET", "POST"], c_clock),
        ("/_emulator/sessions/<action>", ["POST"], c_sessions),
        ("/_emulator/outbound/rules", ["GET", "POST"], c_rules),
        ("/_emulator/outbound/rules/<rule_id>", ["DELETE"], c_rule),
        ("/_emulator/outbound/deliveries", ["GET"], c_deliveries),
        ("/_emulator/metadata/reload", ["POST"], c_metadata),
    ]
