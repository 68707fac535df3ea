"""The components' Jest fixtures, made by asking the emulated org's UI API the components' own requests.

Each scenario loads a handful of records (with the ids the Jest tests name) into a fresh, empty org; each
fixture is the org's answer to the request the component's wire adapter makes: the fields and optional
fields of its ``getRecord``, the related list, fields and sort of its ``getRelatedListRecords``, the record
type and field of its ``getPicklistValues``, and the GraphQL document of its ``graphql`` wire, read from the
component's source. ``python -m refstage_devkit.emulators.salesforce.preview.fixtures`` rewrites the files;
``--check`` (run by tests/emulators/salesforce/test_ui_api.py) fails when a file and the org disagree, and
tests/emulators/salesforce/test_preview_pages.py checks that the compiled components send exactly these requests.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from werkzeug.test import Client

from .. import ids
from ..server import App, Org
from ..store import coerce

VERSION = "65.0"
ROOT = Path(__file__).resolve().parents[5]
LWC = ROOT / "lwc"

OPPORTUNITY_FIELDS = ["Opportunity.StageName", "Opportunity.IsClosed", "Opportunity.IsWon", "Opportunity.Referral__c"]
OPPORTUNITY_OPTIONAL = [f"Opportunity.Referral__r.{f}" for f in (
    "Name", "Status__c", "Review_Reason__c", "Captured_Date__c", "Routed_Date__c", "Qualified_Date__c",
    "Rewarded_Date__c", "Advocate__c", "Advocate__r.Name", "Program__c", "Program__r.Name",
    "Program__r.Milestone_Object__c", "Program__r.Milestone_Field__c", "Program__r.Milestone_Value__c",
    "Program__r.Qualification_Summary__c")]
REWARD_FIELDS = [f"Referral_Reward__c.{f}" for f in (
    "Name", "Recipient__c", "Amount__c", "Currency_Code__c", "Type__c", "Status__c", "Hold_Until__c",
    "Issued_Date__c", "Review_Reason__c")]
ACCOUNT_FIELDS = ["Account.Name", "Account.Referral__c"]
ACCOUNT_OPTIONAL = [f"Account.Referral__r.{f}" for f in (
    "Name", "Status__c", "Captured_Date__c", "Advocate__c", "Advocate__r.Name", "Program__r.Name")]

PROGRAM = ("Referral_Program__c", "a01000000000001AAA", {
    "Name": "Partner Program 2026", "Status__c": "active", "Milestone_Object__c": "Opportunity",
    "Milestone_Field__c": "StageName", "Milestone_Value__c": "Closed Won",
    "Qualification_Summary__c": "Opportunity stage is Closed Won and Amount is at least 5,000"})

# The Opportunity page: one attributed deal with two held rewards, one deal without a referral.
ATTRIBUTION_RECORDS: list[tuple[str, str, dict[str, Any]]] = [
    ("Account", "001000000000001AAA", {"Name": "Analytical Engines Ltd"}),
    ("Contact", "003000000000001AAA", {"FirstName": "Ada", "LastName": "Lovelace", "Name": "Ada Lovelace",
                                       "AccountId": "001000000000001AAA"}),
    PROGRAM,
    ("Referral__c", "a02000000000001AAA", {
        "Name": "REF-000042", "Status__c": "in_progress", "Captured_Date__c": "2026-10-01T09:30:00.000Z",
        "Routed_Date__c": "2026-10-01T09:31:00.000Z", "Advocate__c": "003000000000001AAA",
        "Program__c": "a01000000000001AAA", "Friend_Name__c": "Charles Babbage"}),
    ("Opportunity", "006000000000001AAA", {
        "Name": "Analytical Engines - Difference Engine No. 2", "AccountId": "001000000000001AAA",
        "StageName": "Proposal/Price Quote", "CloseDate": "2026-12-20", "Amount": 12000,
        "Referral__c": "a02000000000001AAA"}),
    ("Opportunity", "006000000000002AAA", {
        "Name": "Analytical Engines - Punch Cards", "AccountId": "001000000000001AAA", "StageName": "Prospecting",
        "CloseDate": "2027-01-31"}),
    ("Referral_Reward__c", "a03000000000001AAA", {
        "Name": "RWD-000007", "Referral__c": "a02000000000001AAA", "Recipient__c": "advocate", "Amount__c": 250,
        "Currency_Code__c": "EUR", "Type__c": "fixed", "Status__c": "pending_review",
        "Review_Reason__c": "over_amount_threshold"}),
    ("Referral_Reward__c", "a03000000000002AAA", {
        "Name": "RWD-000008", "Referral__c": "a02000000000001AAA", "Recipient__c": "friend", "Amount__c": 50,
        "Currency_Code__c": "EUR", "Type__c": "fixed", "Status__c": "pending_hold", "Hold_Until__c": "2026-12-01"}),
]

# The Account page: an account a referral brought in, whose contacts referred three friends; and one plain account.
ACCOUNT_RECORDS: list[tuple[str, str, dict[str, Any]]] = [
    ("Account", "001000000000001AAA", {"Name": "Analytical Engines Ltd", "Referral__c": "a02000000000009AAA"}),
    ("Account", "001000000000002AAA", {"Name": "Difference Engines GmbH"}),
    ("Account", "001000000000003AAA", {"Name": "Harvard Computation Lab"}),
    ("Contact", "003000000000001AAA", {"FirstName": "Ada", "LastName": "Lovelace", "Name": "Ada Lovelace",
                                       "AccountId": "001000000000001AAA"}),
    ("Contact", "003000000000002AAA", {"FirstName": "Annie", "LastName": "Easley", "Name": "Annie Easley",
                                       "AccountId": "001000000000001AAA"}),
    ("Contact", "003000000000009AAA", {"FirstName": "Grace", "LastName": "Hopper", "Name": "Grace Hopper",
                                       "AccountId": "001000000000003AAA"}),
    PROGRAM,
    ("Referral__c", "a02000000000009AAA", {
        "Name": "REF-000009", "Status__c": "rewarded", "Captured_Date__c": "2026-03-02T10:00:00.000Z",
        "Advocate__c": "003000000000009AAA", "Program__c": "a01000000000001AAA",
        "Friend_Name__c": "Analytical Engines Ltd", "Referred_Account__c": "001000000000001AAA"}),
    ("Referral__c", "a02000000000011AAA", {
        "Name": "REF-000011", "Status__c": "qualified", "Captured_Date__c": "2026-09-20T08:00:00.000Z",
        "Advocate__c": "003000000000001AAA", "Program__c": "a01000000000001AAA", "Friend_Name__c": "Charles Babbage"}),
    ("Referral__c", "a02000000000012AAA", {
        "Name": "REF-000012", "Status__c": "routed", "Captured_Date__c": "2026-09-14T08:00:00.000Z",
        "Advocate__c": "003000000000001AAA", "Program__c": "a01000000000001AAA", "Friend_Name__c": "Mary Somerville"}),
    ("Referral__c", "a02000000000013AAA", {
        "Name": "REF-000013", "Status__c": "rewarded", "Captured_Date__c": "2026-08-01T08:00:00.000Z",
        "Advocate__c": "003000000000002AAA", "Program__c": "a01000000000001AAA", "Friend_Name__c": "Alan Turing"}),
    ("Referral_Reward__c", "a03000000000011AAA", {
        "Name": "RWD-000011", "Referral__c": "a02000000000013AAA", "Recipient__c": "advocate", "Amount__c": 100,
        "Currency_Code__c": "EUR", "Type__c": "fixed", "Status__c": "issued", "Issued_Date__c": "2026-08-20"}),
    ("Referral_Reward__c", "a03000000000012AAA", {
        "Name": "RWD-000012", "Referral__c": "a02000000000011AAA", "Recipient__c": "advocate", "Amount__c": 150,
        "Currency_Code__c": "EUR", "Type__c": "fixed", "Status__c": "issued", "Issued_Date__c": "2026-10-02"}),
    ("Referral_Reward__c", "a03000000000013AAA", {
        "Name": "RWD-000013", "Referral__c": "a02000000000013AAA", "Recipient__c": "advocate", "Amount__c": 80,
        "Currency_Code__c": "USD", "Type__c": "fixed", "Status__c": "issued", "Issued_Date__c": "2026-08-21"}),
    ("Referral_Reward__c", "a03000000000014AAA", {
        "Name": "RWD-000014", "Referral__c": "a02000000000012AAA", "Recipient__c": "advocate", "Amount__c": 250,
        "Currency_Code__c": "EUR", "Type__c": "fixed", "Status__c": "pending_review",
        "Review_Reason__c": "over_amount_threshold"}),
    ("Referral_Reward__c", "a03000000000015AAA", {
        "Name": "RWD-000015", "Referral__c": "a02000000000013AAA", "Recipient__c": "friend", "Amount__c": 40,
        "Currency_Code__c": "EUR", "Type__c": "fixed", "Status__c": "issued", "Issued_Date__c": "2026-08-21"}),
]


# The fixtures' own key prefixes for the package's objects. An org gives custom objects whatever prefixes are free
# when the package is installed; records are loaded under the org's prefixes and answers mapped back, so the
# fixtures (and the Jest tests that name their ids) do not depend on installation order.
FIXTURE_PREFIXES = {"a01": "Referral_Program__c", "a02": "Referral__c", "a03": "Referral_Reward__c"}
_ID = re.compile(r"\b[a-zA-Z0-9]{15}[A-Z0-5]{3}\b")


def to_org_id(org: Org, fixture_id: str) -> str:
    """The id a fixture record has in ``org``: the org's key prefix for its object, the same number."""
    obj_name = FIXTURE_PREFIXES.get(fixture_id[:3])
    if obj_name is None:
        return fixture_id
    return ids.to18(org.store.objects[obj_name].key_prefix + fixture_id[3:15])


def to_fixture_ids(org: Org, content: Any) -> Any:
    """An answer of ``org`` with its record ids (whole values or inside URLs) written as the fixtures' ids."""
    back = {org.store.objects[name].key_prefix: prefix for prefix, name in FIXTURE_PREFIXES.items()}

    def swap(match: re.Match[str]) -> str:
        value = match.group(0)
        prefix = back.get(value[:3])
        if prefix is None or ids.normalize(value) != value:
            return value
        return ids.to18(prefix + value[3:15])

    if isinstance(content, dict):
        return {key: to_fixture_ids(org, value) for key, value in content.items()}
    if isinstance(content, list):
        return [to_fixture_ids(org, value) for value in content]
    if isinstance(content, str):
        return _ID.sub(swap, content)
    return content


def load_records(org: Org, records: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Write records with given ids, as a data import would (system fields stamped, values typed)."""
    store = org.store
    for obj_name, record_id, values in records:
        obj = store.objects[obj_name]
        stamp = "2026-10-01T09:31:00.000+0000"
        row: dict[str, Any] = {f.name: (int(f.default) if isinstance(f.default, bool) else f.default)
                               for f in obj.fields.values() if f.default is not None}
        for name, value in values.items():
            f = obj.fields[name]
            row[name] = coerce(f, to_org_id(org, value) if f.type == "reference" else value)
        row.update(Id=to_org_id(org, record_id), IsDeleted=0, CreatedDate=stamp, LastModifiedDate=stamp,
                   SystemModstamp=stamp, CreatedById=org.admin_id, LastModifiedById=org.admin_id)
        if obj.owned:
            row["OwnerId"] = org.admin_id
        store.bulk_insert_rows(obj, list(row), [tuple(row.values())])


def load_showcase(org: Org) -> None:
    """Both scenarios in one org, for the preview's browser tests and the documentation's screenshots: the account
    a referral brought in is also the home of the opportunity scenario's advocate."""
    load_records(org, ATTRIBUTION_RECORDS)
    loaded = {record_id for _, record_id, _ in ATTRIBUTION_RECORDS}
    load_records(org, [r for r in ACCOUNT_RECORDS if r[1] not in loaded])
    with org.store.lock:
        org.store.db.execute('UPDATE "o_Account" SET Referral__c=? WHERE Id=?',
                             (to_org_id(org, "a02000000000009AAA"), "001000000000001AAA"))


def graphql_document(component: str) -> str:
    """The GraphQL document of a component's gql tagged template, as the component writes it."""
    source = (LWC / component / f"{component}.js").read_text(encoding="utf-8")
    match = re.search(r"gql`(.*?)`", source, re.DOTALL)
    if match is None:
        raise SystemExit(f"lwc/{component}/{component}.js has no gql document")
    return match.group(1)


class OrgClient:
    """An empty org with a scenario loaded, asked in fixture ids and answering in them."""

    def __init__(self, records: list[tuple[str, str, dict[str, Any]]]) -> None:
        self.org = Org(seed="empty")
        load_records(self.org, records)
        token = self.org.oauth.issue_access(self.org.admin_id, self.org.client_id, "api")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.client = Client(App(self.org))

    def id(self, fixture_id: str) -> str:
        return to_org_id(self.org, fixture_id)

    def path(self, path: str) -> str:
        """A resource path with the fixture ids in it turned into this org's."""
        return _ID.sub(lambda m: self.id(m.group(0)), path)

    def get(self, path: str, **params: Any) -> Any:
        query = urlencode({k: ",".join(v) if isinstance(v, list) else v for k, v in params.items()})
        response = self.client.get(f"/services/data/v{VERSION}/ui-api/{self.path(path)}?{query}",
                                   headers=self.headers)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.get_data(as_text=True)}")
        return to_fixture_ids(self.org, response.get_json())

    def graphql(self, document: str, variables: dict[str, Any]) -> Any:
        response = self.client.post(f"/services/data/v{VERSION}/graphql", json={"query": document,
                                                                               "variables": variables},
                                    headers=self.headers)
        body = response.get_json()
        if response.status_code != 200 or body.get("errors"):
            raise SystemExit(f"graphql: {response.status_code} {body}")
        return to_fixture_ids(self.org, body["data"])


def generate() -> dict[Path, Any]:
    """Every fixture file and the content the emulated org gives it."""
    out: dict[Path, Any] = {}
    data = LWC / "referralAttribution" / "__tests__" / "data"
    org = OrgClient(ATTRIBUTION_RECORDS)
    out[data / "getRecordAttributed.json"] = org.get("records/006000000000001AAA", fields=OPPORTUNITY_FIELDS,
                                                     optionalFields=OPPORTUNITY_OPTIONAL)
    out[data / "getRecordUnattributed.json"] = org.get("records/006000000000002AAA", fields=OPPORTUNITY_FIELDS,
                                                       optionalFields=OPPORTUNITY_OPTIONAL)
    out[data / "getRelatedListRecords.json"] = org.get("related-list-records/a02000000000001AAA/Rewards__r",
                                                       fields=REWARD_FIELDS, sortBy=["Referral_Reward__c.Name"])
    out[data / "getPicklistValues.json"] = org.get("object-info/Opportunity/picklist-values/012000000000000AAA/"
                                                   "StageName")

    data = LWC / "accountReferrals" / "__tests__" / "data"
    org = OrgClient(ACCOUNT_RECORDS)
    out[data / "getRecordReferred.json"] = org.get("records/001000000000001AAA", fields=ACCOUNT_FIELDS,
                                                   optionalFields=ACCOUNT_OPTIONAL)
    out[data / "getRecordPlain.json"] = org.get("records/001000000000002AAA", fields=ACCOUNT_FIELDS,
                                                optionalFields=ACCOUNT_OPTIONAL)
    document = graphql_document("accountReferrals")
    out[data / "graphqlReferrals.json"] = org.graphql(document, {"accountId": "001000000000001AAA", "pageSize": 50})
    out[data / "graphqlEmpty.json"] = org.graphql(document, {"accountId": "001000000000002AAA", "pageSize": 50})
    return out


def _without_etags(content: Any) -> Any:
    if isinstance(content, dict):
        return {k: None if k == "eTag" else _without_etags(v) for k, v in content.items()}
    if isinstance(content, list):
        return [_without_etags(v) for v in content]
    return content


def render(content: Any) -> str:
    return json.dumps(content, indent=4, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when a fixture differs from the org's answer")
    args = parser.parse_args(argv)
    drift, written = [], []
    for path, content in generate().items():
        # Content is compared, not layout (Prettier owns the files' formatting), nor the opaque eTag hashes.
        current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        if _without_etags(current) == _without_etags(content):
            continue
        if args.check:
            drift.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(render(content), encoding="utf-8")
            written.append(path)
            print(f"wrote {path.relative_to(ROOT)}")
    prettier = ROOT / "node_modules" / ".bin" / "prettier"
    if written and prettier.exists():
        subprocess.run([str(prettier), "--write", "--log-level=warn", *map(str, written)], check=True)
    if drift:
        print("fixtures differ from the emulated org's UI API answers (regenerate with "
              "`python -m refstage_devkit.emulators.salesforce.preview.fixtures`):\n  " + "\n  ".join(drift))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
