"""Finding 10: /r/<code>/thanks had no rate limit and named the advocate (also for paused programs, where
the landing names nobody); friend emails accepted NUL and control characters (written into CRM Leads)."""

from __future__ import annotations

import pytest

from refstage.services import programs
from tests.security.conftest import row_counts
from tests.web.conftest import ADMIN, fill, site  # noqa: F401 - fixture reused


def test_thanks_page_does_not_name_the_advocate(client, site):
    resp = client.get(f"/r/{site.code}/thanks")
    assert resp.status_code == 200 and "Sam Advocate" not in resp.get_data(as_text=True)


def test_thanks_page_of_a_paused_program_says_no_more_than_its_landing(client, rt, site):
    programs.set_program_status(rt, site.tenant.id, site.program.id, "paused", ADMIN)
    landing, thanks = client.get(f"/r/{site.code}"), client.get(f"/r/{site.code}/thanks")
    assert landing.status_code == thanks.status_code == 410
    assert "Sam" not in thanks.get_data(as_text=True)


def test_thanks_page_is_rate_limited_like_the_landing(app, site):
    app.config["REFSTAGE_RATE_LIMITS"] = {"view_ip": (5, 60)}
    client = app.test_client()
    statuses = [client.get(f"/r/{site.code}/thanks").status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
    assert client.get(f"/r/{site.code}/thanks").headers["Retry-After"]


@pytest.mark.parametrize("field,value", [
    ("email", "fred\x00@prospect.test"), ("email", "fred\x1b@prospect.test"), ("email", "fred\x7f@prospect.test"),
    ("email", "fr\u202eed@prospect.test"), ("name", "Fred\x00 Friend"), ("name", "Fred \x1b[2J"), ("name", "Fred\u202eFriend"),
    ("company", "Acme\x00"),
])
def test_friend_fields_refuse_nul_and_control_characters(client, rt, clock, site, field, value):
    before = row_counts(rt)
    data = {"name": "Fred Friend", "email": "fred@prospect.test", "company": "", "consent": "yes", field: value}
    resp = fill(client, clock, f"/r/{site.code}", data)
    assert resp.status_code == 422
    assert f'id="{field}-error"' in resp.get_data(as_text=True) or "has-error" in resp.get_data(as_text=True)
    assert row_counts(rt) == before  # nothing stored: no intake row, so nothing reaches the CRM
