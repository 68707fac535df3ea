"""Benchmark (g): decision write-back latency. A reviewer approves a reward, then marks it paid (or rejects it),
through the JSON API (the same reward services the console's buttons call); each decision queues a write-back at
once, a worker process mirrors it, and we time from the request until the org's Referral_Reward__c shows the new
status (and, for mark-paid, the referral's Referral__c shows `rewarded`), polling the org's REST API every 100 ms.
As in (d), the worker sits idle for a random 0-8 s (seeded) before each decision, as between a reviewer's clicks."""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time

from bench.backend_side import connect, env_for, runtime
from bench.common import bench_database, gunicorn, instance_dir
from bench.fixtures import PROGRAM, linked_referrals
from bench.salesforce_org import VERSION, emulated_org

POLL_S = 0.1
GIVE_UP_S = 120
# Rewards above the threshold wait for a reviewer: the decisions measured here are a reviewer's.
REVIEWED_PROGRAM = {**PROGRAM, "reward_rules": [PROGRAM["reward_rules"][0]],
                    "review_policy": {"amount_threshold": {"amount": "10", "currency": "USD"}}}


def run(quick: bool) -> dict:
    rewards_due = 6 if quick else 22  # two decisions each (approve, then mark paid); every fifth is rejected instead
    max_idle = 2.0 if quick else 8.0
    pauses = random.Random(13)
    load_at_start = list(os.getloadavg())
    with instance_dir("writeback") as inst, emulated_org(inst) as org:
        org.control("POST", "/seed", json={"opportunities": rewards_due + 5, "accounts": 20, "seed": 7})
        env = env_for(inst, org)
        rt = runtime(env)
        tenant_id, connection_id, program_id = connect(rt, org, REVIEWED_PROGRAM)
        opp_ids = org.query_ids(f"SELECT Id FROM Opportunity WHERE IsClosed = false ORDER BY Id LIMIT {rewards_due}")
        referral_ids = linked_referrals(rt, tenant_id, connection_id, program_id, opp_ids, advocates=rewards_due)
        # Set-up, not measured: the deals close, one sync qualifies the referrals and mirrors their rewards.
        org.bulk_update("Opportunity", ["Id", "StageName", "Amount"], [[o, "Closed Won", "9000"] for o in opp_ids])
        from refstage.domain.audit import Actor
        from refstage.services import rewards, tenants
        from refstage.services.sync import run_sync

        report = run_sync(rt, tenant_id, connection_id)
        if report.status != "succeeded":
            raise RuntimeError(f"set-up sync ended {report.status}: {report.error}")
        pending = [r for r in rewards.list_rewards(rt, tenant_id, status="pending_review", limit=500)
                   if r.referral_id in set(referral_ids)]
        if len(pending) != rewards_due:
            raise RuntimeError(f"set-up: {len(pending)} rewards awaiting review, expected {rewards_due}")
        api_key = tenants.create_api_key(rt, tenant_id, "bench", Actor.system("bench"))
        headers = {"Authorization": f"Bearer {org.token()}"}
        api = f"{org.base}/services/data/v{VERSION}"
        for reward in pending:  # the mirror holds them as the reviewer sees them
            _wait_for(org, api, headers, reward.id, "pending_review", None, time.perf_counter())
        worker = subprocess.Popen([sys.executable, "-m", "refstage.cli", "worker", "-w", "2", "--no-periodic"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        approve_s: list[float] = []
        issue_s: list[float] = []
        reject_s: list[float] = []
        try:
            with gunicorn("refstage.web.app:create_app()", env, probe="/health") as web:
                ours = {"Authorization": f"Bearer {api_key}"}
                for n, reward in enumerate(pending):
                    decisions = ((("reject", "rejected", None, reject_s),) if n % 5 == 4 else
                                 (("approve", "approved", None, approve_s), ("issue", "issued", "rewarded", issue_s)))
                    for decision, status, referral_status, samples in decisions:
                        time.sleep(pauses.uniform(0, max_idle))
                        t0 = time.perf_counter()
                        body = {"issue": {"payout_reference": f"BENCH-{n}"},
                                "reject": {"comment": "not a customer referral"}}.get(decision, {})
                        r = org.http.post(f"{web}/api/v1/rewards/{reward.id}/{decision}", json=body, headers=ours,
                                          timeout=30)
                        r.raise_for_status()
                        _wait_for(org, api, headers, reward.id, status, (reward.referral_id, referral_status), t0)
                        samples.append(time.perf_counter() - t0)
        finally:
            worker.terminate()
            worker.wait(15)
    every = sorted(approve_s + issue_s + reject_s)
    return {"samples": len(every), "p50_s": statistics.median(every), "p95_s": _p95(every), "max_s": every[-1],
            "min_s": every[0], "approve_p50_s": statistics.median(approve_s), "approve_max_s": max(approve_s),
            "mark_paid_p50_s": statistics.median(issue_s), "mark_paid_max_s": max(issue_s),
            "reject_p50_s": statistics.median(reject_s), "reject_max_s": max(reject_s),
            "decisions": {"approve": len(approve_s), "mark_paid": len(issue_s), "reject": len(reject_s)},
            "idle_before_each_s": f"0-{max_idle:g}", "poll_interval_s": POLL_S,
            "queue": "Redis" if bench_database() == "postgresql" else "SQLite", "load_average_at_start": load_at_start,
            "load_average": list(os.getloadavg()),
            "path": "POST /api/v1/rewards/<id>/approve|issue|reject → write_back job → worker → Referral_Reward__c / Referral__c"}


def _p95(values: list[float]) -> float:
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


def _wait_for(org, api: str, headers: dict, reward_id: str, status: str, referral: tuple[str, str | None] | None,
              t0: float) -> None:
    """Poll the org until the reward's mirror (and, when given, its referral's) carries the status."""
    while True:
        if _status(org, api, headers, "Referral_Reward__c", reward_id) == status and (
                referral is None or referral[1] is None
                or _status(org, api, headers, "Referral__c", referral[0]) == referral[1]):
            return
        if time.perf_counter() - t0 > GIVE_UP_S:
            raise RuntimeError(f"reward {reward_id} not {status} in the org after {GIVE_UP_S} s")
        time.sleep(POLL_S)


def _status(org, api: str, headers: dict, sobject: str, backend_id: str) -> str | None:
    r = org.http.get(f"{api}/query", params={"q": f"SELECT Status__c FROM {sobject} WHERE Backend_Id__c = '{backend_id}'"},
                     headers=headers, timeout=30)
    r.raise_for_status()
    records = r.json()["records"]
    return records[0]["Status__c"] if records else None
