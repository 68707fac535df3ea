"""Reward decisions: review, holds, issue. Each reward is issued at most once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from refstage.domain import qualification
from refstage.domain.audit import Actor
from refstage.domain.errors import DomainError, InvalidInput
from refstage.domain.referrals import ReferralStatus
from refstage.domain.rewards import Recipient, Reward, RewardStatus
from refstage.services.referrals import queue_mirror
from refstage.services.runtime import Runtime


@dataclass
class BulkResult:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _write_back_now(rt: Runtime, tenant_id: str, connection_ids: Sequence[str | None]) -> None:
    """A decision reaches the CRM in seconds: the write-back job is queued at once (after the commit)
    instead of waiting for the connection's next scheduled sync. The job is idempotent: it drains
    whatever is waiting, so an extra run costs one empty read."""
    for connection_id in dict.fromkeys(c for c in connection_ids if c):
        rt.jobs.enqueue("write_back", tenant_id=tenant_id, connection_id=connection_id)


def _decide(rt: Runtime, tenant_id: str, reward_id: str, actor: Actor, approve: bool, comment: str | None,
            write_back: bool = True) -> Reward:
    return _decide_on(rt, tenant_id, reward_id, actor, approve, comment, write_back)[0]


def _decide_on(rt: Runtime, tenant_id: str, reward_id: str, actor: Actor, approve: bool, comment: str | None,
               write_back: bool = True) -> tuple[Reward, str | None]:
    with rt.uow(tenant_id) as uow:
        reward = uow.rewards.get(reward_id)
        now = rt.now()
        if approve:
            reward.approve(now, actor.label or actor.id or "", comment)
        else:
            reward.reject(now, actor.label or actor.id or "", (comment or "").strip())
        uow.rewards.save(reward)
        uow.record(reward.changes, actor, reward.id)
        connection_id = uow.referrals.connection_id(reward.referral_id)
        if connection_id:
            queue_mirror(uow, connection_id, "reward", reward.id, now)
        uow.commit()
    if write_back:
        _write_back_now(rt, tenant_id, [connection_id])
    if approve:
        rt.jobs.enqueue("notify", tenant_id=tenant_id, event="reward.approved", entity_id=reward.id)
    return reward, connection_id


def approve_reward(rt: Runtime, tenant_id: str, reward_id: str, actor: Actor, comment: str | None = None) -> Reward:
    return _decide(rt, tenant_id, reward_id, actor, True, comment)


def reject_reward(rt: Runtime, tenant_id: str, reward_id: str, actor: Actor, comment: str) -> Reward:
    if not comment or not comment.strip():
        raise InvalidInput({"comment": "a rejection needs a reason"})
    return _decide(rt, tenant_id, reward_id, actor, False, comment)


def decide_many(rt: Runtime, tenant_id: str, reward_ids: Sequence[str], actor: Actor, *, approve: bool,
                comment: str | None) -> BulkResult:
    """Bulk review: each reward decided on its own, so one that cannot move does not block the rest."""
    if not approve and not (comment and comment.strip()):
        raise InvalidInput({"comment": "a rejection needs a reason"})
    result = BulkResult()
    touched: list[str | None] = []
    for reward_id in dict.fromkeys(reward_ids):
        try:
            touched.append(_decide_on(rt, tenant_id, reward_id, actor, approve, comment, write_back=False)[1])
            result.done.append(reward_id)
        except DomainError as exc:
            result.failed[reward_id] = str(exc)
    _write_back_now(rt, tenant_id, touched)  # one job per connection for the whole batch
    return result


def issue_reward(rt: Runtime, tenant_id: str, reward_id: str, actor: Actor, payout_reference: str | None = None) -> Reward:
    """Mark an approved reward as issued (paid). Issuing twice is refused by the state machine;
    the referral becomes `rewarded` once its advocate's reward is issued."""
    with rt.uow(tenant_id) as uow:
        reward = uow.rewards.get(reward_id)
        now = rt.now()
        if reward.status == RewardStatus.ISSUED:
            return reward  # a repeated request (double click, retried webhook): same answer, nothing new
        reward.issue(now, (payout_reference or "").strip()[:200] or None)
        uow.rewards.save(reward)
        uow.record(reward.changes, actor, reward.id)
        referral = uow.referrals.get(reward.referral_id)
        if reward.recipient == Recipient.ADVOCATE and referral.status == ReferralStatus.QUALIFIED:
            referral.mark_rewarded(now)
            uow.referrals.save(referral)
            uow.record(referral.changes, actor, referral.id)
        connection_id = uow.referrals.connection_id(reward.referral_id)
        if connection_id:
            queue_mirror(uow, connection_id, "reward", reward.id, now)
            queue_mirror(uow, connection_id, "referral", referral.id, now)
        uow.commit()
    _write_back_now(rt, tenant_id, [connection_id])
    rt.jobs.enqueue("notify", tenant_id=tenant_id, event="reward.issued", entity_id=reward.id)
    return reward


def release_due_holds(rt: Runtime, tenant_id: str) -> int:
    """Rewards whose holding period ended move on: to review when flagged, else approved."""
    moved = 0
    with rt.uow(tenant_id) as uow:
        now = rt.now()
        programs = {}
        for reward in uow.rewards.due_holds(now):
            program = programs.get(reward.program_id) or uow.programs.get(reward.program_id)
            programs[program.id] = program
            if qualification.release_hold(reward, program, now):
                uow.rewards.save(reward)
                uow.record(reward.changes, Actor.system("holding period"), reward.id)
                connection_id = uow.referrals.connection_id(reward.referral_id)
                if connection_id:
                    queue_mirror(uow, connection_id, "reward", reward.id, now)
                moved += 1
        uow.commit()
    return moved


def list_rewards(rt: Runtime, tenant_id: str, **filters) -> list[Reward]:
    with rt.uow(tenant_id, readonly=True) as uow:
        return uow.rewards.list(**filters)
