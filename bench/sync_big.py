"""Benchmark (a): a big change set. The org holds N opportunities (1,000,000), 10 % of them linked to
referrals (mirrored by an earlier sync: each deal's Referral__c points at its referral), and all changed
since the last sync. Refstage's sync (pull, qualify, reward, write-back) and a naive integration run on the
same emulated org, side by side."""

from __future__ import annotations

from bench.backend_side import EPOCH, connect, env_for, measure, runtime
from bench.common import instance_dir
from bench.fixtures import PROGRAM, linked_referrals
from bench.salesforce_org import emulated_org

# Results of this process's runs, by (total, linked): (f) reuses (a)'s measurement of the same size.
MEASURED: dict[tuple[int, int, bool], dict] = {}
# The naive loop of one REST call per referral is stopped after this long; the rest is projected from its
# measured rate (and said so in the result). Its API-call count is exact: one call per changed referral.
NAIVE_LIMIT_S = 240.0  # full run; quick: 120


def big_change_set(total: int, linked: int, *, naive: bool = True, naive_limit_s: float | None = NAIVE_LIMIT_S,
                   timeline: str | None = None) -> dict:
    with instance_dir("sync") as inst, emulated_org(inst) as org:
        seeded = org.control("POST", "/seed", json={"opportunities": total, "accounts": 1000, "seed": 7})
        env = env_for(inst, org)
        rt = runtime(env)
        # The first sync reads from before the seed: every opportunity counts as changed.
        tenant_id, connection_id, program_id = connect(rt, org, PROGRAM, {"sync_from": EPOCH})
        all_ids = org.query_ids("SELECT Id FROM Opportunity ORDER BY Id")
        opp_ids, other_ids = all_ids[:linked], all_ids[linked:]
        linked_referrals(rt, tenant_id, connection_id, program_id, opp_ids)
        # The referred deals are still open when the earlier sync sees them.
        org.bulk_update("Opportunity", ["Id", "StageName", "Amount"], [[i, "Prospecting", "1000"] for i in opp_ids])
        # Referrals have been running in this org: an earlier sync (set-up, not measured) read it, mirrored
        # the referrals and pointed their deals at them (Opportunity.Referral__c), as in any org using Refstage.
        earlier = measure("sync", env, tenant_id=tenant_id, connection_id=connection_id)
        if earlier["status"] != "succeeded":
            raise RuntimeError(f"set-up sync failed: {earlier}")
        # Then every opportunity changes (mass updates through the Bulk API, as an admin would): reps close the
        # referred deals, and a clean-up touches all the others.
        changes_from = org.control("POST", "/clock", json={"advanceSeconds": 3600})["now"]
        org.bulk_update("Opportunity", ["Id", "StageName", "Amount"], [[i, "Closed Won", "9000"] for i in opp_ids])
        org.bulk_update("Opportunity", ["Id", "NextStep"], [[i, "Reviewed in clean-up"] for i in other_ids])
        del all_ids, other_ids
        org.control("POST", "/usage", json={"reset": True})
        emulator_cpu = org.cpu_seconds()
        ours = measure("sync", env, tenant_id=tenant_id, connection_id=connection_id, timeline=timeline)
        emulator_cpu = org.cpu_seconds() - emulator_cpu
        ours["api_calls"] = org.api_used()
        mirrored = org.query_ids("SELECT Id FROM Referral_Reward__c LIMIT 1")
        result = {"opportunities": total, "linked": linked, "seed_seconds": seeded.get("seconds"), "wall_s": ours["wall_s"],
                  "api_calls": ours["api_calls"], "peak_rss_mb": ours["peak_rss_mb"], "cpu_s": ours["cpu_s"],
                  "cpu_user_s": ours.get("cpu_user_s"), "cpu_system_s": ours.get("cpu_system_s"),
                  "emulator_cpu_s": emulator_cpu, "baseline_rss_mb": ours["baseline_rss_mb"], "status": ours["status"], "pulled": ours["pulled"],
                  "qualified": ours["qualified"], "rewards_created": ours["rewards_created"], "written": ours["written"],
                  "write_failures": ours["write_failures"], "rewards_visible_in_org": bool(mirrored),
                  "wall_s_per_change": ours["wall_s"] / max(1, linked), "setup_sync_wall_s": earlier["wall_s"],
                  "setup_sync_pulled": earlier["pulled"]}
        if naive:
            org.control("POST", "/usage", json={"reset": True})
            theirs = measure("naive", env, tenant_id=tenant_id, connection_id=connection_id, since=changes_from, base=org.base,
                             limit_s=naive_limit_s)
            calls = org.api_used()
            due, done = theirs["updates_due"], theirs["updates_measured"]
            projected = done < due
            if projected:
                # Measured: the query_all and `done` updates. Projected: the remaining updates at the measured
                # rate, each one API call (that is what the loop does).
                wall = theirs["wall_s"] + (due - done) * theirs["update_s"] / max(1, done)
                calls += due - done
            else:
                wall = theirs["wall_s"]
            result.update({"naive_wall_s": wall, "naive_api_calls": calls, "naive_peak_rss_mb": theirs["peak_rss_mb"],
                           "naive_updated": done, "naive_updates_due": due, "naive_projected": projected,
                           "naive_measured_wall_s": theirs["wall_s"], "naive_query_all_s": theirs["query_s"],
                           "naive_update_s_each": theirs["update_s"] / max(1, done),
                           "speedup": wall / ours["wall_s"], "api_reduction": calls / max(1, ours["api_calls"])})
        # Our process's CPU, the time it spent waiting (on the org, mostly: wall minus CPU, an upper bound on a
        # shared machine) and the org's own processing, reported apart (issue 22).
        result["waiting_s"] = max(0.0, ours["wall_s"] - ours["cpu_s"])
        if naive:
            # The competent baseline: query_all plus sObject Collections upserts of 200 (bench/naive.py).
            org.control("POST", "/usage", json={"reset": True})
            org_cpu = org.cpu_seconds()
            theirs = measure("competent", env, tenant_id=tenant_id, connection_id=connection_id, since=changes_from,
                             base=org.base)
            org_cpu = org.cpu_seconds() - org_cpu
            calls = org.api_used()
            result.update({"competent_wall_s": theirs["wall_s"], "competent_api_calls": calls,
                           "competent_cpu_s": theirs["cpu_s"], "competent_org_cpu_s": org_cpu,
                           "competent_waiting_s": max(0.0, theirs["wall_s"] - theirs["cpu_s"]),
                           "competent_updated": theirs["updated"], "competent_failed": theirs["failed"],
                           "competent_peak_rss_mb": theirs["peak_rss_mb"],
                           "speedup_vs_competent": theirs["wall_s"] / ours["wall_s"],
                           "api_reduction_vs_competent": calls / max(1, ours["api_calls"])})
        if timeline is None:  # a timed run is not the benchmark's figure
            MEASURED[(total, linked, naive)] = result
        return result


def run(quick: bool) -> dict:
    return big_change_set(100_000, 10_000, naive_limit_s=120.0) if quick else big_change_set(1_000_000, 100_000)


if __name__ == "__main__":
    # `python -m bench.sync_big [OPPORTUNITIES]`: (a) without the naive and competent sides, for A/B runs of our own
    # cost (10 % of the opportunities linked and changed); REFSTAGE_BENCH_PROFILE=FILE adds a pyinstrument profile.
    import json
    import sys

    from bench.common import python_speed_ms

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    speed = python_speed_ms()
    figures = big_change_set(size, size // 10, naive=False)
    print(json.dumps({"speed_check_ms": speed, **{k: figures.get(k) for k in (
        "opportunities", "linked", "wall_s", "cpu_s", "cpu_user_s", "cpu_system_s", "emulator_cpu_s", "api_calls",
        "pulled", "rewards_created", "written", "peak_rss_mb", "seed_seconds")}}))
