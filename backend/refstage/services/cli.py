"""`refstage tenant ...` and `refstage program ...`: the same services the web and API call."""

from __future__ import annotations

import json
from pathlib import Path

import click

from refstage.cli_support import runtime, tenant_id_of
from refstage.domain.audit import Actor, ActorKind
from refstage.domain.errors import DomainError, InvalidInput, RuleError

CLI_ACTOR = Actor(ActorKind.PERSON, None, "cli")


def _program_id(rt, tenant_id: str, program_slug: str) -> str:
    with rt.uow(tenant_id) as uow:
        p = uow.programs.by_slug(program_slug)
    if p is None:
        raise click.ClickException(f"no program {program_slug!r}")
    return p.id


def _fail(exc: DomainError) -> click.ClickException:
    if isinstance(exc, (InvalidInput, RuleError)):
        return click.ClickException(f"{exc}: {json.dumps(exc.errors, default=str)}")
    return click.ClickException(str(exc))


@click.group()
def tenant() -> None:
    """Tenants, their users and API keys."""


@tenant.command("create")
@click.argument("name")
@click.option("--slug", help="The workspace's short name in URLs (lowercase, digits, dashes); derived from NAME if omitted.")
@click.option("--admin-email", help="Also create a first admin user with this email.")
@click.option("--admin-password", envvar="REFSTAGE_ADMIN_PASSWORD", help="Or set REFSTAGE_ADMIN_PASSWORD.")
def tenant_create(name: str, slug: str | None, admin_email: str | None, admin_password: str | None) -> None:
    """Create a workspace (tenant) called NAME, optionally with its first admin."""
    from refstage.services import tenants

    rt = runtime()
    try:
        t = tenants.create_tenant(rt, name, slug)
        if admin_email:
            tenants.add_user(rt, t.id, admin_email, "admin", admin_password)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"tenant {t.slug} ({t.id})")


@tenant.command("list")
def tenant_list() -> None:
    """Every workspace: slug, id, name."""
    rt = runtime()
    with rt.uow() as uow:
        for t in uow.tenants.list():
            click.echo(f"{t.slug}\t{t.id}\t{t.name}")


@tenant.command("add-user")
@click.argument("tenant_slug")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "reviewer"]), default="reviewer", show_default=True,
              help="admin: everything; reviewer: review queue, ledger, reports.")
@click.option("--password", envvar="REFSTAGE_USER_PASSWORD", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Prompted for if not given (or set REFSTAGE_USER_PASSWORD).")
def tenant_add_user(tenant_slug: str, email: str, role: str, password: str) -> None:
    """Add a console user EMAIL to the workspace TENANT_SLUG."""
    from refstage.services import tenants

    rt = runtime()
    try:
        user = tenants.add_user(rt, tenant_id_of(rt, tenant_slug), email, role, password)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"user {user.email} ({user.role.value})")


@tenant.command("api-key")
@click.argument("tenant_slug")
@click.argument("name")
def tenant_api_key(tenant_slug: str, name: str) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from refstage.services import tenants

    rt = runtime()
    try:
        click.echo(tenants.create_api_key(rt, tenant_id_of(rt, tenant_slug), name, CLI_ACTOR))
    except DomainError as exc:
        raise _fail(exc) from exc


@click.group()
def program() -> None:
    """Referral programs."""


@program.command("create")
@click.argument("tenant_slug")
@click.argument("definition", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def program_create(tenant_slug: str, definition: Path) -> None:
    """Create a program from a JSON definition (same fields as POST /api/v1/programs)."""
    from refstage.services import programs

    try:
        data = json.loads(definition.read_text())
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{definition} is not valid JSON: {exc}") from exc
    rt = runtime()
    try:
        p = programs.create_program(rt, tenant_id_of(rt, tenant_slug), data, CLI_ACTOR)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"program {p.slug} ({p.id}) created as draft; rule: {p.rule.describe()}")


@program.command("status")
@click.argument("tenant_slug")
@click.argument("program_slug")
@click.argument("status", type=click.Choice(["live", "paused"]))
def program_status(tenant_slug: str, program_slug: str, status: str) -> None:
    """Put a program live or pause it (going live checks the rule against the CRM)."""
    from refstage.services import programs

    rt = runtime()
    tenant_id = tenant_id_of(rt, tenant_slug)
    program_id = _program_id(rt, tenant_id, program_slug)
    try:
        programs.set_program_status(rt, tenant_id, program_id, status, CLI_ACTOR)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"program {program_slug} is {status}")


@program.command("enrol")
@click.argument("tenant_slug")
@click.argument("program_slug")
def program_enrol(tenant_slug: str, program_slug: str) -> None:
    """Enrol advocates from the program's CRM source now and write their codes and links back."""
    from refstage.services import enrolment

    rt = runtime()
    tenant_id = tenant_id_of(rt, tenant_slug)
    program_id = _program_id(rt, tenant_id, program_slug)

    def show(progress):
        click.echo(f"\rseen {progress.seen}  enrolled {progress.enrolled}  already {progress.already}  "
                   f"links written {progress.links_written}  failed {progress.links_failed}", nl=False, err=True)

    try:
        result = enrolment.run_enrolment(rt, tenant_id, program_id, on_progress=show)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo("", err=True)
    click.echo(f"enrolled {result.enrolled} new advocate(s), {result.already} already enrolled, "
               f"{result.links_written} link(s) written, {result.links_failed} failed, {result.api_calls} API call(s)")
    if result.links_failed:
        raise SystemExit(1)
