"""Property-based tests of the state machines: whatever the order of events, no reward identity is
created twice, a rejected referral never comes back, and nothing unapproved is issued."""

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from refstage.domain.errors import DomainError
from refstage.domain.qualification import observe, release_hold
from refstage.domain.referrals import ReferralStatus
from refstage.domain.rewards import AdvocateHistory, RewardStatus
from tests.builders import T0, new_id, program, referral, won

STAGES = ["Prospecting", "Negotiation", "Closed Won", "Closed Lost"]
events = st.lists(
    st.one_of(
        st.tuples(st.just("observe"), st.sampled_from(STAGES), st.integers(min_value=0, max_value=20000)),
        st.tuples(st.just("approve"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("reject"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("issue"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("reject_referral"), st.just(""), st.just(0)),
        st.tuples(st.just("wait"), st.integers(0, 40), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(events=events, holding=st.sampled_from([0, 14]), policy_block=st.booleans())
def test_no_sequence_breaks_the_guarantees(events, holding, policy_block):
    prog = program(
        rewards=[
            {"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"}},
            {"key": "pct", "recipient": "friend", "kind": "percentage", "percent": "5", "amount_field": "Opportunity.Amount", "currency": "USD"},
        ],
        holding_days=holding,
        policy={"actions": {"milestone_regressed": "block" if policy_block else "review"}},
    )
    ref = referral()
    existing: dict = {}
    created_identities: list = []
    approved_once: set[str] = set()
    now = T0
    was_rejected = False
    for kind, arg, extra in events:
        rewards = list(existing.values())
        try:
            if kind == "observe":
                outcome = observe(ref, prog, won(extra, stage=arg), now, existing, lambda r: AdvocateHistory(1), new_id)
                for reward in outcome.new_rewards:
                    created_identities.append(reward.identity)
                    existing[reward.identity] = reward
            elif kind == "wait":
                now += dt.timedelta(days=arg)
                for reward in rewards:
                    release_hold(reward, prog, now)
            elif kind == "reject_referral":
                ref.reject(now, "reviewer said no")
                was_rejected = True
            elif rewards:
                reward = rewards[arg % len(rewards)]
                if kind == "approve":
                    reward.approve(now, "rev")
                elif kind == "reject":
                    reward.reject(now, "rev", "no")
                else:
                    reward.issue(now)
        except DomainError:
            pass  # refused moves are fine; they must leave state intact (checked below)
        for reward in existing.values():
            if reward.status == RewardStatus.APPROVED:
                approved_once.add(reward.id)
            if reward.status == RewardStatus.ISSUED:
                assert reward.id in approved_once, "issued without having been approved"
        if was_rejected:
            assert ref.status == ReferralStatus.REJECTED, "a rejected referral came back"
    assert len(created_identities) == len(set(created_identities))
    assert len(existing) <= 2
