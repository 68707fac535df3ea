"""Small builders for domain objects in tests (one place, not copied into each file)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from refstage.domain.programs import EnrolmentSource, Owner, Program, ProgramStatus
from refstage.domain.referrals import CrmRefs, Referral, ReferralSource, ReferralStatus
from refstage.domain.review import ReviewPolicy
from refstage.domain.rewards import RewardRule
from refstage.domain.rules import Rule

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
_ids = itertools.count(1)


def new_id() -> str:
    return f"id-{next(_ids)}"


def program(rule: str = "Opportunity.StageName == 'Closed Won'", rewards: list[dict] | None = None, *,
            holding_days: int = 0, policy: dict | None = None, status: ProgramStatus = ProgramStatus.LIVE) -> Program:
    rewards = rewards if rewards is not None else [
        {"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"}},
        {"key": "friend", "recipient": "friend", "kind": "fixed", "amount": {"amount": "50", "currency": "USD"}},
    ]
    return Program(
        id="prog-1", tenant_id="t1", name="P", slug="p", connection_id="conn-1",
        enrolment=EnrolmentSource.from_dict({"kind": "salesforce_contacts"}), rule=Rule.parse(rule),
        reward_rules=[RewardRule.from_dict(r) for r in rewards], review_policy=ReviewPolicy.from_dict(policy),
        holding_days=holding_days, owner=Owner("Owner", "owner@x.test"), status=status,
    )


def referral(status: ReferralStatus = ReferralStatus.ROUTED, **kwargs: Any) -> Referral:
    r = Referral(
        id=kwargs.pop("id", new_id()), tenant_id="t1", program_id="prog-1", advocate_id=kwargs.pop("advocate_id", "adv-1"),
        friend_name="Friend", friend_email="friend@prospect.test", friend_company=None, friend_phone=None,
        source=ReferralSource.LINK, consent_at=T0, consent_version="1", captured_at=T0,
        status=status, crm=kwargs.pop("crm", CrmRefs(lead_id="00Q000000000001AAA", opportunity_id="006000000000001AAA")),
        **kwargs,
    )
    return r


def won(amount: float = 10000, stage: str = "Closed Won") -> dict:
    return {"Opportunity": {"StageName": stage, "Amount": amount, "IsWon": stage == "Closed Won", "IsClosed": stage.startswith("Closed")}}
