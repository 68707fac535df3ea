"""Fixtures for the Salesforce connector tests: one emulated org per module over real HTTPS (its CA
trusted through REQUESTS_CA_BUNDLE, never verify=False), reset before each test."""

from __future__ import annotations

import dataclasses
import os

import pytest

from refstage.emulators.salesforce.server import SalesforceEmulator
from tests.salesforce.helpers import CLIENT_ID, CLIENT_SECRET, REDIRECT


@pytest.fixture(scope="module")
def sf_emulator(tmp_path_factory: pytest.TempPathFactory):
    cert_dir = tmp_path_factory.mktemp("sf-connector-certs")
    emu = SalesforceEmulator(port=0, seed="demo", cert_dir=cert_dir, outbound_retry_base=0.2)
    old = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = emu.ca_path
    emu.start()
    yield emu
    emu.stop()
    if old is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = old


@pytest.fixture
def emu(sf_emulator: SalesforceEmulator) -> SalesforceEmulator:
    sf_emulator.control.reset()
    return sf_emulator


@pytest.fixture
def settings(settings, emu):
    return dataclasses.replace(settings, allow_loopback_crm_hosts=True,  # the emulated org listens on loopback
                               extra={"salesforce_client_id": CLIENT_ID, "salesforce_client_secret": CLIENT_SECRET,
                                      "salesforce_redirect_uri": REDIRECT, "login_host": emu.base_url})
