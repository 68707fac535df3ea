"""Control API (/_emulator/), lead conversion, clock, and deterministic fault injection."""

from __future__ import annotations

import time

import pytest
import requests
from sf_emu_helpers import VERSION, Api, make_emulator, password_token
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceGeneralError, SalesforceRefusedRequest

from refstage_devkit.emulators.salesforce.faults import Faults, parse_spec


def test_info_reset_and_seed(api, sf):
    info = api.control("", method="GET").json()
    assert info["instanceUrl"] == api.base and info["organizationId"].startswith("00D")
    r = api.control("seed", {"accounts": 50, "contacts": 40, "leads": 30, "opportunities": 200, "seed": 7})
    assert r.status_code == 200
    assert r.json()["created"] == {"accounts": 50, "contacts": 40, "leads": 30, "opportunities": 200}
    opp = sf.query("SELECT Id, Name, Amount, StageName, CloseDate, IsWon, IsClosed, Account.Name FROM Opportunity "
                   "WHERE StageName = 'Closed Won' LIMIT 1")["records"][0]
    assert opp["IsWon"] is True and opp["IsClosed"] is True and opp["Amount"] > 0 and opp["Account"]["Name"]
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 220
    r = api.control("reset", {"seed": "empty"})
    assert r.json() == {"reset": True, "seed": "empty"}
    fresh = Salesforce(instance_url=api.base, session_id=password_token(api.emu)["access_token"], version=VERSION)
    assert fresh.query("SELECT COUNT() FROM Account")["totalSize"] == 0
    assert fresh.query("SELECT COUNT() FROM OpportunityStage")["totalSize"] == 10


def test_convert_lead_creates_and_links_records(api, sf):
    lead = sf.Lead.create({"FirstName": "Conny", "LastName": "Vert", "Company": "Convertible Ltd",
                           "Email": "conny@convertible.example", "LeadSource": "Partner Referral",
                           "Industry": "Retail"})["id"]
    r = api.control("convert-lead", {"leadId": lead, "opportunityName": "Convertible - first deal"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["success"] is True
    rec = sf.Lead.get(lead)
    assert rec["IsConverted"] is True and rec["Status"] == "Closed - Converted"
    assert rec["ConvertedDate"] == api.control("clock", method="GET").json()["now"][:10]
    assert (rec["ConvertedAccountId"], rec["ConvertedContactId"], rec["ConvertedOpportunityId"]) == (
        out["accountId"], out["contactId"], out["opportunityId"])
    acc = sf.Account.get(out["accountId"])
    con = sf.Contact.get(out["contactId"])
    opp = sf.Opportunity.get(out["opportunityId"])
    assert acc["Name"] == "Convertible Ltd" and acc["Industry"] == "Retail"
    assert con["AccountId"] == acc["Id"] and con["Email"] == "conny@convertible.example"
    assert opp["AccountId"] == acc["Id"] and opp["Name"] == "Convertible - first deal"
    assert opp["LeadSource"] == "Partner Referral" and opp["IsClosed"] is False
    r = api.patch(f"sobjects/Lead/{lead}", json={"Title": "late edit"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    again = api.control("convert-lead", {"leadId": lead})
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"
    # into an existing account and contact, without an opportunity
    lead2 = sf.Lead.create({"LastName": "Second", "Company": "Convertible Ltd"})["id"]
    out2 = api.control("convert-lead", {"leadId": lead2, "accountId": acc["Id"], "contactId": con["Id"],
                                        "doNotCreateOpportunity": True}).json()
    assert out2["accountId"] == acc["Id"] and out2["contactId"] == con["Id"] and out2["opportunityId"] is None
    assert sf.Lead.get(lead2)["ConvertedOpportunityId"] is None


def test_clock_advance_moves_system_fields(api, sf):
    before = api.control("clock", method="GET").json()["now"]
    after = api.control("clock", {"advanceSeconds": 3600}).json()
    assert after["offsetSeconds"] == 3600 and after["now"] > before
    rid = sf.Account.create({"Name": "Future"})["id"]
    assert sf.Account.get(rid)["CreatedDate"][:13] == after["now"][:13]


def test_fault_spec_parsing_and_determinism():
    plan = parse_spec("503:0.1,drop:0.05,401:#2,seed=42,slow=0.5,path=/services/data")
    assert [r.kind for r in plan.rules] == ["503", "drop", "401"] and plan.seed == 42 and plan.path == "/services/data"
    with pytest.raises(ValueError):
        parse_spec("teapot:0.1")
    a, b = Faults("503:0.3,500:0.2,seed=9"), Faults("503:0.3,500:0.2,seed=9")
    seq_a = [a.draw("/services/data/v62.0/query", "GET") for _ in range(200)]
    seq_b = [b.draw("/services/data/v62.0/query", "GET") for _ in range(200)]
    assert seq_a == seq_b and 40 < seq_a.count("503") < 80 and 20 < seq_a.count("500") < 60
    assert Faults("503:1").draw("/_emulator/reset", "POST") is None


def test_http_faults(cert_dir):
    with make_emulator(cert_dir, seed="demo") as emu:
        api = Api(emu, password_token(emu)["access_token"])
        sf = Salesforce(instance_url=emu.base_url, session_id=api.token, version=VERSION)

        def arm(spec):
            assert api.control("faults", {"spec": spec}).status_code == 200

        arm("503:#1")
        r = api.get("limits")
        assert r.status_code == 503
        assert r.json() == [{"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE",
                             "fields": []}]
        assert api.get("limits").status_code == 200
        arm("500:#1")
        with pytest.raises(SalesforceGeneralError):
            sf.query("SELECT Id FROM Account")
        arm("401:#1")
        with pytest.raises(SalesforceExpiredSession):
            sf.query("SELECT Id FROM Account")
        arm("403:#1")
        with pytest.raises(SalesforceRefusedRequest):
            sf.query("SELECT Id FROM Account")
        arm("lock:#1")
        assert api.get("limits").status_code == 200  # reads are not locked
        r = api.post("sobjects/Account", json={"Name": "Locked"})
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
        arm("drop:#1")
        with pytest.raises(requests.ConnectionError):
            requests.get(api.url("limits"), headers=api.s.headers, timeout=5)
        arm("slow:#1,slow=0.4")
        t0 = time.monotonic()
        assert api.get("limits").status_code == 200 and time.monotonic() - t0 >= 0.4
        arm("timeout:#1,timeout=5")
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(api.url("limits"), headers=api.s.headers, timeout=0.5)
        faults = api.control("faults", method="GET").json()
        assert faults["injected"] == {"503": 1, "500": 1, "401": 1, "403": 1, "lock": 1, "drop": 1, "slow": 1,
                                      "timeout": 1}
        assert api.control("faults", method="DELETE").json()["rules"] == []
        assert api.control("faults", {"spec": "bogus:1"}).status_code == 400


def test_faults_from_constructor_are_seeded(cert_dir):
    def run():
        with make_emulator(cert_dir, seed="empty", faults="503:0.5,seed=3,path=/services/data") as emu:
            tok = password_token(emu)["access_token"]
            return [requests.get(f"{emu.base_url}/services/data/v{VERSION}/limits",
                                 headers={"Authorization": f"Bearer {tok}"}, timeout=5).status_code
                    for _ in range(20)]
    first, second = run(), run()
    assert first == second and 503 in first and 200 in first


def test_sessions_expire_and_revoke_control(api, emu):
    assert api.get("limits").status_code == 200
    api.control("sessions/expire")
    assert api.get("limits").status_code == 401
    tok = password_token(emu)["access_token"]
    api2 = Api(emu, tok)
    assert api2.get("limits").status_code == 200
    api2.control("sessions/revoke", {})
    assert api2.get("limits").status_code == 401


def test_python_control_handle(emu):
    c = emu.control
    assert c.seed(accounts=3)["accounts"] == 3
    assert c.usage()["DailyApiRequests"]["Max"] == 100000
    c.set_limits(DailyApiRequests=10)
    assert c.usage()["DailyApiRequests"]["Max"] == 10
    assert c.set_faults("503:0.5,seed=1")["seed"] == 1
    c.set_faults(None)
