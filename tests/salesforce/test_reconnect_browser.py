"""The connection lifecycle in a real browser (Debian's Chromium): Disconnect asks first, the banner
names the program left without a CRM, Reconnect goes through the emulated org's real login and Allow
pages and comes back to the console — no 500, no orphan, the same connection. axe-core on the
connections and confirmation pages; no horizontal scroll at 390 px."""

from __future__ import annotations

import pytest

from refstage.services import tenants
from tests.admin.conftest import PASSWORD
from tests.browser_support import ARTIFACTS, NEEDS_CHROMIUM, axe_violations, chromium, serve, sign_in_on_the_console
from tests.salesforce.helpers import ADMIN as ORG_ADMIN
from tests.salesforce.helpers import setup_world

pytestmark = NEEDS_CHROMIUM


@pytest.fixture
def server(app, rt):
    with serve(app) as url:
        rt.settings.extra["salesforce_redirect_uri"] = f"{url}/salesforce/oauth/callback"
        yield url


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_disconnect_confirm_reconnect_in_a_browser(rt, client, emu, server):
    tenant_id, connection_id, _ = setup_world(rt, client)
    tenants.add_user(rt, tenant_id, "admin@acme.test", "admin", PASSWORD)
    out = ARTIFACTS / "admin"
    out.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
        page = context.new_page()
        page.set_default_timeout(15_000)
        sign_in_on_the_console(page, server, "admin@acme.test", PASSWORD)

        page.goto(server + "/admin/connections")
        assert axe_violations(page) == []
        page.get_by_role("link", name="Disconnect… Acme org").click()
        page.wait_for_url(f"**/admin/connections/{connection_id}/disconnect")
        assert page.get_by_text("Customers").first.is_visible()  # the live program it affects
        assert axe_violations(page) == []
        page.screenshot(path=str(out / "connection-disconnect-confirm.png"), full_page=True)
        page.get_by_role("button", name="Yes, disconnect Acme org").click()
        page.wait_for_url("**/admin/connections")
        banner = page.locator(".alert-banner")
        assert "Customers" in banner.inner_text() and "disconnected" in banner.inner_text()

        page.get_by_role("button", name="Reconnect Acme org").click()
        page.wait_for_selector("#username")  # the org's own login page
        page.fill("#username", ORG_ADMIN[0])
        page.fill("#password", ORG_ADMIN[1])
        page.click("#Login")
        page.click("#oaapprove")
        page.wait_for_url("**/admin/connections")
        text = page.locator("main").inner_text()
        assert "Connected to Salesforce org" in text and "internal_error" not in text
        assert page.locator(".alert-banner").count() == 0
        page.screenshot(path=str(out / "connection-reconnected.png"), full_page=True)

        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("/admin/connections", f"/admin/connections/{connection_id}/disconnect", "/admin/programs"):
            page.goto(server + path)
            assert _no_horizontal_scroll(page), path
        context.close()
    with rt.uow(tenant_id) as uow:
        assert [(c.id, c.status.value) for c in uow.connections.list()] == [(connection_id, "active")]
