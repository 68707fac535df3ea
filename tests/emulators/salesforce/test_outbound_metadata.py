"""Outbound Messages delivered to a plain-HTTP loopback receiver, and SFDX metadata loading."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from defusedxml import ElementTree as ET
from sf_emu_helpers import make_emulator

from refstage_devkit.emulators.salesforce.deploy import default_package_dir

ACK = (b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/'
       b'envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
       b'<Ack>{ack}</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>')
NS = {"s": "http://schemas.xmlsoap.org/soap/envelope/", "o": "http://soap.sforce.com/2005/09/outbound",
      "sf": "urn:sobject.enterprise.soap.sforce.com", "xsi": "http://www.w3.org/2001/XMLSchema-instance"}


class Receiver:
    """A loopback endpoint that refuses the first `fail_first` messages, then acknowledges."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[tuple[float, bytes, dict]] = []
        self.fail_first = fail_first
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append((time.monotonic(), body, dict(self.headers)))
                if len(outer.bodies) <= outer.fail_first:
                    payload = ACK.replace(b"{ack}", b"false")
                else:
                    payload = ACK.replace(b"{ack}", b"true")
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_port}/sf/outbound"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver(fail_first=2)
    yield r
    r.close()


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_outbound_message_envelope_and_retries(api, sf, emu, receiver):
    r = api.control("outbound/rules", {"object": "Opportunity", "fields": ["Name", "StageName", "Amount"],
                                       "condition": "StageName = 'Closed Won'", "endpointUrl": receiver.url})
    assert r.status_code == 201
    rule = r.json()
    assert rule["id"].startswith("04k")
    opp = sf.Opportunity.create({"Name": "OM deal", "StageName": "Prospecting", "CloseDate": "2026-12-31",
                                 "Amount": 5000})["id"]
    time.sleep(0.3)
    assert receiver.bodies == []  # condition not met
    sf.Opportunity.update(opp, {"StageName": "Closed Won"})
    assert _wait(lambda: len(receiver.bodies) >= 3)
    stamps = [b[0] for b in receiver.bodies[:3]]
    assert stamps[2] - stamps[1] > stamps[1] - stamps[0] > 0.15  # growing gaps
    t, body, headers = receiver.bodies[-1]
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(body)
    n = root.find("s:Body/o:notifications", NS)
    assert n.find("o:OrganizationId", NS).text == emu.org.org_id
    assert n.find("o:ActionId", NS).text == rule["id"]
    assert n.find("o:SessionId", NS).get(f"{{{NS['xsi']}}}nil") == "true"
    assert n.find("o:EnterpriseUrl", NS).text.startswith(emu.base_url + "/services/Soap/c/")
    assert n.find("o:PartnerUrl", NS).text.startswith(emu.base_url + "/services/Soap/u/")
    notes = n.findall("o:Notification", NS)
    assert len(notes) == 1 and notes[0].find("o:Id", NS).text.startswith("04l")
    so = notes[0].find("o:sObject", NS)
    assert so.get(f"{{{NS['xsi']}}}type") == "sf:Opportunity"
    assert so.find("sf:Id", NS).text == opp and so.find("sf:StageName", NS).text == "Closed Won"
    assert so.find("sf:Amount", NS).text == "5000.0"
    # every attempt carried the same notification id (at-least-once redelivery)
    ids_seen = {ET.fromstring(b).find("s:Body/o:notifications/o:Notification/o:Id", NS).text
                for _, b, _ in receiver.bodies}
    assert len(ids_seen) == 1
    deliveries = api.control("outbound/deliveries", method="GET").json()
    assert [d["acked"] for d in deliveries][:3] == [False, False, True]
    assert deliveries[0]["recordIds"] == [opp]
    assert api.control("outbound/rules", method="GET").json()[0]["endpointUrl"] == receiver.url
    assert api.control(f"outbound/rules/{rule['id']}", method="DELETE").status_code == 204


def test_outbound_batches_bulk_changes(cert_dir):
    rec = Receiver()
    try:
        with make_emulator(cert_dir, seed="empty") as emu:
            emu.control.add_outbound_rule(object="Account", fields=["Name"], endpointUrl=rec.url)
            from sf_emu_helpers import Api, password_token

            api = Api(emu, password_token(emu)["access_token"])
            api.post("composite/sobjects", json={"records": [
                {"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(150)]})
            assert _wait(lambda: emu.org.outbound.wait_idle(0.1) and len(rec.bodies) >= 2)
            counts = [len(ET.fromstring(b).findall("s:Body/o:notifications/o:Notification", NS))
                      for _, b, _ in rec.bodies]
            assert sum(counts) == 150 and max(counts) <= 100
    finally:
        rec.close()


def test_fixture_metadata_is_installed_through_the_deploy(emu):
    objs = emu.org.store.objects
    w = objs["Widget__c"]
    assert w.custom and w.key_prefix.startswith("a") and w.label == "Widget" and w.label_plural == "Widgets"
    assert w.fields["Backend_Id__c"].external_id and w.fields["Backend_Id__c"].unique
    assert w.fields["Price__c"].type == "currency" and w.fields["Price__c"].scale == 2
    g = objs["Gadget__c"]
    assert g.fields["Name"].auto_number and "OwnerId" not in g.fields  # master-detail child
    assert g.fields["Widget__c"].cascade_delete and g.fields["Widget__c"].relationship_name == "Widget__r"
    assert objs["Contact"].fields["Referral_Code__c"].external_id
    assert objs["Lead"].fields["Widget__c"].reference_to == ["Widget__c"]
    listed = {name for name, _ in emu.org.store.deployed("CustomObject")}
    assert listed == {"Contact", "Gadget__c", "Lead", "Widget__c"}


def test_master_detail_cascade_and_autonumber(sf):
    w = sf.Widget__c.create({"Name": "Parent"})["id"]
    g = sf.Gadget__c.create({"Widget__c": w})["id"]
    assert sf.Gadget__c.get(g)["Name"].startswith("GAD-")
    assert sf.query(f"SELECT Widget__r.Name FROM Gadget__c WHERE Id = '{g}'")["records"][0]["Widget__r"]["Name"] == \
        "Parent"
    sf.Widget__c.delete(w)
    assert sf.query(f"SELECT COUNT() FROM Gadget__c WHERE Id = '{g}'")["totalSize"] == 0


REPO_PACKAGE = default_package_dir()


def test_repo_sfdx_metadata_is_served(cert_dir):
    assert (REPO_PACKAGE / "main" / "default" / "objects").is_dir(), f"the package's objects folder is missing: {REPO_PACKAGE}"
    sources = sorted(p.name for p in (REPO_PACKAGE / "main" / "default" / "objects").iterdir() if p.is_dir())
    with make_emulator(cert_dir, seed="demo", metadata_dir=REPO_PACKAGE) as emu:
        from sf_emu_helpers import VERSION, password_token
        from simple_salesforce import Salesforce

        sf = Salesforce(instance_url=emu.base_url, session_id=password_token(emu)["access_token"], version=VERSION)
        names = {o["name"] for o in sf.describe()["sobjects"]}
        for name in sources:
            assert name in names
            fields = {f["name"] for f in sf.restful(f"sobjects/{name}/describe")["fields"]}
            declared = {p.name.split(".")[0] for p in (REPO_PACKAGE / "main/default/objects" / name / "fields").glob(
                "*.field-meta.xml")}
            assert declared <= fields
            if name.endswith("__c"):
                sf.query(f"SELECT Id, Name FROM {name} LIMIT 1")
