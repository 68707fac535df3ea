"""``refstage emulator salesforce``: serve one emulated Salesforce org over HTTPS."""

from __future__ import annotations

import click

from refstage_devkit.emulators.tls import DEFAULT_CERT_DIR


@click.command("salesforce", context_settings={"auto_envvar_prefix": "REFSTAGE_SF"})
@click.option("--port", default=8701, show_default=True, envvar="REFSTAGE_SF_PORT", type=int,
              help="TCP port to listen on (HTTPS).")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="REFSTAGE_SF_HOST",
              help="Interface to listen on; the org's login host and instance_url use it.")
@click.option("--seed", type=click.Choice(["demo", "empty"]), default="demo", show_default=True,
              envvar="REFSTAGE_SF_SEED", help="Initial data when the org is new.")
@click.option("--data", "data_file", type=click.Path(dir_okay=False), default=None, envvar="REFSTAGE_SF_DATA",
              help="SQLite file to keep the org in (default: in memory).")
@click.option("--faults", default=None, envvar="REFSTAGE_SF_FAULTS",
              help="Fault spec, e.g. '503:0.1,drop:0.05,seed=42' (see docs/emulators.md).")
@click.option("--cert-dir", type=click.Path(file_okay=False), default=str(DEFAULT_CERT_DIR), show_default=True,
              envvar="REFSTAGE_SF_CERT_DIR",
              help="Where the local CA (ca.pem) and the server's certificate live; created on first use.")
@click.option("--client-id", default="refstage-demo", show_default=True, envvar="REFSTAGE_SF_CLIENT_ID",
              help="Consumer key of the org's one connected app (External Client App).")
@click.option("--client-secret", default="refstage-demo-secret", show_default=True,
              envvar="REFSTAGE_SF_CLIENT_SECRET", help="Consumer secret of that connected app.")
@click.option("--admin-username", default="admin@refstage.test", show_default=True,
              envvar="REFSTAGE_SF_ADMIN_USERNAME", help="Username of the org's System Administrator (login page, SOAP login).")
@click.option("--admin-password", default="refstage-demo", show_default=True, envvar="REFSTAGE_SF_ADMIN_PASSWORD",
              help="That administrator's password.")
@click.option("--session-timeout", default=7200, show_default=True, type=int, envvar="REFSTAGE_SF_SESSION_TIMEOUT",
              help="Seconds of inactivity after which an access token is INVALID_SESSION_ID.")
@click.option("--metadata-dir", type=click.Path(file_okay=False), default=None, envvar="REFSTAGE_SF_METADATA_DIR",
              help="SFDX source folder whose objects the org starts with, installed through the Metadata API deploy "
                   "(default: <repo>/sfdx/force-app).")
@click.option("--bare", is_flag=True, default=False, envvar="REFSTAGE_SF_BARE",
              help="Start with standard objects only; install the package with `sf project deploy start`.")
@click.option("--outbound-retry-base", default=15.0, show_default=True, type=float,
              envvar="REFSTAGE_SF_OUTBOUND_RETRY_BASE", help="First Outbound Message retry gap in seconds (doubles).")
@click.option("--access-log/--no-access-log", default=True, show_default=True, envvar="REFSTAGE_SF_ACCESS_LOG",
              help="Print one line per request to standard error.")
def salesforce(port: int, host: str, seed: str, data_file: str | None, faults: str | None, cert_dir: str,
               client_id: str, client_secret: str, admin_username: str, admin_password: str,
               session_timeout: int, metadata_dir: str | None, outbound_retry_base: float,
               access_log: bool, bare: bool) -> None:
    """Run a local Salesforce org emulator (OAuth, REST, SOQL, Bulk API 2.0, Metadata API, Outbound Messages)."""
    from .faults import parse_spec
    from .server import SalesforceEmulator

    try:
        parse_spec(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    emu = SalesforceEmulator(port=port, host=host, seed=seed, data_file=data_file, faults=faults,
                             cert_dir=cert_dir, session_timeout=session_timeout, client_id=client_id,
                             client_secret=client_secret, admin_username=admin_username,
                             admin_password=admin_password, metadata_dir=metadata_dir,
                             outbound_retry_base=outbound_retry_base, access_log=access_log, bare=bare)
    emu.start()
    click.echo(f"Salesforce emulator listening on {emu.base_url} (login host and instance_url)")
    click.echo(f"  CA certificate : {emu.ca_path}  (export REQUESTS_CA_BUNDLE / NODE_EXTRA_CA_CERTS)")
    click.echo(f"  client id      : {client_id}")
    click.echo(f"  client secret  : {client_secret}")
    click.echo(f"  admin login    : {admin_username} / {admin_password}")
    click.echo(f"  data           : {data_file or 'in memory'}; seed {seed}; faults {faults or 'none'}")
    click.echo(f"  control API    : {emu.base_url}/_emulator/")
    emu.serve_forever()
