"""Benchmark (d): push latency, on both CRMs in one run.

Salesforce: a rep closes an opportunity in the (emulated) org; its Outbound Message reaches the web process, the
worker re-reads the opportunity, qualifies the referral, creates the rewards and mirrors them; timed until the
rewards are visible in the org (Referral_Reward__c rows queried over its REST API).

Pipedrive: a user marks a deal won through the (emulated) company's API; Pipedrive's webhook reaches our receiver,
the worker re-reads the deal, qualifies the referral, creates the rewards and writes them back; timed until the
deal's "Refstage reward status" field names every reward (read over the company's API, as a user would see it).

Reps do not close deals back to back: before each change the worker sits idle for a random 0-8 s (seeded), long
enough for an idle worker's queue polling to reach its widest gap (bench/latency.py)."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
from urllib.parse import urlsplit

from bench.backend_side import connect, env_for, runtime
from bench.common import bench_database, bench_env, gunicorn, instance_dir
from bench.fixtures import PIPEDRIVE_PROGRAM, PROGRAM, linked_referrals
from bench.latency import summary, time_until_visible
from bench.pipedrive_company import API_TOKEN, emulated_company
from bench.salesforce_org import VERSION, emulated_org

OM_FIELDS = ["Id", "StageName", "Amount", "IsWon", "IsClosed", "SystemModstamp"]
# Reading the deal every 0.1 s stays well inside Pipedrive's burst limit (80 calls per token per 2 s), which
# the connector's own calls share: the benchmark reads with the same company token.
PIPEDRIVE_POLL_S = 0.1


def run(quick: bool) -> dict:
    samples = 10 if quick else 30
    max_idle = 2.0 if quick else 8.0
    outbound = outbound_messages(samples, max_idle, random.Random(11))
    webhooks = pipedrive_webhooks(samples, max_idle, random.Random(17))
    return {**outbound, **{f"pipedrive_{k}": v for k, v in webhooks.items()}, "idle_before_each_s": f"0-{max_idle:g}",
            "queue": "Redis" if bench_database() == "postgresql" else "SQLite"}


@contextlib.contextmanager
def serving(env: dict[str, str]):
    """The product's real path: a worker process (`refstage worker -w 2`, no periodic sync) and the web app under
    gunicorn. Yields the web app's base URL."""
    worker = subprocess.Popen([sys.executable, "-m", "refstage.cli", "worker", "-w", "2", "--no-periodic"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with gunicorn("refstage.web.app:create_app()", env, probe="/health") as web:
            yield web
    finally:
        worker.terminate()
        worker.wait(15)


def outbound_messages(samples: int, max_idle: float, pauses: random.Random) -> dict:
    from refstage.services import push_keys

    with instance_dir("push") as inst, emulated_org(inst) as org:
        org.control("POST", "/seed", json={"opportunities": samples + 5, "accounts": 20, "seed": 5})
        env = env_for(inst, org)
        rt = runtime(env)
        tenant_id, connection_id, program_id = connect(rt, org, PROGRAM)
        opp_ids = org.query_ids(f"SELECT Id FROM Opportunity WHERE IsClosed = false ORDER BY Id LIMIT {samples}")
        linked_referrals(rt, tenant_id, connection_id, program_id, opp_ids, advocates=samples)
        headers = {"Authorization": f"Bearer {org.token()}"}
        api = f"{org.base}/services/data/v{VERSION}"

        def rewards_in_org(_opp: str) -> int:
            r = org.http.get(f"{api}/query", params={"q": "SELECT COUNT() FROM Referral_Reward__c"}, headers=headers,
                             timeout=30)
            r.raise_for_status()
            return int(r.json()["totalSize"])

        def close_won(opp: str) -> None:
            org.http.patch(f"{api}/sobjects/Opportunity/{opp}", json={"StageName": "Closed Won", "Amount": 9000},
                           headers=headers, timeout=30).raise_for_status()

        with serving(env) as web:
            # The connection's own endpoint (its push key in the path), on the server started here.
            endpoint = urlsplit(push_keys.outbound_message_url(rt, tenant_id, connection_id)).path
            org.control("POST", "/outbound/rules", json={
                "object": "Opportunity", "fields": OM_FIELDS, "endpointUrl": f"{web}{endpoint}"})
            latencies = time_until_visible(opp_ids, before=rewards_in_org, change=close_won,
                                           visible=lambda opp, before: rewards_in_org(opp) >= before + 2,
                                           pauses=pauses, max_idle_s=max_idle)
    return {**summary(latencies), "path": "Outbound Message → inbox → worker → observe → mirror"}


def pipedrive_webhooks(samples: int, max_idle: float, pauses: random.Random) -> dict:
    from refstage.domain.audit import Actor
    from refstage.services import pipedrive_connect, programs

    with instance_dir("push-pipedrive") as inst, emulated_company(inst) as company:
        # The referred deals, open in the company's pipeline before it is connected (set-up, not measured).
        deal_ids = [str(company.api("POST", "v2/deals", json={
            "title": f"Referred deal {n}", "pipeline_id": 1, "stage_id": 1, "value": 9000, "currency": "EUR"})["id"])
            for n in range(samples)]
        env = bench_env(inst, REFSTAGE_PIPEDRIVE_CA_BUNDLE=company.ca)
        rt = runtime(env)
        from refstage.services import tenants

        tenant = tenants.create_tenant(rt, "Bench Co", f"bench-pd-{os.getpid()}")
        with serving(env) as web:
            # Provisioning registers the company's webhook to this server's receiver.
            rt.settings.extra["pipedrive_webhook_base_url"] = web
            connection = pipedrive_connect.connect_api_token(rt, tenant.id, actor=Actor.system("bench"), api_token=API_TOKEN,
                                                             api_domain=company.base, name="Bench company")
            program = programs.create_program(rt, tenant.id, {**PIPEDRIVE_PROGRAM, "connection_id": connection.id},
                                              Actor.system("bench"))
            programs.set_program_status(rt, tenant.id, program.id, "live", Actor.system("bench"))
            linked_referrals(rt, tenant.id, connection.id, program.id, deal_ids, advocates=samples, link_column="deal_id")
            with rt.uow(tenant.id) as uow:
                reward_field = uow.connections.get(connection.id).settings["fields"]["deal"]["reward_status"]
            rule_keys = [rule["key"] for rule in PIPEDRIVE_PROGRAM["reward_rules"]]

            def mark_won(deal: str) -> None:
                company.api("PATCH", f"v2/deals/{deal}", json={"status": "won"})

            def rewards_shown(deal: str, _before: None) -> bool:
                shown = company.api("GET", f"v2/deals/{deal}")["custom_fields"].get(reward_field)
                return names_every_reward(shown, rule_keys)

            latencies = time_until_visible(deal_ids, change=mark_won, visible=rewards_shown, pauses=pauses,
                                           max_idle_s=max_idle, poll_s=PIPEDRIVE_POLL_S)
    return {**summary(latencies), "poll_interval_s": PIPEDRIVE_POLL_S,
            "path": "deal won (API) → webhook v2.0 → inbox → worker → observe → deal fields"}


def names_every_reward(reward_status: str | None, rule_keys: list[str]) -> bool:
    """Whether the deal's reward-status field (the write-back's summary, "adv (advocate): approved 100 EUR; ...")
    names a reward of every rule."""
    entries = [part.strip() for part in (reward_status or "").split(";")]
    return all(any(entry.startswith(f"{key} (") for entry in entries) for key in rule_keys)
