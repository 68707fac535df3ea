"""Admin console fixtures: a tenant with a (fake) Salesforce connection and a live program (the
integration `world`), an admin and a reviewer, a second tenant, sign-in and CSRF helpers, and a
helper that runs the real journey up to rewards waiting for review."""

from __future__ import annotations

import re

import pytest

from refstage.domain.audit import Actor
from refstage.domain.referrals import AdvocateSource
from refstage.domain.rewards import RewardStatus
from refstage.services import enrolment, programs, referrals, sync, tenants
from refstage.services.referrals import FriendInput
from tests.integration.conftest import ADMIN, PROGRAM, fake_crm, world  # noqa: F401 - fixtures reused

PASSWORD = "correct horse battery"


@pytest.fixture
def people(rt, world):
    class People:
        admin = tenants.add_user(rt, world.tenant.id, "admin@acme.test", "admin", PASSWORD, "Avery Admin")
        reviewer = tenants.add_user(rt, world.tenant.id, "reviewer@acme.test", "reviewer", PASSWORD, "Robin Reviewer")
        other_tenant = tenants.create_tenant(rt, "Beta", "beta")
    People.other_admin = tenants.add_user(rt, People.other_tenant.id, "admin@beta.test", "admin", PASSWORD)
    return People


def csrf(client) -> str:
    with client.session_transaction() as s:
        token = s.get("_csrf")
    if not token:
        client.get("/admin/login")
        with client.session_transaction() as s:
            token = s["_csrf"]
    return token


def sign_in(client, email: str, password: str = PASSWORD):
    client.get("/admin/login")
    return client.post("/admin/login", data={"email": email, "password": password, "csrf_token": csrf(client)})


def post(client, url: str, data: dict | None = None, **kw):
    body = dict(data or {})
    body.setdefault("csrf_token", csrf(client))
    return client.post(url, data=body, **kw)


@pytest.fixture
def admin_client(client, people):
    assert sign_in(client, "admin@acme.test").status_code == 302
    return client


@pytest.fixture
def reviewer_client(app, people):
    c = app.test_client()
    assert sign_in(c, "reviewer@acme.test").status_code == 302
    return c


@pytest.fixture
def other_client(app, people):
    c = app.test_client()
    assert sign_in(c, "admin@beta.test").status_code == 302
    return c


def qualified_referral(rt, world, clock, *, email="fred@prospect.test", advocate_email="ada@customer.test", amount=8000):
    """The real journey: enrol, refer, route, convert, win, sync. Returns (referral id, rewards by rule key)."""
    try:
        adv = enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Ada", email=advocate_email,
                                       source=AdvocateSource.API, actor=ADMIN)[0]
    except Exception:  # the same advocate again
        with rt.uow(world.tenant.id) as uow:
            adv = uow.advocates.by_email(world.program.id, advocate_email)
    ref = referrals.capture_referral(rt, adv.code, FriendInput("Fred Friend", email, "Prospect", None, True))
    referrals.route_referral(rt, world.tenant.id, ref.id)
    lead = world.crm.created_leads[-1]
    opp = world.crm.convert(lead, amount=amount)
    world.crm.touch("Opportunity", opp, StageName="Closed Won", IsWon=True, IsClosed=True)
    clock.advance(minutes=5)
    sync.run_sync(rt, world.tenant.id, world.connection.id)
    with rt.uow(world.tenant.id) as uow:
        return ref.id, {r.rule_key: r for r in uow.rewards.for_referral(ref.id)}


@pytest.fixture
def needs_review(rt, world):
    """Rewards above 60 USD go to review."""
    programs.update_program(rt, world.tenant.id, world.program.id,
                            {"review_policy": {"amount_threshold": {"amount": "60", "currency": "USD"}}}, ADMIN)
    return world


def field_errors(html: str) -> list[str]:
    return re.findall(r'class="field-error"[^>]*>([^<]*)<', html)


__all__ = ["csrf", "sign_in", "post", "qualified_referral", "PASSWORD", "RewardStatus", "Actor"]
