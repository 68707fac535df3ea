"""The public pages in a real browser: Debian's Chromium driven by Playwright at a phone's viewport,
the app served by a real server thread. Screenshots go to test-artifacts/public/; axe-core checks each
page for serious or critical accessibility violations."""

from __future__ import annotations


import pytest

from tests.browser_support import ARTIFACTS as ARTIFACTS_ROOT
from tests.browser_support import NEEDS_CHROMIUM, axe_violations, chromium, serve
from sqlalchemy import func, select

from refstage.adapters.db import models as m
from refstage.services import notifications
from tests.web.conftest import run_capture_jobs

ARTIFACTS = ARTIFACTS_ROOT / "public"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}

pytestmark = NEEDS_CHROMIUM


@pytest.fixture
def server(app):
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # bypass_csp only so axe-core can be injected; the pages themselves run under their CSP in the other tests.
    context = browser.new_context(**PHONE, bypass_csp=True)
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.js_errors = errors
    yield pg
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_friend_refers_themselves_on_a_phone(page, server, site, clock, rt):
    page.goto(f"{server}/r/{site.code}")
    assert page.get_by_role("heading", name="Riley sent you").is_visible()
    assert no_horizontal_scroll(page)
    assert axe_violations(page) == []
    shot(page, "landing-phone")
    # A wrong address: the server's field error, values kept.
    page.get_by_label("Your name").fill("Alex Friend")
    page.get_by_label("Work email").fill("alex@prospect")
    page.get_by_label("Company").fill("Prospect Ltd")
    page.get_by_label("I agree that Acme may contact me").check()
    clock.advance(seconds=5)
    page.get_by_role("button", name="Send my details").click()
    page.wait_for_selector("#f-email-error")
    assert page.get_by_label("Company").input_value() == "Prospect Ltd"
    assert axe_violations(page) == []
    shot(page, "landing-errors-phone")
    page.get_by_label("Work email").fill("alex@prospect.test")
    page.get_by_label("I agree that Acme may contact me").check()
    clock.advance(seconds=5)
    page.get_by_role("button", name="Send my details").click()
    page.wait_for_url(f"**/r/{site.code}/thanks")
    assert page.get_by_role("heading", name="Thank you!").is_visible()
    assert axe_violations(page) == []
    shot(page, "thanks-phone")
    run_capture_jobs(rt)  # the form stored the submission; the worker makes it a referral
    with rt.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(m.ReferralRow)) == 1
    assert page.js_errors == []


def test_self_enrolment_copy_button_and_status_page(page, server, site, clock, rt):
    page.goto(f"{server}/join/acme/partners")
    assert axe_violations(page) == []
    shot(page, "join-phone")
    page.get_by_label("Your name").fill("Nia New")
    page.get_by_label("Email").fill("nia@new.test")
    clock.advance(seconds=5)
    page.get_by_role("button", name="Get my referral link").click()
    page.wait_for_selector("#ref-link")
    link = page.locator("#ref-link").input_value()
    assert link.startswith("https://refer.example.test/r/")
    copy = page.get_by_role("button", name="Copy link")
    assert copy.is_visible()  # shown by the script: progressive enhancement
    copy.click()
    page.wait_for_function("() => document.querySelector('[data-share-status]').textContent.length > 0")
    assert axe_violations(page) == []
    shot(page, "joined-phone")
    # The status page through a magic link.
    with rt.uow(site.tenant.id) as uow:
        adv = uow.advocates.by_email(site.program.id, "nia@new.test")
    page.goto(f"{server}/me/{notifications.status_token(rt, site.tenant.id, adv.id)}")
    assert page.get_by_role("heading", name="Hi Nia New").is_visible()
    assert axe_violations(page) == []
    shot(page, "status-phone")
    assert page.js_errors == []


def test_other_public_pages_are_accessible(page, server, site):
    for name, path in (("unknown-code", "/r/ZZZZZZZZZ"), ("status-request", "/status"), ("expired-link", "/me/bad-token"),
                       ("api-docs", "/api/docs")):
        page.goto(server + path)
        assert axe_violations(page) == [], name
        shot(page, f"{name}-phone")


def test_form_works_without_javascript(browser, server, site, clock, rt):
    context = browser.new_context(**PHONE, java_script_enabled=False)
    try:
        pg = context.new_page()
        pg.goto(f"{server}/r/{site.code}")
        pg.get_by_label("Your name").fill("No Script")
        pg.get_by_label("Work email").fill("noscript@prospect.test")
        pg.get_by_label("I agree that Acme may contact me").check()
        clock.advance(seconds=5)
        pg.get_by_role("button", name="Send my details").click()
        pg.wait_for_url(f"**/r/{site.code}/thanks")
    finally:
        context.close()
