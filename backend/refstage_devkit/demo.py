"""`refstage demo`: the whole product on one machine — web, worker and both CRM emulators, connected
and seeded — on embedded defaults (SQLite, Huey on SQLite). Web and worker run under honcho like the
Procfile in production; the emulators run in this process. Each start begins from a fresh demo
instance (instance/demo) unless --keep is given, so the CRMs and the backend always agree."""

from __future__ import annotations

import os
import threading
import shutil
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import click

from refstage.domain.audit import Actor, ActorKind

DEMO_TENANT = "acme"
DEMO_ADMIN = "admin@acme.test"
DEMO_PASSWORD = "refstage-demo"
SEED_ACTOR = Actor(ActorKind.SYSTEM, None, "demo seed")
SF_PORT, PD_PORT = 8701, 8702

SALESFORCE_PROGRAM = {
    "name": "Customer referrals",
    "slug": "customers",
    "enrolment": {"kind": "salesforce_contacts", "conditions": [{"field": "Email", "op": "not_null"}]},
    "rule": "Opportunity.StageName == 'Closed Won'",
    "reward_rules": [
        {"key": "advocate-bonus", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "250", "currency": "USD"}},
        {"key": "friend-credit", "recipient": "friend", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"}},
        {"key": "fifth-win", "recipient": "advocate", "kind": "tier_bonus", "tier_at": 5,
         "amount": {"amount": "500", "currency": "USD"}},
    ],
    # Advocate bonuses over 200 USD wait for a reviewer: the demo shows the review queue.
    "review_policy": {"amount_threshold": {"amount": "200", "currency": "USD"}},
    "holding_days": 0,
    "owner": {"name": "Riley Revops", "email": "riley@acme.test"},
    "routing": {"duplicate_policy": "review"},
    "allow_self_enrolment": True,
    "landing": {"headline": "Your friend thinks you'll love Acme Cloud",
                "message": "Tell us a little about yourself and our team will reach out."},
}
PIPEDRIVE_PROGRAM = {
    "name": "Partner referrals (Pipedrive)",
    "slug": "partners",
    "enrolment": {"kind": "pipedrive_persons"},
    "rule": "Deal is_won",
    "reward_rules": [{"key": "partner-bonus", "recipient": "advocate", "kind": "fixed",
                      "amount": {"amount": "150", "currency": "EUR"}}],
    "owner": {"name": "Riley Revops", "email": "riley@acme.test"},
    "routing": {"duplicate_policy": "attach"},
}


def _install_push_path(sf, hook: str) -> None:
    """Deploy the backend's push-path bundle (the Outbound Messages and the flows that send them) into the
    emulated org through its Metadata API deploy, as the backend's installer does, with the connected admin
    as integration user. In-process because the installer only sends https endpoints and the demo is http."""
    from xml.sax.saxutils import escape

    from refstage.adapters.crm.salesforce.push_installer import TEMPLATE_FILES, template_text
    from refstage_devkit.emulators.salesforce.deploy import deploy_files

    values = {"integration_user": escape(sf.org.admin_username), "endpoint_url": escape(hook), "flow_status": "Active"}
    files = {}
    for name in TEMPLATE_FILES:
        text = template_text(name)
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        files[name] = text
    job = deploy_files(sf.org, files)
    if not job.success:
        raise click.ClickException("installing the push path into the emulated org failed: "
                                   + "; ".join(f"{m['fullName']}: {m['problem']}" for m in job.failures))


def _connect_salesforce(rt, tenant_id: str, sf) -> str:
    from refstage_devkit.emulators.salesforce.consent import browser_consent
    from refstage.services import salesforce_connect as connections

    owner = connections.FlowOwner.terminal()  # the seed starts and finishes the flow itself
    started = connections.start_connect(rt, tenant_id, actor=SEED_ACTOR, owner=owner, name="Acme org (emulated)",
                                        login_host=sf.base_url)
    location = browser_consent(started.authorize_url)
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return connections.finish_connect(rt, query["code"], query["state"], owner=owner).id


def seed(rt, sf=None, pd=None) -> dict[str, Any]:
    """Idempotent on the tenant: seeds only an empty database. Returns what to print."""
    from refstage.domain.referrals import AdvocateSource
    from refstage.services import enrolment, programs, referrals, tenants

    with rt.uow() as uow:
        existing = uow.tenants.by_slug(DEMO_TENANT)
    if existing:
        return {"tenant_id": existing.id}
    tenant = tenants.create_tenant(rt, "Acme Cloud", DEMO_TENANT)
    tenants.add_user(rt, tenant.id, DEMO_ADMIN, "admin", DEMO_PASSWORD, name="Acme Admin")
    tenants.add_user(rt, tenant.id, "reviewer@acme.test", "reviewer", DEMO_PASSWORD, name="Acme Reviewer")
    info: dict[str, Any] = {"tenant_id": tenant.id, "api_key": tenants.create_api_key(rt, tenant.id, "demo", SEED_ACTOR)}

    if sf is not None:
        connection_id = _connect_salesforce(rt, tenant.id, sf)
        program = programs.create_program(rt, tenant.id, {**SALESFORCE_PROGRAM, "connection_id": connection_id}, SEED_ACTOR)
        programs.set_program_status(rt, tenant.id, program.id, "live", SEED_ACTOR)
        progress = enrolment.run_enrolment(rt, tenant.id, program.id)
        # The push path: the org notifies the backend of stage and status changes within seconds.
        # The endpoint carries the connection's push key; the pushed values are only hints.
        from refstage.services.push_keys import outbound_message_url

        hook = outbound_message_url(rt, tenant.id, connection_id)
        _install_push_path(sf, hook)
        with rt.uow(tenant.id) as uow:
            advocate = uow.advocates.list(program_id=program.id, limit=1)[0]
        first = referrals.capture_referral(rt, advocate.code, referrals.FriendInput(
            "Jordan Friend", "jordan@prospect-demo.test", "Prospect Inc", None, True))
        info.update(salesforce_code=advocate.code, salesforce_advocate=advocate.name, enrolled=progress.enrolled,
                    first_referral=first.id)
    else:
        program = programs.create_program(rt, tenant.id, {**SALESFORCE_PROGRAM, "enrolment": {"kind": "form"}}, SEED_ACTOR)
        programs.set_program_status(rt, tenant.id, program.id, "live", SEED_ACTOR)
        advocate, _ = enrolment.enrol_advocate(rt, tenant.id, program.id, name="Dana Advocate", email="dana@customer-one.test",
                                               source=AdvocateSource.API, actor=SEED_ACTOR)
        info.update(salesforce_code=advocate.code, salesforce_advocate=advocate.name)

    if pd is not None:
        from refstage.services import pipedrive_connect

        conn = pipedrive_connect.connect_api_token(rt, tenant.id, actor=SEED_ACTOR, api_token=pd.api_token,
                                                   api_domain=pd.base_url, name="Acme Pipedrive (emulated)")
        program = programs.create_program(rt, tenant.id, {**PIPEDRIVE_PROGRAM, "connection_id": conn.id}, SEED_ACTOR)
        programs.set_program_status(rt, tenant.id, program.id, "live", SEED_ACTOR)
        enrolment.run_enrolment(rt, tenant.id, program.id)
        with rt.uow(tenant.id) as uow:
            partners = uow.advocates.list(program_id=program.id, limit=1)
        if partners:
            info.update(pipedrive_code=partners[0].code, pipedrive_advocate=partners[0].name)
    return info


def _check_port_free(port: int) -> None:
    """Before the banner: otherwise it prints links to a web process that then cannot bind its port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise click.ClickException(f"port {port} is in use ({exc.strerror}); stop what runs there or choose "
                                       "another: REFSTAGE_DEMO_PORT=8010 make demo") from exc


def _fresh(instance: Path) -> None:
    for name in ("refstage.db", "refstage.db-wal", "refstage.db-shm", "queue.db", "queue.db-wal", "queue.db-shm"):
        (instance / name).unlink(missing_ok=True)


@click.command()
@click.option("--port", default=8000, show_default=True, type=int, envvar="REFSTAGE_DEMO_PORT",
              help="Port of the web app (console, pages, API).")
@click.option("--salesforce-port", default=SF_PORT, show_default=True, type=int, envvar="REFSTAGE_DEMO_SALESFORCE_PORT",
              help="Port of the emulated Salesforce org (HTTPS).")
@click.option("--pipedrive-port", default=PD_PORT, show_default=True, type=int, envvar="REFSTAGE_DEMO_PIPEDRIVE_PORT",
              help="Port of the emulated Pipedrive company (HTTPS).")
@click.option("--keep", is_flag=True, help="Keep the previous demo database (the emulators always start fresh).")
@click.option("--no-emulators", is_flag=True, help="Backend only: a form-enrolment program, no CRM.")
@click.option("--seed-only", is_flag=True, help="Migrate and seed, then exit (emulators stop with it).")
def demo(port: int, salesforce_port: int, pipedrive_port: int, keep: bool, no_emulators: bool, seed_only: bool) -> None:
    """Run the whole loop locally: web, worker, and the Salesforce and Pipedrive emulators, connected and seeded."""
    instance = Path(os.environ.setdefault("REFSTAGE_INSTANCE_DIR", str(Path("instance") / "demo"))).resolve()
    instance.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("REFSTAGE_ENV", "demo")
    base = os.environ.setdefault("REFSTAGE_BASE_URL", f"http://127.0.0.1:{port}")
    os.environ.setdefault("REFSTAGE_SYNC_INTERVAL", "60")
    os.environ.setdefault("REFSTAGE_SALESFORCE_CLIENT_ID", "refstage-demo")
    os.environ.setdefault("REFSTAGE_SALESFORCE_CLIENT_SECRET", "refstage-demo-secret")
    os.environ.setdefault("REFSTAGE_SALESFORCE_REDIRECT_URI", f"{base}/salesforce/oauth/callback")
    if not seed_only:
        _check_port_free(port)
    if not no_emulators:
        # The emulators listen on loopback: a demo-only allowance (config refuses it in production).
        os.environ["REFSTAGE_ALLOW_LOOPBACK_CRM_HOSTS"] = "1"
    if not keep:
        _fresh(instance)

    from refstage.adapters.db.migrate import upgrade
    from refstage.bootstrap import build_runtime
    from refstage.config import load_settings
    from refstage_devkit.emulators.tls import ensure_certificates
    from refstage.logs import configure_logging

    configure_logging(json_output=False)
    log_path = instance / "demo.log"
    log_file = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the demo's lifetime
    _log_to(log_file)
    sf = pd = None
    if not no_emulators:
        from refstage_devkit.emulators.pipedrive.server import PipedriveEmulator
        from refstage_devkit.emulators.salesforce.server import SalesforceEmulator

        certs = ensure_certificates(instance.parent / "certs")
        # Standard trust mechanisms, for us and for every child process: never verification off.
        os.environ["REQUESTS_CA_BUNDLE"] = str(certs.ca)
        os.environ["NODE_EXTRA_CA_CERTS"] = str(certs.ca)
        try:
            sf = SalesforceEmulator(port=salesforce_port, seed="demo", cert_dir=certs.ca.parent)
            sf.start()
            pd = PipedriveEmulator(port=pipedrive_port, seed="demo", cert_dir=certs.ca.parent)
            pd.start()
        except OSError as exc:
            raise click.ClickException(f"could not start the CRM emulators on ports {salesforce_port}/{pipedrive_port} "
                                       f"(choose others with --salesforce-port/--pipedrive-port): {exc}") from exc
        os.environ["REFSTAGE_DEMO_SALESFORCE_URL"] = sf.base_url
        # 'Play the rep' in the console signs in to the emulated org as its admin: the product carries no
        # demo credentials, so they reach the web process from here.
        os.environ["REFSTAGE_DEMO_SALESFORCE_CLIENT_ID"] = sf.org.client_id
        os.environ["REFSTAGE_DEMO_SALESFORCE_CLIENT_SECRET"] = sf.org.client_secret
        os.environ["REFSTAGE_DEMO_SALESFORCE_USERNAME"] = sf.org.admin_username
        os.environ["REFSTAGE_DEMO_SALESFORCE_PASSWORD"] = sf.org.admin_password
        os.environ["REFSTAGE_DEMO_PIPEDRIVE_URL"] = pd.base_url
    settings = load_settings()
    upgrade(settings.database_url)
    rt = build_runtime(settings)
    info = seed(rt, sf, pd)
    if seed_only:
        _banner(base, info, sf, pd)
        for emu in (sf, pd):
            if emu is not None:
                emu.stop()
        log_file.close()
        return
    from honcho.manager import Manager
    from honcho.printer import Printer

    # Quiet terminal: the web server's and the worker's logs go to a file; the banner comes last,
    # once the web app answers, so the links are the last thing on screen.
    exe = os.path.join(os.path.dirname(sys.executable), "refstage")
    manager = Manager(Printer(log_file))
    manager.add_process("web", f"{exe} serve --port {port} --no-migrate", env=dict(os.environ))
    manager.add_process("worker", f"{exe} worker", env=dict(os.environ))
    click.echo(f"Starting the web app and the worker (logs: {log_path}) ...")
    threading.Thread(target=_banner_when_up, args=(base, info, sf, pd, log_path), daemon=True).start()
    try:
        manager.loop()
    finally:
        for emu in (sf, pd):
            if emu is not None:
                emu.stop()
    sys.exit(manager.returncode)


def _log_to(stream) -> None:
    """This process's own log records (emulators, seeding) go to the demo's log file too."""
    import logging

    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().handlers[:] = [handler]


def _banner_when_up(base: str, info: dict[str, Any], sf, pd, log_path: Path, timeout: float = 60.0) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:  # noqa: S310 - our own local app
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    _banner(base, info, sf, pd)
    click.echo(f"  Logs of the web app and the worker: {log_path}  (tail -f it; Ctrl+C here stops everything)\n")


def _banner(base: str, info: dict[str, Any], sf, pd) -> None:
    echo = click.echo
    echo("\nRefstage demo\n=============")
    echo(f"  Admin console:   {base}/admin   (sign in: {DEMO_ADMIN} / {DEMO_PASSWORD}; reviewer@acme.test too)")
    echo(f"  Referral link:   {base}/r/{info.get('salesforce_code', '?')}   ({info.get('salesforce_advocate', '')}, enrolled from Salesforce)")
    if info.get("pipedrive_code"):
        echo(f"  Partner link:    {base}/r/{info['pipedrive_code']}   ({info.get('pipedrive_advocate', '')}, from Pipedrive)")
    echo(f"  Play the rep:    {base}/admin/demo   (convert the lead, close the opportunity, win the deal)")
    echo(f"  Advocate emails: {base}/admin/outbox   (the embedded outbox; set REFSTAGE_SMTP_URL to send for real)")
    echo(f"  API docs:        {base}/api/docs")
    if info.get("api_key"):
        echo(f"  API key:         {info['api_key']}   (shown once; stored hashed)")
    if sf is not None:
        echo(f"  Salesforce org:  {sf.base_url}   (emulated API and OAuth, no home page; admin@refstage.test / refstage-demo)")
        echo(f"  Rep's pages:     {sf.base_url}/lightning/o/Opportunity/home   (the package's components on the org's "
             "record pages; links per referral on 'Play the rep')")
        # The emulators' certificates come from the demo's local CA (set above), which browsers do not know.
        ca = os.path.abspath(os.environ.get("REQUESTS_CA_BUNDLE", "instance/certs/ca.pem"))
        ca = os.path.relpath(ca) if ca.startswith(os.getcwd() + os.sep) else ca
        echo(f"                   (your browser warns about the certificate: trust {ca} or proceed)")
    if pd is not None:
        echo(f"  Pipedrive:       {pd.base_url}   (emulated API, no pages; API token {pd.api_token})")
    echo("\n  The loop: open the referral link and refer a friend → the worker creates the Lead in the org →")
    echo("  on 'Play the rep', convert it and close the opportunity → the org pushes the change → the referral")
    echo("  qualifies and the advocate's reward waits in the review queue → approve it → see Reports.\n")
