"""'Play the rep' (demo only) links each referral's Opportunity and Account pages in the emulated org, where the
package's components show attribution and rewards."""

from __future__ import annotations

import dataclasses

import pytest

from tests.admin.conftest import qualified_referral, sign_in

ORG = "https://127.0.0.1:8701"


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, env="demo")


def test_play_the_rep_links_the_reps_record_pages(rt, client, people, world, clock, monkeypatch) -> None:
    monkeypatch.setenv("REFSTAGE_DEMO_SALESFORCE_URL", ORG)
    # `refstage demo` passes the emulated org's admin; the product itself carries no demo credentials.
    monkeypatch.setenv("REFSTAGE_DEMO_SALESFORCE_USERNAME", "rep-admin@org.test")
    monkeypatch.setenv("REFSTAGE_DEMO_SALESFORCE_PASSWORD", "org-password")
    referral_id, _ = qualified_referral(rt, world, clock)
    with rt.uow(world.tenant.id) as uow:
        crm = uow.referrals.get(referral_id).crm
    assert crm.opportunity_id and crm.account_id
    assert sign_in(client, "admin@acme.test").status_code == 302
    page = client.get("/admin/demo").get_data(as_text=True)
    assert f'href="{ORG}/lightning/r/Opportunity/{crm.opportunity_id}/view"' in page
    assert f'href="{ORG}/lightning/r/Account/{crm.account_id}/view"' in page
    assert "sign in as rep-admin@org.test / org-password" in page
