"""Fixtures for the Salesforce connector tests: one emulated org per module over real HTTPS (its CA
trusted through REQUESTS_CA_BUNDLE, never verify=False), reset before each test."""

from __future__ import annotations

import dataclasses

import pytest

from refstage_devkit.emulators.salesforce.server import SalesforceEmulator
from tests.salesforce.helpers import CLIENT_ID, CLIENT_SECRET, REDIRECT, running_org


@pytest.fixture(scope="module")
def sf_emulator(tmp_path_factory: pytest.TempPathFactory):
    with running_org(tmp_path_factory.mktemp("sf-connector-certs"), seed="demo", outbound_retry_base=0.2) as emu:
        yield emu


@pytest.fixture
def emu(sf_emulator: SalesforceEmulator) -> SalesforceEmulator:
    sf_emulator.control.reset()
    return sf_emulator


@pytest.fixture
def settings(settings, emu):
    return dataclasses.replace(settings, allow_loopback_crm_hosts=True,  # the emulated org listens on loopback
                               extra={"salesforce_client_id": CLIENT_ID, "salesforce_client_secret": CLIENT_SECRET,
                                      "salesforce_redirect_uri": REDIRECT, "login_host": emu.base_url})
