import datetime as dt

from refstage.domain.money import Money
from refstage.domain.qualification import observe, release_hold
from refstage.domain.referrals import CrmRefs, ReferralStatus
from refstage.domain.review import Flag, Reason
from refstage.domain.rewards import AdvocateHistory, RewardStatus
from tests.builders import T0, new_id, program, referral, won

S = ReferralStatus


def run(ref, prog, snapshot, existing=None, history=1, at=T0):
    existing = existing if existing is not None else {}
    outcome = observe(ref, prog, snapshot, at, existing, lambda rule: AdvocateHistory(history), new_id)
    for reward in outcome.new_rewards:
        existing[reward.identity] = reward
    return outcome, existing


def test_qualifying_creates_each_reward_once():
    prog, ref = program(), referral()
    outcome, existing = run(ref, prog, won())
    assert ref.status == S.QUALIFIED
    assert sorted(r.rule_key for r in outcome.new_rewards) == ["adv", "friend"]
    assert all(r.status == RewardStatus.APPROVED for r in outcome.new_rewards)
    again, existing = run(ref, prog, won(), existing)
    assert again.new_rewards == [] and not again.referral_changed
    assert len(existing) == 2


def test_progress_without_milestone():
    prog, ref = program(), referral()
    outcome, _ = run(ref, prog, won(stage="Proposal"))
    assert ref.status == S.IN_PROGRESS and outcome.new_rewards == []
    lead_only = referral(crm=CrmRefs(lead_id="00Q1"))
    run(lead_only, prog, {"Lead": {"Status": "Working"}})
    assert lead_only.status == S.ROUTED


def test_regression_before_issue_sends_rewards_to_review_then_requalifies():
    prog, ref = program(), referral()
    _, existing = run(ref, prog, won())
    outcome, existing = run(ref, prog, won(stage="Negotiation"), existing)
    assert ref.status == S.DISQUALIFIED
    assert {r.status for r in existing.values()} == {RewardStatus.PENDING_REVIEW}
    assert all(Flag in (type(f) for f in r.flags) and r.flags[-1].reason == Reason.MILESTONE_REGRESSED for r in existing.values())
    again, existing = run(ref, prog, won(), existing)
    assert ref.status == S.QUALIFIED and again.new_rewards == []  # no second reward on re-qualification


def test_regression_cancels_when_policy_blocks():
    prog = program(policy={"actions": {"milestone_regressed": "block"}})
    ref = referral()
    _, existing = run(ref, prog, won())
    run(ref, prog, won(stage="Closed Lost"), existing)
    assert {r.status for r in existing.values()} == {RewardStatus.CANCELLED}


def test_issued_rewards_are_untouched_by_regression():
    prog, ref = program(rewards=[{"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "10", "currency": "USD"}}]), referral()
    _, existing = run(ref, prog, won())
    (reward,) = existing.values()
    reward.issue(T0)
    ref.mark_rewarded(T0)
    outcome, _ = run(ref, prog, won(stage="Closed Lost"), existing)
    assert ref.status == S.REWARDED and reward.status == RewardStatus.ISSUED and not outcome.referral_changed


def test_holding_period_then_release():
    prog, ref = program(holding_days=30), referral()
    outcome, _ = run(ref, prog, won())
    reward = outcome.new_rewards[0]
    assert reward.status == RewardStatus.PENDING_HOLD and reward.hold_until == T0 + dt.timedelta(days=30)
    assert not release_hold(reward, prog, T0 + dt.timedelta(days=29))
    assert release_hold(reward, prog, T0 + dt.timedelta(days=30))
    assert reward.status == RewardStatus.APPROVED


def test_flags_on_referral_decide_reward_path():
    prog = program(policy={"amount_threshold": {"amount": "75", "currency": "USD"}})
    ref = referral()
    outcome, _ = run(ref, prog, won())
    by_key = {r.rule_key: r for r in outcome.new_rewards}
    assert by_key["adv"].status == RewardStatus.PENDING_REVIEW  # 100 > 75
    assert by_key["adv"].flags[0].reason == Reason.OVER_AMOUNT_THRESHOLD
    assert by_key["friend"].status == RewardStatus.APPROVED
    blocked = referral(flags=[Flag(Reason.SELF_REFERRAL, {"match": "same_email_domain"})])
    outcome, _ = run(blocked, program(), won())
    assert {r.status for r in outcome.new_rewards} == {RewardStatus.REJECTED}
    assert "self_referral" in outcome.new_rewards[0].decision_comment


def test_percentage_reward_waits_for_an_amount():
    prog = program(rewards=[{"key": "pct", "recipient": "advocate", "kind": "percentage", "percent": "10",
                             "amount_field": "Opportunity.Amount", "currency": "USD"}])
    ref = referral()
    outcome, existing = run(ref, prog, {"Opportunity": {"StageName": "Closed Won", "Amount": None}})
    assert ref.status == S.QUALIFIED and outcome.new_rewards == []
    outcome, existing = run(ref, prog, won(1234), existing)
    assert outcome.new_rewards[0].amount == Money("123.40", "USD")


def test_terminal_referrals_are_not_moved():
    for status in (S.CAPTURED, S.DUPLICATE, S.REJECTED, S.REWARDED):
        ref = referral(status)
        outcome, _ = run(ref, program(), won())
        assert ref.status == status and outcome.new_rewards == []
