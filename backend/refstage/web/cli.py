"""`refstage serve`: the web process for development and the demo (production uses gunicorn)."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--migrate/--no-migrate", default=True, show_default=True, help="Apply migrations first.")
def serve(host: str, port: int, migrate: bool) -> None:
    """Serve the web app (pages, admin, API, OAuth callbacks, push receivers) with gunicorn."""
    import os
    import sys
    from pathlib import Path

    from refstage.config import load_settings

    settings = load_settings()
    if migrate:
        from refstage.bootstrap import migrate as apply_migrations

        apply_migrations(settings)
    # The gunicorn beside this interpreter: the virtualenv's bin need not be on PATH. No control socket: by
    # default gunicorn (25.1+) puts it in the user's home, outside the instance folder, shared by every checkout.
    sibling = Path(sys.executable).with_name("gunicorn")
    gunicorn = str(sibling) if sibling.exists() else "gunicorn"
    os.execvp(gunicorn, [gunicorn, "--bind", f"{host}:{port}", "--workers", os.environ.get("WEB_CONCURRENCY", "2"),
                           "--threads", "4", "--access-logfile", "-", "--no-control-socket",
                           "--logger-class", "refstage.web.access_log.RedactingAccessLogger", "refstage.web.app:create_app()"])
