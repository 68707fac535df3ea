"""`refstage db`: migrations and encryption keys."""

from __future__ import annotations

import click
from cryptography.fernet import Fernet


@click.group()
def db() -> None:
    """Database migrations and encryption keys."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Apply migrations (SQLite by default, PostgreSQL with DATABASE_URL)."""
    from refstage.adapters.db.migrate import upgrade as run_upgrade
    from refstage.config import load_settings

    settings = load_settings()
    run_upgrade(settings.database_url, revision)
    click.echo(f"database at {_safe(settings.database_url)} is at {revision}")


@db.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Revert migrations to REVISION (e.g. base)."""
    from alembic import command

    from refstage.adapters.db.migrate import alembic_config
    from refstage.config import load_settings

    command.downgrade(alembic_config(load_settings().database_url), revision)
    click.echo(f"downgraded to {revision}")


@db.command("generate-key")
def generate_key() -> None:
    """Print a new encryption key for REFSTAGE_ENCRYPTION_KEYS."""
    click.echo(Fernet.generate_key().decode())


@db.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every stored credential under the first key of REFSTAGE_ENCRYPTION_KEYS."""
    from refstage.bootstrap import build_runtime
    from refstage.services.maintenance import rotate_credentials
    from refstage.services.runtime import RecordingQueue

    count = rotate_credentials(build_runtime(queue=RecordingQueue()))
    click.echo(f"re-encrypted credentials of {count} connection(s)")


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
