"""The record page preview: the package's compiled components on the emulated org's record pages, their wire
adapters answered by its UI API, checked in Chromium against the records the Jest fixtures come from."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.test import Client

from refstage_devkit.emulators.salesforce.preview import fixtures
from refstage_devkit.emulators.salesforce.server import App, SalesforceEmulator
from tests.browser_support import NEEDS_CHROMIUM
from tests.preview_support import axe_violations, component_text, ensure_preview_built, org_browser, sign_in


@pytest.fixture(scope="module")
def preview_org(cert_dir) -> SalesforceEmulator:
    ensure_preview_built()
    emu = SalesforceEmulator(port=0, seed="empty", cert_dir=cert_dir)
    fixtures.load_showcase(emu.org)
    with emu:
        yield emu


def test_pages_need_a_session_and_never_redirect_off_the_org(preview_org) -> None:
    client = Client(App(preview_org.org))
    response = client.get("/lightning/r/Opportunity/006000000000001AAA/view")
    assert response.status_code == 302 and response.headers["Location"].startswith("/lightning/login?startURL=")
    bad = client.post("/lightning/login", data={"username": "admin@refstage.test", "pw": "wrong"})
    assert bad.status_code == 401
    offsite = client.post("/lightning/login", data={"username": "admin@refstage.test", "pw": "refstage-demo",
                                                    "startURL": "https://evil.example/"})
    assert offsite.status_code == 302 and offsite.headers["Location"] == "/lightning/o/Opportunity/home"
    assert client.get("/lightning/r/Opportunity/006000000000099AAA/view").status_code == 404
    assert client.get("/lightning/r/Account/006000000000001AAA/view").status_code == 404
    assert client.get("/lightning/preview/../ui_api.py").status_code == 404
    page = client.get("/lightning/r/006000000000001AAA/view")
    assert page.status_code == 200
    config = re.search(r'id="preview-config">(.*?)</script>', page.get_data(as_text=True)).group(1)
    assert "</" not in config and '"recordId": "006000000000001AAA"' in config


def watch_api(page) -> tuple[list, list[str]]:
    """Every request the page sends to the org's REST API (what the wire adapters ask), and every script error
    or console error (a Content-Security-Policy refusal is one)."""
    seen: list = []
    errors: list[str] = []
    page.on("request", lambda r: seen.append(r) if "/services/data/" in r.url else None)
    page.on("pageerror", lambda error: errors.append(f"script error: {error}"))
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    return seen, errors


def query_list(request, name: str) -> list[str]:
    return parse_qs(urlsplit(request.url).query)[name][0].split(",")


def browser_test(fn):
    for mark in [*NEEDS_CHROMIUM, pytest.mark.timeout(120)]:
        fn = mark(fn)
    return fn


@browser_test
def test_opportunity_page_shows_the_referral_as_the_org_answers_it(preview_org) -> None:
    with org_browser(preview_org) as context:
        page = context.new_page()
        requests_seen, errors = watch_api(page)

        def sent(path: str):
            return next(r for r in requests_seen if urlsplit(r.url).path.endswith(path))
        sign_in(page, preview_org, "/lightning/r/Opportunity/006000000000001AAA/view")
        page.wait_for_selector('[data-id="reward"]')
        assert component_text(page, '[data-id="advocate"]') == "Ada Lovelace"
        assert component_text(page, '[data-id="program"]') == "Partner Program 2026"
        assert component_text(page, '[data-id="milestone-value"]') == "Closed Won"
        assert component_text(page, '[data-id="milestone-standing"]') == "2 stages to go before the program milestone."
        steps = page.locator('[data-id="timeline"] li')
        assert steps.count() == 4
        assert page.locator('[data-id="timeline"] li[aria-current="step"]').inner_text().startswith("Routed")
        rewards = page.locator('[data-id="reward"]')
        assert "€250.00" in rewards.nth(0).inner_text() and "Pending Review" in rewards.nth(0).inner_text()
        assert "€50.00" in rewards.nth(1).inner_text() and "Held until" in rewards.nth(1).inner_text()
        # What Lightning Data Service would ask: the record with its optional spanning fields, the related list
        # of the referral, the stage picklist of the record type.
        # They are the requests the Jest fixtures are generated from: component, fixtures and org agree.
        record = sent("/ui-api/records/006000000000001AAA")
        assert query_list(record, "fields") == fixtures.OPPORTUNITY_FIELDS
        assert sorted(query_list(record, "optionalFields")) == sorted(fixtures.OPPORTUNITY_OPTIONAL)
        referral_id = fixtures.to_org_id(preview_org.org, "a02000000000001AAA")
        related = sent(f"/related-list-records/{referral_id}/Rewards__r")
        assert related.method == "POST"
        assert json.loads(related.post_data) == {"fields": fixtures.REWARD_FIELDS,
                                                 "sortBy": ["Referral_Reward__c.Name"]}
        assert sent("/ui-api/object-info/Opportunity/picklist-values/012000000000000AAA/StageName")
        assert axe_violations(page) == []

        page.goto(preview_org.base_url + "/lightning/r/Opportunity/006000000000002AAA/view")
        page.wait_for_selector('[data-id="empty"]')
        assert component_text(page, '[data-id="empty"]') == "This opportunity is not attributed to a referral."

        # The component's links are record URLs of the preview, as they are of Lightning Experience.
        page.goto(preview_org.base_url + "/lightning/r/Opportunity/006000000000001AAA/view")
        page.wait_for_selector('[data-id="advocate"] a')
        page.click('[data-id="advocate"] a')
        page.wait_for_url("**/lightning/r/003000000000001AAA/view")
        assert "Ada Lovelace" in page.locator("h1").inner_text()
        assert errors == []


@browser_test
def test_account_page_lists_referrals_with_totals_per_currency(preview_org) -> None:
    with org_browser(preview_org) as context:
        page = context.new_page()
        requests_seen, errors = watch_api(page)
        sign_in(page, preview_org, "/lightning/r/Account/001000000000001AAA/view")
        page.wait_for_selector('[data-id="referral-row"]')
        rows = page.locator('[data-id="referral-row"]')
        # REF-000042 (the opportunity scenario, captured 1 Oct) is Ada's too: four referrals, the latest first.
        assert [rows.nth(i).locator("th").inner_text().strip() for i in range(rows.count())] == [
            "Charles Babbage", "Charles Babbage", "Mary Somerville", "Alan Turing"]
        assert component_text(page, '[data-id="referral-count"]') == "4 referrals"
        statuses = [t.strip() for t in page.locator('[data-id="reward-status"]').all_inner_texts()]
        assert statuses == ["Pending Review (2)", "Issued (3)"]
        totals = page.locator('[data-id="reward-total"]').all_inner_texts()
        assert "€500.00" in totals[0]
        assert "€250.00" in totals[1] and "$80.00" in totals[1]
        assert component_text(page, '[data-id="source-advocate"]') == "Grace Hopper"
        record = next(r for r in requests_seen if urlsplit(r.url).path.endswith("/ui-api/records/001000000000001AAA"))
        assert query_list(record, "fields") == fixtures.ACCOUNT_FIELDS
        assert sorted(query_list(record, "optionalFields")) == sorted(fixtures.ACCOUNT_OPTIONAL)
        graphql = next(r for r in requests_seen if urlsplit(r.url).path.endswith("/graphql"))
        assert json.loads(graphql.post_data) == {"query": fixtures.graphql_document("accountReferrals"),
                                                 "variables": {"accountId": "001000000000001AAA", "pageSize": 50}}
        assert errors == []
        assert axe_violations(page) == []
