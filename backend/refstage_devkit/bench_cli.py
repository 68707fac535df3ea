"""`refstage bench`: runs the benchmarks in the repository's bench/ folder (not shipped in the wheel)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--quick", is_flag=True, help="Smaller sizes and shorter runs (minutes, not tens of minutes).")
@click.option("--only", help="Comma-separated benchmark letters (a-g, as titled in docs/benchmarks.md), e.g. a,e.")
@click.option("--database", type=click.Choice(["sqlite", "postgresql"]), default="sqlite", show_default=True,
              help="postgresql: PostgreSQL + Redis, the databases named by REFSTAGE_BENCH_DATABASE_URL and "
                   "REFSTAGE_BENCH_REDIS_URL (emptied before each benchmark).")
def bench(quick: bool, only: str | None, database: str) -> None:
    """Run the benchmarks (bench/) and write docs/benchmarks.md."""
    if not (ROOT / "bench" / "run.py").exists():
        raise click.ClickException("bench/ not found: run from a source checkout")
    sys.path.insert(0, str(ROOT))
    from bench.run import main as run_main

    args = (["--quick"] if quick else []) + ([f"--only={only}"] if only else []) + [f"--database={database}"]
    raise SystemExit(run_main(args))
