import datetime as dt
from decimal import Decimal

import pytest

from refstage.domain.errors import InvalidInput, RuleError
from refstage.domain.money import Money
from refstage.domain.review import Action, Flag, Reason, ReviewPolicy, self_referral_flags, velocity_flag
from refstage.domain.rewards import AdvocateHistory, RewardRule, compute_reward, period_start, CapPeriod
from tests.builders import T0, won


def rule(**kw):
    return RewardRule.from_dict({"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"}, **kw})


def test_fixed_reward():
    draft = compute_reward(rule(), won(), AdvocateHistory(1))
    assert draft.amount == Money("100", "USD") and draft.flags == ()


def test_percentage_of_crm_amount_with_cap():
    pct = RewardRule.from_dict({"key": "pct", "recipient": "advocate", "kind": "percentage", "percent": "10",
                                "amount_field": "Opportunity.Amount", "currency": "USD",
                                "max_amount": {"amount": "500", "currency": "USD"}})
    assert compute_reward(pct, won(2345.67), AdvocateHistory(1)).amount == Money("234.57", "USD")
    assert compute_reward(pct, won(99999), AdvocateHistory(1)).amount == Money("500", "USD")
    assert compute_reward(pct, {"Opportunity": {"Amount": None}}, AdvocateHistory(1)) is None
    assert pct.required_fields() == {"Opportunity": {"Amount"}}


def test_tier_bonus_only_on_the_nth_qualified_referral():
    tier = RewardRule.from_dict({"key": "t5", "recipient": "advocate", "kind": "tier_bonus", "tier_at": 5,
                                 "amount": {"amount": "500", "currency": "USD"}})
    assert compute_reward(tier, won(), AdvocateHistory(4)) is None
    assert compute_reward(tier, won(), AdvocateHistory(5)).amount == Money("500", "USD")
    assert compute_reward(tier, won(), AdvocateHistory(6)) is None


def test_period_caps_clip_then_flag():
    capped = rule(cap_amount={"amount": "250", "currency": "USD"}, cap_period="month")
    assert compute_reward(capped, won(), AdvocateHistory(1, Money("100", "USD"), 1)).amount == Money("100", "USD")
    assert compute_reward(capped, won(), AdvocateHistory(1, Money("200", "USD"), 2)).amount == Money("50", "USD")
    flagged = compute_reward(capped, won(), AdvocateHistory(1, Money("250", "USD"), 3))
    assert [f.reason for f in flagged.flags] == [Reason.ADVOCATE_CAP_REACHED]
    counted = rule(cap_count=2, cap_period="quarter")
    assert compute_reward(counted, won(), AdvocateHistory(1, None, 2)).flags[0].reason == Reason.ADVOCATE_CAP_REACHED


def test_period_start():
    at = dt.datetime(2026, 8, 17, 13, 5, tzinfo=dt.timezone.utc)
    assert period_start(at, CapPeriod.MONTH).isoformat() == "2026-08-01T00:00:00+00:00"
    assert period_start(at, CapPeriod.QUARTER).isoformat() == "2026-07-01T00:00:00+00:00"
    assert period_start(at, CapPeriod.YEAR).isoformat() == "2026-01-01T00:00:00+00:00"


@pytest.mark.parametrize("bad, field", [
    ({"kind": "fixed"}, "amount"),
    ({"kind": "percentage", "percent": "5", "currency": "USD"}, "amount_field"),
    ({"kind": "tier_bonus", "amount": {"amount": "1", "currency": "USD"}}, "tier_at"),
    ({"kind": "fixed", "amount": {"amount": "-5", "currency": "USD"}}, "amount"),
    ({"kind": "fixed", "amount": {"amount": "5", "currency": "USD"}, "cap_count": 3}, "cap_period"),
    ({"kind": "fixed", "amount": {"amount": "5", "currency": "usd"}}, "amount"),
])
def test_reward_rule_validation_names_the_field(bad, field):
    with pytest.raises(RuleError) as info:
        RewardRule.from_dict({"key": "k", "recipient": "advocate", **bad})
    assert field in info.value.errors


def test_self_referral_detection():
    same = self_referral_flags(friend_email="a@corp.test", friend_canonical_email="a@corp.test",
                               advocate_email="a@corp.test", advocate_canonical_email="a@corp.test")
    assert same[0].evidence["match"] == "same_email"
    gmail = self_referral_flags(friend_email="j.o.e+x@gmail.com", friend_canonical_email="joe@gmail.com",
                                advocate_email="joe@gmail.com", advocate_canonical_email="joe@gmail.com")
    assert gmail[0].evidence["match"] == "same_email"
    domain = self_referral_flags(friend_email="b@corp.test", friend_canonical_email="b@corp.test",
                                 advocate_email="a@corp.test", advocate_canonical_email="a@corp.test")
    assert domain[0].evidence == {"match": "same_email_domain", "domain": "corp.test"}
    assert self_referral_flags(friend_email="b@gmail.com", friend_canonical_email="b@gmail.com",
                               advocate_email="a@gmail.com", advocate_canonical_email="a@gmail.com") == []
    account = self_referral_flags(friend_email="b@x.test", friend_canonical_email="b@x.test", advocate_email="a@y.test",
                                  advocate_canonical_email="a@y.test", friend_account_id="001A", advocate_account_id="001A")
    assert account[0].evidence["match"] == "same_crm_account"


def test_velocity():
    policy = ReviewPolicy.from_dict({"velocity_max": 3, "velocity_window_hours": 1})
    recent = [T0 - dt.timedelta(minutes=m) for m in (1, 2)]
    assert velocity_flag(recent, T0, policy) is None
    flag = velocity_flag(recent + [T0 - dt.timedelta(minutes=3)], T0, policy)
    assert flag.reason == Reason.SUSPICIOUS_VELOCITY and flag.evidence["referrals_in_window"] == 4
    assert velocity_flag(recent + [T0 - dt.timedelta(hours=2)], T0, policy) is None


def test_policy_picks_the_strictest_action():
    policy = ReviewPolicy.from_dict({"actions": {"existing_customer": "pass"}})
    assert policy.decide([]) == Action.PASS
    assert policy.decide([Flag(Reason.EXISTING_CUSTOMER)]) == Action.PASS
    assert policy.decide([Flag(Reason.EXISTING_CUSTOMER), Flag(Reason.SUSPICIOUS_VELOCITY)]) == Action.REVIEW
    assert policy.decide([Flag(Reason.SUSPICIOUS_VELOCITY), Flag(Reason.SELF_REFERRAL)]) == Action.BLOCK
    with pytest.raises(InvalidInput) as info:
        ReviewPolicy.from_dict({"actions": {"nonsense": "block"}, "velocity_max": 0})
    assert set(info.value.errors) == {"actions.nonsense", "velocity_max"}
    assert ReviewPolicy.from_dict(policy.to_dict()) == policy


def test_stored_forms_read_back_identically():
    from refstage.domain.programs import EnrolmentSource
    from refstage.domain.rules import Rule

    for data in (
        {"key": "pct", "recipient": "advocate", "kind": "percentage", "percent": "7.5", "amount_field": "Deal.value",
         "currency": "EUR", "max_amount": {"amount": "300", "currency": "EUR"}, "cap_count": 3, "cap_period": "year"},
        {"key": "t", "recipient": "advocate", "kind": "tier_bonus", "tier_at": 5, "amount": {"amount": "5", "currency": "USD"}},
    ):
        validated = RewardRule.from_dict(data)
        assert RewardRule.from_stored(validated.to_dict()) == validated
    source = EnrolmentSource.from_dict({"kind": "salesforce_contacts", "conditions": [
        {"field": "Account.Type", "op": "in", "value": ["Customer", "Partner"]}, {"field": "Email", "op": "not_null"}]})
    assert EnrolmentSource.from_stored(source.to_dict()) == source
    rule = Rule.parse("Opportunity.StageName == 'Closed Won'")
    assert Rule.from_stored(rule.to_json()) == rule
