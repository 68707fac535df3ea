"""Pipedrive from the admin console, against the emulator: connect with an API token (a wrong one is
refused inline and leaves nothing behind), disconnect asks first, reconnect with a new token keeps
the same connection, and OAuth through the console comes back to the console (no JSON page)."""

from __future__ import annotations

import os
import re

import pytest
import requests

from refstage.services import tenants
from tests.admin.conftest import PASSWORD, post, sign_in
from tests.browser_support import CHROMIUM


def _admin(client, rt, tenant):
    tenants.add_user(rt, tenant.id, "admin@acme.test", "admin", PASSWORD)
    assert sign_in(client, "admin@acme.test").status_code == 302
    return client


def _rows(rt, tenant_id):
    with rt.uow(tenant_id) as uow:
        return uow.connections.list()


def test_api_token_connect_disconnect_reconnect_from_the_console(client, pd_rt, server, tenant, emu):
    c = _admin(client, pd_rt, tenant)
    page = c.get("/admin/connections").get_data(as_text=True)
    assert "Connect a Pipedrive company" in page and "Connect with Pipedrive" in page  # OAuth is configured here

    bad = post(c, "/admin/connections/pipedrive", {"api_token": "wrong", "api_domain": emu.base_url}, follow_redirects=True)
    assert bad.status_code == 200 and "Pipedrive not connected" in bad.get_data(as_text=True)
    assert _rows(pd_rt, tenant.id) == []  # no orphan pending row

    ok = post(c, "/admin/connections/pipedrive", {"api_token": emu.api_token, "api_domain": emu.base_url, "name": "Acme PD"},
              follow_redirects=True)
    assert "Connected to Pipedrive company" in ok.get_data(as_text=True)
    [conn] = _rows(pd_rt, tenant.id)
    assert conn.status.value == "active" and conn.settings["webhook_id"]

    ask = c.get(f"/admin/connections/{conn.id}/disconnect")
    assert ask.status_code == 200 and "Yes, disconnect Acme PD" in ask.get_data(as_text=True)
    assert post(c, f"/admin/connections/{conn.id}/disconnect", {"confirm": "yes"}).status_code == 302
    assert _rows(pd_rt, tenant.id)[0].status.value == "disconnected"
    assert "Reconnect with this token" in c.get("/admin/connections").get_data(as_text=True)

    again = post(c, "/admin/connections/pipedrive", {"api_token": emu.api_token, "api_domain": emu.base_url,
                                                     "connection_id": conn.id}, follow_redirects=True)
    assert "Connected to Pipedrive company" in again.get_data(as_text=True)
    assert [(r.id, r.status.value) for r in _rows(pd_rt, tenant.id)] == [(conn.id, "active")]

    # "Connect" from scratch to the same company: still the same single connection
    post(c, f"/admin/connections/{conn.id}/disconnect", {"confirm": "yes"})
    post(c, "/admin/connections/pipedrive", {"api_token": emu.api_token, "api_domain": emu.base_url})
    assert [(r.id, r.status.value) for r in _rows(pd_rt, tenant.id)] == [(conn.id, "active")]


def test_oauth_connect_from_the_console_returns_to_the_console(client, pd_rt, server, tenant, emu):
    c = _admin(client, pd_rt, tenant)
    start = post(c, "/admin/connections/pipedrive", {"method": "oauth", "name": "Acme PD"})
    assert start.status_code == 302 and start.headers["Location"].startswith(f"{emu.base_url}/oauth/authorize?")
    page = requests.get(start.headers["Location"], verify=emu.ca_path, timeout=30)
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    allow = requests.post(f"{emu.base_url}/oauth/authorize", data={**hidden, "email": "admin@refstage.test", "password": "demo",
                                                                  "decision": "allow"}, verify=emu.ca_path, allow_redirects=False,
                          timeout=30)
    callback = allow.headers["Location"]
    done = c.get(callback.replace(server, ""), headers={"Accept": "text/html"})
    assert done.status_code == 303 and done.headers["Location"].endswith("/admin/connections")
    listing = c.get("/admin/connections").get_data(as_text=True)
    assert "Connected to Pipedrive company" in listing
    [conn] = _rows(pd_rt, tenant.id)
    assert conn.status.value == "active" and conn.settings["auth"] == "oauth"


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed (/usr/bin/chromium): `make browser`")
def test_pipedrive_connect_in_a_browser(pd_rt, server, tenant, emu):
    from tests.browser_support import axe_violations, chromium, sign_in_on_the_console

    tenants.add_user(pd_rt, tenant.id, "admin@acme.test", "admin", PASSWORD)
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(15_000)
        sign_in_on_the_console(page, server, "admin@acme.test", PASSWORD)
        page.goto(server + "/admin/connections")
        assert axe_violations(page) == []
        page.locator("#pd-domain").fill(emu.base_url)
        page.locator("#pd-token").fill(emu.api_token)
        page.get_by_role("button", name="Connect with API token").click()
        page.wait_for_url("**/admin/connections")
        assert "Connected to Pipedrive company" in page.locator(".flash").first.inner_text()
        assert page.locator(".badge.active").count() == 1
