"""The rep's view of a referral the product routed, in Chromium on the emulated org's record pages: attribution
after routing, then the reward amounts and statuses after the deal is won and the reward approved and issued —
what `refstage demo` shows on "Play the rep"."""

from __future__ import annotations

import pytest

from refstage.domain.audit import Actor, ActorKind
from refstage.services.enrolment import run_enrolment
from refstage.services.referrals import route_referral
from refstage.services.rewards import approve_reward, issue_reward, list_rewards
from refstage.services.sync import run_sync
from tests.browser_support import NEEDS_CHROMIUM, ROOT
from tests.preview_support import component_text, ensure_preview_built, org_browser, sign_in
from tests.salesforce.helpers import OrgAdmin, refer, setup_world

FAST = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05}
ARTIFACTS = ROOT / "test-artifacts" / "preview"
REVIEWER = Actor(ActorKind.PERSON, "u1", "admin@acme.test")

pytestmark = [*NEEDS_CHROMIUM, pytest.mark.timeout(180)]


def opportunity_page(page, emu, opportunity_id: str) -> None:
    page.goto(f"{emu.base_url}/lightning/r/Opportunity/{opportunity_id}/view")
    page.wait_for_selector('[data-id="rewards"]')
    page.wait_for_function("() => !document.querySelector('[data-id=\"rewards\"] lightning-spinner')")


def test_the_rep_sees_attribution_then_reward_status_change(rt, client, emu) -> None:
    ensure_preview_built()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    admin = OrgAdmin(emu)
    tenant_id, connection_id, program_id = setup_world(rt, client, FAST)
    run_enrolment(rt, tenant_id, program_id)
    [referral_id] = refer(rt, tenant_id, program_id, 1)
    assert route_referral(rt, tenant_id, referral_id).value == "routed"
    with rt.uow(tenant_id) as uow:
        referral = uow.referrals.get(referral_id)
        advocate = uow.advocates.get(referral.advocate_id)
        program = uow.programs.get(program_id)
    lead_id = referral.crm.lead_id
    opportunity_id = admin.convert(lead_id)["opportunityId"]
    admin.update("Opportunity", [{"Id": opportunity_id, "StageName": "Proposal/Price Quote", "Amount": 12000}])
    assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
    [linked] = admin.query(f"SELECT Referral__c, AccountId FROM Opportunity WHERE Id = '{opportunity_id}'")
    assert linked["Referral__c"], "the write-back links the opportunity to its Referral__c"
    [advocate_contact] = admin.query(f"SELECT Name, AccountId FROM Contact WHERE Id = '{advocate.crm_contact_id or advocate.crm_id}'")
    [plain] = admin.query("SELECT Id FROM Opportunity WHERE Referral__c = null LIMIT 1")

    with org_browser(emu) as context:
        page = context.new_page()
        sign_in(page, emu, f"/lightning/r/Opportunity/{opportunity_id}/view")
        opportunity_page(page, emu, opportunity_id)
        assert component_text(page, '[data-id="advocate"]') == advocate_contact["Name"]
        assert component_text(page, '[data-id="program"]') == program.name
        assert component_text(page, '[data-id="milestone-value"]') == "Closed Won"
        assert component_text(page, '[data-id="stage"]') == "Proposal/Price Quote"
        assert page.locator('[data-id="timeline"] li[aria-current="step"]').inner_text().startswith("Routed")
        assert component_text(page, '[data-id="rewards-empty"]') == "No reward yet."
        page.screenshot(path=str(ARTIFACTS / "opportunity-routed.png"), full_page=True)

        admin.update("Opportunity", [{"Id": opportunity_id, "StageName": "Closed Won"}])
        won = run_sync(rt, tenant_id, connection_id)
        assert won.status == "succeeded" and won.observe.rewards_created == 2
        rewards = {r.recipient.value: r for r in list_rewards(rt, tenant_id) if r.referral_id == referral_id}
        opportunity_page(page, emu, opportunity_id)
        assert page.locator('[data-id="timeline"] li[aria-current="step"]').inner_text().startswith("Qualified")
        assert component_text(page, '[data-id="milestone-standing"]') == "This deal has reached the program milestone."
        shown = page.locator('[data-id="reward"]').all_inner_texts()
        assert len(shown) == 2
        assert any("Advocate" in text and "$100.00" in text for text in shown)
        assert any("Friend" in text and "$50.00" in text for text in shown)

        advocate_reward = rewards["advocate"]
        if advocate_reward.status.value in ("pending_review", "pending_hold"):
            approve_reward(rt, tenant_id, advocate_reward.id, REVIEWER)
        issue_reward(rt, tenant_id, advocate_reward.id, REVIEWER, "PAY-1")
        assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
        opportunity_page(page, emu, opportunity_id)
        advocate_row = page.locator('[data-id="reward"]', has_text="Advocate")
        assert advocate_row.locator('[data-id="reward-status"]').inner_text().strip() == "Issued"
        assert "Issued" in advocate_row.inner_text()
        assert page.locator('[data-id="timeline"] li[aria-current="step"]').inner_text().startswith("Rewarded")
        page.screenshot(path=str(ARTIFACTS / "opportunity-rewarded.png"), full_page=True)

        page.goto(f"{emu.base_url}/lightning/r/Account/{advocate_contact['AccountId']}/view")
        page.wait_for_selector('[data-id="referral-row"]')
        assert referral.friend_name in page.locator('[data-id="referral-row"]').first.inner_text()
        statuses = [t.strip() for t in page.locator('[data-id="reward-status"]').all_inner_texts()]
        assert "Issued (1)" in statuses
        issued = page.locator('[data-id="reward-total"]').nth(statuses.index("Issued (1)")).inner_text()
        assert issued.strip() == "$100.00"

        page.goto(f"{emu.base_url}/lightning/r/Opportunity/{plain['Id']}/view")
        page.wait_for_selector('[data-id="empty"]')
        assert component_text(page, '[data-id="empty"]') == "This opportunity is not attributed to a referral."
