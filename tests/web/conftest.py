"""Fixtures for the public pages, notifications, webhooks and the API document: a tenant with a live,
self-enrolling program and one advocate, and helpers to fill forms like a person would."""

from __future__ import annotations

import re

import pytest

from refstage.domain.audit import Actor, ActorKind
from refstage.domain.referrals import AdvocateSource
from refstage.services import enrolment, intake, programs, tenants

ADMIN = Actor(ActorKind.PERSON, "u1", "admin@acme.test")
PROGRAM = {
    "name": "Acme Partners", "slug": "partners", "enrolment": {"kind": "api"},
    "rule": "Opportunity.StageName == 'Closed Won'",
    "reward_rules": [{"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"}}],
    "owner": {"name": "Riley", "email": "riley@acme.test"},
    "landing": {"headline": "Riley sent you", "message": "Save 20% on your first year.", "brand_color": "#7a1fa2",
                "consent_text": "I agree that Acme may contact me about its product.", "consent_version": "2026-11"},
    "allow_self_enrolment": True,
}


class Site:
    """The world the web tests act on."""


@pytest.fixture
def site(rt):
    s = Site()
    s.tenant = tenants.create_tenant(rt, "Acme", "acme")
    s.program = programs.create_program(rt, s.tenant.id, PROGRAM, ADMIN)
    programs.set_program_status(rt, s.tenant.id, s.program.id, "live", ADMIN)
    s.advocate, _ = enrolment.enrol_advocate(rt, s.tenant.id, s.program.id, name="Sam Advocate", email="sam@advocate.test",
                                             source=AdvocateSource.API, actor=ADMIN)
    s.code = s.advocate.code
    return s


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def fill(client, clock, url: str, data: dict, *, wait: float = 5, csrf: bool = True, **kw):
    """GET the form, wait like a person, POST it with the page's own CSRF and timing tokens."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    html = page.get_data(as_text=True)
    form = {"form_ts": hidden(html, "form_ts"), "website": ""}
    if csrf:
        form["csrf_token"] = hidden(html, "csrf_token")
    form.update(data)
    clock.advance(seconds=wait)
    return client.post(url, data=form, **kw)


def run_capture_jobs(rt) -> None:
    """Do what the worker does with the capture jobs the form queued (the test runtime's queue only records)."""
    if any(name == "capture_intake" for name, _ in rt.jobs.jobs):
        intake.drain(rt)
