"""REST fidelity: filterable/sortable enforced by the SOQL compiler as describe says, query cursors that
expire after 15 idle minutes, one SystemModstamp per sObject Collections transaction."""

from __future__ import annotations

import pytest
from sf_emu_helpers import VERSION, Api, make_emulator, password_token
from simple_salesforce import Salesforce

from refstage_devkit.emulators.salesforce.schema import default_metadata_dir


@pytest.fixture(scope="module")
def package_emu(cert_dir):
    """An org holding the package's own objects and fields."""
    with make_emulator(cert_dir, seed="empty", metadata_dir=default_metadata_dir()) as emu:
        yield emu


@pytest.fixture
def sf(package_emu):
    return Salesforce(instance_url=package_emu.base_url,
                      session_id=Api(package_emu, password_token(package_emu)["access_token"]).token, version=VERSION)


def test_long_text_cannot_be_filtered_or_sorted(package_emu, sf):
    from simple_salesforce.exceptions import SalesforceMalformedRequest as Bad

    with pytest.raises(Bad) as err:
        sf.query("SELECT Id FROM Account WHERE Description = 'x'")
    body = err.value.content[0]
    assert body["errorCode"] == "INVALID_FIELD"
    assert body["message"].endswith("ERROR at Row:1:Column:30\nfield 'Description' can not be filtered in a query call")
    with pytest.raises(Bad) as err:
        sf.query("SELECT Id FROM Account ORDER BY Description")
    assert err.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    assert err.value.content[0]["message"].endswith("field 'Description' can not be sorted in a query call")
    with pytest.raises(Bad):
        sf.query("SELECT Id FROM Contact WHERE Account.Description LIKE '%a%'")
    # A plain text area (255) filters and sorts; describe says the same as the compiler.
    assert sf.query("SELECT Id FROM Account WHERE BillingStreet = 'x' ORDER BY BillingStreet")["totalSize"] == 0
    fields = {f["name"]: f for f in sf.Account.describe()["fields"]}
    assert (fields["Description"]["filterable"], fields["Description"]["sortable"]) == (False, False)
    assert (fields["BillingStreet"]["filterable"], fields["BillingStreet"]["sortable"]) == (True, True)


def test_query_cursor_expires_after_fifteen_idle_minutes(package_emu, sf):
    from simple_salesforce.exceptions import SalesforceMalformedRequest as Bad

    for start in range(0, 450, 200):
        sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": [
            {"attributes": {"type": "Account"}, "Name": f"Cursor {i}"} for i in range(start, min(start + 200, 450))]})
    first = sf.query("SELECT Id FROM Account WHERE Name LIKE 'Cursor %'", headers={"Sforce-Query-Options": "batchSize=200"})
    assert first["done"] is False and first["totalSize"] == 450
    package_emu.control.advance_clock(14 * 60)  # used within 15 minutes: alive, and the clock restarts
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(second["records"]) == 200 and second["done"] is False
    package_emu.control.advance_clock(15 * 60 + 1)
    with pytest.raises(Bad) as err:
        sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    assert err.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_one_system_modstamp_per_transaction(package_emu, sf):
    import time

    import requests

    created = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "Name": f"Stamp {i}"} for i in range(3)]
        + [{"attributes": {"type": "Account"}}]})  # the invalid one fails alone
    assert [r["success"] for r in created] == [True, True, True, False]
    stamps = {r["SystemModstamp"] for r in sf.query("SELECT SystemModstamp FROM Account WHERE Name LIKE 'Stamp %'")["records"]}
    assert len(stamps) == 1
    later = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "Name": "Stamp later"}]})
    assert sf.Account.get(later[0]["id"])["SystemModstamp"] > stamps.pop()
    # Bulk API 2.0: every 200 records of a job are one transaction.
    base = f"{package_emu.base_url}/services/data/v{VERSION}/jobs/ingest"
    headers = {"Authorization": f"Bearer {sf.session_id}"}
    job = requests.post(base, json={"object": "Account", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"},
                        headers=headers, timeout=10).json()
    csv_body = "Name\n" + "".join(f"Bulk stamp {i}\n" for i in range(450))
    assert requests.put(f"{base}/{job['id']}/batches", data=csv_body.encode(), timeout=10,
                        headers={**headers, "Content-Type": "text/csv"}).status_code == 201
    requests.patch(f"{base}/{job['id']}", json={"state": "UploadComplete"}, headers=headers, timeout=10)
    for _ in range(100):
        if requests.get(f"{base}/{job['id']}", headers=headers, timeout=10).json()["state"] == "JobComplete":
            break
        time.sleep(0.05)
    rows = sf.query_all("SELECT SystemModstamp FROM Account WHERE Name LIKE 'Bulk stamp %'")["records"]
    per_stamp = sorted(sum(1 for r in rows if r["SystemModstamp"] == s) for s in {r["SystemModstamp"] for r in rows})
    assert per_stamp == [50, 200, 200]
