"""The demo's install of the push path, end to end without a browser: `refstage_devkit.demo.seed` connects the
emulated org and deploys the backend's push-path bundle (its Outbound Messages and the flows that send them)
through the org's Metadata API (no control-API rules); a rep's win in the org reaches the app through the
**deployed** Outbound Message: the referral qualifies within 5 s, and the delivery names the message."""

from __future__ import annotations

import time

import pytest
from test_scripted_flow import emulator, stack, wait_for  # noqa: F401 - fixtures shared with the browser flow

pytestmark = [pytest.mark.timeout(120)]


def _referral(rt, tenant_id: str, referral_id: str):
    with rt.uow(tenant_id) as uow:
        return uow.referrals.get(referral_id)


def test_demo_install_pushes_a_won_deal_through_the_package_outbound_message(stack):  # noqa: F811
    from refstage_devkit.demo import seed

    rt, emu = stack.rt, stack.emu
    info = seed(rt, sf=emu)
    tenant_id, referral_id = info["tenant_id"], info["first_referral"]
    assert not emu.control.outbound_rules() or all(r.get("deployed") for r in emu.control.outbound_rules())
    deployed = {r["fullName"] for r in emu.control.outbound_rules() if r.get("deployed")}
    assert "Opportunity.Refstage_Opportunity_Changed" in deployed
    # what the backend's installer reads to tell an admin the flows are on
    views = emu.org.store.objects["FlowDefinitionView"]
    with emu.org.store.lock:
        active = dict(emu.org.store.db.execute(f"SELECT ApiName, IsActive FROM {views.table}").fetchall())
    assert active == {"Refstage_Lead_Status_Changed": 1, "Refstage_Opportunity_Stage_Changed": 1}

    lead_id = wait_for("the worker to route the demo's first referral to a Lead",
                       lambda: _referral(rt, tenant_id, referral_id).crm.lead_id)
    converted = emu.control.convert_lead(lead_id)
    opportunity_id = converted["opportunityId"]
    wait_for("the conversion to reach the app through the package's Lead outbound message",
             lambda: _referral(rt, tenant_id, referral_id).crm.opportunity_id == opportunity_id)

    emu.org.store.update(emu.org.store.objects["Opportunity"], opportunity_id,
                         {"StageName": "Closed Won", "Amount": 12000}, emu.org.admin_id)
    won_at = time.monotonic()
    wait_for("the win to qualify the referral", lambda: _referral(rt, tenant_id, referral_id).status.value in (
        "qualified", "rewarded"), timeout=5.0)
    assert time.monotonic() - won_at < 5.0
    pushed = [d for d in emu.control.deliveries() if d["acked"] and opportunity_id in d["recordIds"]]
    assert pushed and pushed[-1]["fullName"] == "Opportunity.Refstage_Opportunity_Changed"
    assert pushed[-1]["flows"] == ["Refstage_Opportunity_Stage_Changed"]
