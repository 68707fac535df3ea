"""The console in a real browser (Debian's Chromium through Playwright, app served by a real server
thread): sign in, create a program by picking a stage, approve a reward in the review queue, see the
report update; axe-core on the main pages. Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

import json

import pytest

from tests.browser_support import ARTIFACTS as ARTIFACTS_ROOT
from tests.browser_support import NEEDS_CHROMIUM, axe_violations, chromium, serve

from refstage.services.ports import Milestone
from tests.admin.conftest import PASSWORD, qualified_referral

ARTIFACTS = ARTIFACTS_ROOT / "admin"

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
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)




def sign_in(page, server: str, email: str = "admin@acme.test") -> None:
    page.goto(server + "/admin/login")
    page.get_by_role("textbox", name="Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/admin/dashboard")


def test_admin_creates_a_program_approves_a_reward_and_sees_the_report(page, server, rt, world, clock, people, needs_review):
    world.crm.describe_milestones = lambda: [
        Milestone("Opportunity", "StageName", "Prospecting", "Prospecting"),
        Milestone("Opportunity", "StageName", "Negotiation/Review", "Negotiation/Review"),
        Milestone("Opportunity", "StageName", "Closed Won", "Closed Won", True, True),
    ]
    world.crm.count_matching = lambda rule: 12
    _, found = qualified_referral(rt, world, clock)
    assert found["adv"].status.value == "pending_review", found

    # 1. sign in (home is the dashboard), then the programs
    sign_in(page, server)
    page.get_by_role("link", name="Programs", exact=True).click()
    shot(page, "01-programs")

    # 2. create a program, picking a stage from the CRM
    page.get_by_role("link", name="New program").click()
    page.locator("#name").fill("Partners")
    page.locator("#slug").fill("partners")
    page.locator("#connection_id").select_option(world.connection.id)
    page.locator("#name").press("Enter")  # re-render with the connection's milestones (no JS needed)
    page.locator("#milestone").select_option(label="Negotiation/Review")
    assert page.locator("#rule").input_value() == "Opportunity.StageName == 'Negotiation/Review'"  # progressive JS
    page.get_by_role("button", name="Preview").click()
    assert "12 open opportunities would qualify under this rule today" in page.locator("#preview").inner_text()
    page.locator("#name").fill("Partners")
    page.locator("#owner_name").fill("Riley Ops")
    page.locator("#owner_email").fill("riley@acme.test")
    shot(page, "02-program-form")
    page.get_by_role("button", name="Create program").click()
    assert "created as a draft" in page.locator(".flash").first.inner_text()
    page.get_by_role("button", name="Go live").click()
    assert "is now live" in page.locator(".flash").first.inner_text()
    from refstage.services import programs

    created = next(p for p in programs.list_programs(rt, world.tenant.id) if p.slug == "partners")
    assert created.status.value == "live" and created.rule.describe() == "Opportunity.StageName == 'Negotiation/Review'"

    # 3. approve the reward waiting in the review queue
    page.get_by_role("link", name="Review queue").click()
    assert "over amount threshold" in page.content()
    shot(page, "03-review-queue")
    page.locator(f"#comment_{found['adv'].id}").fill("looked at the deal")
    page.get_by_role("button", name="Approve", exact=True).click()
    assert "Reward approved." in page.locator(".flash").first.inner_text()
    assert "Nothing waits for review." in page.content()

    # 4. the report shows it once paid
    page.get_by_role("link", name="Reports").click()
    assert page.locator("#totals [data-metric=rewards_issued]").inner_text() == "0"
    page.get_by_role("link", name="Rewards ledger").click()
    page.locator("#status").select_option("approved")
    page.get_by_role("button", name="Filter").click()
    row = page.locator("tr", has_text="adv")
    row.get_by_placeholder("payout reference").fill("PAY-42")
    row.get_by_role("button", name="Mark as paid").click()
    page.get_by_role("button", name="Yes, mark as paid").click()  # the confirmation names amount and reference
    assert "reference PAY-42" in page.locator(".flash").first.inner_text()
    page.get_by_role("link", name="Reports").click()
    assert page.locator("#totals [data-metric=rewards_issued]").inner_text() == "1"
    assert page.locator("svg#chart-rewards_issued rect").count() >= 1
    shot(page, "04-reports")


def test_main_admin_pages_have_no_serious_accessibility_violations(page, server, rt, world, clock, people, needs_review):
    ref_id, _ = qualified_referral(rt, world, clock)
    from refstage.services import notifications, webhooks
    from tests.admin.conftest import ADMIN

    notifications.dispatch(rt, world.tenant.id, "referral.captured", ref_id)  # an email in the outbox
    endpoint, _ = webhooks.create_endpoint(rt, world.tenant.id, "https://payouts.example.test/hook", None, ADMIN)
    ping = webhooks.send_test_event(rt, world.tenant.id, endpoint["id"], ADMIN)  # a row in the delivery log
    email_id = notifications.list_outbox(rt, world.tenant.id)[0]["id"]
    page.goto(server + "/admin/login")
    problems = {"login": axe_violations(page)}
    sign_in(page, server)
    for name, path in (("programs", "/admin/programs"), ("program-form", f"/admin/programs/{world.program.id}"),
                       ("new-program", "/admin/programs/new"), ("review", "/admin/review"), ("ledger", "/admin/ledger"),
                       ("reports", "/admin/reports"), ("connections", "/admin/connections"),
                       ("sync-log", f"/admin/connections/{world.connection.id}/log"), ("audit", "/admin/audit"),
                       ("users", "/admin/users"), ("outbox", "/admin/outbox"), ("webhooks", "/admin/webhooks"),
                       ("email-templates", f"/admin/programs/{world.program.id}/emails"),
                       ("email-template", f"/admin/programs/{world.program.id}/emails/referral.captured"),
                       ("outbox-email", f"/admin/outbox/{email_id}"), ("webhook-edit", f"/admin/webhooks/{endpoint['id']}"),
                       ("webhook-delivery", f"/admin/webhooks/deliveries/{ping['id']}")) + _new_pages(rt, world, ref_id):
        page.goto(server + path)
        problems[name] = axe_violations(page)
        shot(page, f"axe-{name}")
    found = {name: [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in vs] for name, vs in problems.items() if vs}
    (ARTIFACTS / "axe.json").write_text(json.dumps(found, indent=2))
    assert not found, found


def _new_pages(rt, world, ref_id):
    with rt.uow(world.tenant.id) as uow:
        advocate_id = uow.referrals.get(ref_id).advocate_id
    return (("dashboard", "/admin/dashboard"), ("referrals", "/admin/referrals?q=fred"), ("referral", f"/admin/referrals/{ref_id}"),
            ("advocates", "/admin/advocates"), ("advocate", f"/admin/advocates/{advocate_id}"),
            ("program-overview", f"/admin/programs/{world.program.id}/overview"), ("company", "/admin/company"),
            ("disconnect-confirm", f"/admin/connections/{world.connection.id}/disconnect"))


def test_dashboard_search_and_advocate_journey(page, server, rt, world, clock, people, needs_review):
    ref_id, _ = qualified_referral(rt, world, clock)
    qualified_referral(rt, world, clock, email="gina@prospect.test", advocate_email="bob@customer.test")
    sign_in(page, server)
    assert page.locator("#kpi-referred .figure").inner_text() == "2"
    assert "waiting in the review queue" in page.locator(".attention").inner_text()
    assert page.locator("svg#chart-funnel rect").count() == 5 and page.locator("svg#chart-trend").count() == 1
    shot(page, "05-dashboard")
    page.get_by_role("link", name="Referrals", exact=True).click()
    page.get_by_role("searchbox", name="Search").fill("gina")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("main table tbody tr")
    assert rows.count() == 1 and "gina@prospect.test" in rows.first.inner_text()
    rows.first.get_by_role("link").first.click()
    assert "Timeline" in page.content() and "Qualified" in page.locator("ol.timeline").inner_text()
    page.get_by_role("link", name="Ada").first.click() if page.get_by_role("link", name="Ada").count() else \
        page.locator("dl.facts a[href*='/admin/advocates/']").click()
    assert page.locator(".qr svg").count() == 1 and "/r/" in page.locator("#advocate-link").inner_text()
    assert page.get_by_role("link", name="LinkedIn").count() == 1
    shot(page, "06-advocate")


def test_every_page_fits_a_phone_without_sideways_scrolling(browser, server, rt, world, clock, people, needs_review):
    ref_id, _ = qualified_referral(rt, world, clock)
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.set_default_timeout(10_000)
    sign_in(phone, server)
    wide = {}
    for name, path in (("programs", "/admin/programs"), ("program-form", f"/admin/programs/{world.program.id}"),
                       ("review", "/admin/review"), ("ledger", "/admin/ledger"), ("reports", "/admin/reports"),
                       ("connections", "/admin/connections"), ("audit", "/admin/audit"), ("users", "/admin/users"),
                       ("outbox", "/admin/outbox"), ("webhooks", "/admin/webhooks")) + _new_pages(rt, world, ref_id):
        phone.goto(server + path)
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 1:
            wide[name] = overflow
        phone.screenshot(path=str(ARTIFACTS / f"phone-{name}.png"), full_page=True)
    context.close()
    assert not wide, wide


def test_rule_errors_show_inline_on_preview_and_save(page, server, rt, world, people):
    from refstage.domain.rules import FieldSpec

    world.crm.describe_fields = lambda obj: {
        "amount": FieldSpec("Amount", "number"), "stagename": FieldSpec("StageName", "picklist", ("Prospecting", "Closed Won")),
        "isclosed": FieldSpec("IsClosed", "boolean"), "iswon": FieldSpec("IsWon", "boolean")} if obj == "Opportunity" else None
    sign_in(page, server)
    page.goto(f"{server}/admin/programs/{world.program.id}")
    page.locator("#rule").fill("Opportunity.Amount >= 'lots' AND Opportunity.StageName == 'Closed Wonn'")
    page.get_by_role("button", name="Preview").click()
    errors = page.locator(".field-error").all_inner_texts()
    assert any("is a number field" in e for e in errors) and any("'Closed Wonn' is not one of its values" in e for e in errors)
    assert page.locator("#rule").input_value().startswith("Opportunity.Amount >= 'lots'")  # the form is kept
    page.get_by_role("button", name="Save program").click()
    assert page.locator(".field-error").count() >= 2 and "internal_error" not in page.content()
    shot(page, "07-rule-errors")
    assert axe_violations(page) == []
