"""Screenshots of every console page at 1280 px and 390 px, for docs/admin-console.md.

Not part of the normal run: `scripts/console-screenshots.sh` sets REFSTAGE_SCREENSHOTS to the folder
to write (docs/admin-console/), and this module fills a workspace with a few referrals in every state
and photographs each page with Debian's Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from refstage.services import rewards
from tests.admin.conftest import ADMIN, PASSWORD, qualified_referral
from tests.browser_support import NEEDS_CHROMIUM, chromium, serve

OUT = os.environ.get("REFSTAGE_SCREENSHOTS", "")
pytestmark = [*NEEDS_CHROMIUM, pytest.mark.skipif(not OUT, reason="set REFSTAGE_SCREENSHOTS (scripts/console-screenshots.sh)")]
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


def test_screenshots_of_every_page(app, rt, world, clock, people, needs_review):
    from refstage.services import tenants

    tenants.update_identity(rt, world.tenant.id, {"display_name": "Acme Analytics", "locale": "en_US",
                                                  "time_zone": "Europe/Berlin"}, ADMIN)
    first, found = qualified_referral(rt, world, clock)
    rewards.approve_reward(rt, world.tenant.id, found["adv"].id, ADMIN, "known customer")
    rewards.issue_reward(rt, world.tenant.id, found["adv"].id, ADMIN, "PAY-1042")
    qualified_referral(rt, world, clock, email="gina@prospect.test", advocate_email="bob@customer.test", amount=12000)
    qualified_referral(rt, world, clock, email="hal@prospect.test", advocate_email="cy@customer.test", amount=9000)
    with rt.uow(world.tenant.id) as uow:
        advocate_id = uow.referrals.get(first).advocate_id
    pages = [
        ("dashboard", "/admin/dashboard"), ("programs", "/admin/programs"),
        ("program-overview", f"/admin/programs/{world.program.id}/overview"),
        ("program-form", f"/admin/programs/{world.program.id}"), ("referrals", "/admin/referrals"),
        ("referral", f"/admin/referrals/{first}"), ("advocates", "/admin/advocates"),
        ("advocate", f"/admin/advocates/{advocate_id}"), ("review", "/admin/review"), ("ledger", "/admin/ledger"),
        ("reports", "/admin/reports"), ("connections", "/admin/connections"),
        ("disconnect-confirm", f"/admin/connections/{world.connection.id}/disconnect"), ("company", "/admin/company"),
    ]
    out = Path(OUT)
    out.mkdir(parents=True, exist_ok=True)
    with serve(app) as server, chromium() as browser:
        for label, (width, height) in WIDTHS.items():
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.goto(server + "/admin/login")
            page.get_by_role("textbox", name="Email").fill("admin@acme.test")
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.wait_for_url("**/admin/dashboard")
            for name, path in pages:
                page.goto(server + path)
                page.screenshot(path=str(out / f"{name}-{width}.jpg"), full_page=True, type="jpeg", quality=60)
            context.close()
    assert len(list(out.glob("*.jpg"))) >= len(pages) * len(WIDTHS)
