import pytest

from refstage.domain.errors import InvalidInput, InvalidTransition
from refstage.domain.money import Money
from refstage.domain.programs import ProgramStatus
from refstage.domain.referrals import REFERRAL_TRANSITIONS, CrmRefs, ReferralStatus
from refstage.domain.rewards import REWARD_TRANSITIONS, Recipient, Reward, RewardKind, RewardStatus
from tests.builders import T0, program, referral

S = ReferralStatus


def test_happy_path_records_every_change():
    r = referral(S.CAPTURED, crm=CrmRefs())
    r.mark_routed(CrmRefs(lead_id="00Q1"), T0)
    r.mark_in_progress(T0)
    r.qualify(T0)
    r.mark_rewarded(T0)
    assert r.status == S.REWARDED
    assert [c.action for c in r.changes] == ["status:routed", "status:in_progress", "status:qualified", "status:rewarded"]
    assert r.changes[0].before == {"status": "captured"}


@pytest.mark.parametrize("start", list(S))
def test_every_transition_outside_the_table_raises(start):
    for target in S:
        r = referral(start)
        move = {
            S.ROUTED: lambda: r.mark_routed(CrmRefs(lead_id="x"), T0), S.IN_PROGRESS: lambda: r.mark_in_progress(T0),
            S.QUALIFIED: lambda: r.qualify(T0), S.REWARDED: lambda: r.mark_rewarded(T0),
            S.DUPLICATE: lambda: r.mark_duplicate({}, T0), S.REJECTED: lambda: r.reject(T0, "no"),
            S.DISQUALIFIED: lambda: r.disqualify(T0), S.CAPTURED: None,
        }[target]
        if move is None:
            continue
        if target in REFERRAL_TRANSITIONS[start]:
            move()
            assert r.status == target
        else:
            with pytest.raises(InvalidTransition):
                move()
            assert r.status == start


def test_rejected_and_rewarded_are_terminal():
    assert REFERRAL_TRANSITIONS[S.REJECTED] == frozenset()
    assert REFERRAL_TRANSITIONS[S.REWARDED] == frozenset()
    with pytest.raises(InvalidInput):
        referral(S.CAPTURED).reject(T0, "")


def _reward(status=RewardStatus.PENDING_REVIEW, hold_until=None):
    return Reward(id="rw1", tenant_id="t1", program_id="p", referral_id="r1", recipient=Recipient.ADVOCATE, rule_key="adv",
                  kind=RewardKind.FIXED, amount=Money("100", "USD"), status=status, created_at=T0, hold_until=hold_until)


def test_reward_must_be_approved_before_issue():
    reward = _reward()
    with pytest.raises(InvalidTransition):
        reward.issue(T0)
    reward.approve(T0, "rev@x.test", "looks right")
    reward.issue(T0, "PAY-1")
    assert reward.status == RewardStatus.ISSUED and reward.payout_reference == "PAY-1"
    with pytest.raises(InvalidTransition):
        reward.issue(T0)
    with pytest.raises(InvalidTransition):
        reward.cancel(T0, "too late")


def test_hold_cannot_be_skipped_or_released_early():
    import datetime as dt

    reward = _reward(RewardStatus.PENDING_HOLD, hold_until=T0 + dt.timedelta(days=30))
    with pytest.raises(InvalidTransition):
        reward.approve(T0, "rev")
    with pytest.raises(InvalidTransition):
        reward.release_hold(T0 + dt.timedelta(days=29), needs_review=False)
    reward.release_hold(T0 + dt.timedelta(days=30), needs_review=True)
    assert reward.status == RewardStatus.PENDING_REVIEW


def test_reject_needs_reason_and_is_final():
    reward = _reward()
    with pytest.raises(InvalidInput):
        reward.reject(T0, "rev", "")
    reward.reject(T0, "rev", "self referral confirmed")
    assert reward.decision_comment == "self referral confirmed"
    for target in RewardStatus:
        assert target not in REWARD_TRANSITIONS[RewardStatus.REJECTED]


def test_program_goes_live_only_when_complete():
    p = program(status=ProgramStatus.DRAFT)
    p.owner = None
    with pytest.raises(InvalidInput) as info:
        p.set_status(ProgramStatus.LIVE, T0)
    assert "owner" in info.value.errors
    p = program(status=ProgramStatus.DRAFT)
    p.set_status(ProgramStatus.LIVE, T0)
    p.set_status(ProgramStatus.PAUSED, T0)
    with pytest.raises(InvalidTransition):
        p.set_status(ProgramStatus.DRAFT, T0)
