"""Fixtures for the Salesforce emulator tests: real HTTPS servers on loopback, trusted through
REQUESTS_CA_BUNDLE (never verify=False), driven with simple-salesforce and plain requests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sf_emu_helpers import VERSION, Api, make_emulator, password_token
from simple_salesforce import Salesforce

from refstage_devkit.emulators.salesforce.server import SalesforceEmulator


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sf-certs")


@pytest.fixture(scope="session", autouse=True)
def _trust_emulator_ca(cert_dir: Path) -> Iterator[None]:
    from refstage_devkit.emulators.tls import ensure_certificates

    paths = ensure_certificates(cert_dir)
    old = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(paths.ca)
    yield
    if old is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = old


@pytest.fixture(scope="session")
def shared_emu(cert_dir: Path) -> Iterator[SalesforceEmulator]:
    """One demo org for read-mostly tests."""
    with make_emulator(cert_dir, seed="demo") as emu:
        yield emu


@pytest.fixture
def emu(cert_dir: Path) -> Iterator[SalesforceEmulator]:
    """A fresh demo org per test (starts in ~0.3 s)."""
    with make_emulator(cert_dir, seed="demo") as e:
        yield e



@pytest.fixture
def api(emu: SalesforceEmulator) -> Api:
    return Api(emu, password_token(emu)["access_token"])


@pytest.fixture
def sf(emu: SalesforceEmulator, api: Api) -> Salesforce:
    return Salesforce(instance_url=emu.base_url, session_id=api.token, version=VERSION)


@pytest.fixture(scope="session")
def shared_api(shared_emu: SalesforceEmulator) -> Api:
    return Api(shared_emu, password_token(shared_emu)["access_token"])


@pytest.fixture(scope="session")
def shared_sf(shared_emu: SalesforceEmulator, shared_api: Api) -> Salesforce:
    return Salesforce(instance_url=shared_emu.base_url, session_id=shared_api.token, version=VERSION)
