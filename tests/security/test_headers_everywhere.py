"""Finding 8: the admin console sent no frame-ancestors / X-Frame-Options or CSP (the public pages did).
Every HTML response, console included, error pages included, carries the same policy; HSTS only over https."""

from __future__ import annotations

import pytest

from tests.web.conftest import site  # noqa: F401 - fixture reused


def assert_protected(resp):
    csp = resp.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "script-src 'self'" in csp, csp
    assert "unsafe-inline" not in csp.replace("style-src-attr", "")
    assert resp.headers.get("X-Frame-Options") == "DENY"
    assert resp.headers.get("Referrer-Policy") == "same-origin"
    assert resp.headers.get("X-Content-Type-Options") == "nosniff"
    assert len(resp.headers.getlist("Content-Security-Policy")) == 1  # set once, not by two layers


@pytest.mark.parametrize("url", ["/admin/users", "/admin/programs", "/admin/audit", "/admin/reports", "/admin/review",
                                 "/admin/ledger", "/admin/connections", "/admin/account/password", "/admin/nope"])
def test_every_console_page_has_the_headers(admin_client, url):
    resp = admin_client.get(url)
    assert resp.status_code in (200, 404)
    assert_protected(resp)
    assert "Strict-Transport-Security" not in resp.headers  # plain http here


def test_sign_in_page_and_its_refusals_have_the_headers(client, people):
    assert_protected(client.get("/admin/login"))
    assert_protected(client.post("/admin/login", data={"email": "x@y.test", "password": "nope"}))  # 400, no CSRF token
    assert_protected(client.get("/admin/users"))  # the redirect to sign in


def test_public_pages_keep_theirs_with_a_nonce(client, site):
    resp = client.get(f"/r/{site.code}")
    assert_protected(resp)
    nonce = resp.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in resp.get_data(as_text=True)
    assert "form-action 'self';" in resp.headers["Content-Security-Policy"]
    assert_protected(client.get("/r/UNKNOWNCODE"))
    assert_protected(client.get("/health"))


def test_hsts_only_over_https(client, site):
    assert "Strict-Transport-Security" not in client.get(f"/r/{site.code}").headers
    secure = client.get(f"/r/{site.code}", base_url="https://refer.example.test")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_hsts_on_the_console_over_https(admin_client):
    assert admin_client.get("/admin/users", base_url="https://localhost").headers["Strict-Transport-Security"]
