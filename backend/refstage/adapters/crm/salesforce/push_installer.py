"""Deploys the push path (two Outbound Messages and the two record-triggered flows that send them) into a
connected org through the Metadata API, filled in with the connected user's username and the connection's
own endpoint URL. See docs/decisions/2026-12-02-push-path-install.md for why this is not in the package.

The templates live in `push_path/` in metadata format; `render_bundle` fills and zips them, and every
rendered file is checked against the v65 schema before anything is sent."""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from refstage.adapters.crm.salesforce.auth import TokenKeeper
from refstage.adapters.crm.salesforce.client import ApiBudget, SalesforceSession
from refstage.adapters.crm.salesforce.metadata_api import DeployOptions, DeployResult, MetadataApi
from refstage.adapters.crm.salesforce.rest import RestApi
from refstage.domain.connections import CrmConnection
from refstage.services.ports import CrmError

log = logging.getLogger(__name__)

TEMPLATE_FILES = (
    "package.xml",
    "workflows/Lead.workflow",
    "workflows/Opportunity.workflow",
    "flows/Refstage_Lead_Status_Changed.flow",
    "flows/Refstage_Opportunity_Stage_Changed.flow",
    "classes/RefstagePushPathTest.cls",
    "classes/RefstagePushPathTest.cls-meta.xml",
)
FLOW_NAMES = ("Refstage_Lead_Status_Changed", "Refstage_Opportunity_Stage_Changed")
TEST_CLASS = "RefstagePushPathTest"
MAX_USERNAME = 80  # Salesforce usernames are at most 80 characters


def template_text(name: str) -> str:
    return resources.files("refstage.adapters.crm.salesforce").joinpath("push_path", name).read_text("utf-8")


def check_inputs(integration_user: str, endpoint_url: str) -> None:
    parts = urlsplit(endpoint_url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise ValueError("the Outbound Message endpoint must be an https:// URL without credentials "
                         "(set REFSTAGE_BASE_URL to Refstage's public https address)")
    if len(endpoint_url) > 1000:
        raise ValueError("the Outbound Message endpoint URL is too long")
    if not integration_user or len(integration_user) > MAX_USERNAME or "@" not in integration_user or any(
            c.isspace() for c in integration_user):
        raise ValueError("the integration user must be the connected user's Salesforce username")


def render_files(integration_user: str, endpoint_url: str, *, flows_active: bool = True) -> dict[str, str]:
    """Metadata-format files with the values filled in (XML-escaped: a URL may hold `&`)."""
    check_inputs(integration_user, endpoint_url)
    values = {"integration_user": escape(integration_user), "endpoint_url": escape(endpoint_url),
              "flow_status": "Active" if flows_active else "Draft"}
    files = {}
    for name in TEMPLATE_FILES:
        text = template_text(name)
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        if "{{" in text:
            raise ValueError(f"{name} has a placeholder with no value")
        files[name] = text
    return files


def render_bundle(integration_user: str, endpoint_url: str, *, flows_active: bool = True) -> bytes:
    files = render_files(integration_user, endpoint_url, flows_active=flows_active)
    from refstage.adapters.crm.salesforce.metadata_schema import schema_errors_of_files

    errors = schema_errors_of_files(files)
    if errors:  # a template bug, never the admin's: stop before Salesforce sees it
        raise CrmError("the push-path bundle does not match the Metadata API schema: " + "; ".join(errors[:5]),
                       transient=False, code="invalid_bundle")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def only_flow_coverage_short(result: DeployResult) -> bool:
    """The deploy failed for the org's flow test coverage alone (no component or test failures)."""
    return bool(result.coverage_warnings) and not result.failures and not result.test_failures \
        and not result.error_message


@dataclass(frozen=True)
class InstallOutcome:
    """`active`: deployed and both flows active. `needs_activation`: deployed, but production kept the flows
    inactive (Deploy processes and flows as active is off). `failed`: Salesforce rejected the deploy."""

    status: str
    deploy_id: str | None
    test_level: str
    production: bool
    problems: tuple[str, ...] = ()
    inactive_flows: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "deploy_id": self.deploy_id, "test_level": self.test_level,
                "production": self.production, "problems": list(self.problems),
                "inactive_flows": list(self.inactive_flows)}


class SalesforcePushPathInstaller:
    def __init__(self, rt: Any, connection: CrmConnection, *, metadata: MetadataApi | None = None,
                 rest: RestApi | None = None, sleep: Callable[[float], None] | None = None,
                 poll_seconds: float = 2.0) -> None:
        self.connection = connection
        if metadata is None or rest is None:
            keeper = TokenKeeper(rt, connection)
            session = SalesforceSession(keeper, ApiBudget(), **({"sleep": sleep} if sleep else {}))
            rest = rest or RestApi(session)
            metadata = metadata or MetadataApi(keeper, **({"sleep": sleep} if sleep else {}))
        self.rest = rest
        self.metadata = metadata
        self.poll_seconds = poll_seconds

    def is_production(self) -> bool:
        """Sandboxes and Developer Edition orgs deploy flows active and need no tests; production does not."""
        rows = self.rest.query("SELECT IsSandbox, OrganizationType FROM Organization")
        if not rows:
            raise CrmError("the org did not describe itself (Organization)", transient=True)
        org = rows[0]
        return not org.get("IsSandbox") and org.get("OrganizationType") != "Developer Edition"

    def inactive_flows(self) -> tuple[str, ...] | None:
        """Flows of the bundle without an active version, or None if the org would not say."""
        names = ", ".join(f"'{n}'" for n in FLOW_NAMES)
        try:
            rows = self.rest.query(f"SELECT ApiName, ActiveVersionId FROM FlowDefinitionView WHERE ApiName IN ({names})")
        except CrmError as exc:
            log.warning("could not read FlowDefinitionView after the push-path deploy: %s", exc)
            return None
        active = {r.get("ApiName") for r in rows if r.get("ActiveVersionId")}
        return tuple(n for n in FLOW_NAMES if n not in active)

    def install(self, endpoint_url: str) -> InstallOutcome:
        username = self.connection.external_username or ""
        try:
            bundle = render_bundle(username, endpoint_url)
        except ValueError as exc:
            raise CrmError(str(exc), transient=False, code="invalid_input") from exc
        production = self.is_production()
        options = (DeployOptions(test_level="RunSpecifiedTests", run_tests=(TEST_CLASS,)) if production
                   else DeployOptions(test_level="NoTestRun"))
        deploy_id = self.metadata.deploy(bundle, options)
        result: DeployResult = self.metadata.wait(deploy_id, poll_seconds=self.poll_seconds)
        if not result.success and production and only_flow_coverage_short(result):
            # The org's own flows lack test coverage, so Salesforce will not take ours as active. Deploy
            # them as Draft instead: the Outbound Messages go in and an admin activates the two flows.
            log.info("push-path deploy %s: the org's flow coverage is short; deploying the flows inactive", deploy_id)
            bundle = render_bundle(username, endpoint_url, flows_active=False)
            deploy_id = self.metadata.deploy(bundle, options)
            result = self.metadata.wait(deploy_id, poll_seconds=self.poll_seconds)
        if not result.success:
            return InstallOutcome("failed", deploy_id, options.test_level, production,
                                  tuple(result.problems()) or (f"deploy {result.status}",))
        inactive = self.inactive_flows()
        if inactive is None:
            return InstallOutcome("deployed", deploy_id, options.test_level, production,
                                  ("Salesforce did not say whether the flows are active; check Setup → Flows.",))
        status = "needs_activation" if inactive else "active"
        return InstallOutcome(status, deploy_id, options.test_level, production, (), inactive)
