"""Benchmark (b): a quiet org. N records (1,000,000 opportunities, last written an hour ago), 10 % linked to
referrals; a first sync reads everything, a second reads the echoes of its own write-back, and a third finds
nothing changed. The third is measured: its Salesforce API calls and our own CPU time (the process's, not
the emulator's)."""

from __future__ import annotations

from bench.backend_side import EPOCH, connect, env_for, measure, runtime
from bench.common import instance_dir
from bench.fixtures import PROGRAM, linked_referrals
from bench.salesforce_org import emulated_org


def quiet_org(total: int, linked: int) -> dict:
    with instance_dir("quiet") as inst, emulated_org(inst) as org:
        org.control("POST", "/seed", json={"opportunities": total, "accounts": 1000, "seed": 7})
        env = env_for(inst, org)
        rt = runtime(env)
        tenant_id, connection_id, program_id = connect(rt, org, PROGRAM, {"sync_from": EPOCH})
        opp_ids = org.query_ids(f"SELECT Id FROM Opportunity ORDER BY Id LIMIT {linked}")
        linked_referrals(rt, tenant_id, connection_id, program_id, opp_ids)
        # Quiet: the org's records were last written an hour ago (its clock moves on; nothing is written).
        org.control("POST", "/clock", json={"advanceSeconds": 3600})
        org.control("POST", "/usage", json={"reset": True})
        first = measure("sync", env, tenant_id=tenant_id, connection_id=connection_id)
        first_calls = org.api_used()
        # The first sync's write-back set Opportunity.Referral__c on the linked deals, which bumps their
        # SystemModstamp: the next sync reads those echoes of our own writes once (nothing to do with them).
        org.control("POST", "/clock", json={"advanceSeconds": 3600})
        org.control("POST", "/usage", json={"reset": True})
        echo = measure("sync", env, tenant_id=tenant_id, connection_id=connection_id)
        echo_calls = org.api_used()
        org.control("POST", "/usage", json={"reset": True})
        second = measure("sync", env, tenant_id=tenant_id, connection_id=connection_id)
        return {"records": total + 1000, "opportunities": total, "linked": linked,
                "api_calls": org.api_used(), "own_time_s": second["cpu_s"], "wall_s": second["wall_s"],
                "pulled": second["pulled"], "status": second["status"], "peak_rss_mb": second["peak_rss_mb"],
                "first_sync_wall_s": first["wall_s"], "first_sync_api_calls": first_calls, "first_sync_pulled": first["pulled"],
                "first_sync_status": first["status"], "echo_sync_pulled": echo["pulled"], "echo_sync_api_calls": echo_calls,
                "echo_sync_wall_s": echo["wall_s"]}


def run(quick: bool) -> dict:
    return quiet_org(100_000, 10_000) if quick else quiet_org(1_000_000, 100_000)
