"""Faults after the handler: the write commits in the org, then the response is lost."""

from __future__ import annotations

import pytest
import requests
from sf_emu_helpers import VERSION, Api, make_emulator, password_token
from simple_salesforce import Salesforce

from refstage_devkit.emulators.salesforce.faults import parse_spec


def test_spec_accepts_after_handler_kinds():
    plan = parse_spec("drop_after:0.1,timeout-after:#2,timeout=3")
    assert [r.kind for r in plan.rules] == ["drop_after", "timeout_after"] and plan.timeout_seconds == 3


@pytest.mark.parametrize("spec", ["drop_after:#1", "timeout_after:#1,timeout=0.3"])
def test_write_commits_and_the_response_is_lost(cert_dir, spec):
    with make_emulator(cert_dir, seed="empty") as emu:
        api = Api(emu, password_token(emu)["access_token"])
        sf = Salesforce(instance_url=emu.base_url, session_id=api.token, version=VERSION)
        assert api.control("faults", {"spec": spec}).status_code == 200
        with pytest.raises(requests.ConnectionError):
            requests.post(api.url("sobjects/Lead"), json={"LastName": "Lost", "Company": "Response Ltd"},
                          headers=api.s.headers, timeout=10)
        leads = sf.query("SELECT Id, LastName FROM Lead WHERE Company = 'Response Ltd'")["records"]
        assert [lead["LastName"] for lead in leads] == ["Lost"]  # it was created, exactly once
        kind = spec.split(":")[0]
        assert api.control("faults", method="GET").json()["injected"] == {kind: 1}
