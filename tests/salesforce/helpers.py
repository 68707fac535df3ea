"""Helpers for the Salesforce connector tests: drive the emulator's consent pages, and an independent
admin client that changes org data the way reps would."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from refstage_devkit.emulators.salesforce import consent
from refstage_devkit.emulators.salesforce.server import SalesforceEmulator

CLIENT_ID = "refstage-demo"
CLIENT_SECRET = "refstage-demo-secret"
ADMIN = ("admin@refstage.test", "refstage-demo")
REDIRECT = "http://127.0.0.1:5000/salesforce/oauth/callback"
VERSION = "62.0"


@contextlib.contextmanager
def running_org(cert_dir: Path, **options) -> Iterator[SalesforceEmulator]:
    """An emulated org over real HTTPS, its CA trusted through REQUESTS_CA_BUNDLE while it runs (never
    verify=False); the variable is put back as it was afterwards."""
    emu = SalesforceEmulator(port=0, cert_dir=cert_dir, **options)
    old = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = emu.ca_path
    emu.start()
    yield emu
    emu.stop()
    if old is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = old


def browser_consent(authorize_url: str) -> str:
    """Log in and press Allow on the emulator's pages like a browser; return the redirect URL."""
    return consent.browser_consent(authorize_url, *ADMIN)


class OrgAdmin:
    """A second, independent client: the org's own admin changing data (as reps would)."""

    def __init__(self, emu: SalesforceEmulator) -> None:
        self.base = emu.base_url
        self.s = requests.Session()
        self._login()

    def _login(self) -> None:
        token = requests.post(f"{self.base}/services/oauth2/token", data={
            "grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "username": ADMIN[0], "password": ADMIN[1]}, timeout=10).json()["access_token"]
        self.s.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, url: str, **kw) -> requests.Response:
        r = self.s.request(method, url, timeout=30, **kw)
        if r.status_code == 401:  # the tests expire sessions on purpose
            self._login()
            r = self.s.request(method, url, timeout=30, **kw)
        return r

    def query(self, soql: str) -> list[dict]:
        out, url = [], f"{self.base}/services/data/v{VERSION}/query"
        r = self._call("GET", url, params={"q": soql}).json()
        out.extend(r.get("records", []))
        while not r.get("done", True):
            r = self._call("GET", self.base + r["nextRecordsUrl"]).json()
            out.extend(r["records"])
        return out

    def count(self, soql: str) -> int:
        return self._call("GET", f"{self.base}/services/data/v{VERSION}/query", params={"q": soql}).json()["totalSize"]

    def update(self, sobject: str, rows: list[dict]) -> None:
        for start in range(0, len(rows), 200):
            body = {"allOrNone": True, "records": [{"attributes": {"type": sobject}, **r} for r in rows[start:start + 200]]}
            r = self._call("PATCH", f"{self.base}/services/data/v{VERSION}/composite/sobjects", json=body)
            assert r.status_code == 200 and all(x["success"] for x in r.json()), r.text

    def create(self, sobject: str, fields: dict) -> str:
        r = self._call("POST", f"{self.base}/services/data/v{VERSION}/sobjects/{sobject}", json=fields)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def convert(self, lead_id: str) -> dict:
        r = self._call("POST", f"{self.base}/_emulator/convert-lead", json={"leadId": lead_id})
        assert r.status_code == 200, r.text
        return r.json()


def callback_query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}



# --- the journey, shared by the scenario and the fault tests --------------------------------------------
PROGRAM = {
    "name": "Customers", "slug": "customers",
    "enrolment": {"kind": "salesforce_contacts", "conditions": [{"field": "Email", "op": "not_null"}]},
    "rule": "Opportunity.StageName == 'Closed Won' AND Opportunity.Amount >= 5000",
    "reward_rules": [
        {"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"}},
        {"key": "friend", "recipient": "friend", "kind": "fixed", "amount": {"amount": "50", "currency": "USD"}},
    ],
    "owner": {"name": "Riley", "email": "riley@acme.test"},
    "routing": {"duplicate_policy": "review"},
}


def connect(rt, client, tenant_id: str, conn_settings: dict | None = None):
    """Start connecting (service), consent on the emulator's pages, finish through the web callback."""
    from refstage.domain.audit import Actor
    from refstage.services.salesforce_connect import start_connect
    from tests.oauth_support import console_session

    owner = console_session(client, tenant_id)
    started = start_connect(rt, tenant_id, actor=Actor.system("test"), owner=owner, name="Acme org",
                            login_host=rt.settings.extra["login_host"])
    location = browser_consent(started.authorize_url)
    q = callback_query(location)
    assert q["state"] == started.state
    r = client.get("/salesforce/oauth/callback", query_string=q)
    assert r.status_code == 200, r.get_data(as_text=True)
    if conn_settings:
        with rt.uow(tenant_id) as uow:
            conn = uow.connections.get(started.connection_id)
            conn.settings.update(conn_settings)
            uow.connections.save(conn)
            uow.commit()
    return started.connection_id


def setup_world(rt, client, conn_settings: dict | None = None):
    from refstage.domain.audit import Actor, ActorKind
    from refstage.services import programs, tenants

    admin = Actor(ActorKind.PERSON, "u1", "admin@acme.test")
    tenant = tenants.create_tenant(rt, "Acme", "acme")
    connection_id = connect(rt, client, tenant.id, conn_settings)
    program = programs.create_program(rt, tenant.id, {**PROGRAM, "connection_id": connection_id}, admin)
    programs.set_program_status(rt, tenant.id, program.id, "live", admin)
    return tenant.id, connection_id, program.id


def refer(rt, tenant_id: str, program_id: str, n: int) -> list[str]:
    from refstage.services.referrals import FriendInput, capture_referral

    with rt.uow(tenant_id) as uow:
        advocates = uow.advocates.list(program_id=program_id, limit=n)
    ids = []
    for i, adv in enumerate(advocates):
        ref = capture_referral(rt, adv.code, FriendInput(name=f"Friend Number{i}", email=f"friend{i}@newco{i}.example",
                                                         company=f"NewCo {i}", consent=True))
        ids.append(ref.id)
    return ids


def final_state(rt, admin: OrgAdmin, tenant_id: str, program_id: str) -> dict:
    """Everything a clean run and a faulty run must agree on (ids aside)."""
    from refstage.adapters.db import models as m
    from sqlalchemy import func, select

    with rt.uow(tenant_id) as uow:
        s = uow.session
        advocates = s.scalar(select(func.count()).select_from(m.AdvocateRow).where(m.AdvocateRow.program_id == program_id))
        links = s.scalar(select(func.count()).select_from(m.AdvocateRow).where(m.AdvocateRow.link_written_at.is_not(None)))
        statuses = sorted(s.scalars(select(m.ReferralRow.status)))
        rewards = list(s.execute(select(m.RewardRow.referral_id, m.RewardRow.rule_key)))
        pending = s.scalar(select(func.count()).select_from(m.PendingWriteRow))
    per_referral: dict[str, int] = {}
    for referral_id, _ in rewards:
        per_referral[referral_id] = per_referral.get(referral_id, 0) + 1
    return {
        "advocates": advocates, "links": links, "referral_statuses": statuses, "rewards": len(rewards),
        "rewards_per_referral": sorted(set(per_referral.values())), "pending_writes": pending,
        "org_contacts_with_code": admin.count("SELECT COUNT() FROM Contact WHERE Referral_Code__c != null"),
        "org_referral_leads": admin.count("SELECT COUNT() FROM Lead WHERE LeadSource = 'Referral' AND Refstage_Referral_Id__c != null"),
        "org_referrals": admin.count("SELECT COUNT() FROM Referral__c"),
        "org_referrals_won": admin.count("SELECT COUNT() FROM Referral__c WHERE Referred_Opportunity__c != null AND Status__c = 'rewarded'")
        + admin.count("SELECT COUNT() FROM Referral__c WHERE Referred_Opportunity__c != null AND Status__c = 'qualified'"),
        "org_rewards": admin.count("SELECT COUNT() FROM Referral_Reward__c"),
        "org_opps_linked": admin.count("SELECT COUNT() FROM Opportunity WHERE Referral__c != null"),
    }
