"""`refstage demo --seed-only` as a newcomer runs it: a subprocess with its own instance directory in tmp.
It must exit 0, print the banner (admin console, a referral link), and leave a seeded database: tenant
acme, the Salesforce and Pipedrive connections active, advocates enrolled from both CRMs.

The emulators get free ports of their own (--salesforce-port/--pipedrive-port), so a running `make demo`
on 8701/8702 does not get in the way."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from refstage.adapters.db import models as m
from refstage_devkit.demo import DEMO_TENANT

REFSTAGE = Path(sys.executable).with_name("refstage")
SEED_TIMEOUT = 120  # seconds; it takes a few seconds on a 2-core machine


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_env(instance: Path) -> dict[str, str]:
    """The caller's environment without anything that would point the demo elsewhere (databases,
    queues, base URL, trust stores, test settings): the demo sets its own defaults."""
    drop = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFSTAGE_") and k not in drop}
    env["REFSTAGE_INSTANCE_DIR"] = str(instance)
    return env


def test_demo_seed_only_prints_the_banner_and_seeds_both_crms(tmp_path):
    sf_port, pd_port = _free_port(), _free_port()
    instance = tmp_path / "demo"
    try:
        proc = subprocess.run([str(REFSTAGE), "demo", "--seed-only", "--salesforce-port", str(sf_port),
                               "--pipedrive-port", str(pd_port)], cwd=tmp_path, env=_child_env(instance),
                              capture_output=True, text=True, timeout=SEED_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`refstage demo --seed-only` did not finish within {SEED_TIMEOUT}s; output so far:\n{exc.stdout}\n{exc.stderr}")
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{proc.stderr[-3000:]}"

    # The banner: what to open and how to sign in.
    assert "Refstage demo" in out, out
    assert re.search(r"Admin console:\s+http://127\.0\.0\.1:8000/admin\s+\(sign in: admin@acme\.test / refstage-demo", out), out
    link = re.search(r"Referral link:\s+http://127\.0\.0\.1:8000/r/([A-Za-z0-9-]+)\s", out)
    assert link and link.group(1) != "?", out
    assert re.search(r"Partner link:\s+http://127\.0\.0\.1:8000/r/[A-Za-z0-9-]+", out), out
    assert f"https://127.0.0.1:{sf_port}" in out and "API key:" in out, out

    # The seeded database, in the instance directory we gave it (and nowhere else).
    db = instance / "refstage.db"
    assert db.exists(), sorted(p.name for p in instance.iterdir())
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            tenant_id = conn.scalar(select(m.TenantRow.id).where(m.TenantRow.slug == DEMO_TENANT))
            assert tenant_id, "no tenant acme"
            connections = conn.execute(select(m.ConnectionRow.kind, m.ConnectionRow.status)
                                       .where(m.ConnectionRow.tenant_id == tenant_id)).all()
            assert sorted(connections) == [("pipedrive", "active"), ("salesforce", "active")], connections
            by_source = dict(conn.execute(select(m.AdvocateRow.source, func.count())
                                          .where(m.AdvocateRow.tenant_id == tenant_id).group_by(m.AdvocateRow.source)).all())
            assert by_source.get("salesforce_contact", 0) >= 1 and by_source.get("pipedrive_person", 0) >= 1, by_source
            from_crm = conn.scalar(select(func.count()).select_from(m.AdvocateRow).where(
                m.AdvocateRow.tenant_id == tenant_id, m.AdvocateRow.crm_id.is_not(None)))
            assert from_crm == sum(by_source.values()), (from_crm, by_source)  # every advocate points at its CRM record
            code = conn.scalar(select(m.AdvocateRow.code).where(m.AdvocateRow.code == link.group(1)))
            assert code, f"the banner's referral code {link.group(1)} is not an advocate's"
            assert conn.scalar(select(func.count()).select_from(m.ReferralRow).where(m.ReferralRow.tenant_id == tenant_id)) == 1
    finally:
        engine.dispose()
    assert (tmp_path / "certs" / "ca.pem").exists()  # the emulators' CA went next to the instance, not into the repo


def test_a_busy_web_port_stops_the_demo_before_the_banner(tmp_path):
    """Otherwise the banner prints links, then the web process cannot bind and the demo stops a few seconds later."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**_child_env(tmp_path / "demo"), "REFSTAGE_DEMO_PORT": str(port)}
        done = subprocess.run([str(REFSTAGE), "demo", "--salesforce-port", str(_free_port()),
                               "--pipedrive-port", str(_free_port())], env=env, capture_output=True, text=True,
                              timeout=SEED_TIMEOUT)
    assert done.returncode != 0
    assert f"port {port} is in use" in done.stderr and "REFSTAGE_DEMO_PORT" in done.stderr
    assert "Admin console" not in done.stdout
