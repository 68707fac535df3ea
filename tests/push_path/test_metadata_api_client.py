"""The Metadata API SOAP client against WSDL-shaped answers (responses)."""

from __future__ import annotations

import base64
import zipfile
import io

import pytest
import responses
from defusedxml import ElementTree as SafeET

from refstage.adapters.crm.salesforce.metadata_api import DeployOptions, MetadataApi
from refstage.adapters.crm.salesforce.metadata_schema import MD_NS, load_schema, validate_element
from refstage.services.ports import CrmError
from tests.push_path import soap_bodies as bodies

INSTANCE = "https://acme.my.salesforce.com"
ENDPOINT = f"{INSTANCE}/services/Soap/m/65.0"
NS = {"s": "http://schemas.xmlsoap.org/soap/envelope/", "md": MD_NS}


class Creds:
    def __init__(self) -> None:
        self.access_token = "00Dtoken!old"
        self.instance_url = INSTANCE
        self.refreshed: list[str] = []

    def refresh(self, stale_token: str) -> None:
        self.refreshed.append(stale_token)
        self.access_token = "00Dtoken!new"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        # A fixed timestamp: writestr(name) stamps "now", so two calls across a second boundary differ.
        z.writestr(zipfile.ZipInfo("package.xml", date_time=(2026, 12, 2, 0, 0, 0)), "<Package/>")
    return buffer.getvalue()


def _request_body(call) -> SafeET:
    return SafeET.fromstring(call.request.body)


def test_sample_answers_follow_the_wsdl():
    """Our fixtures are themselves checked against the DeployResult type, so the client is tested on real shapes."""
    schema = load_schema()
    for text in (bodies.check_status(), bodies.check_status(status="Failed", failures=[{
            "name": "Opportunity.Refstage_Opportunity_Changed", "ctype": "WorkflowOutboundMessage",
            "file_name": "workflows/Opportunity.workflow", "problem": "boom", "line": 3, "column": 9}],
            test_failures=[{"class": "RefstagePushPathTest", "method": "m", "message": "x"}],
            flow_warnings=["Refstage_Lead_Status_Changed"], tests=2)):
        result = SafeET.fromstring(text).find("s:Body/md:checkDeployStatusResponse/md:result", NS)
        assert validate_element(schema, result, "DeployResult", "result") == []


@responses.activate
def test_deploy_sends_the_zip_and_options_in_wsdl_order():
    responses.post(ENDPOINT, body=bodies.deploy_response("0Af0000000000ABCDE"), content_type="text/xml")
    api = MetadataApi(Creds())
    deploy_id = api.deploy(_zip(), DeployOptions(test_level="RunSpecifiedTests", run_tests=("RefstagePushPathTest",)))
    assert deploy_id == "0Af0000000000ABCDE"
    envelope = _request_body(responses.calls[0])
    assert envelope.findtext("s:Header/md:SessionHeader/md:sessionId", namespaces=NS) == "00Dtoken!old"
    deploy = envelope.find("s:Body/md:deploy", NS)
    assert base64.b64decode(deploy.findtext("md:ZipFile", namespaces=NS)) == _zip()
    options = deploy.find("md:DeployOptions", NS)
    schema = load_schema()
    assert validate_element(schema, options, "DeployOptions", "DeployOptions") == []
    assert [c.tag.split("}")[1] for c in options][-3:] == ["runTests", "singlePackage", "testLevel"]
    assert options.findtext("md:rollbackOnError", namespaces=NS) == "true"


def test_options_refuse_what_salesforce_would():
    with pytest.raises(ValueError):
        DeployOptions(test_level="RunSomeTests")
    with pytest.raises(ValueError):
        DeployOptions(test_level="RunSpecifiedTests")
    with pytest.raises(ValueError):
        DeployOptions(test_level="NoTestRun", run_tests=("A",))


@responses.activate
def test_wait_polls_until_done_and_parses_failures_with_lines_and_tests():
    responses.post(ENDPOINT, body=bodies.check_status(status="InProgress", done=False), content_type="text/xml")
    responses.post(ENDPOINT, body=bodies.check_status(status="InProgress", done=False), content_type="text/xml")
    failed = bodies.check_status(status="Failed", failures=[{
        "name": "Opportunity.Refstage_Opportunity_Changed", "ctype": "WorkflowOutboundMessage",
        "file_name": "workflows/Opportunity.workflow", "line": 18, "column": 26,
        "problem": "Cannot find a user that matches any of the following usernames: nobody@example.com"}],
        test_failures=[{"class": "RefstagePushPathTest", "method": "leadStatusChangeRunsTheLeadFlow",
                        "message": "System.DmlException: FIELD_CUSTOM_VALIDATION_EXCEPTION"}],
        flow_warnings=["Refstage_Opportunity_Stage_Changed"], tests=2)
    responses.post(ENDPOINT, body=failed, content_type="text/xml")  # done, without details
    responses.post(ENDPOINT, body=failed, content_type="text/xml")  # the details call
    sleeps: list[float] = []
    result = MetadataApi(Creds(), sleep=sleeps.append).wait("0Af000000000001AAA", poll_seconds=2)
    assert len(responses.calls) == 4
    assert sleeps == [2, 3.0]
    assert not result.success and result.status == "Failed" and result.component_errors == 1
    [failure] = result.failures
    assert (failure.component_type, failure.line_number, failure.column_number) == ("WorkflowOutboundMessage", 18, 26)
    problems = result.problems()
    assert "Cannot find a user" in problems[0] and "workflows/Opportunity.workflow:18:26" in problems[0]
    assert any("RefstagePushPathTest.leadStatusChangeRunsTheLeadFlow" in p for p in problems)
    assert any(p.startswith("Refstage_Opportunity_Stage_Changed: Test coverage") for p in problems)
    last = _request_body(responses.calls[3])
    assert last.findtext("s:Body/md:checkDeployStatus/md:includeDetails", namespaces=NS) == "true"


@responses.activate
def test_invalid_session_refreshes_once_then_succeeds():
    responses.post(ENDPOINT, body=bodies.fault("INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader"),
                   status=500, content_type="text/xml")
    responses.post(ENDPOINT, body=bodies.deploy_response(), content_type="text/xml")
    creds = Creds()
    assert MetadataApi(creds).deploy(_zip(), DeployOptions()) == "0Af000000000001AAA"
    assert creds.refreshed == ["00Dtoken!old"]
    assert _request_body(responses.calls[1]).findtext("s:Header/md:SessionHeader/md:sessionId", namespaces=NS) == "00Dtoken!new"


@responses.activate
def test_other_faults_and_garbage_become_crm_errors():
    responses.post(ENDPOINT, body=bodies.fault("INSUFFICIENT_ACCESS", "use of the Metadata API requires a user with "
                                               "the ModifyAllData or ModifyMetadata permissions"),
                   status=500, content_type="text/xml")
    with pytest.raises(CrmError) as err:
        MetadataApi(Creds()).deploy(_zip(), DeployOptions())
    assert err.value.code == "INSUFFICIENT_ACCESS" and not err.value.transient
    responses.replace(responses.POST, ENDPOINT, body="<html>maintenance</html><", status=503)
    with pytest.raises(CrmError) as err:
        MetadataApi(Creds()).deploy(_zip(), DeployOptions())
    assert err.value.transient


@responses.activate
def test_an_entity_bomb_is_refused():
    bomb = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>&b;'
            '</soapenv:Body></soapenv:Envelope>')
    responses.post(ENDPOINT, body=bomb, content_type="text/xml")
    with pytest.raises(CrmError):
        MetadataApi(Creds()).deploy(_zip(), DeployOptions())
