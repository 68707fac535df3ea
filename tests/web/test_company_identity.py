"""Company identity: the tenant's display name, logo and colour on public pages and in emails; the
program's name only where a program is meant; every field checked at once; the console formats
dates in the tenant's time zone."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from refstage.adapters.db import models as m
from refstage.domain.errors import InvalidInput
from refstage.services import notifications, referrals, tenants
from refstage.services.referrals import FriendInput
from tests.web.conftest import ADMIN


def _identity(rt, site, **values):
    tenants.update_identity(rt, site.tenant.id, {"display_name": "Acme Analytics", **values}, ADMIN)


def test_public_pages_name_the_company_not_the_program(client, rt, site):
    _identity(rt, site, logo_url="https://cdn.acme.test/logo.svg", brand_color="#7a1f5c")
    resp = client.get(f"/r/{site.code}")
    html = resp.get_data(as_text=True)
    assert "Sam Advocate thinks Acme Analytics is worth a look." in html
    assert "We pass your details to Acme Analytics only." in html
    assert f"thinks {site.program.name}" not in html and f"to {site.program.name} only" not in html
    assert 'src="https://cdn.acme.test/logo.svg"' in html
    assert "--brand: #7a1fa2" in html  # this program set its own colour: it keeps it over the company's
    assert "img-src 'self' data: https://cdn.acme.test;" in resp.headers["Content-Security-Policy"]


def test_emails_are_signed_by_the_company(rt, site):
    _identity(rt, site)
    ref = referrals.capture_referral(rt, site.code, FriendInput("Alex Friend", "alex@prospect.test", None, None, True))
    notifications.dispatch(rt, site.tenant.id, "referral.captured", ref.id)
    with rt.session_factory() as s:
        body = s.scalar(select(m.OutboxRow.body).where(m.OutboxRow.event == "referral.captured"))
    assert "referral to Acme Analytics" in body and "— The Acme Analytics team" in body
    assert f"The {site.program.name} team" not in body


def test_every_identity_problem_is_reported_at_once(rt, site):
    with pytest.raises(InvalidInput) as refused:
        tenants.update_identity(rt, site.tenant.id, {"logo_url": "http://plain.test/logo.png", "brand_color": "red",
                                                     "locale": "xx_YY_zz", "time_zone": "Mars/Olympus"}, ADMIN)
    assert set(refused.value.errors) == {"logo_url", "brand_color", "locale", "time_zone"}


def test_without_a_display_name_the_workspace_name_is_used(client, rt, site):
    html = client.get(f"/r/{site.code}").get_data(as_text=True)
    assert f"thinks {site.tenant.name} is worth a look" in html


def test_api_docs_render_markdown_and_favicon_is_served(client):
    html = client.get("/api/docs").get_data(as_text=True)
    assert "<code>" in html and "`" not in html.split('<div class="prose">', 1)[1].split("</div>", 1)[0]
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data
    assert 'rel="icon"' in html


def test_a_very_long_phone_is_a_length_error():
    from refstage.domain.referrals import clean_phone

    with pytest.raises(InvalidInput) as refused:
        clean_phone("1" * 500)
    assert refused.value.errors["phone"] == ["at most 40 characters"]

