"""`refstage emulator pipedrive`."""

from __future__ import annotations

import click

from .faults import FaultSpec


@click.command("pipedrive")
@click.option("--port", default=8702, show_default=True, type=int, help="TCP port to listen on (HTTPS).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on; the company's api_domain and OAuth host use it.")
@click.option("--seed", type=click.Choice(["demo", "empty"]), default="demo", show_default=True,
              help="demo: pipelines, custom fields, persons, organisations and deals; empty: one pipeline and the "
                   "standard fields only.")
@click.option("--faults", "faults", default=None, metavar="SPEC",
              help="Fault spec (see docs/emulators.md), e.g. 429:0.1,503:0.05,drop_webhook:0.2,dup_webhook:0.2,drop_after:0.05,"
                   "timeout_after:0.01,timeout=30,search_lag=5,seed=7")
@click.option("--cert-dir", type=click.Path(file_okay=False), default=None,
              help="Where the local CA and server pair live (default instance/certs).")
@click.option("--webhook-time-scale", type=float, default=1.0, show_default=True,
              help="Multiply webhook retry/ban delays (0.01 turns 3/30/150 s into 0.03/0.3/1.5 s).")
@click.option("--token-ttl", type=int, default=3600, show_default=True,
              help="OAuth access token lifetime in seconds (expires_in).")
@click.option("--daily-token-budget", type=int, default=150_000, show_default=True,
              help="API tokens the company may spend per day (reset 00:00 UTC); each request costs its "
                   "documented token cost.")
@click.option("--burst-limit", type=int, default=80, show_default=True,
              help="Requests per token per rolling 2 s (search endpoints: 10).")
@click.option("--api-token", default=None, help="Fix the seeded API token (default: random).")
def pipedrive(port: int, host: str, seed: str, faults: str | None, cert_dir: str | None,
              webhook_time_scale: float, token_ttl: int, daily_token_budget: int,
              burst_limit: int, api_token: str | None) -> None:
    """Serve one emulated Pipedrive company over HTTPS (API v1/v2, OAuth, webhooks)."""
    from .server import PipedriveEmulator

    try:
        FaultSpec.parse(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from exc
    emu = PipedriveEmulator(port=port, host=host, seed=seed, faults=faults, cert_dir=cert_dir,
                            webhook_time_scale=webhook_time_scale, token_ttl=token_ttl,
                            daily_token_budget=daily_token_budget, burst_limit=burst_limit,
                            api_token=api_token, access_log=True)
    emu.start()
    click.echo(f"Pipedrive emulator on {emu.base_url} (api_domain and OAuth host)")
    click.echo(f"  CA certificate : {emu.ca_path}")
    click.echo(f"  API token      : {emu.api_token}")
    click.echo("  OAuth app      : client_id refstage-demo, secret refstage-demo-secret")
    click.echo("  Users          : admin@refstage.test / demo")
    click.echo(f"  Faults         : {emu.state.faults.spec.describe()}")
    click.echo(f"  Control API    : {emu.base_url}/_emulator/info")
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        pass
