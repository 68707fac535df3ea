"""Issue 17, finding 4: forged Outbound Messages. A SOAP envelope claiming that a referred Lead was
converted into a made-up Opportunity at Closed Won, future-dated, used to qualify the referral and
create rewards that later syncs never undid. Now: without the connection's push key (or from another
org) it is refused with a SOAP fault and nothing is stored; with a leaked key it is stored as a hint,
the records are re-read from the org, and nothing moves. Replays change nothing either."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from refstage.domain.audit import Actor
from refstage.services.enrolment import run_enrolment
from refstage.services.referrals import route_referral
from refstage.services.sync import drain_events, run_sync
from tests.salesforce.helpers import OrgAdmin, refer, setup_world
from tests.security.push_support import (FAST, emu, envelope, inbox_count, money_state, reward_count,  # noqa: F401
                                         settings, sf_emulator)

MADE_UP_OPPORTUNITY = "006000000000777AAA"
FUTURE = "2099-01-01T00:00:00.000Z"


def _world(rt, client):
    tenant_id, connection_id, program_id = setup_world(rt, client, FAST)
    run_enrolment(rt, tenant_id, program_id)
    (referral_id,) = refer(rt, tenant_id, program_id, 1)
    route_referral(rt, tenant_id, referral_id)
    run_sync(rt, tenant_id, connection_id)
    with rt.uow(tenant_id) as uow:
        referral = uow.referrals.get(referral_id)
    assert referral.status.value in ("routed", "in_progress") and referral.crm.lead_id
    return tenant_id, connection_id, referral


def _forged_conversion(org_id: str, lead_id: str, first_id: int = 1) -> bytes:
    return envelope(org_id, [
        ("Lead", lead_id, {"IsConverted": "true", "Status": "Closed - Converted",
                           "ConvertedOpportunityId": MADE_UP_OPPORTUNITY, "SystemModstamp": FUTURE}),
        ("Opportunity", MADE_UP_OPPORTUNITY, {"StageName": "Closed Won", "Amount": "250000", "IsWon": "true",
                                              "IsClosed": "true", "SystemModstamp": FUTURE}),
    ], first_id)


def _keyed_path(rt, tenant_id: str, connection_id: str) -> str:
    from refstage.services.push_keys import outbound_message_url

    return urlsplit(outbound_message_url(rt, tenant_id, connection_id)).path


def _process(rt, tenant_id, connection_id) -> None:
    """What the worker does: process_events for the connection, then three ordinary syncs."""
    drain_events(rt, tenant_id, connection_id)
    for _ in range(3):
        assert run_sync(rt, tenant_id, connection_id).status == "succeeded"


def test_forged_outbound_message_without_the_push_key_is_refused_with_no_side_effect(rt, client, emu):
    tenant_id, connection_id, referral = _world(rt, client)
    org_id = emu.control.org.org_id
    forged = _forged_conversion(org_id, referral.crm.lead_id)
    before, events, jobs = money_state(rt, tenant_id), inbox_count(rt), len(rt.jobs.jobs)
    attempts = {
        # What the probe did: the connection id in the URL and the right org id in the body.
        "no key (the old endpoint)": f"/webhooks/salesforce/outbound-message/{connection_id}",
        "no key, legacy ?key= query": f"/webhooks/salesforce/outbound-message/{connection_id}?key=",
        "a guessed key": f"/webhooks/salesforce/outbound-message/{connection_id}/{'A' * 43}",
        "an empty-looking key": f"/webhooks/salesforce/outbound-message/{connection_id}/-",
        "another connection id": f"/webhooks/salesforce/outbound-message/{uuid.uuid4()}/{'A' * 43}",
    }
    for what, path in attempts.items():
        r = client.post(path, data=forged, content_type="text/xml; charset=utf-8")
        assert 400 <= r.status_code < 500, (what, r.status_code)
        assert b"<soapenv:Fault>" in r.data and b"<Ack>true</Ack>" not in r.data, what
    # The right key with another org's id, and the right key on another connection's id.
    keyed = _keyed_path(rt, tenant_id, connection_id)
    r = client.post(keyed, data=_forged_conversion("00D000000000999AAA", referral.crm.lead_id), content_type="text/xml")
    assert r.status_code == 403 and b"Fault" in r.data
    other = keyed.replace(connection_id, str(uuid.uuid4()))
    assert client.post(other, data=forged, content_type="text/xml").status_code == 403
    # Refused means: nothing stored, nothing queued, and the worker's next runs find nothing to change.
    assert inbox_count(rt) == events
    assert [j for j in rt.jobs.jobs[jobs:] if j[0] == "process_events"] == []
    _process(rt, tenant_id, connection_id)
    after = money_state(rt, tenant_id)
    assert after["referrals"] == before["referrals"] and after["rewards"] == before["rewards"]
    assert reward_count(rt) == 0


def test_forged_future_dated_conversion_with_a_leaked_key_pays_nothing_and_later_syncs_stay_right(rt, client, emu):
    tenant_id, connection_id, referral = _world(rt, client)
    admin = OrgAdmin(emu)
    org_id = emu.control.org.org_id
    before = money_state(rt, tenant_id)
    # Someone who learned the endpoint URL (key included): the envelope is well-formed and from the right
    # org, so it is acknowledged — and kept only as a hint that these two records changed.
    r = client.post(_keyed_path(rt, tenant_id, connection_id), data=_forged_conversion(org_id, referral.crm.lead_id),
                    content_type="text/xml")
    assert r.status_code == 200 and b"<Ack>true</Ack>" in r.data
    assert ("process_events", {"tenant_id": tenant_id, "connection_id": connection_id}) in rt.jobs.jobs
    _process(rt, tenant_id, connection_id)
    after = money_state(rt, tenant_id)
    assert after["referrals"] == before["referrals"], "a forged push moved the referral"
    assert after["rewards"] == before["rewards"] and reward_count(rt) == 0, "a forged push created rewards"
    assert all(i != MADE_UP_OPPORTUNITY for _, i, _ in after["records"])
    assert all("2099" not in t for _, _, t in after["records"]), "the forged timestamp was kept"
    # The real lead is converted and its real opportunity won: the next sync qualifies, with its own rewards.
    opp = admin.convert(referral.crm.lead_id)["opportunityId"]
    admin.update("Opportunity", [{"Id": opp, "StageName": "Closed Won", "Amount": 7000}])
    run_sync(rt, tenant_id, connection_id)
    run_sync(rt, tenant_id, connection_id)
    with rt.uow(tenant_id) as uow:
        got = uow.referrals.get(referral.id)
        rewards = uow.rewards.for_referral(referral.id)
    assert got.status.value == "qualified" and got.crm.opportunity_id == opp
    assert sorted((w.rule_key, int(w.amount.amount)) for w in rewards) == [("adv", 100), ("friend", 50)]


def test_replayed_and_future_dated_pushes_change_nothing(rt, client, emu):
    tenant_id, connection_id, referral = _world(rt, client)
    admin = OrgAdmin(emu)
    org_id = emu.control.org.org_id
    opp = admin.convert(referral.crm.lead_id)["opportunityId"]
    admin.update("Opportunity", [{"Id": opp, "StageName": "Closed Won", "Amount": 7000}])
    run_sync(rt, tenant_id, connection_id)
    won = admin.query(f"SELECT Id, StageName, Amount, SystemModstamp FROM Opportunity WHERE Id = '{opp}'")[0]
    path = _keyed_path(rt, tenant_id, connection_id)
    genuine = envelope(org_id, [("Opportunity", opp, {"StageName": "Closed Won", "Amount": "7000",
                                                       "SystemModstamp": won["SystemModstamp"]})], first_id=50)
    assert client.post(path, data=genuine, content_type="text/xml").status_code == 200
    drain_events(rt, tenant_id, connection_id)
    # A rep moves the deal back; the sync sees it and the unissued rewards follow the review policy.
    admin.update("Opportunity", [{"Id": opp, "StageName": "Negotiation/Review"}])
    run_sync(rt, tenant_id, connection_id)
    settled = money_state(rt, tenant_id)
    assert settled["referrals"][referral.id][0] == "disqualified"
    events = inbox_count(rt)
    queued = [j for j in rt.jobs.jobs if j[0] == "process_events"]
    # The genuine Closed Won message replayed verbatim: the same delivery id, so it is acknowledged and dropped
    # (nothing stored, nothing queued).
    for _ in range(3):
        r = client.post(path, data=genuine, content_type="text/xml")
        assert r.status_code == 200 and b"<Ack>true</Ack>" in r.data
    assert inbox_count(rt) == events
    assert [j for j in rt.jobs.jobs if j[0] == "process_events"] == queued
    # Replayed under new notification ids, and once more future-dated: stored as hints, re-read, nothing moves.
    replays = [genuine.replace(b"04l000000000000050", f"04l{n:015d}".encode()) for n in range(60, 63)]
    replays.append(envelope(org_id, [("Opportunity", opp, {"StageName": "Closed Won", "Amount": "900000",
                                                           "SystemModstamp": FUTURE})], first_id=70))
    for body in replays:
        assert client.post(path, data=body, content_type="text/xml").status_code == 200
    assert inbox_count(rt) == events + 4
    _process(rt, tenant_id, connection_id)
    assert money_state(rt, tenant_id) == settled
    # The real org moves on, and the next sync follows it (the forged 2099 stamp did not make it look old).
    admin.update("Opportunity", [{"Id": opp, "StageName": "Closed Won", "Amount": 8000}])
    run_sync(rt, tenant_id, connection_id)
    with rt.uow(tenant_id) as uow:
        assert uow.referrals.get(referral.id).status.value == "qualified"
        assert len(uow.rewards.for_referral(referral.id)) == 2


def test_rotating_the_push_key_retires_the_old_url_at_once(rt, client, emu):
    from refstage.services.push_keys import rotate_push_key

    tenant_id, connection_id, referral = _world(rt, client)
    org_id = emu.control.org.org_id
    old = _keyed_path(rt, tenant_id, connection_id)
    new_url = rotate_push_key(rt, tenant_id, connection_id, Actor.system("security test"))
    new = urlsplit(new_url).path
    assert new != old and new.startswith(f"/webhooks/salesforce/outbound-message/{connection_id}/")
    assert len(new.rsplit("/", 1)[1]) >= 22  # ≥ 128 bits, URL-safe base64
    body = envelope(org_id, [("Lead", referral.crm.lead_id, {"Status": "Working"})])
    events = inbox_count(rt)
    assert client.post(old, data=body, content_type="text/xml").status_code == 403
    assert inbox_count(rt) == events
    assert client.post(new, data=body, content_type="text/xml").status_code == 200
    with rt.uow(tenant_id) as uow:
        entries = uow.audit.list(entity_type="connection", entity_id=connection_id)
    rotated = [e for e in entries if e.action == "push_key_rotated"]
    assert len(rotated) == 1 and new.rsplit("/", 1)[1] not in str(rotated[0].after) + str(rotated[0].before)
