"""The push-path installer end to end over HTTP (responses): org kind → deploy → poll → flows active?, and
the service around it (queue, job, recorded state, secret never stored)."""

from __future__ import annotations

import io
import re
import zipfile
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from defusedxml import ElementTree as SafeET

from refstage.adapters.crm.salesforce.push_installer import render_bundle, render_files
from refstage.domain.audit import Actor, ActorKind
from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.domain.errors import InvalidInput
from refstage.services import push_path, tenants
from refstage.services.ports import CrmError
from tests.push_path import soap_bodies as bodies

INSTANCE = "https://acme.my.salesforce.com"
SOAP = f"{INSTANCE}/services/Soap/m/65.0"
QUERY = re.compile(re.escape(INSTANCE) + r"/services/data/v[\d.]+/query/?\?.*")
ENDPOINT_URL = "https://refer.example.test/webhooks/salesforce/outbound-message/c1?key=s3cr3t-push-key"
ADMIN = Actor(ActorKind.PERSON, "u1", "admin@acme.test")
NS = {"s": "http://schemas.xmlsoap.org/soap/envelope/", "md": "http://soap.sforce.com/2006/04/metadata"}


@pytest.fixture
def conn(rt):
    tenant = tenants.create_tenant(rt, "Acme", "acme")
    connection = CrmConnection(id=rt.new_id(), tenant_id=tenant.id, kind=CrmKind.SALESFORCE, name="Acme org",
                               status=ConnectionStatus.ACTIVE, external_org_id="00D000000000001AAA",
                               instance_url=INSTANCE, external_username="ada@acme.example")
    with rt.uow(tenant.id) as uow:
        uow.connections.add(connection)
        uow.connections.store_credentials(connection.id, rt.vault.seal({
            "access_token": "00Dtoken", "refresh_token": "r", "instance_url": INSTANCE}))
        uow.commit()
    return connection


def _query_answers(org: dict, flows: list[dict] | None):
    def answer(request):
        soql = parse_qs(urlsplit(request.url).query)["q"][0]
        if "FROM Organization" in soql:
            records = [{"attributes": {"type": "Organization"}, **org}]
        elif "FROM FlowDefinitionView" in soql:
            if flows is None:
                return 400, {}, '[{"message":"sObject type \'FlowDefinitionView\' is not supported.","errorCode":"INVALID_TYPE"}]'
            records = [{"attributes": {"type": "FlowDefinitionView"}, **f} for f in flows]
        else:
            return 400, {}, '[{"message":"unexpected","errorCode":"MALFORMED_QUERY"}]'
        import json
        return 200, {}, json.dumps({"totalSize": len(records), "done": True, "records": records})
    responses.add_callback(responses.GET, QUERY, callback=answer)


def _deploy_options() -> dict[str, list[str]]:
    envelope = SafeET.fromstring(responses.calls[1].request.body)
    options = envelope.find("s:Body/md:deploy/md:DeployOptions", NS)
    return {c.tag.split("}")[1]: [x.text for x in options if x.tag == c.tag] for c in options}


def _bundle_sent() -> dict[str, str]:
    import base64

    envelope = SafeET.fromstring(responses.calls[1].request.body)
    raw = base64.b64decode(envelope.findtext("s:Body/md:deploy/md:ZipFile", namespaces=NS))
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return {n: z.read(n).decode() for n in z.namelist()}


BOTH_ACTIVE = [{"ApiName": "Refstage_Lead_Status_Changed", "ActiveVersionId": "301A"},
               {"ApiName": "Refstage_Opportunity_Stage_Changed", "ActiveVersionId": "301B"}]


@responses.activate
def test_production_deploy_runs_the_flow_tests_and_confirms_the_flows_are_active(rt, conn):
    _query_answers({"IsSandbox": False, "OrganizationType": "Enterprise Edition"}, BOTH_ACTIVE)
    responses.post(SOAP, body=bodies.deploy_response())
    responses.post(SOAP, body=bodies.check_status(tests=2))
    responses.post(SOAP, body=bodies.check_status(tests=2))
    state = push_path.run_install(rt, conn.tenant_id, conn.id, endpoint_url=ENDPOINT_URL)
    assert state["status"] == "active" and state["test_level"] == "RunSpecifiedTests" and state["production"] is True
    assert _deploy_options()["runTests"] == ["RefstagePushPathTest"]
    files = _bundle_sent()
    for name in ("workflows/Lead.workflow", "workflows/Opportunity.workflow"):
        assert "<integrationUser>ada@acme.example</integrationUser>" in files[name]
        assert "<endpointUrl>https://refer.example.test/webhooks/salesforce/outbound-message/c1?key=s3cr3t-push-key" in files[name]
    assert "example.com" not in "".join(files.values())
    assert "<status>Active</status>" in files["flows/Refstage_Opportunity_Stage_Changed.flow"]
    with rt.uow(conn.tenant_id) as uow:
        stored = uow.connections.get(conn.id).settings["push_path"]
        entries = uow.session.execute(
            __import__("sqlalchemy").text("select action from audit_log where entity_id = :i"), {"i": conn.id}).all()
    assert "s3cr3t" not in repr(stored)
    assert ("push_path_installed",) in entries


@responses.activate
def test_sandbox_deploys_without_tests(rt, conn):
    _query_answers({"IsSandbox": True, "OrganizationType": "Enterprise Edition"}, BOTH_ACTIVE)
    responses.post(SOAP, body=bodies.deploy_response())
    responses.post(SOAP, body=bodies.check_status())
    responses.post(SOAP, body=bodies.check_status())
    state = push_path.run_install(rt, conn.tenant_id, conn.id, endpoint_url=ENDPOINT_URL)
    assert state["status"] == "active" and state["test_level"] == "NoTestRun"
    assert "runTests" not in _deploy_options()


@responses.activate
def test_production_that_keeps_flows_inactive_says_activation_is_needed(rt, conn):
    _query_answers({"IsSandbox": False, "OrganizationType": "Unlimited Edition"},
                   [{"ApiName": "Refstage_Lead_Status_Changed", "ActiveVersionId": None},
                    {"ApiName": "Refstage_Opportunity_Stage_Changed", "ActiveVersionId": "301B"}])
    responses.post(SOAP, body=bodies.deploy_response())
    responses.post(SOAP, body=bodies.check_status(tests=2))
    responses.post(SOAP, body=bodies.check_status(tests=2))
    state = push_path.run_install(rt, conn.tenant_id, conn.id, endpoint_url=ENDPOINT_URL)
    assert state["status"] == "needs_activation"
    assert state["inactive_flows"] == ["Refstage_Lead_Status_Changed"]


@responses.activate
def test_a_refused_deploy_is_recorded_in_salesforces_words_without_the_secret(rt, conn):
    _query_answers({"IsSandbox": False, "OrganizationType": "Enterprise Edition"}, BOTH_ACTIVE)
    responses.post(SOAP, body=bodies.deploy_response())
    failed = bodies.check_status(status="Failed", failures=[{
        "name": "Lead.Refstage_Lead_Changed", "ctype": "WorkflowOutboundMessage", "file_name": "workflows/Lead.workflow",
        "problem": f"Invalid endpoint {ENDPOINT_URL.replace('&', '&amp;')}"}], tests=2,
        flow_warnings=["Refstage_Lead_Status_Changed"])
    responses.post(SOAP, body=failed)
    responses.post(SOAP, body=failed)
    state = push_path.run_install(rt, conn.tenant_id, conn.id, endpoint_url=ENDPOINT_URL)
    assert state["status"] == "failed"
    assert any("Invalid endpoint <endpoint URL>" in p for p in state["problems"])
    assert any("Test coverage" in p for p in state["problems"])
    assert "s3cr3t" not in repr(state)


@responses.activate
def test_unknown_flow_state_is_reported_not_guessed(rt, conn):
    _query_answers({"IsSandbox": True, "OrganizationType": "Enterprise Edition"}, None)
    responses.post(SOAP, body=bodies.deploy_response())
    responses.post(SOAP, body=bodies.check_status())
    responses.post(SOAP, body=bodies.check_status())
    state = push_path.run_install(rt, conn.tenant_id, conn.id, endpoint_url=ENDPOINT_URL)
    assert state["status"] == "deployed" and "Setup" in state["problems"][0]


@responses.activate
def test_transient_failures_raise_for_the_job_to_retry(rt, conn):
    _query_answers({"IsSandbox": True, "OrganizationType": "Enterprise Edition"}, BOTH_ACTIVE)
    responses.post(SOAP, body="upstream down", status=503)
    with pytest.raises(CrmError) as err:
        push_path.run_install(rt, conn.tenant_id, conn.id, endpoint_url=ENDPOINT_URL)
    assert err.value.transient
    with rt.uow(conn.tenant_id) as uow:
        assert uow.connections.get(conn.id).settings["push_path"]["status"] == "queued"


def test_request_install_queues_one_job_and_checks_the_connection(rt, conn, clock):
    assert push_path.request_install(rt, conn.tenant_id, conn.id, actor=ADMIN) is True
    assert push_path.request_install(rt, conn.tenant_id, conn.id, actor=ADMIN) is False  # already queued
    assert rt.jobs.jobs == [("install_push_path", {"tenant_id": conn.tenant_id, "connection_id": conn.id})]
    clock.advance(hours=1)  # the worker died: a stale request may be made again
    assert push_path.request_install(rt, conn.tenant_id, conn.id, actor=ADMIN) is True
    assert len(rt.jobs.jobs) == 2
    with rt.uow(conn.tenant_id) as uow:
        c = uow.connections.get(conn.id)
        c.status = ConnectionStatus.RECONNECT_REQUIRED
        c.settings = {}
        uow.connections.save(c)
        uow.commit()
    with pytest.raises(InvalidInput):
        push_path.request_install(rt, conn.tenant_id, conn.id, actor=ADMIN)


def test_another_tenants_connection_is_not_found(rt, conn):
    from refstage.domain.errors import NotFound

    other = tenants.create_tenant(rt, "Other", "other")
    with pytest.raises(NotFound):
        push_path.request_install(rt, other.id, conn.id, actor=ADMIN)


def test_bundle_refuses_bad_inputs_and_escapes_urls():
    with pytest.raises(ValueError):
        render_files("ada@acme.example", "http://refer.example.test/hook")
    with pytest.raises(ValueError):
        render_files("ada@acme.example", "https://user:pw@refer.example.test/hook")
    with pytest.raises(ValueError):
        render_files("not a username", ENDPOINT_URL)
    files = render_files("ada@acme.example", "https://refer.example.test/h?a=1&b=<2>")
    assert "<endpointUrl>https://refer.example.test/h?a=1&amp;b=&lt;2&gt;</endpointUrl>" in files["workflows/Lead.workflow"]
    with zipfile.ZipFile(io.BytesIO(render_bundle("ada@acme.example", ENDPOINT_URL))) as z:
        assert sorted(z.namelist()) == sorted(files)


@responses.activate
def test_short_org_flow_coverage_falls_back_to_inactive_flows_and_says_so(rt, conn):
    _query_answers({"IsSandbox": False, "OrganizationType": "Enterprise Edition"},
                   [{"ApiName": "Refstage_Lead_Status_Changed", "ActiveVersionId": None},
                    {"ApiName": "Refstage_Opportunity_Stage_Changed", "ActiveVersionId": None}])
    short = bodies.check_status(status="Failed", tests=2, flow_warnings=["Some_Old_Org_Flow"])
    responses.post(SOAP, body=bodies.deploy_response("0Af000000000001AAA"))
    responses.post(SOAP, body=short)
    responses.post(SOAP, body=short)
    responses.post(SOAP, body=bodies.deploy_response("0Af000000000002AAA"))
    responses.post(SOAP, body=bodies.check_status("0Af000000000002AAA", tests=2))
    responses.post(SOAP, body=bodies.check_status("0Af000000000002AAA", tests=2))
    state = push_path.run_install(rt, conn.tenant_id, conn.id, endpoint_url=ENDPOINT_URL)
    assert state["status"] == "needs_activation" and state["deploy_id"] == "0Af000000000002AAA"
    assert sorted(state["inactive_flows"]) == ["Refstage_Lead_Status_Changed", "Refstage_Opportunity_Stage_Changed"]
    import base64

    second = SafeET.fromstring(responses.calls[4].request.body)
    raw = base64.b64decode(second.findtext("s:Body/md:deploy/md:ZipFile", namespaces=NS))
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        assert "<status>Draft</status>" in z.read("flows/Refstage_Lead_Status_Changed.flow").decode()


@responses.activate
def test_the_queued_job_runs_the_install_through_the_worker(rt, conn, monkeypatch):
    """What a worker does with the console's request: the install_push_path task, the URL from the push keys."""
    from refstage.jobs.queue import make_huey
    from refstage.jobs.tasks import register_tasks

    monkeypatch.setattr(push_path, "endpoint_url_for", lambda _rt, tenant_id, connection_id: ENDPOINT_URL)
    _query_answers({"IsSandbox": True, "OrganizationType": "Enterprise Edition"}, BOTH_ACTIVE)
    responses.post(SOAP, body=bodies.deploy_response())
    responses.post(SOAP, body=bodies.check_status())
    responses.post(SOAP, body=bodies.check_status())
    push_path.request_install(rt, conn.tenant_id, conn.id, actor=ADMIN)
    [(name, kwargs)] = rt.jobs.jobs
    tasks = register_tasks(make_huey(rt.settings, immediate=True, name="push-path-job"), rt)
    assert tasks[name](**kwargs).get() == "active"
    with rt.uow(conn.tenant_id) as uow:
        assert uow.connections.get(conn.id).settings["push_path"]["status"] == "active"


def test_a_build_without_push_keys_fails_clearly(rt, conn, monkeypatch):
    def missing(*_args):
        raise ImportError("no push_keys")

    monkeypatch.setattr(push_path, "endpoint_url_for", missing)
    state = push_path.run_install(rt, conn.tenant_id, conn.id)
    assert state["status"] == "failed" and "no push keys" in state["problems"][0]


def test_cli_installs_and_explains_what_to_do_next(rt, conn, monkeypatch):
    from click.testing import CliRunner

    from refstage.services import connection_cli
    from refstage.adapters.crm.salesforce.push_installer import InstallOutcome

    class Installer:
        def __init__(self, _rt, connection):
            assert connection.id == conn.id

        def install(self, endpoint_url):
            assert endpoint_url == ENDPOINT_URL
            return InstallOutcome("needs_activation", "0Af000000000001AAA", "RunSpecifiedTests", True, (),
                                  ("Refstage_Lead_Status_Changed",))

    monkeypatch.setattr(connection_cli, "_runtime", lambda: rt)
    monkeypatch.setattr(push_path, "installer_for", Installer)
    with rt.uow() as uow:
        slug = uow.tenants.get(conn.tenant_id).slug
    result = CliRunner().invoke(connection_cli.connection, ["install-push-path", slug, conn.id, "--endpoint-url", ENDPOINT_URL])
    assert result.exit_code == 0, result.output
    assert "push path needs_activation" in result.output
    assert "Activate them in Setup → Flows" in result.output and "Refstage_Lead_Status_Changed" in result.output


def test_cli_unreachable_org_fails_and_can_be_run_again_at_once(rt, conn, monkeypatch):
    """The CLI deploys without a job: left `queued`, nothing would retry, and every new attempt (console or
    CLI) would be refused as 'already running' for 45 minutes."""
    from click.testing import CliRunner

    from refstage.services import connection_cli

    class Unreachable:
        def __init__(self, _rt, _connection):
            pass

        def install(self, _endpoint_url):
            raise CrmError("Salesforce could not be reached: certificate verify failed", transient=True)

    monkeypatch.setattr(connection_cli, "_runtime", lambda: rt)
    monkeypatch.setattr(push_path, "installer_for", Unreachable)
    with rt.uow() as uow:
        slug = uow.tenants.get(conn.tenant_id).slug
    args = ["install-push-path", slug, conn.id, "--endpoint-url", ENDPOINT_URL]
    first = CliRunner().invoke(connection_cli.connection, args)
    assert first.exit_code == 1 and first.exception is not None and not isinstance(first.exception, CrmError)
    assert "push path failed" in first.output and "could not be reached" in first.output
    with rt.uow(conn.tenant_id) as uow:
        assert uow.connections.get(conn.id).settings["push_path"]["status"] == "failed"
    again = CliRunner().invoke(connection_cli.connection, args)
    assert "already queued or running" not in again.output and "push path failed" in again.output


@responses.activate
def test_the_deployed_endpoint_is_the_connections_push_key_url(rt, conn, settings):
    """Wired to services.push_keys: the bundle carries the URL the receiver accepts; it is never stored."""
    from refstage.services import push_keys

    assert settings.base_url == "https://refer.example.test"
    _query_answers({"IsSandbox": True, "OrganizationType": "Enterprise Edition"}, BOTH_ACTIVE)
    responses.post(SOAP, body=bodies.deploy_response())
    responses.post(SOAP, body=bodies.check_status())
    responses.post(SOAP, body=bodies.check_status())
    state = push_path.run_install(rt, conn.tenant_id, conn.id)
    assert state["status"] == "active"
    expected = push_keys.outbound_message_url(rt, conn.tenant_id, conn.id)
    files = _bundle_sent()
    assert f"<endpointUrl>{expected}</endpointUrl>" in files["workflows/Opportunity.workflow"]
    key = expected.rsplit("/", 1)[-1]
    with rt.uow(conn.tenant_id) as uow:
        assert key not in repr(uow.connections.get(conn.id).settings.get("push_path"))


def test_an_http_base_url_fails_before_calling_salesforce_and_says_what_to_set(rt, conn):
    import dataclasses

    rt.settings = dataclasses.replace(rt.settings, base_url="http://127.0.0.1:8000")
    with responses.RequestsMock():  # any call to Salesforce would fail the test
        state = push_path.run_install(rt, conn.tenant_id, conn.id)
    assert state["status"] == "failed" and "REFSTAGE_BASE_URL" in state["problems"][0]
