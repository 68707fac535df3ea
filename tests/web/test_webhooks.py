"""Outbound webhooks: endpoints over the API, signed deliveries to a local receiver, retries with
backoff, the delivery log, redelivery, and tenant isolation."""

from __future__ import annotations

import dataclasses

import json

import pytest

from refstage.domain.audit import Actor
from refstage.services import referrals, tenants, webhooks
from refstage.services.referrals import FriendInput
from tests.web.servers import WebhookReceiver, closed_port



@pytest.fixture
def settings(settings):
    # The receivers in these tests listen on loopback: a development allowance, set explicitly.
    return dataclasses.replace(settings, allow_private_webhook_targets=True)

@pytest.fixture
def key(rt, site):
    return tenants.create_api_key(rt, site.tenant.id, "payouts", Actor.system())


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def capture(rt, site):
    return referrals.capture_referral(rt, site.code, FriendInput("Alex Friend", "alex@prospect.test", "Prospect", None, True))


def queued(rt, name):
    return [kw for n, kw in rt.jobs.jobs if n == name]


def test_endpoint_crud_over_the_api(client, key, site):
    resp = client.post("/api/v1/webhooks", json={"url": "https://payouts.example.test/hook", "events": ["reward.issued"],
                                                 "description": "payouts"}, headers=auth(key))
    assert resp.status_code == 201
    created = resp.json
    assert created["secret"].startswith("whsec_") and created["events"] == ["reward.issued"] and created["active"] is True
    listed = client.get("/api/v1/webhooks", headers=auth(key)).json["data"]
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
    patched = client.patch(f"/api/v1/webhooks/{created['id']}", json={"active": False, "events": list(webhooks.WEBHOOK_EVENTS)},
                           headers=auth(key))
    assert patched.status_code == 200 and patched.json["active"] is False and len(patched.json["events"]) == 4
    rotated = client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret", headers=auth(key))
    assert rotated.status_code == 200 and rotated.json["secret"] != created["secret"]
    for bad in ({"url": "ftp://x.test/"}, {"url": "not a url"}, {"url": "https://x.test/", "events": ["nope"]},
                {"url": "https://x.test/", "events": []}, {}):
        r = client.post("/api/v1/webhooks", json=bad, headers=auth(key))
        assert r.status_code == 400 and r.json["error"]["code"] == "invalid_input", bad
    assert client.delete(f"/api/v1/webhooks/{created['id']}", headers=auth(key)).status_code == 204
    assert client.get(f"/api/v1/webhooks/{created['id']}", headers=auth(key)).status_code == 404
    assert client.get("/api/v1/webhooks").status_code == 401


def test_signed_delivery_once_per_event(client, key, rt, site, clock):
    with WebhookReceiver() as receiver:
        created = client.post("/api/v1/webhooks", json={"url": receiver.url}, headers=auth(key)).json
        ref = capture(rt, site)
        from refstage.services import notifications

        notifications.dispatch(rt, site.tenant.id, "referral.captured", ref.id)
        notifications.dispatch(rt, site.tenant.id, "referral.captured", ref.id)  # a repeated job
        [job] = queued(rt, "deliver_webhook")
        assert webhooks.deliver(rt, **job).status == "delivered"
        assert webhooks.deliver(rt, **job).status == "delivered"  # a duplicate job sends nothing
        [req] = receiver.requests
    headers, body = req["headers"], req["body"]
    assert headers["Refstage-Event"] == "referral.captured" and headers["Refstage-Delivery"] == job["delivery_id"]
    now = int(clock.now.timestamp())
    assert webhooks.verify_signature(created["secret"], headers["Refstage-Signature"], body, now)
    assert not webhooks.verify_signature(created["secret"], headers["Refstage-Signature"], body + b" ", now)
    assert not webhooks.verify_signature("whsec_other", headers["Refstage-Signature"], body, now)
    assert not webhooks.verify_signature(created["secret"], headers["Refstage-Signature"], body, now + 301)  # replayed later
    payload = json.loads(body)
    assert payload["event"] == "referral.captured" and payload["data"]["id"] == ref.id
    assert payload["data"]["friend_email"] == "alex@prospect.test"
    log = client.get("/api/v1/webhook-deliveries", headers=auth(key)).json["data"]
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in log] == [("delivered", 1, 200)]


def test_retries_with_backoff_then_delivers(client, key, rt, site, clock):
    with WebhookReceiver(responses=[500, 503]) as receiver:
        client.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["referral.captured"]}, headers=auth(key))
        ref = capture(rt, site)
        [delivery_id] = webhooks.fan_out(rt, site.tenant.id, "referral.captured", ref.id)
        first = webhooks.deliver(rt, site.tenant.id, delivery_id)
        assert (first.status, first.retry_in, first.status_code) == ("retrying", 10, 500)
        clock.advance(seconds=10)
        second = webhooks.deliver(rt, site.tenant.id, delivery_id)
        assert (second.status, second.retry_in) == ("retrying", 20)
        clock.advance(seconds=20)
        assert webhooks.deliver(rt, site.tenant.id, delivery_id).status == "delivered"
        assert len(receiver.requests) == 3
        assert [r["headers"]["Refstage-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    d = client.get(f"/api/v1/webhook-deliveries/{delivery_id}", headers=auth(key)).json
    assert d["status"] == "delivered" and d["attempts"] == 3 and d["delivered_at"] and d["last_error"] is None


def test_permanent_refusal_fails_at_once_and_can_be_redelivered(client, key, rt, site):
    with WebhookReceiver(responses=[410]) as receiver:
        client.post("/api/v1/webhooks", json={"url": receiver.url}, headers=auth(key))
        ref = capture(rt, site)
        [delivery_id] = webhooks.fan_out(rt, site.tenant.id, "referral.captured", ref.id)
        out = webhooks.deliver(rt, site.tenant.id, delivery_id)
        assert out.status == "failed" and out.retry_in is None
        failed = client.get("/api/v1/webhook-deliveries?status=failed", headers=auth(key)).json["data"]
        assert [d["id"] for d in failed] == [delivery_id] and "HTTP 410" in failed[0]["last_error"]
        again = client.post(f"/api/v1/webhook-deliveries/{delivery_id}/redeliver", headers=auth(key))
        assert again.status_code == 202 and again.json["status"] == "pending"
        assert webhooks.deliver(rt, site.tenant.id, delivery_id).status == "delivered"
        assert len(receiver.requests) == 2


def test_unreachable_endpoint_gives_up_after_max_attempts(client, key, rt, site, clock):
    client.post("/api/v1/webhooks", json={"url": f"http://127.0.0.1:{closed_port()}/x"}, headers=auth(key))
    ref = capture(rt, site)
    [delivery_id] = webhooks.fan_out(rt, site.tenant.id, "referral.captured", ref.id)
    statuses = []
    for _ in range(webhooks.MAX_ATTEMPTS):
        out = webhooks.deliver(rt, site.tenant.id, delivery_id)
        statuses.append(out.status)
        clock.advance(seconds=out.retry_in or 0)
    assert statuses == ["retrying"] * (webhooks.MAX_ATTEMPTS - 1) + ["failed"]
    assert webhooks.get_delivery(rt, site.tenant.id, delivery_id)["last_error"] == "connection failed"


def test_only_subscribed_active_endpoints_receive_and_sweep_requeues(client, key, rt, site, clock):
    a = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/a", "events": ["reward.issued"]}, headers=auth(key)).json
    b = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/b"}, headers=auth(key)).json
    client.patch(f"/api/v1/webhooks/{b['id']}", json={"active": False}, headers=auth(key))
    ref = capture(rt, site)
    assert webhooks.fan_out(rt, site.tenant.id, "referral.captured", ref.id) == []
    client.patch(f"/api/v1/webhooks/{b['id']}", json={"active": True}, headers=auth(key))
    [delivery_id] = webhooks.fan_out(rt, site.tenant.id, "referral.captured", ref.id)
    assert webhooks.fan_out(rt, site.tenant.id, "referral.captured", ref.id) == []
    assert webhooks.due_deliveries(rt) == []
    clock.advance(minutes=2)  # the job was lost: the sweep finds it
    assert webhooks.due_deliveries(rt) == [(site.tenant.id, delivery_id)]
    assert a["id"] != b["id"]


def test_ping_and_tenant_isolation(client, key, rt, site):
    other = tenants.create_tenant(rt, "Beta", "beta")
    other_key = tenants.create_api_key(rt, other.id, "k", Actor.system())
    with WebhookReceiver() as receiver:
        ep = client.post("/api/v1/webhooks", json={"url": receiver.url}, headers=auth(key)).json
        ping = client.post(f"/api/v1/webhooks/{ep['id']}/test", headers=auth(key))
        assert ping.status_code == 202 and ping.json["event"] == "ping"
        assert webhooks.deliver(rt, site.tenant.id, ping.json["id"]).status == "delivered"
    for method, path in (("get", f"/api/v1/webhooks/{ep['id']}"), ("patch", f"/api/v1/webhooks/{ep['id']}"),
                         ("delete", f"/api/v1/webhooks/{ep['id']}"), ("post", f"/api/v1/webhooks/{ep['id']}/test"),
                         ("get", f"/api/v1/webhook-deliveries/{ping.json['id']}")):
        resp = getattr(client, method)(path, json={"active": False}, headers=auth(other_key))
        assert resp.status_code == 404, path
    assert client.get("/api/v1/webhooks", headers=auth(other_key)).json["data"] == []
    assert client.get("/api/v1/webhook-deliveries", headers=auth(other_key)).json["data"] == []


def test_emails_endpoint_lists_the_outbox(client, key, rt, site):
    from refstage.services import notifications

    ref = capture(rt, site)
    notifications.dispatch(rt, site.tenant.id, "referral.captured", ref.id)
    data = client.get("/api/v1/emails", headers=auth(key)).json["data"]
    assert [(e["event"], e["to"], e["status"]) for e in data] == [("referral.captured", "sam@advocate.test", "stored")]
