"""Reliability suite (issue 8 §2). Short mode runs in `make test`; `pytest --long` (or
`make test PYTEST_ARGS=--long`) runs the long mode: more referrals, more cycles, more cases."""

from __future__ import annotations

import pytest

from tests.salesforce.conftest import emu, settings, sf_emulator  # noqa: F401 - the emulated org fixtures


@pytest.fixture(scope="session")
def long_mode(pytestconfig) -> bool:
    return bool(pytestconfig.getoption("--long"))


@pytest.fixture
def size(long_mode):
    """Pick (short, long) by mode."""
    return lambda short, long: long if long_mode else short


@pytest.fixture
def record(request, long_mode):
    """Figures a scenario measured (faults injected, kills, cases), kept for docs/reliability.md."""
    import json
    from pathlib import Path

    figures: dict = {}
    yield figures
    out = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    mode = "long" if long_mode else "short"
    (out / f"{request.node.name}.{mode}.json").write_text(json.dumps(figures, indent=1, default=str))
