"""A decision reaches the CRM at once: approving, rejecting (one or many), issuing and marking paid
queue the write-back job for the referral's connection right after the commit, and running that job
mirrors the new status into the CRM — no waiting for the scheduled sync."""

from __future__ import annotations

from refstage.services import rewards, sync
from tests.admin.conftest import ADMIN, post, qualified_referral


def _write_backs(rt):
    return [kw for name, kw in rt.jobs.jobs if name == "write_back"]


def _run_write_back(rt, world):
    with rt.uow(world.tenant.id) as uow:
        conn = uow.connections.get(world.connection.id)
    sync.write_back_all(rt, world.tenant.id, conn)


def test_approve_then_mark_paid_reach_the_crm_without_a_sync(admin_client, rt, world, clock, needs_review):
    _, found = qualified_referral(rt, world, clock)
    reward_id = found["adv"].id
    _run_write_back(rt, world)
    assert world.crm.mirrored[reward_id]["status"] == "pending_review"
    rt.jobs.jobs.clear()

    assert post(admin_client, "/admin/review/rewards", {"decide": f"approve:{reward_id}"}).status_code == 302
    assert _write_backs(rt) == [{"tenant_id": world.tenant.id, "connection_id": world.connection.id}]
    _run_write_back(rt, world)
    assert world.crm.mirrored[reward_id]["status"] == "approved"

    rt.jobs.jobs.clear()
    rewards.issue_reward(rt, world.tenant.id, reward_id, ADMIN, "PAY-1")
    assert _write_backs(rt) == [{"tenant_id": world.tenant.id, "connection_id": world.connection.id}]
    _run_write_back(rt, world)
    assert world.crm.mirrored[reward_id]["status"] == "issued"


def test_bulk_reject_queues_one_write_back_per_connection(admin_client, rt, world, clock, needs_review):
    ids = [qualified_referral(rt, world, clock, email=f"f{i}@prospect.test")[1]["adv"].id for i in range(3)]
    rt.jobs.jobs.clear()
    post(admin_client, "/admin/review/rewards", {"decide": "reject:selected", "reward_id": ids, "comment": "fraud ring"})
    assert _write_backs(rt) == [{"tenant_id": world.tenant.id, "connection_id": world.connection.id}]
    _run_write_back(rt, world)
    assert {world.crm.mirrored[i]["status"] for i in ids} == {"rejected"}
