"""`refstage demo`: the whole product on one machine, seeded, with embedded defaults (SQLite, Huey on
SQLite). Processes run under honcho, like the Procfile in production."""

from __future__ import annotations

import os
import sys

import click

from refstage.domain.audit import Actor, ActorKind

DEMO_TENANT = "acme"
DEMO_ADMIN = "admin@acme.test"
DEMO_PASSWORD = "refstage-demo"
SEED_ACTOR = Actor(ActorKind.SYSTEM, None, "demo seed")

DEMO_PROGRAM = {
    "name": "Customer referrals",
    "slug": "customers",
    "enrolment": {"kind": "form"},
    "rule": "Opportunity.StageName == 'Closed Won' AND Opportunity.Amount >= 5000",
    "reward_rules": [
        {"key": "advocate-bonus", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "250", "currency": "USD"}},
        {"key": "friend-credit", "recipient": "friend", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"}},
        {"key": "fifth-win", "recipient": "advocate", "kind": "tier_bonus", "tier_at": 5,
         "amount": {"amount": "500", "currency": "USD"}},
    ],
    "review_policy": {"amount_threshold": {"amount": "1000", "currency": "USD"}},
    "holding_days": 0,
    "owner": {"name": "Riley Revops", "email": "riley@acme.test"},
    "allow_self_enrolment": True,
    "landing": {"headline": "Your friend thinks you'll love Acme Cloud",
                "message": "Tell us a little about yourself and our team will reach out."},
}


def seed(rt) -> dict[str, str]:
    """Idempotent: seeds only an empty database. Returns what to print."""
    from refstage.domain.referrals import AdvocateSource
    from refstage.services import enrolment, programs, referrals, tenants

    with rt.uow() as uow:
        existing = uow.tenants.by_slug(DEMO_TENANT)
    if existing:
        return {"tenant_id": existing.id}
    tenant = tenants.create_tenant(rt, "Acme Cloud", DEMO_TENANT)
    tenants.add_user(rt, tenant.id, DEMO_ADMIN, "admin", DEMO_PASSWORD, name="Acme Admin")
    tenants.add_user(rt, tenant.id, "reviewer@acme.test", "reviewer", DEMO_PASSWORD, name="Acme Reviewer")
    api_key = tenants.create_api_key(rt, tenant.id, "demo", SEED_ACTOR)
    program = programs.create_program(rt, tenant.id, DEMO_PROGRAM, SEED_ACTOR)
    programs.set_program_status(rt, tenant.id, program.id, "live", SEED_ACTOR)
    codes = []
    for name, email in (("Dana Advocate", "dana@customer-one.test"), ("Sam Champion", "sam@customer-two.test"),
                        ("Lee Partner", "lee@partner.test")):
        advocate, _ = enrolment.enrol_advocate(rt, tenant.id, program.id, name=name, email=email,
                                               source=AdvocateSource.API, actor=SEED_ACTOR)
        codes.append(advocate.code)
    referrals.capture_referral(rt, codes[0], referrals.FriendInput("Jordan Friend", "jordan@prospect.test", "Prospect Inc", None, True))
    return {"tenant_id": tenant.id, "api_key": api_key, "code": codes[0]}


@click.command()
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--seed-only", is_flag=True, help="Migrate and seed, then exit.")
def demo(port: int, seed_only: bool) -> None:
    """Migrate, seed and run web + worker locally (SQLite, embedded queue)."""
    os.environ.setdefault("REFSTAGE_ENV", "demo")
    os.environ.setdefault("REFSTAGE_BASE_URL", f"http://127.0.0.1:{port}")
    from refstage.adapters.db.migrate import upgrade
    from refstage.bootstrap import build_runtime
    from refstage.config import load_settings

    settings = load_settings()
    upgrade(settings.database_url)
    rt = build_runtime(settings)
    info = seed(rt)
    base = settings.base_url
    click.echo("\nRefstage demo\n=============")
    click.echo(f"  API + health:   {base}/health")
    click.echo(f"  Tenant:         {DEMO_TENANT}  (admin {DEMO_ADMIN} / {DEMO_PASSWORD})")
    if "api_key" in info:
        click.echo(f"  API key:        {info['api_key']}   (shown once; stored hashed)")
        click.echo(f"  Referral link:  {base}/r/{info['code']}")
        click.echo(f"  Try:            curl -H 'Authorization: Bearer {info['api_key']}' {base}/api/v1/referrals")
    else:
        click.echo("  (already seeded: create a new API key with `refstage tenant api-key acme demo`)")
    click.echo(f"  Database:       {settings.database_url}\n")
    if seed_only:
        return
    from honcho.manager import Manager
    from honcho.printer import Printer

    exe = os.path.join(os.path.dirname(sys.executable), "refstage")
    env = dict(os.environ)
    manager = Manager(Printer(sys.stdout))
    manager.add_process("web", f"{exe} serve --port {port} --no-migrate", env=env)
    manager.add_process("worker", f"{exe} worker", env=env)
    manager.loop()
    sys.exit(manager.returncode)
