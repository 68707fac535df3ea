"""(a) Replay: every Outbound Message delivered 3 times, shuffled. 0 duplicate rewards; the final state
is the one a clean (polling) run reaches. Pipedrive's webhook replay: tests/pipedrive/test_reliability.py."""

from __future__ import annotations

import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from refstage.services.enrolment import run_enrolment
from refstage.services.referrals import route_referral
from refstage.services.sync import drain_events, run_sync, write_back
from tests.salesforce.helpers import OrgAdmin, final_state, refer, setup_world

FAST = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05}
ACK = (b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
       b'<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
       b'</notificationsResponse></soapenv:Body></soapenv:Envelope>')


class _Capture(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.end_headers()
        self.wfile.write(ACK)

    def log_message(self, *args):
        pass


def test_outbound_messages_replayed_three_times_shuffled(rt, client, emu, size, record):
    n = size(4, 30)
    emu.control.seed(contacts=n + 5, seed=9)
    admin = OrgAdmin(emu)
    tenant_id, connection_id, program_id = setup_world(rt, client, FAST)
    run_enrolment(rt, tenant_id, program_id)
    ids = refer(rt, tenant_id, program_id, n)
    for rid in ids:
        route_referral(rt, tenant_id, rid)
    leads = admin.query("SELECT Id FROM Lead WHERE Refstage_Referral_Id__c != null")
    opps = [admin.convert(lead["Id"])["opportunityId"] for lead in leads]
    run_sync(rt, tenant_id, connection_id)  # learns the conversions; opportunities are open

    _Capture.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        emu.control.add_outbound_rule(object="Opportunity", endpointUrl=f"http://127.0.0.1:{server.server_port}/om",
                                      fields=["Id", "StageName", "Amount", "IsWon", "IsClosed", "SystemModstamp"])
        admin.update("Opportunity", [{"Id": o, "StageName": "Negotiation/Review", "Amount": 8000} for o in opps])
        admin.update("Opportunity", [{"Id": o, "StageName": "Closed Won"} for o in opps])
        deadline = time.time() + 20
        while time.time() < deadline and (emu.org.outbound.pending() or len(_Capture.bodies) < 2):
            time.sleep(0.05)
    finally:
        server.shutdown()
        server.server_close()
    bodies = list(_Capture.bodies)
    assert len(bodies) >= 2, "the org sent no outbound messages"

    deliveries = bodies * 3
    random.Random(8).shuffle(deliveries)
    from urllib.parse import urlsplit

    from refstage.services.push_keys import outbound_message_url

    url = urlsplit(outbound_message_url(rt, tenant_id, connection_id)).path
    for body in deliveries:
        r = client.post(url, data=body, headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})
        assert r.status_code == 200 and b"<Ack>true</Ack>" in r.data
    drain_events(rt, tenant_id, connection_id)
    record.update(referrals=n, messages_sent_by_org=len(bodies), deliveries_replayed=len(deliveries))
    with rt.uow(tenant_id) as uow:
        connection = uow.connections.get(connection_id)
    write_back(rt, tenant_id, connection)
    pushed = final_state(rt, admin, tenant_id, program_id)
    assert pushed["referral_statuses"] == ["qualified"] * n
    assert pushed["rewards"] == 2 * n and pushed["rewards_per_referral"] == [2]
    assert pushed["org_rewards"] == 2 * n and pushed["pending_writes"] == 0
    # A clean polling cycle afterwards finds nothing to change: the replayed pushes reached its state.
    assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
    assert final_state(rt, admin, tenant_id, program_id) == pushed
