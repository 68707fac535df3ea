"""The public pages through the Flask test client: every page and form path, protections, escaping."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from refstage.adapters.db import models as m
from refstage.domain.referrals import AdvocateSource
from refstage.services import enrolment, notifications, programs
from tests.web.conftest import ADMIN, fill, hidden, run_capture_jobs

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'


def referral_count(rt) -> int:
    """Referrals once the worker has captured what the form stored."""
    run_capture_jobs(rt)
    with rt.session_factory() as s:
        return s.scalar(select(func.count()).select_from(m.ReferralRow))


def rejected(rt) -> list[m.RejectedSubmissionRow]:
    with rt.session_factory() as s:
        return list(s.scalars(select(m.RejectedSubmissionRow)))


# --- landing page and friend form -------------------------------------------------------------------------
def test_landing_page_shows_branding_form_and_protections(client, site):
    resp = client.get(f"/r/{site.code.lower()}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Riley sent you" in html and "Save 20% on your first year." in html and "Sam Advocate" in html
    assert "--brand: #7a1fa2" in html
    assert "I agree that Acme may contact me about its product." in html
    for name in ("name", "email", "company", "phone", "consent", "csrf_token", "form_ts", "website"):
        assert f'name="{name}"' in html
    assert '<label for="f-email">' in html and 'lang="en"' in html and 'name="viewport"' in html
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_valid_submission_creates_referral_and_thanks(client, site, clock, rt):
    resp = fill(client, clock, f"/r/{site.code}", {"name": "Alex Friend", "email": "  Alex@Prospect.TEST ", "company": "Prospect",
                                                   "phone": "+1 555 0100", "consent": "yes"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/r/{site.code}/thanks")
    thanks = client.get(resp.headers["Location"])
    assert thanks.status_code == 200 and "Thank you!" in thanks.get_data(as_text=True)
    [(name, job)] = [j for j in rt.jobs.jobs if j[0] == "capture_intake"]  # stored; the worker captures it
    run_capture_jobs(rt)
    with rt.uow(site.tenant.id) as uow:
        [ref] = uow.referrals.list(limit=10, offset=0)
    assert ref.friend_email == "alex@prospect.test"  # normalised by the domain
    assert ref.source.value == "link" and ref.consent_version == "2026-11"
    assert ("notify", {"tenant_id": site.tenant.id, "event": "referral.captured", "entity_id": ref.id}) in rt.jobs.jobs


def test_invalid_submission_keeps_values_and_shows_field_errors(client, site, clock, rt):
    resp = fill(client, clock, f"/r/{site.code}", {"name": "", "email": "not-an-email", "company": "Kept Co", "phone": "abc"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert 'value="not-an-email"' in html and 'value="Kept Co"' in html
    for name in ("name", "email", "phone", "consent"):
        assert f'id="f-{name}-error"' in html, name
    assert 'aria-invalid="true"' in html and 'role="alert"' in html
    assert referral_count(rt) == 0


def test_missing_csrf_is_refused_with_a_page(client, site, clock, rt):
    resp = fill(client, clock, f"/r/{site.code}", {"name": "A", "email": "a@b.test", "consent": "yes"}, csrf=False)
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "form has expired" in html.lower() and "Traceback" not in html
    bad = fill(client, clock, f"/r/{site.code}", {"name": "A", "email": "a@b.test", "consent": "yes", "csrf_token": "forged"}, csrf=False)
    assert bad.status_code == 400
    assert referral_count(rt) == 0


def test_honeypot_pretends_success_records_rejection_and_creates_nothing(client, site, clock, rt, caplog):
    resp = fill(client, clock, f"/r/{site.code}", {"name": "Bot", "email": "bot@spam.test", "consent": "yes", "website": "http://spam"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/thanks")
    assert referral_count(rt) == 0
    [row] = rejected(rt)
    assert row.reason == "honeypot" and row.form == "referral" and row.code == site.code and row.tenant_id == site.tenant.id
    assert row.client and "127.0.0.1" not in row.client  # the IP is stored hashed
    assert "submission rejected (honeypot)" in caplog.text


def test_too_fast_submission_is_rejected_with_values_kept(client, site, clock, rt):
    resp = fill(client, clock, f"/r/{site.code}", {"name": "Quick", "email": "q@x.test", "consent": "yes"}, wait=0.5)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "quicker than we expected" in html and 'value="Quick"' in html
    assert referral_count(rt) == 0 and [r.reason for r in rejected(rt)] == ["too_fast"]
    # A person who simply tries again (with the fresh stamp) gets through.
    form = {"csrf_token": hidden(html, "csrf_token"), "form_ts": hidden(html, "form_ts"), "name": "Quick", "email": "q@x.test", "consent": "yes"}
    clock.advance(seconds=4)
    assert client.post(f"/r/{site.code}", data=form).status_code == 303
    assert referral_count(rt) == 1


def test_tampered_or_missing_timing_stamp_is_a_bot(client, site, clock, rt):
    page = client.get(f"/r/{site.code}").get_data(as_text=True)
    clock.advance(seconds=10)
    for stamp in ("", hidden(page, "form_ts") + "x"):
        resp = client.post(f"/r/{site.code}", data={"csrf_token": hidden(page, "csrf_token"), "form_ts": stamp, "name": "A",
                                                     "email": "a@b.test", "consent": "yes"})
        assert resp.status_code == 422
    assert referral_count(rt) == 0 and {r.reason for r in rejected(rt)} == {"bad_timestamp"}


def test_rate_limit_per_ip_gives_429_with_retry_after(app, client, site, clock, rt):
    app.config["REFSTAGE_RATE_LIMITS"] = {"referral_ip": (2, 600)}
    for i in range(2):
        assert fill(client, clock, f"/r/{site.code}", {"name": f"F{i}", "email": f"f{i}@x.test", "consent": "yes"}).status_code == 303
    resp = fill(client, clock, f"/r/{site.code}", {"name": "F3", "email": "f3@x.test", "consent": "yes"})
    assert resp.status_code == 429
    assert 0 < int(resp.headers["Retry-After"]) <= 600 and "Too many attempts" in resp.get_data(as_text=True)
    assert referral_count(rt) == 2
    # Another address is counted on its own; after the window the first one may post again.
    other = fill(client, clock, f"/r/{site.code}", {"name": "G", "email": "g@x.test", "consent": "yes"},
                 environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 303
    clock.advance(seconds=601)
    assert fill(client, clock, f"/r/{site.code}", {"name": "H", "email": "h@x.test", "consent": "yes"}).status_code == 303


def test_page_views_are_limited_per_ip_in_process(app, client, site, clock):
    app.config["REFSTAGE_RATE_LIMITS"] = {"view_ip": (3, 60)}
    assert [client.get(f"/r/{site.code}").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client.get(f"/r/{site.code}", environ_base={"REMOTE_ADDR": "10.2.2.2"}).status_code == 200
    clock.advance(seconds=61)
    assert client.get(f"/r/{site.code}").status_code == 200


def test_rate_limit_per_code(app, client, site, clock):
    app.config["REFSTAGE_RATE_LIMITS"] = {"referral_code": (1, 3600)}
    assert fill(client, clock, f"/r/{site.code}", {"name": "A", "email": "a@x.test", "consent": "yes"}).status_code == 303
    resp = fill(client, clock, f"/r/{site.code}", {"name": "B", "email": "b@x.test", "consent": "yes"},
                environ_base={"REMOTE_ADDR": "10.1.1.1"})
    assert resp.status_code == 429 and resp.headers["Retry-After"]


def test_rate_limit_counters_are_shared_through_the_database(app, rt, site, clock):
    """Two app instances (as two gunicorn workers would be) share one counter."""
    from refstage.web.app import create_app

    other = create_app(runtime=rt, test_config={"TESTING": True})
    for a in (app, other):
        a.config["REFSTAGE_RATE_LIMITS"] = {"referral_ip": (1, 600)}
    assert fill(app.test_client(), clock, f"/r/{site.code}", {"name": "A", "email": "a@x.test", "consent": "yes"}).status_code == 303
    assert fill(other.test_client(), clock, f"/r/{site.code}", {"name": "B", "email": "b@x.test", "consent": "yes"}).status_code == 429


@pytest.mark.parametrize("code", ["NOPE", "ZZZZZZZZZ", "%3Cscript%3E"])
def test_unknown_code_page_is_friendly_404(client, site, code):
    resp = client.get(f"/r/{code}")
    assert resp.status_code == 404
    html = resp.get_data(as_text=True)
    assert "couldn't find that referral link" in html and "Traceback" not in html and "<script>" not in html


def test_paused_program_page_is_410_and_refuses_posts(client, site, clock, rt):
    page = client.get(f"/r/{site.code}").get_data(as_text=True)
    programs.set_program_status(rt, site.tenant.id, site.program.id, "paused", ADMIN)
    clock.advance(seconds=5)  # the page cache's TTL (services.landing)
    resp = client.get(f"/r/{site.code}")
    assert resp.status_code == 410 and "Not taking referrals right now" in resp.get_data(as_text=True)
    clock.advance(seconds=10)
    post = client.post(f"/r/{site.code}", data={"csrf_token": hidden(page, "csrf_token"), "form_ts": hidden(page, "form_ts"),
                                                 "name": "A", "email": "a@b.test", "consent": "yes"})
    assert post.status_code == 410 and referral_count(rt) == 0


def test_self_referral_is_flagged_by_the_domain(client, site, clock, rt):
    assert fill(client, clock, f"/r/{site.code}", {"name": "Sam", "email": "Sam+again@advocate.test", "consent": "yes"}).status_code == 303
    run_capture_jobs(rt)
    with rt.uow(site.tenant.id) as uow:
        [ref] = uow.referrals.list(limit=10, offset=0)
    assert "self_referral" in {f.reason.value for f in ref.flags} or ref.status.value == "rejected"


# --- self-enrolment ---------------------------------------------------------------------------------------
def test_join_enrols_and_shows_link_with_copy_and_share(client, site, clock, rt):
    page = client.get("/join/acme/partners")
    html = page.get_data(as_text=True)  # the company in the text, the program where a program is meant
    assert page.status_code == 200 and "Refer friends to Acme</h1>" in html and "Join the Acme Partners referral program" in html
    resp = fill(client, clock, "/join/acme/partners", {"name": "Nia New", "email": "Nia@New.test"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    with rt.uow(site.tenant.id) as uow:
        adv = uow.advocates.by_email(site.program.id, "nia@new.test")
    assert adv is not None and adv.source.value == "form"
    assert f"https://refer.example.test/r/{adv.code}" in html
    assert 'data-copy="ref-link"' in html and "data-share-url" in html and "mailto:" in html and "public.js" in html
    for network in ("linkedin.com/sharing/share-offsite/?url=", "x.com/intent/post?text=", "wa.me/?text="):
        assert network in html, network  # share buttons that work without JavaScript


def test_join_with_known_email_does_not_reveal_the_link_but_emails_it(client, site, clock, rt):
    resp = fill(client, clock, "/join/acme/partners", {"name": "Someone", "email": "sam@advocate.test"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert site.code not in html and "Check your inbox" in html
    assert any(name == "deliver_email" for name, _ in rt.jobs.jobs)


def test_join_errors_and_unavailable_programs(client, site, clock, rt):
    resp = fill(client, clock, "/join/acme/partners", {"name": "", "email": "bad"})
    assert resp.status_code == 422 and 'id="f-email-error"' in resp.get_data(as_text=True) and 'value="bad"' in resp.get_data(as_text=True)
    assert client.get("/join/acme/nope").status_code == 404
    assert client.get("/join/nobody/partners").status_code == 404
    assert client.get("/join/Bad%20Slug/partners").status_code == 404
    programs.update_program(rt, site.tenant.id, site.program.id, {"allow_self_enrolment": False}, ADMIN)
    assert client.get("/join/acme/partners").status_code == 404
    programs.update_program(rt, site.tenant.id, site.program.id, {"allow_self_enrolment": True}, ADMIN)
    programs.set_program_status(rt, site.tenant.id, site.program.id, "paused", ADMIN)
    assert client.get("/join/acme/partners").status_code == 410


def test_join_form_has_csrf_and_bot_checks(client, site, clock, rt):
    assert fill(client, clock, "/join/acme/partners", {"name": "N", "email": "n@x.test"}, csrf=False).status_code == 400
    assert fill(client, clock, "/join/acme/partners", {"name": "N", "email": "n@x.test"}, wait=0).status_code == 422
    resp = fill(client, clock, "/join/acme/partners", {"name": "N", "email": "n@x.test", "website": "x"})
    assert resp.status_code == 200 and "Check your inbox" in resp.get_data(as_text=True)
    with rt.uow(site.tenant.id) as uow:
        assert uow.advocates.by_email(site.program.id, "n@x.test") is None
    assert {r.reason for r in rejected(rt)} == {"too_fast", "honeypot"}


# --- magic links --------------------------------------------------------------------------------------------
def _outbox(rt):
    with rt.session_factory() as s:
        return list(s.scalars(select(m.OutboxRow).order_by(m.OutboxRow.created_at)))


def test_status_link_is_requested_by_email_and_opens_the_status_page(client, site, clock, rt):
    fill(client, clock, f"/r/{site.code}", {"name": "Alex Friend", "email": "alex@prospect.test", "company": "Prospect", "consent": "yes"})
    run_capture_jobs(rt)
    assert client.get("/status").status_code == 200
    resp = fill(client, clock, "/status", {"email": "SAM@advocate.test"})
    assert resp.status_code == 200 and "Check your inbox" in resp.get_data(as_text=True)
    [mail] = [r for r in _outbox(rt) if r.event == "advocate.status_link"]
    assert mail.to_address == "sam@advocate.test"
    link = re.search(r"https://refer\.example\.test(/me/\S+)", mail.body).group(1)
    page = client.get(link)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Hi Sam Advocate" in html and "Alex Friend" in html and "Received" in html and site.code in html
    assert page.headers["Cache-Control"] == "no-store"


def test_status_request_for_unknown_email_looks_the_same(client, site, clock, rt):
    resp = fill(client, clock, "/status", {"email": "nobody@nowhere.test"})
    assert resp.status_code == 200 and "Check your inbox" in resp.get_data(as_text=True)
    assert _outbox(rt) == []
    bad = fill(client, clock, "/status", {"email": "nope"})
    assert bad.status_code == 422 and 'id="f-email-error"' in bad.get_data(as_text=True)


def test_magic_link_expired_and_tampered(client, site, clock, rt):
    token = notifications.status_token(rt, site.tenant.id, site.advocate.id)
    assert client.get(f"/me/{token}").status_code == 200
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    resp = client.get(f"/me/{tampered}")
    assert resp.status_code == 404 and "This link does not work" in resp.get_data(as_text=True)
    assert client.get("/me/garbage").status_code == 404
    forged = notifications.status_token(rt, site.tenant.id, "someone-else")
    assert client.get(f"/me/{forged}").status_code == 404
    clock.advance(hours=73)
    resp = client.get(f"/me/{token}")
    assert resp.status_code == 410 and "This link has expired" in resp.get_data(as_text=True)


def test_status_request_rate_limit(app, client, site, clock):
    app.config["REFSTAGE_RATE_LIMITS"] = {"status_email": (1, 3600)}
    assert fill(client, clock, "/status", {"email": "sam@advocate.test"}).status_code == 200
    resp = fill(client, clock, "/status", {"email": "sam@advocate.test"}, environ_base={"REMOTE_ADDR": "10.2.2.2"})
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0


# --- escaping -------------------------------------------------------------------------------------------------
def test_xss_payloads_are_escaped_in_every_page(client, site, clock, rt):
    programs.update_program(rt, site.tenant.id, site.program.id, {"name": "P " + XSS[:150], "landing": {
        "headline": XSS, "message": XSS, "brand_color": "red;}</style><script>alert(1)</script>", "consent_text": XSS,
        "consent_version": "x"}}, ADMIN)
    adv, _ = enrolment.enrol_advocate(rt, site.tenant.id, site.program.id, name=XSS[:200], email="x@adv.test",
                                      source=AdvocateSource.API, actor=ADMIN)
    pages = [client.get(f"/r/{adv.code}"), client.get("/join/acme/partners"), client.get(f"/r/{adv.code}/thanks")]
    # A friend whose every field carries a payload: the invalid form re-renders the values escaped.
    bad = fill(client, clock, f"/r/{adv.code}", {"name": XSS, "email": XSS, "company": XSS, "phone": XSS, "consent": "yes"})
    pages.append(bad)
    ok = fill(client, clock, f"/r/{adv.code}", {"name": XSS[:190], "email": "alex@prospect.test", "company": XSS[:190], "consent": "yes"})
    assert ok.status_code == 303
    run_capture_jobs(rt)  # the friend's referral (with the payloads) shows on the status page
    pages.append(client.get(f"/me/{notifications.status_token(rt, site.tenant.id, adv.id)}"))
    pages.append(fill(client, clock, "/join/acme/partners", {"name": XSS, "email": XSS}))
    pages.append(fill(client, clock, "/status", {"email": XSS}))
    for resp in pages:
        html = resp.get_data(as_text=True)
        assert "<script>alert" not in html, resp.request.path
        assert "<img src=x" not in html and "onerror=alert(1)>" not in html
    assert "&lt;script&gt;" in pages[0].get_data(as_text=True)
    assert "--brand: #0b5cab" in pages[0].get_data(as_text=True)  # an unsafe colour falls back
