"""Benchmark (d): push latency. A rep closes an opportunity in the (emulated) org; its Outbound Message
reaches the web process, the worker qualifies the referral, creates the rewards and mirrors them; we time
until the rewards are visible in the org (Referral_Reward__c rows queried over its REST API). Reps do not close
deals back to back: before each change the worker sits idle for a random 0-8 s (seeded), long enough for an
idle worker's queue polling to reach its widest gap."""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

from bench.backend_side import connect, env_for, runtime
from bench.common import gunicorn, instance_dir
from bench.fixtures import PROGRAM, linked_referrals
from bench.salesforce_org import VERSION, emulated_org
from refstage.services import push_keys

OM_FIELDS = ["Id", "StageName", "Amount", "IsWon", "IsClosed", "SystemModstamp"]


def run(quick: bool) -> dict:
    samples = 10 if quick else 30
    max_idle = 2.0 if quick else 8.0
    pauses = random.Random(11)
    with instance_dir("push") as inst, emulated_org(inst) as org:
        org.control("POST", "/seed", json={"opportunities": samples + 5, "accounts": 20, "seed": 5})
        env = env_for(inst, org)
        rt = runtime(env)
        tenant_id, connection_id, program_id = connect(rt, org, PROGRAM)
        opp_ids = org.query_ids(f"SELECT Id FROM Opportunity WHERE IsClosed = false ORDER BY Id LIMIT {samples}")
        linked_referrals(rt, tenant_id, connection_id, program_id, opp_ids, advocates=samples)
        worker = subprocess.Popen([sys.executable, "-m", "refstage.cli", "worker", "-w", "2", "--no-periodic"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with gunicorn("refstage.web.app:create_app()", env, probe="/health") as web:
                # The connection's own endpoint (its push key in the path), on the server started here.
                endpoint = urlsplit(push_keys.outbound_message_url(rt, tenant_id, connection_id)).path
                org.control("POST", "/outbound/rules", json={
                    "object": "Opportunity", "fields": OM_FIELDS, "endpointUrl": f"{web}{endpoint}"})
                headers = {"Authorization": f"Bearer {org.token()}"}
                api = f"{org.base}/services/data/v{VERSION}"
                latencies = []
                for opp in opp_ids:
                    before = _rewards(org, api, headers)
                    time.sleep(pauses.uniform(0, max_idle))
                    t0 = time.perf_counter()
                    r = org.http.patch(f"{api}/sobjects/Opportunity/{opp}", json={"StageName": "Closed Won", "Amount": 9000},
                                       headers=headers, timeout=30)
                    r.raise_for_status()
                    deadline = t0 + 60
                    while _rewards(org, api, headers) < before + 2:
                        if time.perf_counter() > deadline:
                            raise RuntimeError(f"rewards for opportunity {opp} not visible in the org after 60 s")
                        time.sleep(0.05)
                    latencies.append(time.perf_counter() - t0)
        finally:
            worker.terminate()
            worker.wait(15)
    latencies.sort()
    return {"samples": len(latencies), "p50_s": statistics.median(latencies),
            "p95_s": latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))],
            "max_s": latencies[-1], "min_s": latencies[0], "idle_before_each_s": f"0-{max_idle:g}", "path": "Outbound Message → inbox → worker → observe → mirror"}


def _rewards(org, api: str, headers: dict) -> int:
    r = org.http.get(f"{api}/query", params={"q": "SELECT COUNT() FROM Referral_Reward__c"}, headers=headers, timeout=30)
    r.raise_for_status()
    return int(r.json()["totalSize"])
