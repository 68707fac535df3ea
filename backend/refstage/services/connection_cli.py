"""`refstage connection ...`: connect a tenant to its CRMs (Salesforce, Pipedrive) from a terminal
(headless servers), with the same services the console calls."""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import click

from refstage.cli_support import runtime, tenant_id_of
from refstage.domain.audit import Actor

SETTINGS_HELP = ("Connecting Salesforce needs the External Client App's REFSTAGE_SALESFORCE_CLIENT_ID and "
                 "REFSTAGE_SALESFORCE_CLIENT_SECRET (and REFSTAGE_SALESFORCE_REDIRECT_URI if the app's callback is not "
                 "<base URL>/salesforce/oauth/callback), the same REFSTAGE_DATABASE_URL and REFSTAGE_SECRET_KEY as the "
                 "server. See README, \"Connecting a CRM from the terminal\".")


@contextlib.contextmanager
def _polite():
    """Errors the admin can act on become one line, never a traceback."""
    from refstage.domain.errors import DomainError, InvalidInput
    from refstage.services.ports import CrmError

    try:
        yield
    except InvalidInput as exc:
        raise click.ClickException("; ".join(f"{k}: {v if isinstance(v, str) else ', '.join(map(str, v))}"
                                             for k, v in exc.errors.items())) from None
    except CrmError as exc:
        hint = f"\n{SETTINGS_HELP}" if getattr(exc, "code", None) == "not_configured" else ""
        raise click.ClickException(f"{exc}{hint}") from None
    except DomainError as exc:
        raise click.ClickException(str(exc)) from None


def _runtime():
    from refstage.services.runtime import RecordingQueue

    return runtime(queue=RecordingQueue())


def _finish(redirect_url: str, crm: str, finish_connect, *, reason_keys: tuple[str, ...]):
    """Finish a flow this terminal started, from the URL the CRM redirected to (it carries the code and
    state, or the CRM's refusal: the first of `reason_keys` it has)."""
    from refstage.services.connections import FlowOwner

    query = parse_qs(urlsplit(redirect_url).query)
    if "error" in query:
        reason = next(query[key] for key in reason_keys if key in query)[0]
        raise click.ClickException(f"{crm} refused: {reason}")
    with _polite():
        return finish_connect(_runtime(), query.get("code", [""])[0], query.get("state", [""])[0],
                              owner=FlowOwner.terminal())


@click.group()
def connection() -> None:
    """CRM connections: connect (Salesforce, Pipedrive), reconnect, list, disconnect."""


@connection.command("add-salesforce")
@click.argument("tenant")
@click.option("--login-host", default="production", show_default=True,
              help="production, sandbox, or the org's https:// My Domain URL.")
@click.option("--name", default="Salesforce", show_default=True, help="How the console names this connection.")
@click.option("--reconnect", "connection_id", help="Reconnect this existing connection (its id, from `connection list`) "
                                                   "instead of adding one; the org must be the same.")
def add_salesforce(tenant: str, login_host: str, name: str, connection_id: str | None) -> None:
    """Print the URL an admin opens to connect TENANT's org; then run `refstage connection finish`.

    Needs REFSTAGE_SALESFORCE_CLIENT_ID and REFSTAGE_SALESFORCE_CLIENT_SECRET (the External Client
    App's consumer key and secret) in the environment, as the server has them. Connecting an org the
    tenant already has reconnects that connection (same programs, same history)."""
    from refstage.services.connections import FlowOwner
    from refstage.services.salesforce_connect import start_connect

    rt = _runtime()
    with _polite():
        started = start_connect(rt, tenant_id_of(rt, tenant), actor=Actor.system("cli"), owner=FlowOwner.terminal(),
                                name=name, login_host=login_host, connection_id=connection_id)
    click.echo(f"connection {started.connection_id} is pending. Open this URL, sign in and allow access:\n")
    click.echo(started.authorize_url)
    click.echo("\nThen paste the URL Salesforce redirected to:  refstage connection finish '<redirect URL>'"
               "\n(only this terminal command can finish it; the web callback refuses a flow started here)")


@connection.command("finish")
@click.argument("redirect_url")
def finish(redirect_url: str) -> None:
    """Complete a connection from the callback URL (it carries the code and state)."""
    from refstage.services.salesforce_connect import finish_connect

    conn = _finish(redirect_url, "Salesforce", finish_connect, reason_keys=("error_description", "error"))
    click.echo(f"connected {conn.id} to org {conn.external_org_id} as {conn.external_username} ({conn.instance_url})")


@connection.command("add-pipedrive")
@click.argument("tenant")
@click.option("--api-domain", help="The company's https:// address, e.g. https://acme.pipedrive.com (API-token connect).")
@click.option("--api-token", envvar="REFSTAGE_PIPEDRIVE_API_TOKEN",
              help="A personal API token (or set REFSTAGE_PIPEDRIVE_API_TOKEN; prompted for if missing).")
@click.option("--oauth", is_flag=True, help="Use the Pipedrive app's OAuth flow instead of an API token "
                                            "(needs REFSTAGE_PIPEDRIVE_CLIENT_ID and REFSTAGE_PIPEDRIVE_CLIENT_SECRET).")
@click.option("--name", default="Pipedrive", show_default=True, help="How the console names this connection.")
@click.option("--reconnect", "connection_id", help="Reconnect this existing Pipedrive connection (its id).")
def add_pipedrive(tenant: str, api_domain: str | None, api_token: str | None, oauth: bool, name: str,
                  connection_id: str | None) -> None:
    """Connect TENANT to a Pipedrive company: with an API token (checked at once), or print the OAuth
    URL to open (then run `refstage connection finish-pipedrive '<redirect URL>'`)."""
    from refstage.services import pipedrive_connect
    from refstage.services.connections import FlowOwner

    rt = _runtime()
    tenant_id = tenant_id_of(rt, tenant)
    with _polite():
        if oauth:
            started = pipedrive_connect.start_connect(rt, tenant_id, actor=Actor.system("cli"), owner=FlowOwner.terminal(),
                                                      name=name, connection_id=connection_id)
            click.echo(f"connection {started.connection_id} is pending. Open this URL, sign in and allow access:\n")
            click.echo(started.authorize_url)
            click.echo("\nThen paste the URL Pipedrive redirected to:  refstage connection finish-pipedrive '<redirect URL>'")
            return
        if not api_domain:
            raise click.UsageError("--api-domain is required with an API token (or use --oauth)")
        token = api_token or click.prompt("Pipedrive API token", hide_input=True)
        conn = pipedrive_connect.connect_api_token(rt, tenant_id, actor=Actor.system("cli"), api_token=token,
                                                   api_domain=api_domain, name=name, connection_id=connection_id)
    click.echo(f"connected {conn.id} to Pipedrive company {conn.external_org_id} as {conn.external_username}")


@connection.command("finish-pipedrive")
@click.argument("redirect_url")
def finish_pipedrive(redirect_url: str) -> None:
    """Complete a Pipedrive OAuth connection from the URL Pipedrive redirected to."""
    from refstage.services.pipedrive_connect import finish_connect

    conn = _finish(redirect_url, "Pipedrive", finish_connect, reason_keys=("error",))
    click.echo(f"connected {conn.id} to Pipedrive company {conn.external_org_id} as {conn.external_username}")


@connection.command("list")
@click.argument("tenant")
def list_(tenant: str) -> None:
    """TENANT's connections: id, CRM, status, org, name."""
    from refstage.services.connections import list_connections

    rt = _runtime()
    for c in list_connections(rt, tenant_id_of(rt, tenant)):
        click.echo(f"{c.id}  {c.kind.value:10}  {c.status.value:18}  {c.external_org_id or '-':18}  {c.name}")


@connection.command("disconnect")
@click.argument("tenant")
@click.argument("connection_id")
@click.confirmation_option(prompt="Disconnect? Syncing stops and the tokens are revoked (reconnect later with --reconnect)")
def disconnect_(tenant: str, connection_id: str) -> None:
    """Revoke the tokens at the CRM and mark the connection disconnected (nothing is deleted)."""
    from refstage.services.connections import disconnect

    rt = _runtime()
    tenant_id = tenant_id_of(rt, tenant)
    with _polite():
        conn = disconnect(rt, tenant_id, connection_id, actor=Actor.system("cli"))
    click.echo(f"{conn.id}: {conn.status.value}")


@connection.command("install-push-path")
@click.argument("tenant")
@click.argument("connection_id")
@click.option("--endpoint-url", help="Outbound Message URL to deploy (default: this connection's authenticated URL).")
def install_push_path(tenant: str, connection_id: str, endpoint_url: str | None) -> None:
    """Deploy the Outbound Messages and flows into the connected org now (also after rotating the push key)."""
    from refstage.domain.errors import InvalidInput
    from refstage.services import push_path

    rt = _runtime()
    tenant_id = tenant_id_of(rt, tenant)
    try:
        if not push_path.request_install(rt, tenant_id, connection_id, actor=Actor.system("cli")):
            raise click.ClickException("a push-path deploy is already queued or running for this connection")
    except InvalidInput as exc:
        raise click.ClickException("; ".join(m for msgs in exc.errors.values() for m in msgs)) from None
    click.echo("deploying the push path (Metadata API); this can take a few minutes in production ...")
    state = push_path.run_install(rt, tenant_id, connection_id, endpoint_url=endpoint_url, retried_by_job=False)
    click.echo(f"{connection_id}: push path {state.get('status')} (deploy {state.get('deploy_id') or '-'}, "
               f"tests: {state.get('test_level') or '-'})")
    for problem in state.get("problems") or []:
        click.echo(f"  - {problem}")
    if state.get("status") == "needs_activation":
        click.echo("  Production kept these flows inactive: " + ", ".join(state.get("inactive_flows") or [])
                   + ". Activate them in Setup → Flows, or turn on 'Deploy processes and flows as active' and run this again.")
    if state.get("status") == "failed":
        raise SystemExit(1)


@connection.command("external-client-app")
@click.option("--output", "output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Empty folder to write the metadata-format bundle into.")
@click.option("--contact-email", required=True, help="Who Salesforce admins contact about this app.")
@click.option("--base-url", help="Refstage's public https URL (default: REFSTAGE_BASE_URL).")
@click.option("--callback-url", help="OAuth callback (default: <base URL>/salesforce/oauth/callback).")
def external_client_app(output: Path, contact_email: str, base_url: str | None, callback_url: str | None) -> None:
    """Write the External Client App for this Refstage installation, ready for `sf project deploy start`."""
    from refstage.bootstrap import adapter_ports  # no workspace: the bundle needs no database
    from refstage.services.salesforce_connect import write_external_client_app

    try:
        write_external_client_app(adapter_ports()["salesforce"], output, contact_email=contact_email, base_url=base_url, callback_url=callback_url)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote the External Client App 'Refstage' to {output}. Deploy it to your org with:\n")
    click.echo(f"  sf project deploy start --metadata-dir {output} --target-org <your admin username>\n")
    click.echo("Then open Setup > External Client App Manager > Refstage > Settings > OAuth Settings >\n"
               "Consumer Key and Secret, and set REFSTAGE_SALESFORCE_CLIENT_ID / REFSTAGE_SALESFORCE_CLIENT_SECRET.")


@connection.command("push-url")
@click.argument("tenant")
@click.argument("connection_id")
def push_url(tenant: str, connection_id: str) -> None:
    """Print the Outbound Message endpoint URL of a Salesforce connection (it contains the push key: keep it
    out of tickets and chat)."""
    from refstage.services.push_keys import outbound_message_url

    rt = _runtime()
    click.echo(outbound_message_url(rt, tenant_id_of(rt, tenant), connection_id))


@connection.command("rotate-push-key")
@click.argument("tenant")
@click.argument("connection_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def rotate_push_key_(tenant: str, connection_id: str, yes: bool) -> None:
    """Replace the connection's push secret; pushes carrying the old one are refused from now on.

    Salesforce: prints the new Outbound Message endpoint URL; point the org's Outbound Messages at it
    (re-run the push-path installer). Pipedrive: the webhook is re-created with new credentials."""
    from refstage.services.push_keys import rotate_push_key

    if not yes:
        click.confirm(f"Rotate the push key of connection {connection_id}? Pushes using the old key are refused "
                      "at once (the periodic sync still reads every change).", abort=True)
    rt = _runtime()
    tenant_id = tenant_id_of(rt, tenant)
    url = rotate_push_key(rt, tenant_id, connection_id, Actor.system("cli"))
    if url:
        click.echo("Push key rotated. Point the org's Outbound Messages at:\n")
        click.echo(url)
    else:  # Pipedrive: this process queues nothing for a worker, so the webhook is re-created here
        from refstage.services.pipedrive_connect import provision

        provision(rt, tenant_id, connection_id)
        click.echo("Push credentials rotated; the Pipedrive webhook was re-created with them.")
