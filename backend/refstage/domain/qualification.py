"""What one observed CRM state means for one referral and its rewards.

Pure: the caller loads the referral, its existing rewards and the advocate's history, and stores
whatever this returns. Observing the same state twice changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from refstage.domain.audit import Change
from refstage.domain.programs import Program
from refstage.domain.referrals import Referral, ReferralStatus
from refstage.domain.review import Action, Flag, Reason
from refstage.domain.rewards import (
    AdvocateHistory,
    Recipient,
    Reward,
    RewardRule,
    RewardStatus,
    amount_threshold_flag,
    compute_reward,
)

S = ReferralStatus
# Referrals a CRM change can still move.
OBSERVABLE = frozenset({S.ROUTED, S.IN_PROGRESS, S.QUALIFIED, S.DISQUALIFIED})


@dataclass
class Outcome:
    new_rewards: list[Reward] = field(default_factory=list)
    changed_rewards: list[Reward] = field(default_factory=list)
    referral_changed: bool = False


def _has_pipeline(referral: Referral, snapshot: Mapping[str, Mapping[str, Any]]) -> bool:
    return bool(
        referral.crm.opportunity_id or referral.crm.deal_id or snapshot.get("Opportunity") or snapshot.get("Deal")
    )


def observe(
    referral: Referral,
    program: Program,
    snapshot: Mapping[str, Mapping[str, Any]],
    now: dt.datetime,
    existing: Mapping[tuple[str, str, str], Reward],
    history_for: Callable[[RewardRule], AdvocateHistory],
    new_id: Callable[[], str],
) -> Outcome:
    outcome = Outcome()
    if referral.status not in OBSERVABLE:
        return outcome
    met = program.rule.evaluate(snapshot)
    before = len(referral.changes)

    if met:
        if referral.status != S.QUALIFIED:
            referral.qualify(now, evidence={"rule": program.rule.describe()})
        outcome.new_rewards = _create_rewards(referral, program, snapshot, now, existing, history_for, new_id)
    elif referral.status == S.QUALIFIED:
        outcome.changed_rewards = _regress(referral, program, now, existing)
        referral.disqualify(now)
    elif referral.status == S.ROUTED and _has_pipeline(referral, snapshot):
        referral.mark_in_progress(now)

    outcome.referral_changed = len(referral.changes) != before
    return outcome


def _create_rewards(
    referral: Referral,
    program: Program,
    snapshot: Mapping[str, Mapping[str, Any]],
    now: dt.datetime,
    existing: Mapping[tuple[str, str, str], Reward],
    history_for: Callable[[RewardRule], AdvocateHistory],
    new_id: Callable[[], str],
) -> list[Reward]:
    created: list[Reward] = []
    policy = program.review_policy
    for rule in program.reward_rules:
        identity = (referral.id or "", rule.recipient.value, rule.key)
        if identity in existing:
            continue  # at most one reward per (referral, recipient, rule), however often we look
        draft = compute_reward(rule, snapshot, history_for(rule))
        if draft is None:
            continue
        flags = list(referral.flags) + list(draft.flags)
        threshold = amount_threshold_flag(draft.amount, policy.amount_threshold)
        if threshold:
            flags.append(threshold)
        action = policy.decide(flags)
        hold_until = program.hold_until(now)
        if action == Action.BLOCK:
            status = RewardStatus.REJECTED
        elif hold_until is not None:
            status = RewardStatus.PENDING_HOLD
        elif action == Action.REVIEW:
            status = RewardStatus.PENDING_REVIEW
        else:
            status = RewardStatus.APPROVED
        reward = Reward(
            id=new_id(),
            tenant_id=referral.tenant_id,
            program_id=program.id or "",
            referral_id=referral.id or "",
            recipient=rule.recipient,
            rule_key=rule.key,
            kind=rule.kind,
            amount=draft.amount,
            status=status,
            created_at=now,
            advocate_id=referral.advocate_id if rule.recipient == Recipient.ADVOCATE else None,
            hold_until=hold_until if status == RewardStatus.PENDING_HOLD else None,
            flags=flags,
        )
        if status == RewardStatus.REJECTED:
            blocked = [f.reason.value for f in flags if policy.action_for(f.reason) == Action.BLOCK]
            reward.decided_by = "policy"
            reward.decision_comment = "blocked by review policy: " + ", ".join(sorted(set(blocked)))
            reward.decided_at = now


        reward.changes.append(
            Change("reward", reward.id, "created", None, {"status": status.value, "amount": reward.amount.to_dict(), "rule": rule.key, "recipient": rule.recipient.value, "flags": [f.to_dict() for f in flags]}, reward.decision_comment, now)
        )
        created.append(reward)
    return created


def _regress(referral: Referral, program: Program, now: dt.datetime, existing: Mapping[tuple[str, str, str], Reward]) -> list[Reward]:
    """The milestone no longer holds: unissued rewards are cancelled or held for review, per policy."""
    changed: list[Reward] = []
    flag = Flag(Reason.MILESTONE_REGRESSED, {"rule": program.rule.describe(), "at": now.isoformat()})
    action = program.review_policy.action_for(Reason.MILESTONE_REGRESSED)
    for reward in existing.values():
        if reward.referral_id != referral.id or reward.is_final:
            continue
        if action == Action.BLOCK:
            reward.cancel(now, Reason.MILESTONE_REGRESSED.value)
        elif action == Action.REVIEW:
            reward.send_to_review(now, flag)
        else:
            continue
        changed.append(reward)
    return changed


def release_hold(reward: Reward, program: Program, now: dt.datetime) -> bool:
    """End a finished hold: to review when any flag asks for it, else approved. Returns whether it moved."""
    if reward.status != RewardStatus.PENDING_HOLD or (reward.hold_until and now < reward.hold_until):
        return False
    action = program.review_policy.decide(reward.flags)
    if action == Action.BLOCK:
        reward.cancel(now, "blocked by review policy after hold")
    else:
        reward.release_hold(now, needs_review=action == Action.REVIEW)
    return True
