"""The Metadata API of the emulated org over SOAP (deploy, checkDeployStatus, describeMetadata,
listMetadata), what a deploy leaves in the org, and the deployed automation (a record-triggered flow
sending a deployed Outbound Message). The official CLI against it: test_sf_cli.py."""

from __future__ import annotations

import base64
import io
import re
import shutil
import time
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import requests
from defusedxml import ElementTree as ET
from sf_emu_helpers import VERSION, make_emulator, password_token
from test_outbound_metadata import Receiver

from refstage_devkit.emulators.salesforce.deploy import default_package_dir, source_zip

MD = "http://soap.sforce.com/2006/04/metadata"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
PUSH_FIXTURE = Path(__file__).parent / "metadata" / "pushpath"


class MetadataClient:
    """A bare SOAP client of /services/Soap/m (what jsforce and the CLI send)."""

    def __init__(self, emu, token: str) -> None:
        self.url = f"{emu.base_url}/services/Soap/m/{VERSION}"
        self.token = token

    def call(self, operation: str, inner: str, token: str | None = None) -> requests.Response:
        body = (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}" xmlns="{MD}">'
                f"<soapenv:Header><SessionHeader><sessionId>{escape(token if token is not None else self.token)}"
                f"</sessionId></SessionHeader></soapenv:Header><soapenv:Body><{operation}>{inner}</{operation}>"
                "</soapenv:Body></soapenv:Envelope>")
        return requests.post(self.url, data=body.encode(), timeout=30,
                             headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})

    def deploy(self, zip_data: bytes, **options: bool) -> str:
        opts = "".join(f"<{k}>{str(v).lower()}</{k}>" for k, v in {"rollbackOnError": True, "singlePackage": True,
                                                                      **options}.items())
        r = self.call("deploy", f"<ZipFile>{base64.b64encode(zip_data).decode()}</ZipFile>"
                                f"<DeployOptions>{opts}</DeployOptions>")
        assert r.status_code == 200, r.text
        result = ET.fromstring(r.content).find(f".//{{{MD}}}result")
        assert result.findtext(f"{{{MD}}}done") == "false" and result.findtext(f"{{{MD}}}state") == "Queued"
        return result.findtext(f"{{{MD}}}id")

    def wait(self, job_id: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.call("checkDeployStatus", f"<asyncProcessId>{job_id}</asyncProcessId>"
                                               "<includeDetails>true</includeDetails>")
            assert r.status_code == 200, r.text
            result = ET.fromstring(r.content).find(f".//{{{MD}}}result")
            if result.findtext(f"{{{MD}}}done") == "true":
                return _to_dict(result)
            time.sleep(0.1)
        raise AssertionError("deploy did not finish")


def _to_dict(el) -> dict:
    out: dict = {}
    for child in el:
        key = child.tag.split("}")[1]
        value = _to_dict(child) if len(child) else (child.text or "")
        if key in ("componentFailures", "componentSuccesses"):
            out.setdefault(key, []).append(value)
        else:
            out[key] = value
    return out


def _package_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "force-app"
    shutil.copytree(default_package_dir(), dest)
    return dest


def _integration_users(source: Path) -> set[str]:
    return {m for p in source.rglob("*.workflow-meta.xml")
            for m in re.findall(r"<integrationUser>([^<]+)</integrationUser>", p.read_text())}


@pytest.fixture
def bare(cert_dir):
    """An org without the package: standard objects only."""
    with make_emulator(cert_dir, seed="demo", bare=True) as emu:
        yield emu


@pytest.fixture
def md(bare) -> MetadataClient:
    return MetadataClient(bare, password_token(bare)["access_token"])


def _api(emu, token):
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s, f"{emu.base_url}/services/data/v{VERSION}"


def _sobjects(emu, token) -> set[str]:
    s, base = _api(emu, token)
    return {o["name"] for o in s.get(f"{base}/sobjects", timeout=10).json()["sobjects"]}


def test_the_package_deploys_and_becomes_the_orgs_configuration(bare, md):
    for username in _integration_users(default_package_dir()):
        s, base = _api(bare, md.token)  # an admin creates the integration user before deploying
        assert s.post(f"{base}/sobjects/User", json={"Username": username, "LastName": "Integration",
                                                       "Email": username}, timeout=10).status_code == 201
    assert "Referral__c" not in _sobjects(bare, md.token)
    result = md.wait(md.deploy(source_zip(default_package_dir())))
    assert result["status"] == "Succeeded" and result["success"] == "true", result.get("details")
    assert result["numberComponentErrors"] == "0"
    assert int(result["numberComponentsDeployed"]) == int(result["numberComponentsTotal"]) > 10
    details = result["details"]
    assert "componentFailures" not in details
    deployed = {(m["componentType"], m["fullName"]) for m in details["componentSuccesses"]}
    assert ("CustomObject", "Referral__c") in deployed and ("CustomField", "Referral__c.Status__c") in deployed
    assert ("PermissionSet", "Referral_Integration") in deployed
    assert details["runTestResult"]["numTestsRun"] == "0"

    # The org now has what deployed: objects and fields, permission sets (assignable), components listed.
    s, base = _api(bare, md.token)
    assert {"Referral__c", "Referral_Program__c", "Referral_Reward__c"} <= _sobjects(bare, md.token)
    fields = {f["name"] for f in s.get(f"{base}/sobjects/Referral__c/describe", timeout=10).json()["fields"]}
    assert {"Status__c", "Friend_Email__c"} <= fields
    perm = s.get(f"{base}/query", params={"q": "SELECT Id, Label, IsCustom FROM PermissionSet WHERE "
                                                "Name = 'Referral_Integration'"}, timeout=10).json()["records"]
    assert len(perm) == 1 and perm[0]["IsCustom"] is True
    admin = bare.org.admin_id
    r = s.post(f"{base}/sobjects/PermissionSetAssignment", json={"AssigneeId": admin, "PermissionSetId": perm[0]["Id"]},
               timeout=10)
    assert r.status_code == 201, r.text
    again = s.post(f"{base}/sobjects/PermissionSetAssignment",
                   json={"AssigneeId": admin, "PermissionSetId": perm[0]["Id"]}, timeout=10)
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "DUPLICATE_VALUE"
    r = md.call("listMetadata", "<queries><type>PermissionSet</type></queries><queries><type>CustomField</type>"
                                "</queries><asOfVersion>65.0</asOfVersion>")
    listed = {(p.findtext(f"{{{MD}}}type"), p.findtext(f"{{{MD}}}fullName"))
              for p in ET.fromstring(r.content).iter(f"{{{MD}}}result")}
    assert ("PermissionSet", "Referral_Viewer") in listed and ("CustomField", "Referral__c.Status__c") in listed

    # Deploying the same package again updates: nothing is created twice.
    again = md.wait(md.deploy(source_zip(default_package_dir())))
    assert again["status"] == "Succeeded"
    assert all(m["created"] == "false" for m in again["details"]["componentSuccesses"])


def test_a_broken_package_fails_with_component_errors_and_rolls_back(bare, md, tmp_path):
    pkg = _package_copy(tmp_path)
    perm = pkg / "main/default/permissionsets/Referral_Integration.permissionset-meta.xml"
    text = perm.read_text()
    perm.write_text(text.replace("<field>Contact.Referral_Code__c</field>", "<field>Contact.No_Such_Field__c</field>"))
    field = pkg / "main/default/objects/Referral__c/fields/Status__c.field-meta.xml"
    field.write_text(field.read_text().replace("<type>Picklist</type>", "<type>PickList</type>"))
    result = md.wait(md.deploy(source_zip(pkg)))
    assert result["status"] == "Failed" and result["success"] == "false"
    assert result["numberComponentsDeployed"] == "0"
    problems = {(m["componentType"], m["fullName"], m["problem"]) for m in result["details"]["componentFailures"]}
    assert ("PermissionSet", "Referral_Integration",
            "In field: field - no CustomField named Contact.No_Such_Field__c found") in problems
    # A schema error fails the whole file (the object), as the Metadata API's parser does, with its position.
    assert ("CustomObject", "Referral__c",
            "Error parsing file: 'PickList' is not a valid value for the enum 'FieldType'") in problems
    parse_failure = next(m for m in result["details"]["componentFailures"] if "PickList" in m["problem"])
    assert int(parse_failure["lineNumber"]) > 1 and parse_failure["problemType"] == "Error"
    # ...and what depends on the object fails with it.
    assert ("CustomField", "Account.Referral__c",
            "referenceTo value of 'Referral__c' does not resolve to a valid sObject type") in problems
    if _integration_users(pkg):
        assert any(t == "WorkflowOutboundMessage" and p.startswith(
            "Cannot find a user that matches any of the following usernames: ") for t, _, p in problems)
    # All or nothing: not even the good components are in the org.
    assert "Referral__c" not in _sobjects(bare, md.token)
    r = md.call("listMetadata", "<queries><type>PermissionSet</type></queries>")
    assert ET.fromstring(r.content).find(f".//{{{MD}}}result") is None


def test_a_permission_on_a_required_field_is_refused(bare, md, tmp_path):
    pkg = _package_copy(tmp_path)
    viewer = pkg / "main/default/permissionsets/Referral_Viewer.permissionset-meta.xml"
    viewer.write_text(viewer.read_text().replace("</PermissionSet>", "    <fieldPermissions>\n        <editable>true"
                                                 "</editable>\n        <field>Referral_Reward__c.Referral__c</field>"
                                                 "\n        <readable>true</readable>\n    </fieldPermissions>\n"
                                                 "</PermissionSet>"))
    result = md.wait(md.deploy(source_zip(pkg, types={"CustomObject", "PermissionSet"})))
    assert result["status"] == "Failed"
    assert [(m["componentType"], m["fullName"], m["problem"]) for m in result["details"]["componentFailures"]] == [
        ("PermissionSet", "Referral_Viewer", "You cannot deploy to a required field: Referral_Reward__c.Referral__c")]


def test_partial_success_deploys_what_passed_when_rollback_is_off(bare, md, tmp_path):
    pkg = _package_copy(tmp_path)
    perm = pkg / "main/default/permissionsets/Referral_Integration.permissionset-meta.xml"
    perm.write_text(perm.read_text().replace("<field>Contact.Referral_Code__c</field>",
                                             "<field>Contact.No_Such_Field__c</field>"))
    (pkg / "main/default/objects/Referral__c/fields/Broken__c.field-meta.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<CustomField xmlns="{MD}">\n    <fullName>Broken__c</fullName>\n'
        "    <label>Broken</label>\n    <referenceTo>Nope__c</referenceTo>\n    <relationshipName>Broken</relationshipName>"
        "\n    <type>Lookup</type>\n</CustomField>\n")
    layout = pkg / "main/default/layouts/Referral_Program__c-Referral Program Layout.layout-meta.xml"
    layout.write_text(layout.read_text().replace("<field>Name</field>", "<field>Nickname__c</field>", 1))
    result = md.wait(md.deploy(source_zip(pkg), rollbackOnError=False))
    assert result["status"] == "SucceededPartial" and result["success"] == "true"
    failed = {m["fullName"]: m["problem"] for m in result["details"]["componentFailures"]}
    assert "Referral_Integration" in failed
    assert failed["Referral_Program__c-Referral Program Layout"] == (
        "In field: field - no CustomField named Referral_Program__c.Nickname__c found")
    assert failed["Referral__c.Broken__c"] == "referenceTo value of 'Nope__c' does not resolve to a valid sObject type"
    # the object and its other fields deployed; only the failing field stayed out
    s, base = _api(bare, md.token)
    fields = {f["name"] for f in s.get(f"{base}/sobjects/Referral__c/describe", timeout=10).json()["fields"]}
    assert "Status__c" in fields and "Broken__c" not in fields
    succeeded = {(m["componentType"], m["fullName"]) for m in result["details"]["componentSuccesses"]}
    assert ("CustomObject", "Referral__c") in succeeded and ("CustomField", "Referral__c.Broken__c") not in succeeded
    assert "Referral__c" in _sobjects(bare, md.token)
    s, base = _api(bare, md.token)
    names = {r["Name"] for r in s.get(f"{base}/query", params={"q": "SELECT Name FROM PermissionSet"},
                                      timeout=10).json()["records"]}
    assert "Referral_Viewer" in names and "Referral_Integration" not in names


def test_check_only_validates_without_changing_the_org(bare, md):
    result = md.wait(md.deploy(source_zip(default_package_dir(), types={"CustomObject"}), checkOnly=True))
    assert result["status"] == "Succeeded" and result["checkOnly"] == "true"
    assert "Referral__c" not in _sobjects(bare, md.token)


def test_unknown_but_valid_types_deploy_and_are_listed(bare, md):
    files = {
        "package.xml": f'<Package xmlns="{MD}"><types><members>Refstage</members><name>CustomApplication</name>'
                       "</types><types><members>CustomLabels</members><name>CustomLabels</name></types>"
                       "<version>65.0</version></Package>",
        "applications/Refstage.app": f'<CustomApplication xmlns="{MD}"><label>Refstage</label>'
                                     "<navType>Standard</navType><formFactors>Large</formFactors>"
                                     "</CustomApplication>",
        "labels/CustomLabels.labels": f'<CustomLabels xmlns="{MD}"><labels><fullName>Greeting</fullName>'
                                      "<language>en_US</language><protected>false</protected>"
                                      "<shortDescription>Greeting</shortDescription><value>Hello</value></labels>"
                                      "</CustomLabels>",
    }
    result = md.wait(md.deploy(_zip(files)))
    assert result["status"] == "Succeeded", result["details"]
    r = md.call("listMetadata", "<queries><type>CustomApplication</type></queries>"
                                "<queries><type>CustomLabel</type></queries>")
    listed = {p.findtext(f"{{{MD}}}fullName") for p in ET.fromstring(r.content).iter(f"{{{MD}}}result")}
    assert {"Refstage", "Greeting"} <= listed
    bad = dict(files)
    bad["applications/Refstage.app"] = bad["applications/Refstage.app"].replace("<navType>Standard</navType>",
                                                                                "<navKind>Standard</navKind>")
    failed = md.wait(md.deploy(_zip(bad)))
    assert failed["status"] == "Failed"
    assert failed["details"]["componentFailures"]["problem"] if isinstance(failed["details"]["componentFailures"],
                                                                           dict) else True
    problems = [m["problem"] for m in failed["details"]["componentFailures"]]
    assert problems == [f"Error parsing file: Element {{{MD}}}navKind invalid at this location in type "
                        "CustomApplication"]


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


def test_requests_that_cannot_deploy_get_faults_or_errors(bare, md):
    r = md.call("deploy", "<ZipFile>AAAA</ZipFile>", token="not-a-session")
    assert r.status_code == 500
    assert ET.fromstring(r.content).findtext(".//faultcode") == "sf:INVALID_SESSION_ID"
    r = md.call("deploy", "<ZipFile>@@not base64@@</ZipFile>")
    assert r.status_code == 500 and "INVALID_ZIP" in r.text
    result = md.wait(md.deploy(b"this is not a zip"))
    assert result["status"] == "Failed" and result["errorStatusCode"] == "INVALID_ZIP"
    evil = _zip({"package.xml": f'<Package xmlns="{MD}"><version>65.0</version></Package>',
                 "../../etc/passwd": "x"})
    result = md.wait(md.deploy(evil))
    assert result["status"] == "Failed" and "Invalid file name" in result["errorMessage"]
    doctype = _zip({"package.xml": f'<Package xmlns="{MD}"><version>65.0</version></Package>',
                    "applications/X.app": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>'
                                          f'<CustomApplication xmlns="{MD}"><label>&a;</label></CustomApplication>'})
    result = md.wait(md.deploy(doctype))
    assert result["status"] == "Failed"
    assert "DOCTYPE is disallowed" in result["details"]["componentFailures"][0]["problem"]
    r = md.call("checkDeployStatus", "<asyncProcessId>0Af000000000000AAA</asyncProcessId>")
    assert r.status_code == 500 and "INVALID_ID_FIELD" in r.text
    r = md.call("describeMetadata", "<asOfVersion>65.0</asOfVersion>")
    names = {o.findtext(f"{{{MD}}}xmlName") for o in ET.fromstring(r.content).iter(f"{{{MD}}}metadataObjects")}
    assert {"CustomObject", "Flow", "Workflow", "PermissionSet", "ExternalClientApplication"} <= names


def test_a_deployed_flow_sends_the_deployed_outbound_message(bare, md):
    receiver = Receiver()
    try:
        s, base = _api(bare, md.token)
        assert s.post(f"{base}/sobjects/User", json={"Username": "integration@refstage.test", "LastName": "Int",
                                                       "Email": "integration@refstage.test"}, timeout=10).ok
        data = source_zip(PUSH_FIXTURE, rewrite=lambda name, b: b.replace(
            b"https://receiver.example.com/outbound", receiver.url.encode()))
        result = md.wait(md.deploy(data))
        assert result["status"] == "Succeeded", result["details"]
        account = s.post(f"{base}/sobjects/Account", json={"Name": "Flow Test"}, timeout=10).json()["id"]
        opp = s.post(f"{base}/sobjects/Opportunity", json={"Name": "Deal", "AccountId": account, "Amount": 500,
                                                            "StageName": "Prospecting", "CloseDate": "2026-12-31"},
                     timeout=10).json()["id"]
        other = s.post(f"{base}/sobjects/Opportunity", json={"Name": "Deal 2", "AccountId": account, "Amount": 10,
                                                              "StageName": "Prospecting", "CloseDate": "2026-12-31"},
                       timeout=10).json()["id"]
        assert s.patch(f"{base}/sobjects/Opportunity/{other}", json={"Amount": 20}, timeout=10).status_code == 204
        assert s.patch(f"{base}/sobjects/Opportunity/{opp}", json={"StageName": "Closed Won"},
                       timeout=10).status_code == 204
        # Already meeting the condition: only "updated to meet the criteria" fires, so no second message.
        assert s.patch(f"{base}/sobjects/Opportunity/{opp}", json={"Amount": 600}, timeout=10).status_code == 204
        assert bare.org.outbound.wait_idle(10)
        time.sleep(0.3)
        deliveries = [d for d in bare.control.deliveries() if d["acked"]]
        assert [d["recordIds"] for d in deliveries] == [[opp]]
        assert deliveries[0]["fullName"] == "Opportunity.Test_Opportunity_Won"
        assert deliveries[0]["name"] == "Test Opportunity Won" and deliveries[0]["flows"] == ["Test_Opportunity_Won"]
        body = ET.fromstring(receiver.bodies[0][1])
        ns = {"o": "http://soap.sforce.com/2005/09/outbound", "sf": "urn:sobject.enterprise.soap.sforce.com"}
        assert body.findtext(".//o:ActionId", namespaces=ns) == deliveries[0]["ruleId"]
        assert body.findtext(".//sf:StageName", namespaces=ns) == "Closed Won"
        assert body.find(".//sf:CloseDate", namespaces=ns) is None  # only the message's fields
        assert len(receiver.bodies) == 1
    finally:
        receiver.close()


def test_a_flow_naming_a_missing_outbound_message_does_not_deploy(bare, md, tmp_path):
    pkg = tmp_path / "push"
    shutil.copytree(PUSH_FIXTURE, pkg)
    (pkg / "workflows" / "Opportunity.workflow-meta.xml").unlink()
    result = md.wait(md.deploy(source_zip(pkg)))
    assert result["status"] == "Failed"
    [failure] = result["details"]["componentFailures"]
    assert failure["componentType"] == "Flow" and failure["problem"] == (
        "Send_Won (Action) - We can't find an action with the name and action type that you specified.")


def test_organization_tooling_and_query_columns(shared_emu, shared_api):
    org = shared_api.get("query", params={"q": "SELECT Name, InstanceName, IsSandbox, TrialExpirationDate, "
                                               "NamespacePrefix, OrganizationType FROM Organization"}).json()
    [rec] = org["records"]
    assert rec["IsSandbox"] is False and rec["OrganizationType"] == "Developer Edition"
    assert rec["NamespacePrefix"] is None and rec["TrialExpirationDate"] is None
    assert rec["attributes"]["url"].endswith(shared_emu.org.org_id)
    r = shared_api.post("sobjects/Organization", json={"Name": "x"})
    assert r.status_code == 400
    r = shared_api.get("tooling/query", params={"q": "SELECT Id, SandboxName FROM SandboxProcess"})
    assert r.status_code == 200 and r.json()["records"] == [] and r.json()["entityTypeName"] == "SandboxProcess"
    r = shared_api.get("tooling/query", params={"q": "SELECT Id FROM NoSuchThing"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_TYPE"
    cols = shared_api.get("query", params={"q": "SELECT Id, Name, Account.Name, Account.Owner.Email FROM Opportunity",
                                           "columns": "true"}).json()
    assert cols["entityName"] == "Opportunity" and cols["idSelected"] is True
    top = {c["columnName"]: c for c in cols["columnMetadata"]}
    assert list(top) == ["Id", "Name", "Account"]
    assert top["Id"]["apexType"] == "Id" and top["Name"]["updatable"] is True and top["Name"]["custom"] is False
    account = top["Account"]
    assert account["foreignKeyName"] == "AccountId" and account["apexType"] is None
    assert [c["columnName"] for c in account["joinColumns"]] == ["Name", "Owner"]
    assert account["joinColumns"][1]["joinColumns"][0]["displayName"] == "Account.Owner.Email"
    count = shared_api.get("query", params={"q": "SELECT COUNT(Id) FROM Opportunity", "columns": "true"}).json()
    assert count["columnMetadata"][0]["aggregate"] is True and count["columnMetadata"][0]["displayName"] == "COUNT(Id)"


def test_deployed_configuration_survives_a_restart_and_reads_back(cert_dir, tmp_path):
    data = tmp_path / "org.db"
    receiver = Receiver()
    try:
        with make_emulator(cert_dir, seed="empty", bare=True, data_file=data) as emu:
            md = MetadataClient(emu, password_token(emu)["access_token"])
            s, base = _api(emu, md.token)
            s.post(f"{base}/sobjects/User", json={"Username": "integration@refstage.test", "LastName": "Int",
                                                  "Email": "integration@refstage.test"}, timeout=10)
            zip_data = source_zip(PUSH_FIXTURE, rewrite=lambda name, b: b.replace(
                b"https://receiver.example.com/outbound", receiver.url.encode()))
            assert md.wait(md.deploy(zip_data))["status"] == "Succeeded"
            r = md.call("readMetadata", "<type>Workflow</type><fullNames>Opportunity</fullNames>"
                                        "<fullNames>Nothing</fullNames>")
            records = list(ET.fromstring(r.content).iter(f"{{{MD}}}records"))
            assert records[0].findtext(f"{{{MD}}}fullName") == "Opportunity"
            assert records[0].findtext(f"{{{MD}}}outboundMessages/{{{MD}}}endpointUrl") == receiver.url
            assert records[1].get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"
        with make_emulator(cert_dir, seed="empty", bare=True, data_file=data) as emu:
            s, base = _api(emu, password_token(emu)["access_token"])
            opp = s.post(f"{base}/sobjects/Opportunity", json={"Name": "After restart", "StageName": "Closed Won",
                                                                "CloseDate": "2026-12-31"}, timeout=10).json()["id"]
            assert emu.org.outbound.wait_idle(10)
            assert any(d["acked"] and d["recordIds"] == [opp] for d in emu.control.deliveries())
    finally:
        receiver.close()


def test_retrieve_returns_what_deployed_cut_to_the_members_asked(bare, md):
    for username in _integration_users(default_package_dir()):
        s, base = _api(bare, md.token)
        s.post(f"{base}/sobjects/User", json={"Username": username, "LastName": "Int", "Email": username}, timeout=10)
    assert md.wait(md.deploy(source_zip(default_package_dir())))["status"] == "Succeeded"
    r = md.call("retrieve", "<retrieveRequest><apiVersion>65.0</apiVersion><singlePackage>true</singlePackage>"
                            "<unpackaged><types><members>Referral__c.Status__c</members><members>Referral__c.Nope__c"
                            "</members><name>CustomField</name></types><types><members>Referral_Viewer</members>"
                            "<name>PermissionSet</name></types><version>65.0</version></unpackaged>"
                            "</retrieveRequest>")
    job_id = ET.fromstring(r.content).findtext(f".//{{{MD}}}id")
    r = md.call("checkRetrieveStatus", f"<asyncProcessId>{job_id}</asyncProcessId><includeZip>true</includeZip>")
    result = ET.fromstring(r.content).find(f".//{{{MD}}}result")
    assert result.findtext(f"{{{MD}}}status") == "Succeeded" and result.findtext(f"{{{MD}}}done") == "true"
    problems = [m.findtext(f"{{{MD}}}problem") for m in result.findall(f"{{{MD}}}messages")]
    assert problems == ["Entity of type 'CustomField' named 'Referral__c.Nope__c' cannot be found"]
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(result.findtext(f"{{{MD}}}zipFile"))))
    assert sorted(archive.namelist()) == ["objects/Referral__c.object", "package.xml",
                                          "permissionsets/Referral_Viewer.permissionset"]
    obj = ET.fromstring(archive.read("objects/Referral__c.object"))
    assert [f.findtext(f"{{{MD}}}fullName") for f in obj] == ["Status__c"]
    listed = {(p.findtext(f"{{{MD}}}type"), p.findtext(f"{{{MD}}}fullName"))
              for p in result.findall(f"{{{MD}}}fileProperties")}
    assert ("CustomField", "Referral__c.Status__c") in listed and ("PermissionSet", "Referral_Viewer") in listed


def test_the_backends_push_path_installer_deploys_into_the_emulated_org(cert_dir):
    """The backend's own installer (issue 19) against this org: SOAP deploy, poll, FlowDefinitionView."""
    with make_emulator(cert_dir, seed="demo", metadata_dir=default_package_dir()) as emu:
        _install_with_the_backend_installer(emu)


def _install_with_the_backend_installer(emu) -> None:
    from types import SimpleNamespace

    from refstage.adapters.crm.salesforce.metadata_api import MetadataApi
    from refstage.adapters.crm.salesforce.push_installer import SalesforcePushPathInstaller

    token = password_token(emu)["access_token"]
    s, base = _api(emu, token)

    class Credentials:
        access_token, instance_url = token, emu.base_url

        def refresh(self, stale_token: str) -> None:
            raise AssertionError("the session should stay valid")

    class Rest:
        def query(self, soql: str) -> list[dict]:
            r = s.get(f"{base}/query", params={"q": soql}, timeout=10)
            assert r.status_code == 200, r.text
            return r.json()["records"]

    connection = SimpleNamespace(external_username=emu.org.admin_username)
    installer = SalesforcePushPathInstaller(None, connection, metadata=MetadataApi(Credentials(), sleep=lambda _: None),
                                            rest=Rest(), poll_seconds=0.05)
    outcome = installer.install("https://refstage.example.com/webhooks/salesforce/outbound-message/c1/k1")
    assert outcome.status == "active" and not outcome.problems, outcome
    assert outcome.production is False and outcome.test_level == "NoTestRun"
    deployed = {r["fullName"]: r for r in emu.control.outbound_rules() if r.get("deployed")}
    assert deployed["Opportunity.Refstage_Opportunity_Changed"]["endpointUrl"].startswith("https://refstage.example.com/")
    assert deployed["Opportunity.Refstage_Opportunity_Changed"]["integrationUser"] == emu.org.admin_username
