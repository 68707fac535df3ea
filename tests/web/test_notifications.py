"""Advocate emails: once per event, per-program templates, outbox without SMTP, SMTP when configured."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from refstage.adapters.db import models as m
from refstage.adapters.outbound import parse_smtp_url
from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.domain.errors import InvalidInput
from refstage.domain.money import Money
from refstage.domain.referrals import CrmRefs
from refstage.domain.rewards import Recipient, Reward, RewardKind, RewardStatus
from refstage.services import notifications, referrals, rewards, tenants
from refstage.services.referrals import FriendInput
from tests.web.conftest import ADMIN
from tests.web.servers import SmtpServer, closed_port


def outbox(rt) -> list[m.OutboxRow]:
    with rt.session_factory() as s:
        return list(s.scalars(select(m.OutboxRow).order_by(m.OutboxRow.created_at, m.OutboxRow.event)))


def capture(rt, site, name="Alex Friend", email="alex@prospect.test"):
    return referrals.capture_referral(rt, site.code, FriendInput(name, email, "Prospect", None, True))


def issued_reward(rt, site, referral):
    with rt.uow(site.tenant.id) as uow:
        reward = Reward(id=rt.new_id(), tenant_id=site.tenant.id, program_id=site.program.id, referral_id=referral.id,
                        recipient=Recipient.ADVOCATE, rule_key="adv", kind=RewardKind.FIXED, amount=Money(Decimal("100"), "USD"),
                        status=RewardStatus.APPROVED, created_at=rt.now(), advocate_id=site.advocate.id)
        assert uow.rewards.add(reward)
        uow.commit()
    return rewards.issue_reward(rt, site.tenant.id, reward.id, ADMIN, "PAY-42")


def test_each_event_writes_one_outbox_email_however_often_it_runs(rt, site):
    ref = capture(rt, site)
    assert ("notify", {"tenant_id": site.tenant.id, "event": "referral.captured", "entity_id": ref.id}) in rt.jobs.jobs
    for _ in range(3):
        notifications.dispatch(rt, site.tenant.id, "referral.captured", ref.id)
        notifications.dispatch(rt, site.tenant.id, "referral.qualified", ref.id)
    reward = issued_reward(rt, site, ref)
    assert ("notify", {"tenant_id": site.tenant.id, "event": "reward.issued", "entity_id": reward.id}) in rt.jobs.jobs
    notifications.dispatch(rt, site.tenant.id, "reward.issued", reward.id)
    notifications.dispatch(rt, site.tenant.id, "reward.issued", reward.id)
    notifications.dispatch(rt, site.tenant.id, "reward.approved", reward.id)  # webhooks only: no email
    rows = outbox(rt)
    assert sorted(r.event for r in rows) == ["referral.captured", "referral.qualified", "reward.issued"]
    for row in rows:
        assert row.to_address == "sam@advocate.test" and row.status == "stored" and row.transport == "outbox"
        assert row.attempts == 1 and row.sent_at is not None
    by_event = {r.event: r for r in rows}
    assert "Alex Friend (Prospect)" in by_event["referral.captured"].body
    assert "https://refer.example.test/me/" in by_event["referral.captured"].body
    assert by_event["reward.issued"].subject == "Your reward of 100.00 USD is on its way"
    assert "Payout reference: PAY-42" in by_event["reward.issued"].body
    listed = notifications.list_outbox(rt, site.tenant.id)
    assert len(listed) == 3 and notifications.get_outbox_email(rt, site.tenant.id, listed[0]["id"])["to"] == "sam@advocate.test"


def test_no_email_for_blocked_referrals_or_unknown_entities(rt, site):
    assert notifications.dispatch(rt, site.tenant.id, "referral.captured", "missing") == []
    assert notifications.dispatch(rt, site.tenant.id, "something.else", "x") == []
    assert outbox(rt) == []


def test_per_program_templates_override_and_reset(rt, site):
    t = {x["event"]: x for x in notifications.email_templates(rt, site.tenant.id, site.program.id)}
    assert set(t) == set(notifications.EMAIL_EVENTS) and all(x["is_default"] for x in t.values())
    notifications.set_email_template(rt, site.tenant.id, site.program.id, "referral.captured",
                                     "New referral: $friend_name", "Dear $advocate_name, $friend_name joined $program_name. Cost: $$5", ADMIN)
    preview = notifications.preview_email_template(rt, site.tenant.id, site.program.id, "referral.captured")
    assert preview["subject"] == "New referral: Alex Friend"
    ref = capture(rt, site)
    notifications.dispatch(rt, site.tenant.id, "referral.captured", ref.id)
    [row] = outbox(rt)
    assert row.subject == "New referral: Alex Friend" and row.body == "Dear Sam Advocate, Alex Friend joined Acme Partners. Cost: $5"
    with pytest.raises(InvalidInput) as err:
        notifications.set_email_template(rt, site.tenant.id, site.program.id, "referral.captured", "Hi $nope", "ok", ADMIN)
    assert "subject" in err.value.errors
    with pytest.raises(InvalidInput):
        notifications.set_email_template(rt, site.tenant.id, site.program.id, "referral.captured", "Two\nlines", "ok", ADMIN)
    with pytest.raises(InvalidInput):
        notifications.set_email_template(rt, site.tenant.id, site.program.id, "reward.approved", "s", "b", ADMIN)
    notifications.reset_email_template(rt, site.tenant.id, site.program.id, "referral.captured", ADMIN)
    assert all(x["is_default"] for x in notifications.email_templates(rt, site.tenant.id, site.program.id))
    with rt.uow(site.tenant.id) as uow:
        actions = {e.action for e in uow.audit.list(entity_type="program")}
    assert {"email_template_updated", "email_template_reset"} <= actions


def test_smtp_delivery_sends_once(rt, site):
    with SmtpServer() as smtp:
        rt.settings = dataclasses.replace(rt.settings, smtp_url=f"smtp://127.0.0.1:{smtp.port}")
        ref = capture(rt, site)
        notifications.dispatch(rt, site.tenant.id, "referral.captured", ref.id)
        notifications.dispatch(rt, site.tenant.id, "referral.captured", ref.id)
        [row] = outbox(rt)
        assert row.status == "sent" and row.transport == "smtp"
        [msg] = smtp.messages
        assert msg["to"] == ["sam@advocate.test"] and "Subject: Alex Friend is in: thanks for your referral" in msg["data"]
        assert "Auto-Submitted: auto-generated" in msg["data"]


def test_smtp_failure_is_retried_without_duplicates(rt, site):
    rt.settings = dataclasses.replace(rt.settings, smtp_url=f"smtp://127.0.0.1:{closed_port()}?timeout=2")
    ref = capture(rt, site)
    notifications.dispatch(rt, site.tenant.id, "referral.captured", ref.id)
    [row] = outbox(rt)
    assert row.status == "retrying" and row.error and row.attempts == 1
    assert ("deliver_email", {"tenant_id": site.tenant.id, "outbox_id": row.id}) in rt.jobs.jobs
    with SmtpServer() as smtp:
        rt.settings = dataclasses.replace(rt.settings, smtp_url=f"smtp://127.0.0.1:{smtp.port}")
        notifications.dispatch(rt, site.tenant.id, "referral.captured", ref.id)  # the repeated job delivers the same row
        assert notifications.deliver_email(rt, site.tenant.id, row.id) == "sent"  # and a late retry sends nothing more
        assert len(smtp.messages) == 1
    [row] = outbox(rt)
    assert row.status == "sent" and row.attempts == 2


def test_reconnect_required_emails_the_admins(rt, site):
    tenants.add_user(rt, site.tenant.id, "admin@acme.test", "admin", "correct horse battery staple")
    tenants.add_user(rt, site.tenant.id, "reviewer@acme.test", "reviewer", "correct horse battery staple")
    conn = CrmConnection(id=rt.new_id(), tenant_id=site.tenant.id, kind=CrmKind.SALESFORCE, name="Acme org",
                         status=ConnectionStatus.ACTIVE, external_org_id="00D000000000001AAA")
    with rt.uow(site.tenant.id) as uow:
        uow.connections.add(conn)
        uow.commit()
    referrals.mark_reconnect_required(rt, site.tenant.id, conn.id, "syncing")
    notifications.dispatch(rt, site.tenant.id, "connection.reconnect_required", conn.id)
    notifications.dispatch(rt, site.tenant.id, "connection.reconnect_required", conn.id)
    [row] = outbox(rt)
    assert row.to_address == "admin@acme.test" and "Acme org" in row.subject and "syncing" in row.body


def test_smtp_url_schemes():
    assert parse_smtp_url("smtp://mail.test").security == "plain"
    t = parse_smtp_url("smtp+starttls://u%40x:p%2Fw@mail.test")
    assert (t.security, t.port, t.username, t.password) == ("starttls", 587, "u@x", "p/w")
    assert parse_smtp_url("smtp://mail.test:2525?starttls=1").security == "starttls"
    assert (parse_smtp_url("smtps://mail.test").security, parse_smtp_url("smtps://mail.test").port) == ("ssl", 465)
    with pytest.raises(ValueError):
        parse_smtp_url("http://mail.test")


def test_sweep_finds_emails_whose_job_was_lost(rt, site, clock):
    rt.settings = dataclasses.replace(rt.settings, smtp_url=f"smtp://127.0.0.1:{closed_port()}?timeout=2")
    ref = capture(rt, site)
    notifications.dispatch(rt, site.tenant.id, "referral.captured", ref.id)
    assert notifications.emails_due_for_retry(rt) == []
    clock.advance(minutes=6)
    [(tenant_id, _)] = notifications.emails_due_for_retry(rt)
    assert tenant_id == site.tenant.id
