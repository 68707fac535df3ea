"""`refstage bench`: runs the benchmarks in the repository's bench/ folder (not shipped in the wheel)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--quick", is_flag=True, help="Smaller sizes and shorter runs (minutes, not tens of minutes).")
@click.option("--only", help="Comma-separated benchmark letters, e.g. a,e.")
def bench(quick: bool, only: str | None) -> None:
    """Run the benchmarks (bench/) and write docs/benchmarks.md."""
    if not (ROOT / "bench" / "run.py").exists():
        raise click.ClickException("bench/ not found: run from a source checkout")
    sys.path.insert(0, str(ROOT))
    from bench.run import main as run_main

    args = (["--quick"] if quick else []) + ([f"--only={only}"] if only else [])
    raise SystemExit(run_main(args))
