"""What the workspace commands (`tenant`, `program`, `connection`, `sync`) need before they touch a
database: find it (the demo's, when run beside `make demo`), refuse politely — without creating files —
when there is none or it is not migrated, and find the workspace a command names by its slug."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

DEMO_INSTANCE = Path("instance") / "demo"


def _sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def choose_instance() -> None:
    """Beside a running demo (a checkout with instance/demo/refstage.db and no database of its own),
    use the demo's instance and say so on stderr; explicit settings always win."""
    if os.environ.get("DATABASE_URL") or os.environ.get("REFSTAGE_INSTANCE_DIR"):
        return
    own = Path("instance") / "refstage.db"
    demo = DEMO_INSTANCE / "refstage.db"
    if not own.exists() and demo.exists():
        os.environ["REFSTAGE_INSTANCE_DIR"] = str(DEMO_INSTANCE)
        os.environ.setdefault("REFSTAGE_ENV", "demo")
        click.echo(f"Using the demo's database ({demo}); set REFSTAGE_INSTANCE_DIR or DATABASE_URL to choose another.",
                   err=True)


def runtime(**kwargs: Any):
    """build_runtime for a workspace command, after checking that a migrated database is there."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from refstage.config import ConfigError, normalise_database_url

    choose_instance()
    instance = Path(os.environ.get("REFSTAGE_INSTANCE_DIR", "instance")).resolve()
    url = normalise_database_url(os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'refstage.db'}")
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        raise click.ClickException(
            f"no database at {path}. Create it with `refstage db upgrade` (or run `make demo`), or point "
            "DATABASE_URL / REFSTAGE_INSTANCE_DIR at an existing one. Nothing was created.")
    from refstage.bootstrap import build_runtime

    try:
        rt = build_runtime(**kwargs)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        with rt.session_factory() as session:
            migrated = inspect(session.get_bind()).has_table("alembic_version")
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot open the database ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not migrated:
        raise click.ClickException("the database is not migrated yet: run `refstage db upgrade` first.")
    return rt


def tenant_id_of(rt, slug: str) -> str:
    """The id of the workspace (tenant) whose slug a command was given; a one-line refusal if there is none."""
    from refstage.services.tenants import tenant_by_slug

    tenant = tenant_by_slug(rt, slug)
    if tenant is None:
        raise click.ClickException(f"no tenant {slug!r}")
    return tenant.id
