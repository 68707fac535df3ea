"""Finding 8 in a real browser: the console works under its Content-Security-Policy (its script and
styles load, nothing is refused), and another site cannot frame it (clickjacking)."""

from __future__ import annotations

import pytest

from tests.admin.conftest import PASSWORD
from tests.browser_support import NEEDS_CHROMIUM, chromium, serve

pytestmark = NEEDS_CHROMIUM


@pytest.fixture
def server(app):
    with serve(app) as url:
        yield url


def test_console_runs_under_its_policy_and_cannot_be_framed(server, people, world):
    with chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(10_000)
        refused: list[str] = []
        page.on("console", lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None)
        page.goto(server + "/admin/login")
        page.get_by_role("textbox", name="Email").fill("admin@acme.test")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url("**/admin/dashboard")
        for path in ("/admin/programs", "/admin/users", "/admin/reports", "/admin/review", "/admin/account/password"):
            page.goto(server + path)
        assert refused == []
        # A page framing the console (served here on the same origin, the most a framing page could get:
        # frame-ancestors 'none' and X-Frame-Options DENY refuse every ancestor): nothing is rendered.
        page.route(server + "/framing-page", lambda route: route.fulfill(
            content_type="text/html", body=f'<iframe id="f" src="{server}/admin/users" width="800" height="600"></iframe>'))
        page.goto(server + "/framing-page")
        page.wait_for_timeout(500)
        framed = [f for f in page.frames if f is not page.main_frame]
        assert framed and all(not f.url.startswith(server + "/admin") for f in framed), [f.url for f in framed]
        assert all("Users" not in f.content() for f in framed)  # the browser showed its error page, not the console
        context.close()
