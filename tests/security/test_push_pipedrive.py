"""Forged Pipedrive webhooks (issue 17: "the same for Pipedrive webhooks"). Without the connection's HTTP
Basic credentials a delivery is refused (401) and nothing is stored. With leaked credentials a forged
delivery is only a hint: process_events re-reads the deal from Pipedrive, so a deal claimed won (and
future-dated) pays nothing, and a claimed deletion cancels nothing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

from refstage.services import enrolment, referrals
from refstage.services.referrals import FriendInput
from tests.pipedrive.conftest import (api, connected, control, emu, final_state, jobs, pd_rt, recorder,  # noqa: F401
                                      run_sync, server, settings, tenant)
from tests.security.push_support import inbox_count, reward_count


def _basic(rt, w) -> tuple[str, str]:
    with rt.uow(w.tenant.id) as uow:
        hook = rt.vault.open(uow.connections.credentials(w.connection.id))["webhook"]
    return hook["user"], hook["password"]


def _referred_deal(rt, w, jobs, control):
    enrolment.run_enrolment(rt, w.tenant.id, w.program.id)
    with rt.uow(w.tenant.id) as uow:
        advocate = uow.advocates.list(program_id=w.program.id, limit=1)[0]
    ref = referrals.capture_referral(rt, advocate.code, FriendInput("Fay Friend", "fay@prospect.test", None, None, True))
    jobs()
    control.wait()
    jobs()
    ref = referrals.get_referral(rt, w.tenant.id, ref.id)
    assert ref.crm.deal_id and ref.status.value in ("routed", "in_progress")
    return ref


def _won(deal_id: str, event_id: str) -> dict:
    return {"data": {"id": int(deal_id), "stage_id": 4, "status": "won", "value": 990000, "currency": "EUR",
                     "pipeline_id": 1, "won_time": "2099-01-01T00:00:00Z", "update_time": "2099-01-01T00:00:00Z"},
            "previous": {"stage_id": 2, "status": "open"},
            "meta": {"action": "change", "entity": "deal", "entity_id": deal_id, "id": event_id, "version": "2.0",
                     "timestamp": "2099-01-01T00:00:00.000Z", "attempt": 1}}


def test_forged_webhook_without_credentials_is_refused_with_no_side_effect(pd_rt, connected, control, jobs, server):
    w = connected
    ref = _referred_deal(pd_rt, w, jobs, control)
    before, events, queued = final_state(pd_rt, w.tenant.id), inbox_count(pd_rt), len(pd_rt.jobs.jobs)
    user, password = _basic(pd_rt, w)
    url = f"{server}/webhooks/pipedrive/{w.connection.id}"
    for auth in (None, ("refstage", "refstage"), (user, "x" * len(password)), (user.upper(), password)):
        r = requests.post(url, json=_won(ref.crm.deal_id, "forged-1"), auth=auth, timeout=10)
        assert r.status_code == 401 and "Basic" in r.headers["WWW-Authenticate"]
    assert inbox_count(pd_rt) == events and len(pd_rt.jobs.jobs) == queued
    jobs()
    run_sync(pd_rt, w)
    assert final_state(pd_rt, w.tenant.id) == before and reward_count(pd_rt) == 0


def test_forged_won_and_deleted_deal_with_leaked_credentials_pay_or_cancel_nothing(pd_rt, connected, control, jobs, server, api,
                                                                                   recorder):
    w = connected
    ref = _referred_deal(pd_rt, w, jobs, control)
    url = f"{server}/webhooks/pipedrive/{w.connection.id}"
    auth = _basic(pd_rt, w)
    before = final_state(pd_rt, w.tenant.id)
    r = requests.post(url, json=_won(ref.crm.deal_id, "forged-won"), auth=auth, timeout=10)
    assert r.status_code == 200 and r.json()["duplicate"] is False  # authenticated, so kept as a hint
    sent = len(recorder.sent)
    jobs()  # process_events re-reads the deal: still open at stage 2
    confirm = [urlsplit(p.url) for p in recorder.sent[sent:]]
    # The cost of confirming one delivery: one call (≤100 deals a call).
    assert [(u.path, parse_qs(u.query)["ids"]) for u in confirm] == [("/api/v2/deals", [ref.crm.deal_id])]
    for _ in range(3):
        run_sync(pd_rt, w)
    assert final_state(pd_rt, w.tenant.id) == before and reward_count(pd_rt) == 0
    # The real deal reaches the milestone: the genuine webhook qualifies it, rewards once.
    control("POST", f"deals/{ref.crm.deal_id}/move", {"stage_id": 4})
    control.wait()
    jobs()
    won = final_state(pd_rt, w.tenant.id)
    assert won["fay@prospect.test"][0] == "qualified" and len(won["fay@prospect.test"][2]) == 2
    # A forged deletion (and a forged move back) cannot cancel what the real deal earned.
    forged_delete = {"data": None, "previous": {"id": int(ref.crm.deal_id), "update_time": "2099-01-02T00:00:00Z"},
                     "meta": {"action": "delete", "entity": "deal", "entity_id": ref.crm.deal_id, "id": "forged-del",
                              "version": "2.0", "timestamp": "2099-01-02T00:00:00.000Z"}}
    back = _won(ref.crm.deal_id, "forged-back")
    back["data"].update(stage_id=2, status="open")
    for body in (forged_delete, back):
        assert requests.post(url, json=body, auth=auth, timeout=10).status_code == 200
    jobs()
    run_sync(pd_rt, w)
    assert final_state(pd_rt, w.tenant.id) == won
    assert api("GET", f"v2/deals/{ref.crm.deal_id}")["stage_id"] == 4
