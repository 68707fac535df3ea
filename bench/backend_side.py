"""Our side of the Salesforce benchmarks: a backend database with a tenant connected to the emulated
org through the real OAuth pages, a live program, and referrals linked to opportunities."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import json
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from bench.common import ROOT, bench_env, refresh_statistics
from bench.salesforce_org import CLIENT_ID, CLIENT_SECRET, Org


def env_for(instance: Path, org: Org) -> dict[str, str]:
    return bench_env(instance, REQUESTS_CA_BUNDLE=org.ca, REFSTAGE_SALESFORCE_CLIENT_ID=CLIENT_ID,
                     REFSTAGE_SALESFORCE_CLIENT_SECRET=CLIENT_SECRET,
                     REFSTAGE_SALESFORCE_REDIRECT_URI="http://127.0.0.1:5000/salesforce/oauth/callback")


def runtime(env: dict[str, str]):
    os.environ.update(env)
    from refstage.adapters.db.migrate import upgrade
    from refstage.bootstrap import build_runtime
    from refstage.config import load_settings
    from refstage.services.runtime import RecordingQueue

    settings = load_settings()
    upgrade(settings.database_url)
    return build_runtime(settings, queue=RecordingQueue())


def connect(rt, org: Org, program: dict, settings: dict | None = None) -> tuple[str, str, str]:
    from refstage.domain.audit import Actor
    from refstage_devkit.emulators.salesforce.consent import browser_consent
    from refstage.services import programs, salesforce_connect, tenants
    from refstage.services.connections import FlowOwner

    tenant = tenants.create_tenant(rt, "Bench Co", f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    owner = FlowOwner.terminal()  # the bench is a trusted process on the server, as the CLI is
    started = salesforce_connect.start_connect(rt, tenant.id, actor=Actor.system("bench"), owner=owner, name="Bench org",
                                               login_host=org.base)
    query = {k: v[0] for k, v in parse_qs(urlsplit(browser_consent(started.authorize_url, verify=org.ca)).query).items()}
    conn = salesforce_connect.finish_connect(rt, query["code"], query["state"], owner=owner)
    with rt.uow(tenant.id) as uow:
        c = uow.connections.get(conn.id)
        c.settings.update(settings or {})
        uow.connections.save(c)
        uow.commit()
    p = programs.create_program(rt, tenant.id, {**program, "connection_id": conn.id}, Actor.system("bench"))
    programs.set_program_status(rt, tenant.id, p.id, "live", Actor.system("bench"))
    return tenant.id, conn.id, p.id


def measure(op: str, env: dict[str, str], *, timeline: str | None = None, **args) -> dict:
    """Run one measured operation in a fresh process: its wall time, CPU time and peak RSS are ours alone.
    With `timeline`, its phases are timed into that file (bench/timeline.py)."""
    refresh_statistics()  # PostgreSQL: current statistics before each measured step, as autovacuum keeps them
    if timeline:
        from bench.timeline import ENV

        env = {**env, ENV: timeline}
    out = subprocess.run([sys.executable, "-m", "bench.measure", op, json.dumps(args)], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"measured {op} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc).isoformat()
