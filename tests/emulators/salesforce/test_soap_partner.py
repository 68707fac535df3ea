"""SOAP Partner API: login, getUserInfo, convertLead and faults, driven by simple-salesforce and jsforce
(both unmodified) and by raw envelopes checked against the vendored partner WSDL's shapes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests
from defusedxml import ElementTree as ET
from sf_emu_helpers import ADMIN, VERSION, Api, make_emulator, password_token
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from refstage_devkit.emulators.salesforce.schema import default_metadata_dir

ROOT = Path(__file__).resolve().parents[3]
NODE_SCRIPT = Path(__file__).parent / "node" / "jsforce_soap.cjs"
NODE = ROOT / "node_modules" / ".bin" / "node"  # the project's pinned Node (package.json devDependencies)
ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS = {"env": ENV, "p": "urn:partner.soap.sforce.com", "sf": "urn:fault.partner.soap.sforce.com"}


def _soap(emu, version: str, body: str, session: str | None = None) -> requests.Response:
    header = f"<env:Header><p:SessionHeader><p:sessionId>{session}</p:sessionId></p:SessionHeader></env:Header>" \
        if session else ""
    envelope = (f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{ENV}" '
                f'xmlns:p="urn:partner.soap.sforce.com">{header}<env:Body>{body}</env:Body></env:Envelope>')
    return requests.post(f"{emu.base_url}/services/Soap/u/{version}", data=envelope.encode(),
                         headers={"Content-Type": "text/xml", "SOAPAction": '""'}, timeout=10)


def _fault(r: requests.Response) -> tuple[str, str, str]:
    assert r.status_code == 500 and r.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    fault = root.find("env:Body/env:Fault", NS)
    detail = fault.find("detail")[0]
    return fault.findtext("faultcode"), detail.tag.split("}")[1], detail.findtext("sf:exceptionMessage", namespaces=NS)


def _login(emu, version="64.0", password=ADMIN[1]) -> requests.Response:
    return _soap(emu, version, f"<p:login><p:username>{ADMIN[0]}</p:username><p:password>{password}</p:password></p:login>")


def test_simple_salesforce_soap_login_then_rest(emu):
    session_id, instance = SalesforceLogin(username=ADMIN[0], password=ADMIN[1], security_token="", sf_version="64.0",
                                           scratch_url=emu.base_url)
    assert instance == emu.base_url.split("//")[1]
    sf = Salesforce(session_id=session_id, instance=instance, version=VERSION)
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] > 0
    with pytest.raises(SalesforceAuthenticationFailed) as err:
        SalesforceLogin(username=ADMIN[0], password="wrong", security_token="", sf_version="64.0", scratch_url=emu.base_url)
    assert err.value.code == "INVALID_LOGIN"
    assert "Invalid username, password, security token; or user locked out." in str(err.value)


def test_login_result_shape_and_versions(emu):
    r = _login(emu)
    assert r.status_code == 200
    result = ET.fromstring(r.content).find("env:Body/p:loginResponse/p:result", NS)
    names = [child.tag.split("}")[1] for child in result]
    assert names == ["metadataServerUrl", "passwordExpired", "sandbox", "serverUrl", "sessionId", "userId", "userInfo"]
    org15 = emu.org.org_id[:15]
    assert result.findtext("p:serverUrl", namespaces=NS) == f"{emu.base_url}/services/Soap/u/64.0/{org15}"
    assert result.findtext("p:metadataServerUrl", namespaces=NS) == f"{emu.base_url}/services/Soap/m/64.0/{org15}"
    info = result.find("p:userInfo", NS)
    assert info.findtext("p:userName", namespaces=NS) == ADMIN[0]
    assert info.findtext("p:organizationId", namespaces=NS) == emu.org.org_id
    session = result.findtext("p:sessionId", namespaces=NS)
    # The session is an ordinary one: getUserInfo over SOAP at the serverUrl, and REST.
    who = requests.post(result.findtext("p:serverUrl", namespaces=NS), data=(
        f'<env:Envelope xmlns:env="{ENV}"><env:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>'
        f'{session}</sessionId></SessionHeader></env:Header><env:Body><getUserInfo xmlns="urn:partner.soap.sforce.com"/>'
        "</env:Body></env:Envelope>"), headers={"Content-Type": "text/xml", "SOAPAction": '""'}, timeout=10)
    assert ET.fromstring(who.content).findtext("env:Body/p:getUserInfoResponse/p:result/p:userName",
                                               namespaces=NS) == ADMIN[0]
    assert Api(emu, session).get("limits").status_code == 200
    # login() does not exist from API 65.0; versions up to 30.0 are retired.
    code, kind, message = _fault(_login(emu, "65.0"))
    assert (code, kind) == ("sf:INVALID_OPERATION", "UnexpectedErrorFault")
    assert message == ("The SOAP Login operation is not available in the API version specified (65.0). Refer to the "
                       "documentation for supported versions.")
    assert _fault(_login(emu, "30.0"))[0] == "sf:UNSUPPORTED_API_VERSION"
    code, kind, message = _fault(_login(emu, password="nope"))
    assert (code, kind) == ("sf:INVALID_LOGIN", "LoginFault")
    # An admin can switch SOAP login() off for the org.
    assert requests.post(f"{emu.base_url}/_emulator/soap-settings", json={"soapLoginEnabled": False},
                         timeout=10).json()["soapLoginEnabled"] is False
    code, _, message = _fault(_login(emu))
    assert code == "sf:INVALID_OPERATION" and message.startswith("SOAP API login() is disabled")


def test_calls_need_a_valid_session(emu):
    body = "<p:convertLead><p:leadConverts><p:leadId>00Q000000000001</p:leadId></p:leadConverts></p:convertLead>"
    code, kind, message = _fault(_soap(emu, "65.0", body))
    assert (code, kind) == ("sf:INVALID_SESSION_ID", "UnexpectedErrorFault")
    code, _, _ = _fault(_soap(emu, "65.0", body, session="00Dbogus!AQbogus"))
    assert code == "sf:INVALID_SESSION_ID"
    assert _fault(_soap(emu, "65.0", "<p:frobnicate/>", session=password_token(emu)["access_token"]))[0] \
        == "sf:INVALID_OPERATION"
    r = requests.post(f"{emu.base_url}/services/Soap/u/65.0", data=b"<not-xml", headers={"Content-Type": "text/xml"},
                      timeout=10)
    assert _fault(r)[0] == "soapenv:Client"


def _lead(sf, **extra) -> str:
    return sf.Lead.create({"FirstName": "Sam", "LastName": "Soap", "Company": "Envelope Ltd",
                           "Email": "sam@envelope.example", **extra})["id"]


def _convert(emu, session, items: str) -> list:
    r = _soap(emu, "65.0", f"<p:convertLead>{items}</p:convertLead>", session)
    assert r.status_code == 200, r.text
    return ET.fromstring(r.content).findall("env:Body/p:convertLeadResponse/p:result", NS)


def test_convert_lead_creates_attaches_and_reports_errors(emu, sf):
    session = password_token(emu)["access_token"]
    first, second = _lead(sf), _lead(sf, LastName="Second")
    account = sf.Account.create({"Name": "Existing Co"})["id"]
    results = _convert(emu, session, (
        f"<p:leadConverts><p:convertedStatus>Closed - Converted</p:convertedStatus><p:leadId>{first}</p:leadId>"
        "<p:opportunityName>Envelope deal</p:opportunityName></p:leadConverts>"
        f"<p:leadConverts><p:accountId>{account}</p:accountId><p:convertedStatus>Closed - Converted</p:convertedStatus>"
        f"<p:doNotCreateOpportunity>true</p:doNotCreateOpportunity><p:leadId>{second}</p:leadId></p:leadConverts>"
        f"<p:leadConverts><p:convertedStatus>Working - Contacted</p:convertedStatus><p:leadId>{first}</p:leadId>"
        "</p:leadConverts>"))
    ok1, ok2, failed = ({c.tag.split("}")[1]: c for c in r} for r in results)
    assert ok1["success"].text == "true" and ok2["success"].text == "true" and failed["success"].text == "false"
    lead = sf.Lead.get(first)
    assert lead["IsConverted"] is True and lead["Status"] == "Closed - Converted"
    assert lead["ConvertedOpportunityId"] == ok1["opportunityId"].text
    assert sf.Opportunity.get(ok1["opportunityId"].text)["Name"] == "Envelope deal"
    assert ok2["accountId"].text == account and ok2["opportunityId"].get(
        "{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"
    assert sf.Contact.get(ok2["contactId"].text)["AccountId"] == account
    assert failed["errors"].findtext("p:statusCode", namespaces=NS) == "CANNOT_UPDATE_CONVERTED_LEAD"
    # A missing status and an unknown lead are per-item errors, not faults.
    bad = _convert(emu, session, "<p:leadConverts><p:leadId>00Q000000000009AAA</p:leadId>"
                                 "<p:convertedStatus>Closed - Converted</p:convertedStatus></p:leadConverts>")
    assert bad[0].findtext("p:errors/p:statusCode", namespaces=NS) == "INVALID_CROSS_REFERENCE_KEY"


def test_custom_fields_map_only_when_configured(cert_dir):
    with make_emulator(cert_dir, seed="empty", metadata_dir=default_metadata_dir()) as emu:
        session = password_token(emu)["access_token"]
        sf = Salesforce(instance_url=emu.base_url, session_id=session, version=VERSION)
        item = "<p:leadConverts><p:convertedStatus>Closed - Converted</p:convertedStatus><p:leadId>{}</p:leadId></p:leadConverts>"
        plain = _lead(sf, Referral_Code__c="CODE-1")
        out = {c.tag.split("}")[1]: c.text for c in _convert(emu, session, item.format(plain))[0]}
        assert sf.Contact.get(out["contactId"])["Referral_Code__c"] is None
        requests.post(f"{emu.base_url}/_emulator/soap-settings", json={"leadConvertMapsCustomFields": True}, timeout=10)
        mapped = _lead(sf, Referral_Code__c="CODE-2", Email="other@envelope.example")
        out = {c.tag.split("}")[1]: c.text for c in _convert(emu, session, item.format(mapped))[0]}
        assert sf.Contact.get(out["contactId"])["Referral_Code__c"] == "CODE-2"


@pytest.mark.skipif(not NODE.exists() or not (ROOT / "node_modules" / "@jsforce" / "jsforce-node").exists(),
                    reason="node and the jsforce dev dependency are needed (npm ci)")
def test_jsforce_logs_in_and_converts_over_soap(emu, sf, cert_dir):
    lead = _lead(sf)
    args = {"loginUrl": emu.base_url, "version": "64.0", "convertVersion": "65.0", "username": ADMIN[0],
            "password": ADMIN[1], "badPassword": "wrong", "leadId": lead, "convertedStatus": "Closed - Converted"}
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "NODE_EXTRA_CA_CERTS": emu.ca_path}
    done = subprocess.run([str(NODE), str(NODE_SCRIPT), json.dumps(args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, out
    assert out["badLogin"] == "INVALID_LOGIN: Invalid username, password, security token; or user locked out."
    assert out["instanceUrl"] == emu.base_url
    assert out["userInfo"]["organizationId"] == emu.org.org_id and out["userInfo"]["id"].startswith("005")
    assert out["lead"]["IsConverted"] is False
    converted = out["converted"]
    assert converted["success"] is True and converted["leadId"] == lead
    assert converted["accountId"].startswith("001") and converted["opportunityId"].startswith("006")
    assert out["again"][0]["success"] is False
    assert [e["statusCode"] for e in out["again"][0]["errors"]] == ["CANNOT_UPDATE_CONVERTED_LEAD"]
    after = out["after"]
    assert after["IsConverted"] is True and after["ConvertedOpportunityId"] == converted["opportunityId"]
    assert sf.Opportunity.get(converted["opportunityId"])["Name"] == "Via jsforce"
