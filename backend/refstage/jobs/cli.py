"""`refstage worker` and `refstage sync`."""

from __future__ import annotations

import click


# An idle worker on the SQLite queue polls for jobs, backing off from 0.1 s; Huey's default cap of 10 s would let
# a pushed change (Outbound Message, webhook) wait up to 10 s after a quiet spell. A poll is one small query.
# (On Redis the worker blocks on the queue and is woken at once.)
IDLE_POLL_MAX_SECONDS = 1.0


@click.command()
@click.option("--workers", "-w", default=2, show_default=True, help="Concurrent worker threads.")
@click.option("--no-periodic", is_flag=True, help="Do not run the scheduler's periodic tasks in this process.")
def worker(workers: int, no_periodic: bool) -> None:
    """Run task-queue consumers (routing, syncs, write-backs, notifications) and the scheduler."""
    from huey.consumer import Consumer

    from refstage.bootstrap import build_runtime
    from refstage.logs import configure_logging

    configure_logging()
    rt = build_runtime()
    huey = rt.jobs.huey
    consumer = Consumer(huey, workers=workers, worker_type="thread", periodic=not no_periodic, check_worker_health=True,
                        max_delay=IDLE_POLL_MAX_SECONDS)
    click.echo(f"worker: {workers} thread(s), storage {type(huey.storage).__name__}", err=True)
    consumer.run()


@click.command()
@click.option("--connection", "connection_id", help="Only this connection (default: every active one).")
@click.option("--tenant", "tenant_slug", help="Only connections of this tenant.")
def sync(connection_id: str | None, tenant_slug: str | None) -> None:
    """Run one sync cycle now, in this process, with progress and a summary."""
    from refstage.bootstrap import build_runtime
    from refstage.cli_support import tenant_id_of
    from refstage.services.ports import CrmError
    from refstage.services.runtime import RecordingQueue
    from refstage.services.sync import run_sync

    rt = build_runtime(queue=RecordingQueue())
    with rt.uow() as uow:
        pairs = uow.directory.active_connections()
    if tenant_slug:
        only_tenant = tenant_id_of(rt, tenant_slug)
        pairs = [p for p in pairs if p[0] == only_tenant]
    if connection_id:
        pairs = [p for p in pairs if p[1] == connection_id]
        if not pairs:
            raise click.ClickException(f"no active connection {connection_id!r}")
    if not pairs:
        click.echo("no active connections to sync")
        return
    failed = False
    for tenant_id, conn_id in pairs:
        with click.progressbar(length=0, label=f"sync {conn_id}", show_pos=True) as bar:
            def progress(report, bar=bar):
                bar.length = max(bar.length or 0, report.pulled)
                bar.update(report.pulled - bar.pos)
            try:
                report = run_sync(rt, tenant_id, conn_id, on_progress=progress)
            except CrmError as exc:  # the worker retries these; here the admin reads why and runs it again
                report = None
                error = str(exc)
        if report is None:
            click.echo(f"{conn_id}: failed: {error}", err=True)
            failed = True
            continue
        click.echo(f"{conn_id}: {report.status} in {report.duration_s:.1f}s, {report.api_calls} API calls, "
                   + ", ".join(f"{k}={v}" for k, v in report.as_dict().items()))
        if report.error:
            click.echo(f"  error: {report.error}", err=True)
            failed = failed or report.status == "failed"
    if failed:
        raise SystemExit(1)
