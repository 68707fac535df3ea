"""`refstage connection ...`: connect a tenant to Salesforce from a terminal (headless servers)."""

from __future__ import annotations

import contextlib
from urllib.parse import parse_qs, urlsplit

import click

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
    from refstage.cli_support import runtime
    from refstage.services.runtime import RecordingQueue

    return runtime(queue=RecordingQueue())


def _tenant_id(rt, slug: str) -> str:
    with rt.uow() as uow:
        tenant = uow.tenants.by_slug(slug)
    if tenant is None:
        raise click.ClickException(f"no tenant {slug!r}")
    return tenant.id


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
    from refstage.services.connections import start_connect

    rt = _runtime()
    with _polite():
        started = start_connect(rt, _tenant_id(rt, tenant), actor=Actor.system("cli"), name=name, login_host=login_host,
                                connection_id=connection_id)
    click.echo(f"connection {started.connection_id} is pending. Open this URL, sign in and allow access:\n")
    click.echo(started.authorize_url)
    click.echo("\nThen paste the URL Salesforce redirected to:  refstage connection finish '<redirect URL>'")


@connection.command("finish")
@click.argument("redirect_url")
def finish(redirect_url: str) -> None:
    """Complete a connection from the callback URL (it carries the code and state)."""
    from refstage.services.connections import finish_connect

    query = parse_qs(urlsplit(redirect_url).query)
    if "error" in query:
        raise click.ClickException(f"Salesforce refused: {query.get('error_description', query['error'])[0]}")
    with _polite():
        conn = finish_connect(_runtime(), query.get("code", [""])[0], query.get("state", [""])[0])
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

    rt = _runtime()
    tenant_id = _tenant_id(rt, tenant)
    with _polite():
        if oauth:
            started = pipedrive_connect.start_connect(rt, tenant_id, actor=Actor.system("cli"), name=name,
                                                      connection_id=connection_id)
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
    from refstage.services import pipedrive_connect

    query = parse_qs(urlsplit(redirect_url).query)
    if "error" in query:
        raise click.ClickException(f"Pipedrive refused: {query['error'][0]}")
    with _polite():
        conn = pipedrive_connect.finish_connect(_runtime(), query.get("code", [""])[0], query.get("state", [""])[0])
    click.echo(f"connected {conn.id} to Pipedrive company {conn.external_org_id} as {conn.external_username}")


@connection.command("list")
@click.argument("tenant")
def list_(tenant: str) -> None:
    """TENANT's connections: id, CRM, status, org, name."""
    from refstage.services.connections import list_connections

    rt = _runtime()
    for c in list_connections(rt, _tenant_id(rt, tenant)):
        click.echo(f"{c.id}  {c.kind.value:10}  {c.status.value:18}  {c.external_org_id or '-':18}  {c.name}")


@connection.command("disconnect")
@click.argument("tenant")
@click.argument("connection_id")
@click.confirmation_option(prompt="Disconnect? Syncing stops and the tokens are revoked (reconnect later with --reconnect)")
def disconnect_(tenant: str, connection_id: str) -> None:
    """Revoke the tokens at the CRM and mark the connection disconnected (nothing is deleted)."""
    from refstage.services import connections, pipedrive_connect

    rt = _runtime()
    tenant_id = _tenant_id(rt, tenant)
    with _polite():
        kind = connections.get_connection(rt, tenant_id, connection_id).kind.value
        disconnect = pipedrive_connect.disconnect if kind == "pipedrive" else connections.disconnect
        conn = disconnect(rt, tenant_id, connection_id, actor=Actor.system("cli"))
    click.echo(f"{conn.id}: {conn.status.value}")
