"""Benchmark (c): enrolment. N contacts (100,000) seeded in the emulated org through its control API; a
program enrols every Salesforce contact and writes each advocate's code and link back to the Contact."""

from __future__ import annotations

from bench.backend_side import connect, env_for, measure, runtime
from bench.common import instance_dir
from bench.fixtures import PROGRAM
from bench.salesforce_org import emulated_org


def enrolment(contacts: int) -> dict:
    with instance_dir("enrol") as inst, emulated_org(inst) as org:
        seeded = org.control("POST", "/seed", json={"contacts": contacts, "accounts": 1000, "seed": 11})
        env = env_for(inst, org)
        rt = runtime(env)
        tenant_id, _, program_id = connect(rt, org, {**PROGRAM, "enrolment": {"kind": "salesforce_contacts"}})
        org.control("POST", "/usage", json={"reset": True})
        run = measure("enrol", env, tenant_id=tenant_id, program_id=program_id)
        calls = org.api_used()
        written = org.query_ids("SELECT Id FROM Contact WHERE Referral_Code__c != null LIMIT 1")
        return {"contacts": contacts, "seed_seconds": seeded.get("seconds"), "wall_s": run["wall_s"], "api_calls": calls,
                "cpu_s": run["cpu_s"], "peak_rss_mb": run["peak_rss_mb"], "enrolled": run["enrolled"],
                "already": run["already"], "links_written": run["links_written"], "links_failed": run["links_failed"],
                "codes_visible_in_org": bool(written)}


def run(quick: bool) -> dict:
    return enrolment(20_000) if quick else enrolment(100_000)
