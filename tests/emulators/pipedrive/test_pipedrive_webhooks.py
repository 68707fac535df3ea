"""Webhooks v2: subscription API, payloads, basic auth, retries 3/30/150 s (scaled), bans, faults."""

from __future__ import annotations

import base64
import re
import time
import uuid

import pytest


def _hook(api, receiver, action="*", obj="deal", **extra):
    body = {"subscription_url": receiver.url, "event_action": action, "event_object": obj,
            "version": "2.0", "http_auth_user": "pd", "http_auth_password": "s3cret", "name": "t"}
    body.update(extra)
    r = api.post("/api/v1/webhooks", json=body)
    assert r.status_code == 201, r.text
    return r.json()["data"]


def test_subscription_api(api, receiver):
    hook = _hook(api, receiver)
    assert hook["is_active"] == 1 and hook["event_object"] == "deal" and hook["type"] == "general"
    listed = api.get("/api/v1/webhooks").json()
    assert listed["status"] == "ok" and [h["id"] for h in listed["data"]] == [hook["id"]]
    assert api.delete(f"/api/v1/webhooks/{hook['id']}").json() == {"success": True, "status": "ok"}
    assert api.get("/api/v1/webhooks").json()["data"] == []
    assert api.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 404
    bad = dict(subscription_url="http://example.com/hook", event_action="*", event_object="deal", version="2.0")
    assert api.post("/api/v1/webhooks", json=bad).status_code == 400
    assert api.post("/api/v1/webhooks", json=dict(bad, subscription_url=receiver.url, version="1.0")).status_code == 400
    assert api.post("/api/v1/webhooks", json=dict(bad, subscription_url=receiver.url, event_action="poke")).status_code == 400


def test_stage_move_payload_from_the_app(api, receiver, control, emu):
    hook = _hook(api, receiver, action="change")
    assert api.get("/api/v2/deals/3").json()["data"]["stage_id"] != 3
    control.post("/deals/3/move", {"stage_id": 3})
    [event] = receiver.wait_for(1)
    assert receiver.auth[0] == "Basic " + base64.b64encode(b"pd:s3cret").decode()
    meta = event["meta"]
    assert meta["action"] == "change" and meta["entity"] == "deal" and meta["entity_id"] == "3"
    assert meta["version"] == "2.0" and meta["change_source"] == "app" and meta["attempt"] == 1
    assert meta["webhook_id"] == str(hook["id"]) and meta["is_bulk_edit"] is False
    assert str(uuid.UUID(meta["id"])) == meta["id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", meta["timestamp"])
    for key in ("company_id", "correlation_id", "user_id", "host"):
        assert meta[key]
    assert event["data"]["stage_id"] == 3 and event["data"]["id"] == 3
    assert event["previous"]["stage_id"] == 5 and "title" not in event["previous"]
    assert event["data"] == api.get("/api/v2/deals/3").json()["data"]


def test_api_changes_create_and_delete(api, receiver, emu):
    _hook(api, receiver)
    deal = api.post("/api/v2/deals", json={"title": "Hooked"}).json()["data"]
    api.patch(f"/api/v2/deals/{deal['id']}", json={"status": "won"})
    api.delete(f"/api/v2/deals/{deal['id']}")
    events = receiver.wait_for(3)
    assert emu.wait_for_webhooks(5)
    by_action = {e["meta"]["action"]: e for e in events}
    assert set(by_action) == {"create", "change", "delete"}
    assert by_action["create"]["previous"] is None and by_action["create"]["meta"]["change_source"] == "api"
    assert by_action["change"]["previous"]["status"] == "open"
    assert by_action["delete"]["data"] is None and by_action["delete"]["previous"]["id"] == deal["id"]
    # person events do not reach a deal webhook
    api.post("/api/v2/persons", json={"name": "Not a deal"})
    assert emu.wait_for_webhooks(5) and len(receiver.events) == 3


def test_retry_schedule_and_attempt_counter(api, receiver, control, emu):
    _hook(api, receiver)
    receiver.statuses = [500, 503]
    t0 = time.monotonic()
    control.post("/deals/1/win")
    events = receiver.wait_for(3, timeout=5)
    elapsed = time.monotonic() - t0
    assert [e["meta"]["attempt"] for e in events] == [1, 2, 3]
    assert len({e["meta"]["id"] for e in events}) == 1
    assert elapsed >= (3 + 30) * 0.01
    emu.wait_for_webhooks(5)
    [delivery] = control.get("/webhooks/deliveries")["data"]
    assert delivery["state"] == "delivered"
    assert [a["http_status"] for a in delivery["attempts"]] == [500, 503, 200]


def test_gives_up_after_the_fourth_attempt(api, receiver, control, emu):
    _hook(api, receiver)
    receiver.default = 500
    control.post("/deals/1/win")
    events = receiver.wait_for(4, timeout=5)
    assert [e["meta"]["attempt"] for e in events] == [1, 2, 3, 4]
    time.sleep(0.2)
    assert len(receiver.events) == 4
    assert control.get("/webhooks/deliveries")["data"][0]["state"] == "failed"


def test_ten_first_attempt_failures_ban_the_webhook(api, receiver, control, emu):
    hook = _hook(api, receiver, action="change")
    receiver.default = 500
    for i in range(10):
        control.post("/deals/1/move", {"stage_id": 2 + i % 2})
        receiver.wait_for(i + 1)  # the first attempt of each
    emu.wait_for_webhooks(5)
    status = control.get("/webhooks/deliveries")["webhooks"][str(hook["id"])]
    assert status["banned"] is True
    control.post("/deals/1/win")
    deliveries = control.get("/webhooks/deliveries")["data"]
    assert deliveries[-1]["state"] == "lost_banned"
    # the ban lasts 30 minutes (scaled): after it, deliveries resume
    control.post("/clock/advance", {"seconds": 30 * 60 * 0.01 + 200})
    receiver.default = 200
    emu.wait_for_webhooks(5)
    control.post("/deals/1/reopen")
    emu.wait_for_webhooks(5)
    assert control.get("/webhooks/deliveries")["data"][-1]["state"] == "delivered"


def test_drop_and_duplicate(api, receiver, control, emu):
    _hook(api, receiver, action="change")
    control.post("/webhooks/drop", {"count": 1})
    control.post("/deals/1/move", {"stage_id": 7})
    control.post("/webhooks/duplicate", {"count": 1})
    control.post("/deals/2/move", {"stage_id": 8})
    emu.wait_for_webhooks(5)
    events = receiver.wait_for(2)
    assert [e["meta"]["entity_id"] for e in events] == ["2", "2"]
    assert events[0]["meta"]["id"] == events[1]["meta"]["id"]
    states = [d["state"] for d in control.get("/webhooks/deliveries")["data"]]
    assert states == ["dropped", "delivered"]


def test_fault_spec_drops_deterministically(cert_dir, session_for):
    from refstage_devkit.emulators.pipedrive.server import PipedriveEmulator

    def run() -> list[str]:
        with PipedriveEmulator(port=0, seed="demo", cert_dir=cert_dir, webhook_time_scale=0.01,
                               faults="drop_webhook:0.5,seed=3") as emu:
            s = session_for(emu, emu.api_token)
            s.post("/api/v1/webhooks", json={"subscription_url": "http://127.0.0.1:9/x",
                                             "event_action": "change", "event_object": "deal", "version": "2.0"})
            for i in range(12):
                s.patch("/api/v2/deals/1", json={"title": f"t{i}"})
            r = s.get(emu.base_url + "/_emulator/webhooks/deliveries")
            return ["dropped" if d["state"] == "dropped" else "kept" for d in r.json()["data"]]

    first, second = run(), run()
    assert first == second and "dropped" in first and "kept" in first


@pytest.mark.slow
def test_real_time_schedule(cert_dir, session_for, receiver):
    """Unscaled: the first retry comes about 3 s after the failed attempt."""
    from refstage_devkit.emulators.pipedrive.server import PipedriveEmulator

    with PipedriveEmulator(port=0, cert_dir=cert_dir) as emu:
        s = session_for(emu, emu.api_token)
        _hook(s, receiver)
        receiver.statuses = [500]
        s.patch("/api/v2/deals/1", json={"title": "slow"})
        receiver.wait_for(1)
        t0 = time.monotonic()
        receiver.wait_for(2, timeout=10)
        assert 2.5 <= time.monotonic() - t0 <= 5
