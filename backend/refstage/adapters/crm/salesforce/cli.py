"""`refstage connection ...`: connect a tenant to Salesforce from a terminal (headless servers)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import click

from refstage.domain.audit import Actor


def _runtime():
    from refstage.bootstrap import build_runtime
    from refstage.services.runtime import RecordingQueue

    return build_runtime(queue=RecordingQueue())


def _tenant_id(rt, slug: str) -> str:
    with rt.uow() as uow:
        tenant = uow.tenants.by_slug(slug)
    if tenant is None:
        raise click.ClickException(f"no tenant {slug!r}")
    return tenant.id


@click.group()
def connection() -> None:
    """CRM connections: connect, list, disconnect."""


@connection.command("add-salesforce")
@click.argument("tenant")
@click.option("--login-host", default="production", show_default=True,
              help="production, sandbox, or the org's https:// My Domain URL.")
@click.option("--name", default="Salesforce", show_default=True)
@click.option("--reconnect", "connection_id", help="Reconnect this existing connection instead of adding one.")
def add_salesforce(tenant: str, login_host: str, name: str, connection_id: str | None) -> None:
    """Print the URL an admin opens to connect TENANT's org; then run `refstage connection finish`."""
    from refstage.services.connections import start_connect

    rt = _runtime()
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
    conn = finish_connect(_runtime(), query.get("code", [""])[0], query.get("state", [""])[0])
    click.echo(f"connected {conn.id} to org {conn.external_org_id} as {conn.external_username} ({conn.instance_url})")


@connection.command("list")
@click.argument("tenant")
def list_(tenant: str) -> None:
    from refstage.services.connections import list_connections

    rt = _runtime()
    for c in list_connections(rt, _tenant_id(rt, tenant)):
        click.echo(f"{c.id}  {c.kind.value:10}  {c.status.value:18}  {c.external_org_id or '-':18}  {c.name}")


@connection.command("disconnect")
@click.argument("tenant")
@click.argument("connection_id")
def disconnect_(tenant: str, connection_id: str) -> None:
    """Revoke the tokens at Salesforce and mark the connection disconnected."""
    from refstage.services.connections import disconnect

    rt = _runtime()
    conn = disconnect(rt, _tenant_id(rt, tenant), connection_id, actor=Actor.system("cli"))
    click.echo(f"{conn.id}: {conn.status.value}")


@connection.command("push-url")
@click.argument("tenant")
@click.argument("connection_id")
def push_url(tenant: str, connection_id: str) -> None:
    """Print the Outbound Message endpoint URL of a Salesforce connection (it contains the push key: keep it
    out of tickets and chat)."""
    from refstage.services.push_keys import outbound_message_url

    rt = _runtime()
    click.echo(outbound_message_url(rt, _tenant_id(rt, tenant), connection_id))


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
    url = rotate_push_key(rt, _tenant_id(rt, tenant), connection_id, Actor.system("cli"))
    if url:
        click.echo("Push key rotated. Point the org's Outbound Messages at:\n")
        click.echo(url)
    else:  # Pipedrive: this process queues nothing for a worker, so the webhook is re-created here
        from refstage.services.pipedrive_connect import provision

        provision(rt, _tenant_id(rt, tenant), connection_id)
        click.echo("Push credentials rotated; the Pipedrive webhook was re-created with them.")
