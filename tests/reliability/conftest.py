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
