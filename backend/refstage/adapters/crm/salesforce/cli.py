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
    from refstage.services.connections import FlowOwner, start_connect

    rt = _runtime()
    started = start_connect(rt, _tenant_id(rt, tenant), actor=Actor.system("cli"), owner=FlowOwner.terminal(), name=name,
                            login_host=login_host, connection_id=connection_id)
    click.echo(f"connection {started.connection_id} is pending. Open this URL, sign in and allow access:\n")
    click.echo(started.authorize_url)
    click.echo("\nThen paste the URL Salesforce redirected to:  refstage connection finish '<redirect URL>'"
               "\n(only this terminal command can finish it; the web callback refuses a flow started here)")


@connection.command("finish")
@click.argument("redirect_url")
def finish(redirect_url: str) -> None:
    """Complete a connection from the callback URL (it carries the code and state)."""
    from refstage.services.connections import FlowOwner, finish_connect

    query = parse_qs(urlsplit(redirect_url).query)
    if "error" in query:
        raise click.ClickException(f"Salesforce refused: {query.get('error_description', query['error'])[0]}")
    conn = finish_connect(_runtime(), query.get("code", [""])[0], query.get("state", [""])[0], owner=FlowOwner.terminal())
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
