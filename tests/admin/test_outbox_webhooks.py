"""Outbox, per-program email templates, outbound webhooks and "send to payout" in the admin console:
list/filter/read emails; edit/preview/reset templates (syntax errors and markup are handled); endpoint
CRUD, a signed test ping to a local receiver, the delivery log and redeliver; payout requests sent once
per approved reward; roles and tenant isolation."""

from __future__ import annotations

import dataclasses

import json
import re

import pytest

from refstage.adapters.db import models as m
from refstage.services import notifications, rewards, webhooks
from tests.admin.conftest import ADMIN, post, qualified_referral
from tests.web.servers import WebhookReceiver

PAYOUT = "reward.payout_requested"


def queued(rt, name):
    return [kw for n, kw in rt.jobs.jobs if n == name]


def _emails(rt, world, clock):
    """A captured and a qualified email for the advocate, through the real dispatch."""
    ref_id, found = qualified_referral(rt, world, clock)
    notifications.dispatch(rt, world.tenant.id, "referral.captured", ref_id)
    notifications.dispatch(rt, world.tenant.id, "referral.qualified", ref_id)
    rows = notifications.list_outbox(rt, world.tenant.id)
    return ref_id, found, {r["event"]: r for r in rows}


def _audit(rt, world, action):
    from types import SimpleNamespace

    from sqlalchemy import select

    with rt.uow(world.tenant.id) as uow:
        rows = uow.session.scalars(select(m.AuditRow).where(m.AuditRow.tenant_id == world.tenant.id, m.AuditRow.action == action)
                                   .order_by(m.AuditRow.id))
        return [SimpleNamespace(entity_type=a.entity_type, entity_id=a.entity_id, before=a.before, after=a.after) for a in rows]


# --- outbox ----------------------------------------------------------------------------------------------
def test_outbox_lists_filters_and_shows_one_email(admin_client, reviewer_client, other_client, rt, world, clock):
    _, _, by_event = _emails(rt, world, clock)
    assert set(by_event) >= {"referral.captured", "referral.qualified"}
    page = reviewer_client.get("/admin/outbox").get_data(as_text=True)  # reviewers may read the outbox
    assert "No SMTP server is configured" in page
    assert by_event["referral.captured"]["subject"] in page and by_event["referral.qualified"]["subject"] in page
    assert "ada@customer.test" in page and ">stored<" in page
    only = admin_client.get("/admin/outbox?event=referral.qualified").get_data(as_text=True)
    table = only.split('id="outbox"', 1)[1]
    assert by_event["referral.qualified"]["subject"] in table and by_event["referral.captured"]["subject"] not in table
    none = admin_client.get("/admin/outbox?status=failed").get_data(as_text=True)
    assert "No emails match." in none
    # Unknown filter values are ignored rather than failing.
    assert admin_client.get("/admin/outbox?status=bogus&event=%3Cx%3E&offset=zz").status_code == 200

    email = by_event["referral.qualified"]
    detail = reviewer_client.get(f"/admin/outbox/{email['id']}")
    assert detail.status_code == 200
    html = detail.get_data(as_text=True)
    assert "Good news: your referral of Fred Friend" in html and "ada@customer.test" in html
    assert other_client.get(f"/admin/outbox/{email['id']}").status_code == 404  # another tenant's email
    assert admin_client.get("/admin/outbox/nope").status_code == 404


def test_outbox_escapes_markup_in_emails(admin_client, rt, world, clock):
    notifications.set_email_template(rt, world.tenant.id, world.program.id, "referral.captured", "Hi <b>$friend_name</b>",
                                     "<script>alert('x')</script> from $friend_name", ADMIN)
    _, _, by_event = _emails(rt, world, clock)
    email = by_event["referral.captured"]
    html = admin_client.get(f"/admin/outbox/{email['id']}").get_data(as_text=True)
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; from Fred Friend" in html
    listing = admin_client.get("/admin/outbox").get_data(as_text=True)
    assert "<b>Fred" not in listing and "Hi &lt;b&gt;Fred Friend&lt;/b&gt;" in listing


# --- email templates -------------------------------------------------------------------------------------
def test_templates_list_edit_preview_and_reset(admin_client, rt, world):
    pid = world.program.id
    assert f"/admin/programs/{pid}/emails" in admin_client.get(f"/admin/programs/{pid}").get_data(as_text=True)
    listing = admin_client.get(f"/admin/programs/{pid}/emails").get_data(as_text=True)
    for event in ("referral.captured", "referral.qualified", "reward.issued", "advocate.status_link"):
        assert f"/admin/programs/{pid}/emails/{event}" in listing
    assert listing.count(">default<") == 4

    url = f"/admin/programs/{pid}/emails/reward.issued"
    form = admin_client.get(url).get_data(as_text=True)
    assert "$reward_amount" in form and "$payout_reference_line" in form and "the reward, e.g. 100.00 USD" in form

    # Preview a draft with sample values: nothing is saved.
    page = post(admin_client, url, {"action": "preview", "subject": "You earned $reward_amount",
                                    "body": "Hi $advocate_name, thanks for $friend_name. Costs $$5."}).get_data(as_text=True)
    assert 'id="preview-subject">You earned 100.00 USD<' in page
    assert "Hi Sam Advocate, thanks for Alex Friend. Costs $5." in page
    assert notifications.email_templates(rt, world.tenant.id, pid)[2]["is_default"] is True

    # Save, then it is what the program sends.
    resp = post(admin_client, url, {"action": "save", "subject": "You earned $reward_amount", "body": "Thanks $advocate_name!"})
    assert resp.status_code == 302
    saved = {t["event"]: t for t in notifications.email_templates(rt, world.tenant.id, pid)}["reward.issued"]
    assert (saved["subject"], saved["body"], saved["is_default"]) == ("You earned $reward_amount", "Thanks $advocate_name!", False)
    assert "customised" in admin_client.get(f"/admin/programs/{pid}/emails").get_data(as_text=True)
    assert [a.after["event"] for a in _audit(rt, world, "email_template_updated")] == ["reward.issued"]

    # A placeholder this email has no value for is pointed out (not an error).
    page = post(admin_client, f"/admin/programs/{pid}/emails/advocate.status_link",
                {"action": "preview", "subject": "Status", "body": "Your reward $reward_amount"}).get_data(as_text=True)
    assert 'id="unavailable"' in page and "$reward_amount" in page

    # Reset to the shipped default.
    assert post(admin_client, url, {"action": "reset"}).status_code == 302
    back = {t["event"]: t for t in notifications.email_templates(rt, world.tenant.id, pid)}["reward.issued"]
    assert back["is_default"] and back["subject"] == notifications.DEFAULT_TEMPLATES["reward.issued"][0]
    assert len(_audit(rt, world, "email_template_reset")) == 1
    assert admin_client.get(f"/admin/programs/{pid}/emails/no.such.event").status_code == 404


def test_template_syntax_errors_are_field_errors_and_markup_is_escaped(admin_client, rt, world):
    pid = world.program.id
    url = f"/admin/programs/{pid}/emails/referral.captured"
    for action in ("save", "preview"):
        resp = post(admin_client, url, {"action": action, "subject": "Costs $5", "body": "Hi ${advocate_name"})
        assert resp.status_code == 400, action
        html = resp.get_data(as_text=True)
        errors = re.findall(r'class="field-error" id="err-(\w+)-\d">([^<]*)<', html)
        assert {k for k, _ in errors} == {"subject", "body"}
        assert all("write $$ for a dollar sign" in text for _, text in errors)
        assert 'value="Costs $5"' in html and "Hi ${advocate_name</textarea>" in html  # what was typed is kept
    resp = post(admin_client, url, {"action": "save", "subject": "Hi $first_name", "body": "x {{ 7*7 }} $__class__"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "unknown placeholder(s): $first_name" in html and "unknown placeholder(s): $__class__" in html
    resp = post(admin_client, url, {"action": "save", "subject": "  ", "body": "x"})
    assert resp.status_code == 400 and "required" in resp.get_data(as_text=True)
    assert notifications.email_templates(rt, world.tenant.id, pid)[0]["is_default"] is True

    # Markup in a template is only text: escaped in the preview, never run.
    xss = "<script>alert(document.cookie)</script><img src=x onerror=alert(1)> $friend_name"
    html = post(admin_client, url, {"action": "preview", "subject": "<b>Hi</b> $advocate_name", "body": xss}).get_data(as_text=True)
    preview = html.split('id="preview"', 1)[1]
    assert "<script>alert" not in preview and "<img src=x" not in preview and "<b>Hi" not in preview
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; Alex Friend" in preview
    assert "&lt;b&gt;Hi&lt;/b&gt; Sam Advocate" in preview
    # Also escaped when the form is shown again after saving it.
    post(admin_client, url, {"action": "save", "subject": "Hi", "body": xss})
    assert "<script>alert" not in admin_client.get(url).get_data(as_text=True)


# --- webhooks --------------------------------------------------------------------------------------------
def _secret(html: str) -> str:
    return re.search(r'id="webhook-secret">(whsec_[^<]+)<', html).group(1)


def test_webhook_crud_test_ping_delivery_log_and_redeliver(admin_client, rt, world, clock):
    with WebhookReceiver(responses=[500]) as receiver:
        bad = post(admin_client, "/admin/webhooks", {"url": "ftp://nope", "events": ["referral.captured"]})
        assert bad.status_code == 400 and "an http(s) URL" in bad.get_data(as_text=True)
        bad = post(admin_client, "/admin/webhooks", {"url": receiver.url})  # no event ticked
        assert bad.status_code == 400 and "a non-empty list of" in bad.get_data(as_text=True)

        resp = post(admin_client, "/admin/webhooks", {"url": receiver.url, "description": "payouts",
                                                      "events": ["reward.issued", PAYOUT]})
        assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
        secret = _secret(resp.get_data(as_text=True))
        [endpoint] = webhooks.list_endpoints(rt, world.tenant.id)
        assert endpoint["events"] == ["reward.issued", PAYOUT] and endpoint["active"]
        listing = admin_client.get("/admin/webhooks").get_data(as_text=True)
        assert receiver.url in listing and secret not in listing and "whsec_" not in listing  # shown once only
        assert [a.after["url"] for a in _audit(rt, world, "created") if a.entity_type == "webhook_endpoint"] == [receiver.url]

        # Edit: field errors, then a good change.
        eid = endpoint["id"]
        assert receiver.url in admin_client.get(f"/admin/webhooks/{eid}").get_data(as_text=True)
        resp = post(admin_client, f"/admin/webhooks/{eid}", {"url": "not a url", "events": ["reward.issued"], "active": "on"})
        assert resp.status_code == 400 and 'class="field-error" id="err-url-1">an http(s) URL' in resp.get_data(as_text=True)
        resp = post(admin_client, f"/admin/webhooks/{eid}", {"url": receiver.url, "description": "payout system",
                                                              "events": ["reward.approved", PAYOUT], "active": "on"})
        assert resp.status_code == 302
        got = webhooks.get_endpoint(rt, world.tenant.id, eid)
        assert got["events"] == ["reward.approved", PAYOUT] and got["description"] == "payout system" and got["active"]

        # Test ping: queued, delivered by the worker's job, signed with the secret.
        resp = post(admin_client, f"/admin/webhooks/{eid}/test")
        assert resp.status_code == 302
        [job] = queued(rt, "deliver_webhook")
        assert webhooks.deliver(rt, **job).status == "retrying"  # the receiver answers 500 first
        clock.advance(seconds=10)
        assert webhooks.deliver(rt, **job).status == "delivered"
        assert len(receiver.requests) == 2
        req = receiver.requests[-1]
        assert req["headers"]["Refstage-Event"] == "ping" and req["headers"]["Refstage-Delivery"] == job["delivery_id"]
        now = int(clock.now.timestamp())
        assert webhooks.verify_signature(secret, req["headers"]["Refstage-Signature"], req["body"], now)
        assert not webhooks.verify_signature("whsec_wrong", req["headers"]["Refstage-Signature"], req["body"], now)
        assert json.loads(req["body"])["event"] == "ping"

        log = admin_client.get(f"/admin/webhooks?endpoint_id={eid}").get_data(as_text=True).split('id="delivery-log"', 1)[1]
        assert "<code>ping</code>" in log and ">delivered<" in log and "HTTP 200" in log
        assert "No deliveries match." in admin_client.get("/admin/webhooks?status=failed").get_data(as_text=True)
        detail = admin_client.get(f"/admin/webhooks/deliveries/{job['delivery_id']}").get_data(as_text=True)
        assert "2 attempt(s)" in detail and "&#34;event&#34;: &#34;ping&#34;" in detail and "Redeliver" in detail

        # Redeliver from the log.
        resp = post(admin_client, f"/admin/webhooks/deliveries/{job['delivery_id']}/redeliver", follow_redirects=True)
        assert "Delivery queued again" in resp.get_data(as_text=True)
        assert webhooks.deliver(rt, world.tenant.id, job["delivery_id"]).status == "delivered"
        assert len(receiver.requests) == 3

        # Rotate: a new secret, shown once; the old one no longer signs.
        resp = post(admin_client, f"/admin/webhooks/{eid}/rotate")
        assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
        new_secret = _secret(resp.get_data(as_text=True))
        assert new_secret != secret
        post(admin_client, f"/admin/webhooks/{eid}/test")
        webhooks.deliver(rt, **queued(rt, "deliver_webhook")[-1])
        sig = receiver.requests[-1]
        assert webhooks.verify_signature(new_secret, sig["headers"]["Refstage-Signature"], sig["body"], now)
        assert not webhooks.verify_signature(secret, sig["headers"]["Refstage-Signature"], sig["body"], now)

        # Disable, then enable.
        resp = post(admin_client, f"/admin/webhooks/{eid}/active", {"active": "0"}, follow_redirects=True)
        assert "disabled: nothing more is sent to it" in resp.get_data(as_text=True)
        assert webhooks.get_endpoint(rt, world.tenant.id, eid)["active"] is False
        post(admin_client, f"/admin/webhooks/{eid}/active", {"active": "1"})
        assert webhooks.get_endpoint(rt, world.tenant.id, eid)["active"] is True


# --- payout ----------------------------------------------------------------------------------------------

@pytest.fixture
def settings(settings):
    # The receivers in these tests listen on loopback: a development allowance, set explicitly.
    return dataclasses.replace(settings, allow_private_webhook_targets=True)

@pytest.fixture
def approved(rt, world, clock, needs_review):
    _, found = qualified_referral(rt, world, clock)
    rewards.approve_reward(rt, world.tenant.id, found["adv"].id, ADMIN, "ok")
    return found["adv"]


def test_send_to_payout_once_then_mark_paid(admin_client, rt, world, approved):
    with WebhookReceiver() as receiver:
        _, secret = webhooks.create_endpoint(rt, world.tenant.id, receiver.url, [PAYOUT], ADMIN)
        webhooks.create_endpoint(rt, world.tenant.id, receiver.url + "/other", ["reward.issued"], ADMIN)  # not subscribed
        page = admin_client.get("/admin/ledger?status=approved").get_data(as_text=True)
        assert "Send to payout" in page

        resp = post(admin_client, f"/admin/ledger/{approved.id}/send", follow_redirects=True)
        assert "Sent to the payout system (1 endpoint(s))" in resp.get_data(as_text=True)
        [job] = queued(rt, "deliver_webhook")
        assert webhooks.deliver(rt, **job).status == "delivered"
        [req] = receiver.requests
        assert req["path"] == "/hooks/refstage" and req["headers"]["Refstage-Event"] == PAYOUT
        assert webhooks.verify_signature(secret, req["headers"]["Refstage-Signature"], req["body"], int(rt.now().timestamp()))
        data = json.loads(req["body"])["data"]
        assert data["reward"]["id"] == approved.id and data["reward"]["status"] == "approved"
        assert data["reward"]["amount"] == approved.amount.to_dict()
        assert data["referral"]["id"] == approved.referral_id and data["referral"]["friend_email"] == "fred@prospect.test"
        assert data["advocate"]["email"] == "ada@customer.test" and data["payee"] == {"kind": "advocate", "name": "Ada",
                                                                                       "email": "ada@customer.test"}
        assert data["program"]["id"] == world.program.id

        # A second click sends nothing and says so.
        resp = post(admin_client, f"/admin/ledger/{approved.id}/send", follow_redirects=True)
        assert "Already sent to the payout system" in resp.get_data(as_text=True)
        assert len(queued(rt, "deliver_webhook")) == 1 and len(receiver.requests) == 1
        assert len(webhooks.list_deliveries(rt, world.tenant.id, event=PAYOUT)) == 1
        assert webhooks.send_payout(rt, world.tenant.id, approved.id, ADMIN).sent is False
        [entry] = _audit(rt, world, "payout_requested")
        assert entry.entity_id == approved.id and entry.after["deliveries"] == [job["delivery_id"]]
        page = admin_client.get("/admin/ledger?status=approved").get_data(as_text=True)
        row = next(r for r in page.split("<tr>") if f"/admin/ledger/{approved.id}/paid" in r)
        assert "Sent to payout" in row and "(delivered)" in row and "Send to payout</button>" not in row

    # The payout system confirmed: mark as paid issues the reward (and reward.issued goes out as usual).
    post(admin_client, f"/admin/ledger/{approved.id}/paid", {"payout_reference": "PAY-9", "confirm": "yes"})
    with rt.uow(world.tenant.id) as uow:
        assert uow.rewards.get(approved.id).status.value == "issued"


def _lost_race(rt, world, monkeypatch, endpoint_id, event, entity_id):
    """Another worker (or click) stores this delivery first, after this one has looked and found none:
    its look is replayed as "nothing yet", the first look only."""
    from refstage.adapters.db.webhook_repositories import WebhookDeliveryRepository

    with rt.uow(world.tenant.id) as uow:
        first = uow.webhook_deliveries.add_once(rt.new_id(), endpoint_id=endpoint_id, event=event, entity_id=entity_id,
                                                payload={}, now=rt.now())
        uow.commit()
    looks = []
    real = WebhookDeliveryRepository.for_entities

    def stale_first_look(self, *args, **kwargs):
        looks.append(args)
        return [] if len(looks) == 1 else real(self, *args, **kwargs)

    monkeypatch.setattr(WebhookDeliveryRepository, "for_entities", stale_first_look)
    return first


def test_a_payout_click_that_loses_the_race_reports_the_winners_delivery(rt, world, approved, monkeypatch):
    endpoint, _ = webhooks.create_endpoint(rt, world.tenant.id, "http://127.0.0.1:9/payout", [PAYOUT], ADMIN)
    first = _lost_race(rt, world, monkeypatch, endpoint["id"], PAYOUT, approved.id)
    result = webhooks.send_payout(rt, world.tenant.id, approved.id, ADMIN)
    assert result.sent is False and result.deliveries == [first] and result.requested_at == first["created_at"]
    assert queued(rt, "deliver_webhook") == [] and _audit(rt, world, "payout_requested") == []


def test_a_fan_out_that_loses_the_race_queues_nothing(rt, world, approved, monkeypatch):
    endpoint, _ = webhooks.create_endpoint(rt, world.tenant.id, "http://127.0.0.1:9/events", ["reward.approved"], ADMIN)
    first = _lost_race(rt, world, monkeypatch, endpoint["id"], "reward.approved", approved.id)
    assert webhooks.fan_out(rt, world.tenant.id, "reward.approved", approved.id) == []
    assert queued(rt, "deliver_webhook") == []
    assert webhooks.list_deliveries(rt, world.tenant.id, event="reward.approved") == [first]


def test_payout_refused_for_rewards_not_approved_or_without_endpoint(admin_client, rt, world, clock, needs_review):
    _, found = qualified_referral(rt, world, clock)
    pending = found["adv"]
    assert pending.status.value == "pending_review"
    resp = post(admin_client, f"/admin/ledger/{pending.id}/send", follow_redirects=True)
    assert "no active webhook endpoint is subscribed to reward.payout_requested" not in resp.get_data(as_text=True)
    assert "only approved rewards can be sent to the payout system (this one is pending review)" in resp.get_data(as_text=True)
    with pytest.raises(webhooks.PayoutNotAllowed):
        webhooks.send_payout(rt, world.tenant.id, pending.id, ADMIN)
    rewards.approve_reward(rt, world.tenant.id, pending.id, ADMIN)
    resp = post(admin_client, f"/admin/ledger/{pending.id}/send", follow_redirects=True)
    assert "no active webhook endpoint is subscribed to reward.payout_requested" in resp.get_data(as_text=True)
    endpoint, _ = webhooks.create_endpoint(rt, world.tenant.id, "https://payouts.example.test/hook", [PAYOUT], ADMIN)
    webhooks.update_endpoint(rt, world.tenant.id, endpoint["id"], {"active": False}, ADMIN)
    with pytest.raises(webhooks.PayoutNotAllowed):
        webhooks.send_payout(rt, world.tenant.id, pending.id, ADMIN)  # a disabled endpoint does not count
    rewards.issue_reward(rt, world.tenant.id, pending.id, ADMIN, "PAY-1")
    webhooks.update_endpoint(rt, world.tenant.id, endpoint["id"], {"active": True}, ADMIN)
    with pytest.raises(webhooks.PayoutNotAllowed, match="this one is issued"):
        webhooks.send_payout(rt, world.tenant.id, pending.id, ADMIN)
    assert webhooks.list_deliveries(rt, world.tenant.id, event=PAYOUT) == [] and not _audit(rt, world, "payout_requested")


# --- roles, CSRF and tenants -----------------------------------------------------------------------------
def test_reviewer_is_refused_admin_only_pages(reviewer_client, rt, world, approved):
    endpoint, _ = webhooks.create_endpoint(rt, world.tenant.id, "https://payouts.example.test/hook", [PAYOUT], ADMIN)
    pid, eid = world.program.id, endpoint["id"]
    assert reviewer_client.get("/admin/outbox").status_code == 200
    for url in ("/admin/webhooks", f"/admin/webhooks/{eid}", f"/admin/programs/{pid}/emails",
                f"/admin/programs/{pid}/emails/referral.captured"):
        assert reviewer_client.get(url).status_code == 403, url
    for url in ("/admin/webhooks", f"/admin/webhooks/{eid}", f"/admin/webhooks/{eid}/test", f"/admin/webhooks/{eid}/rotate",
                f"/admin/webhooks/{eid}/active", f"/admin/programs/{pid}/emails/referral.captured",
                f"/admin/ledger/{approved.id}/send"):
        assert post(reviewer_client, url, {"url": "https://x.test/", "action": "save", "subject": "s", "body": "b"}).status_code == 403, url
    assert webhooks.list_deliveries(rt, world.tenant.id) == []
    nav = reviewer_client.get("/admin/ledger").get_data(as_text=True)
    assert "/admin/outbox" in nav and "/admin/webhooks" not in nav and "Send to payout</button>" not in nav


def test_posts_need_the_csrf_token(admin_client, rt, world):
    resp = admin_client.post("/admin/webhooks", data={"url": "https://x.test/hook", "events": ["reward.issued"]})
    assert resp.status_code == 400 and webhooks.list_endpoints(rt, world.tenant.id) == []
    resp = admin_client.post(f"/admin/programs/{world.program.id}/emails/referral.captured",
                             data={"action": "save", "subject": "s", "body": "b", "csrf_token": "wrong"})
    assert resp.status_code == 400 and notifications.email_templates(rt, world.tenant.id, world.program.id)[0]["is_default"]


def test_another_tenant_gets_404(other_client, rt, world, clock, approved):
    endpoint, _ = webhooks.create_endpoint(rt, world.tenant.id, "https://payouts.example.test/hook", [PAYOUT], ADMIN)
    ping = webhooks.send_test_event(rt, world.tenant.id, endpoint["id"], ADMIN)
    pid, eid, did = world.program.id, endpoint["id"], ping["id"]
    for url in (f"/admin/webhooks/{eid}", f"/admin/webhooks/deliveries/{did}", f"/admin/programs/{pid}/emails",
                f"/admin/programs/{pid}/emails/referral.captured"):
        assert other_client.get(url).status_code == 404, url
    for url in (f"/admin/webhooks/{eid}", f"/admin/webhooks/{eid}/test", f"/admin/webhooks/{eid}/rotate",
                f"/admin/webhooks/{eid}/active", f"/admin/webhooks/deliveries/{did}/redeliver",
                f"/admin/programs/{pid}/emails/referral.captured", f"/admin/ledger/{approved.id}/send"):
        assert post(other_client, url, {"url": "https://x.test/", "action": "reset", "active": "0"}).status_code == 404, url
    assert webhooks.get_endpoint(rt, world.tenant.id, eid)["active"] is True
    assert [d["event"] for d in webhooks.list_deliveries(rt, world.tenant.id)] == ["ping"]
    # Tenant B's own pages show nothing of tenant A.
    assert "payouts.example.test" not in other_client.get("/admin/webhooks").get_data(as_text=True)
    notifications.dispatch(rt, world.tenant.id, "referral.captured", approved.referral_id)
    assert "ada@customer.test" not in other_client.get("/admin/outbox").get_data(as_text=True)
