"""The official Salesforce CLI (`sf`, a dev dependency in package.json) against the emulated org, as an
admin uses it: log in with an access token, deploy the package from a copy of the repository, query a
package object; a broken copy of the package fails with the component errors a real org gives.

The CLI runs with Node 22 from node_modules (it needs Node >= 22), a temporary HOME (no state leaks),
telemetry and update checks off (the machine is offline), and trusts the emulator's CA through
NODE_EXTRA_CA_CERTS (never by turning verification off)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from defusedxml import ElementTree as ET
from sf_emu_helpers import VERSION, make_emulator, password_token

ROOT = Path(__file__).resolve().parents[3]
NODE = ROOT / "node_modules" / "node" / "bin" / "node"
SF_RUN = ROOT / "node_modules" / "@salesforce" / "cli" / "bin" / "run.js"
PUSH_FIXTURE = Path(__file__).parent / "metadata" / "pushpath"

pytestmark = pytest.mark.skipif(not (NODE.exists() and SF_RUN.exists()),
                                reason="node_modules lacks the Salesforce CLI or Node 22: run `npm install`")


@pytest.fixture(scope="module")
def org(cert_dir):
    with make_emulator(cert_dir, seed="demo", bare=True) as emu:
        yield emu


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the repository's SFDX project (what a fresh clone has)."""
    dest = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "sfdx-project.json", dest / "sfdx-project.json")
    shutil.copy(ROOT / ".forceignore", dest / ".forceignore")
    shutil.copytree(ROOT / "sfdx", dest / "sfdx")
    for entry in json.loads((ROOT / "sfdx-project.json").read_text())["packageDirectories"]:
        path = ROOT / entry["path"]
        if path.is_dir() and not (dest / entry["path"]).exists():
            shutil.copytree(path, dest / entry["path"], ignore=shutil.ignore_patterns("__tests__"))
    return dest


class Cli:
    def __init__(self, org, home: Path, token: str) -> None:
        self.org = org
        self.env = {
            "PATH": os.pathsep.join([str(NODE.parent), str(ROOT / "node_modules" / ".bin"), "/usr/bin", "/bin"]),
            "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"), "SF_DISABLE_TELEMETRY": "true",
            "SFDX_DISABLE_TELEMETRY": "true", "SF_SKIP_NEW_VERSION_CHECK": "true", "SF_AUTOUPDATE_DISABLE": "true",
            "SF_DISABLE_AUTOUPDATE": "true", "SF_HIDE_RELEASE_NOTES": "true", "SF_USE_GENERIC_UNIX_KEYCHAIN": "true",
            "NODE_EXTRA_CA_CERTS": org.ca_path, "SF_ACCESS_TOKEN": token, "NO_COLOR": "1",
        }

    def run(self, *args: str, cwd: Path, ok: bool = True) -> dict:
        proc = subprocess.run([str(NODE), str(SF_RUN), *args, "--json"], cwd=cwd, env=self.env,
                              capture_output=True, text=True, timeout=180)
        try:
            out = json.loads(proc.stdout)
        except ValueError:
            pytest.fail(f"sf {' '.join(args)} printed no JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        if ok:
            assert proc.returncode == 0 and out.get("status") == 0, json.dumps(out, indent=1)[:4000]
        return out


@pytest.fixture(scope="module")
def cli(org, tmp_path_factory, project) -> Cli:
    token = password_token(org)["access_token"]
    c = Cli(org, tmp_path_factory.mktemp("sf-home"), token)
    login = c.run("org", "login", "access-token", "--instance-url", org.base_url, "--no-prompt", "--alias", "emu",
                  cwd=project)
    assert login["result"]["orgId"] == org.org.org_id and login["result"]["username"] == "admin@refstage.test"
    return c


def _rest(org):
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + password_token(org)["access_token"]
    return s, f"{org.base_url}/services/data/v{VERSION}"


def _integration_users(source: Path) -> set[str]:
    return {m for p in source.rglob("*.workflow-meta.xml")
            for m in re.findall(r"<integrationUser>([^<]+)</integrationUser>", p.read_text())}


def test_a_broken_copy_fails_with_component_errors_and_leaves_the_org_unchanged(cli, org, project, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(project, broken)
    app = broken / "sfdx" / "force-app" / "main" / "default"
    # a placeholder integration user (nobody by that name in this org) ...
    (app / "workflows").mkdir(exist_ok=True)
    shutil.copy(PUSH_FIXTURE / "workflows" / "Opportunity.workflow-meta.xml", app / "workflows" / "Opportunity.workflow-meta.xml")
    for wf in (app / "workflows").glob("*.workflow-meta.xml"):
        wf.write_text(re.sub(r"<integrationUser>[^<]*</integrationUser>",
                             "<integrationUser>placeholder-user@example.invalid</integrationUser>", wf.read_text()))
    # ... and a permission set that names a field the package does not have
    perm = app / "permissionsets" / "Referral_Integration.permissionset-meta.xml"
    perm.write_text(perm.read_text().replace("<field>Contact.Referral_Code__c</field>",
                                             "<field>Contact.Referral_Codes__c</field>", 1))
    out = cli.run("project", "deploy", "start", "--source-dir", "sfdx/force-app", "--target-org", "emu",
                  "--wait", "5", cwd=broken, ok=False)
    result = out.get("result") or out.get("data") or {}
    assert out["status"] == 1 and result.get("status") == "Failed", json.dumps(out, indent=1)[:3000]
    failures = result["details"]["componentFailures"]
    failures = failures if isinstance(failures, list) else [failures]
    problems = {(f["componentType"], f["fullName"], f["problem"]) for f in failures}
    assert ("PermissionSet", "Referral_Integration",
            "In field: field - no CustomField named Contact.Referral_Codes__c found") in problems, problems
    assert any(t == "WorkflowOutboundMessage" and p.startswith(
        "Cannot find a user that matches any of the following usernames: placeholder-user@example.invalid")
        for t, _, p in problems), problems
    assert result["numberComponentsDeployed"] == 0
    s, base = _rest(org)
    names = {o["name"] for o in s.get(f"{base}/sobjects", timeout=10).json()["sobjects"]}
    assert "Referral__c" not in names  # all or nothing


def test_the_cli_deploys_the_package_and_queries_it(cli, org, project):
    s, base = _rest(org)
    for username in _integration_users(project / "sfdx" / "force-app"):
        # an admin creates the integration user the package's Outbound Messages run as
        r = s.post(f"{base}/sobjects/User", json={"Username": username, "LastName": "Integration", "Email": username},
                   timeout=10)
        assert r.status_code == 201, r.text
    out = cli.run("project", "deploy", "start", "--source-dir", "sfdx/force-app", "--target-org", "emu",
                  "--wait", "5", cwd=project)
    result = out["result"]
    assert result["status"] == "Succeeded" and result["success"] is True
    assert result["numberComponentErrors"] == 0 and result["numberComponentsDeployed"] > 10
    deployed = {(f["type"], f["fullName"]) for f in result["files"] if f["state"] in ("Created", "Changed")}
    assert ("CustomObject", "Referral__c") in deployed and ("PermissionSet", "Referral_Admin") in deployed

    assigned = cli.run("org", "assign", "permset", "--name", "Referral_Integration", "--target-org", "emu", cwd=project)
    assert assigned["result"]["successes"] == [{"name": "admin@refstage.test", "value": "Referral_Integration"}]
    rows = s.get(f"{base}/query", params={"q": "SELECT AssigneeId, PermissionSet.Name FROM PermissionSetAssignment"},
                 timeout=10).json()["records"]
    assert [(r["AssigneeId"], r["PermissionSet"]["Name"]) for r in rows] == [(org.org.admin_id, "Referral_Integration")]

    # What deployed reads back: `sf project retrieve start` rewrites the same components.
    status_field = project / "sfdx/force-app/main/default/objects/Referral__c/fields/Status__c.field-meta.xml"
    before = ET.fromstring(status_field.read_bytes())
    status_field.unlink()
    retrieved = cli.run("project", "retrieve", "start", "--source-dir", "sfdx/force-app", "--target-org", "emu",
                        cwd=project)
    assert not [f for f in retrieved["result"]["files"] if f["state"] == "Failed"], retrieved["result"]["files"]
    after = ET.fromstring(status_field.read_bytes())
    assert [(el.tag, (el.text or "").strip()) for el in after.iter()] == \
        [(el.tag, (el.text or "").strip()) for el in before.iter()]

    program = s.post(f"{base}/sobjects/Referral_Program__c", json={"Name": "CLI Program"}, timeout=10)
    assert program.status_code == 201, program.text
    query = cli.run("data", "query", "--query", "SELECT Id, Name FROM Referral_Program__c", "--target-org", "emu",
                    cwd=project)
    records = query["result"]["records"]
    assert [r["Name"] for r in records] == ["CLI Program"] and query["result"]["totalSize"] == 1


def test_the_cli_rest_deploy_path_works_too(cli, org, project):
    """`org-metadata-rest-deploy` switches the CLI to POST /metadata/deployRequest and polls it."""
    s, base = _rest(org)
    for username in _integration_users(project / "sfdx" / "force-app"):
        found = s.get(f"{base}/query", params={"q": f"SELECT Id FROM User WHERE Username = '{username}'"}, timeout=10)
        if not found.json()["records"]:
            s.post(f"{base}/sobjects/User", json={"Username": username, "LastName": "Integration", "Email": username},
                   timeout=10)
    cli.env["SF_ORG_METADATA_REST_DEPLOY"] = "true"
    try:
        out = cli.run("project", "deploy", "start", "--source-dir", "sfdx/force-app/main/default/objects",
                      "--target-org", "emu", "--wait", "5", cwd=project)
    finally:
        del cli.env["SF_ORG_METADATA_REST_DEPLOY"]
    assert out["result"]["status"] == "Succeeded" and out["result"]["numberComponentErrors"] == 0
    assert any(f["type"] == "CustomField" and f["fullName"] == "Referral__c.Status__c" for f in out["result"]["files"])
