"""The Metadata API's `deploy` and `checkDeployStatus` over SOAP (`/services/Soap/m/<version>`), with the
request and result shapes of the vendored v65 WSDL (wsdl/metadata-v65.wsdl here):
DeployOptions in its xsd:sequence order, DeployResult / DeployMessage / RunTestsResult parsed in full.

simple-salesforce has a deploy helper, but it posts to a `deployRequest` sub-path, parses with the
standard library's XML parser, keeps only four fields of a DeployMessage and forces options by a
`sandbox` flag; we need line numbers, flow-coverage warnings and our own token refresh, so this is a
small SOAP client of our own. Answers are parsed with defusedxml (no entities, no DTDs)."""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import requests
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from refstage.services.ports import CrmError

log = logging.getLogger(__name__)

METADATA_API_VERSION = "65.0"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MD_NS = "http://soap.sforce.com/2006/04/metadata"
TEST_LEVELS = ("NoTestRun", "RunSpecifiedTests", "RunLocalTests", "RunAllTestsInOrg")
DONE_STATUSES = frozenset({"Succeeded", "SucceededPartial", "Failed", "Canceled"})
TIMEOUT = (10.0, 120.0)
MAX_ANSWER_BYTES = 20 * 1024 * 1024
_NS = {"soapenv": SOAP_NS, "md": MD_NS}


class Credentials(Protocol):
    access_token: str
    instance_url: str

    def refresh(self, stale_token: str) -> None: ...


@dataclass(frozen=True)
class DeployOptions:
    """DeployOptions of the v65 WSDL; every element it requires is always sent."""

    test_level: str = "NoTestRun"
    run_tests: tuple[str, ...] = ()
    check_only: bool = False
    rollback_on_error: bool = True
    single_package: bool = True
    allow_missing_files: bool = False
    auto_update_package: bool = False
    ignore_warnings: bool = False
    perform_retrieve: bool = False
    purge_on_delete: bool = False

    def __post_init__(self) -> None:
        if self.test_level not in TEST_LEVELS:
            raise ValueError(f"testLevel must be one of {', '.join(TEST_LEVELS)}")
        if self.run_tests and self.test_level != "RunSpecifiedTests":
            raise ValueError("runTests is only read with testLevel RunSpecifiedTests")
        if self.test_level == "RunSpecifiedTests" and not self.run_tests:
            raise ValueError("RunSpecifiedTests needs at least one test class")

    def xml(self) -> str:
        def flag(name: str, value: bool) -> str:
            return f"<md:{name}>{'true' if value else 'false'}</md:{name}>"

        parts = [flag("allowMissingFiles", self.allow_missing_files), flag("autoUpdatePackage", self.auto_update_package),
                 flag("checkOnly", self.check_only), flag("ignoreWarnings", self.ignore_warnings),
                 flag("performRetrieve", self.perform_retrieve), flag("purgeOnDelete", self.purge_on_delete),
                 flag("rollbackOnError", self.rollback_on_error)]
        parts += [f"<md:runTests>{escape(name)}</md:runTests>" for name in self.run_tests]
        parts += [flag("singlePackage", self.single_package), f"<md:testLevel>{self.test_level}</md:testLevel>"]
        return "".join(parts)


@dataclass(frozen=True)
class DeployMessage:
    full_name: str
    component_type: str | None
    file_name: str
    problem: str | None
    problem_type: str | None
    line_number: int | None
    column_number: int | None
    success: bool

    def describe(self) -> str:
        where = self.file_name or self.full_name
        if self.line_number:
            where += f":{self.line_number}" + (f":{self.column_number}" if self.column_number else "")
        kind = f"{self.component_type} " if self.component_type else ""
        return f"{kind}{self.full_name} ({where}): {self.problem or self.problem_type or 'failed'}"


@dataclass(frozen=True)
class TestFailure:
    class_name: str
    method_name: str | None
    message: str
    stack_trace: str | None

    def describe(self) -> str:
        return f"{self.class_name}.{self.method_name or '?'}: {self.message}"


@dataclass(frozen=True)
class DeployResult:
    id: str
    status: str
    done: bool
    success: bool
    check_only: bool
    state_detail: str | None = None
    error_message: str | None = None
    error_status_code: str | None = None
    components_total: int = 0
    components_deployed: int = 0
    component_errors: int = 0
    tests_total: int = 0
    tests_completed: int = 0
    test_errors: int = 0
    failures: tuple[DeployMessage, ...] = ()
    test_failures: tuple[TestFailure, ...] = ()
    coverage_warnings: tuple[str, ...] = field(default_factory=tuple)

    def problems(self) -> list[str]:
        """Everything Salesforce said went wrong, in its own words, for a person to read."""
        out = []
        if self.error_message:
            out.append(f"{self.error_status_code or 'error'}: {self.error_message}")
        out += [m.describe() for m in self.failures]
        out += [f.describe() for f in self.test_failures]
        out += self.coverage_warnings
        return out


def _text(node: Element, name: str) -> str | None:
    child = node.find(f"md:{name}", _NS)
    return child.text if child is not None and child.text is not None else None


def _bool(node: Element, name: str) -> bool:
    return (_text(node, name) or "").strip().lower() == "true"


def _int(node: Element, name: str) -> int | None:
    value = _text(node, name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _message(node: Element) -> DeployMessage:
    return DeployMessage(full_name=_text(node, "fullName") or "", component_type=_text(node, "componentType"),
                         file_name=_text(node, "fileName") or "", problem=_text(node, "problem"),
                         problem_type=_text(node, "problemType"), line_number=_int(node, "lineNumber"),
                         column_number=_int(node, "columnNumber"), success=_bool(node, "success"))


def parse_deploy_result(result: Element) -> DeployResult:
    details = result.find("md:details", _NS)
    failures: list[DeployMessage] = []
    test_failures: list[TestFailure] = []
    warnings: list[str] = []
    if details is not None:
        failures = [_message(n) for n in details.findall("md:componentFailures", _NS)]
        tests = details.find("md:runTestResult", _NS)
        if tests is not None:
            test_failures = [TestFailure(_text(n, "name") or "", _text(n, "methodName"), _text(n, "message") or "",
                                         _text(n, "stackTrace")) for n in tests.findall("md:failures", _NS)]
            for tag in ("codeCoverageWarnings", "flowCoverageWarnings"):
                for n in tests.findall(f"md:{tag}", _NS):
                    name = _text(n, "name") or _text(n, "flowName") or ""
                    warnings.append(f"{name}: {_text(n, 'message') or ''}".strip(": "))
    return DeployResult(
        id=_text(result, "id") or "", status=_text(result, "status") or "", done=_bool(result, "done"),
        success=_bool(result, "success"), check_only=_bool(result, "checkOnly"),
        state_detail=_text(result, "stateDetail"), error_message=_text(result, "errorMessage"),
        error_status_code=_text(result, "errorStatusCode"),
        components_total=_int(result, "numberComponentsTotal") or 0,
        components_deployed=_int(result, "numberComponentsDeployed") or 0,
        component_errors=_int(result, "numberComponentErrors") or 0,
        tests_total=_int(result, "numberTestsTotal") or 0, tests_completed=_int(result, "numberTestsCompleted") or 0,
        test_errors=_int(result, "numberTestErrors") or 0, failures=tuple(failures),
        test_failures=tuple(test_failures), coverage_warnings=tuple(warnings))


class MetadataApi:
    """deploy → checkDeployStatus polling, with one token refresh on INVALID_SESSION_ID."""

    def __init__(self, credentials: Credentials, *, session: requests.Session | None = None,
                 version: str = METADATA_API_VERSION, sleep: Callable[[float], None] = time.sleep,
                 client_name: str = "refstage") -> None:
        self.credentials = credentials
        self.http = session or requests.Session()
        self.version = version
        self.sleep = sleep
        self.client_name = client_name

    @property
    def endpoint(self) -> str:
        return f"{self.credentials.instance_url.rstrip('/')}/services/Soap/m/{self.version}"

    def _envelope(self, token: str, body: str) -> str:
        return (f'<?xml version="1.0" encoding="UTF-8"?>'
                f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:md="{MD_NS}"><soapenv:Header>'
                f"<md:CallOptions><md:client>{escape(self.client_name)}</md:client></md:CallOptions>"
                f"<md:SessionHeader><md:sessionId>{escape(token)}</md:sessionId></md:SessionHeader>"
                f"</soapenv:Header><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>")

    def _call(self, operation: str, body: str) -> Element:
        refreshed = False
        while True:
            token = self.credentials.access_token
            try:
                response = self.http.post(self.endpoint, data=self._envelope(token, body).encode(), timeout=TIMEOUT,
                                          headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '""'})
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise CrmError(f"the Salesforce Metadata API could not be reached: {exc}", transient=True) from exc
            if len(response.content) > MAX_ANSWER_BYTES:
                raise CrmError("the Metadata API answer is too large", transient=False)
            try:
                root = SafeET.fromstring(response.content)
            except (SafeET.ParseError, DefusedXmlException) as exc:
                raise CrmError(f"the Metadata API answered {response.status_code} with no SOAP envelope",
                               transient=response.status_code >= 500, status=response.status_code) from exc
            fault = root.find("soapenv:Body/soapenv:Fault", _NS)
            if fault is not None:
                parts = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in fault}
                code = parts.get("faultcode", "").split(":")[-1]
                message = parts.get("faultstring") or code or "SOAP fault"
                if code == "INVALID_SESSION_ID" and not refreshed:
                    self.credentials.refresh(token)  # raises ReconnectRequired when the refresh token is refused
                    refreshed = True
                    continue
                raise CrmError(f"Metadata API {operation}: {message}", transient=code in ("SERVER_UNAVAILABLE",
                               "UNKNOWN_EXCEPTION"), code=code or None, status=response.status_code)
            result = root.find(f"soapenv:Body/md:{operation}Response/md:result", _NS)
            if result is None:
                raise CrmError(f"the Metadata API's {operation} answer has no result", transient=False,
                               status=response.status_code)
            return result

    def deploy(self, zip_bytes: bytes, options: DeployOptions) -> str:
        """Starts an asynchronous deploy; returns its id (an AsyncResult)."""
        body = (f"<md:deploy><md:ZipFile>{base64.b64encode(zip_bytes).decode()}</md:ZipFile>"
                f"<md:DeployOptions>{options.xml()}</md:DeployOptions></md:deploy>")
        result = self._call("deploy", body)
        deploy_id = _text(result, "id")
        if not deploy_id:
            raise CrmError("the Metadata API accepted the deploy but returned no id", transient=False)
        return deploy_id

    def check_deploy_status(self, deploy_id: str, include_details: bool = True) -> DeployResult:
        body = (f"<md:checkDeployStatus><md:asyncProcessId>{escape(deploy_id)}</md:asyncProcessId>"
                f"<md:includeDetails>{'true' if include_details else 'false'}</md:includeDetails></md:checkDeployStatus>")
        return parse_deploy_result(self._call("checkDeployStatus", body))

    def wait(self, deploy_id: str, *, poll_seconds: float = 2.0, max_poll_seconds: float = 15.0,
             timeout_seconds: float = 1800.0, clock: Callable[[], float] = time.monotonic) -> DeployResult:
        """Polls until the deploy is done; growing gaps, the way the CLI polls. Details only on the last call."""
        started = clock()
        delay = poll_seconds
        while True:
            result = self.check_deploy_status(deploy_id, include_details=False)
            if result.done or result.status in DONE_STATUSES:
                return self.check_deploy_status(deploy_id, include_details=True)
            if clock() - started > timeout_seconds:
                raise CrmError(f"deploy {deploy_id} still {result.status or 'running'} after {timeout_seconds:.0f}s",
                               transient=True)
            self.sleep(delay)
            delay = min(max_poll_seconds, delay * 1.5)


def describe_options(options: DeployOptions) -> dict[str, Any]:
    return {"testLevel": options.test_level, "runTests": list(options.run_tests), "checkOnly": options.check_only}
