"""Faults after the handler (the write commits, the response is lost) and the lagging search index."""

from __future__ import annotations

import pytest
import requests

from refstage_devkit.emulators.pipedrive.faults import FaultSpec
from refstage_devkit.emulators.pipedrive.server import PipedriveEmulator


def _person(email: str) -> dict:
    return {"name": "Lag Test", "emails": [{"value": email, "primary": True, "label": "work"}]}


def _search(api, email: str) -> list[int]:
    r = api.get("/api/v2/persons/search", params={"term": email, "fields": "email", "exact_match": "true"})
    assert r.status_code == 200
    return [i["item"]["id"] for i in r.json()["data"]["items"]]


def test_spec_parses_after_handler_kinds_and_search_lag():
    spec = FaultSpec.parse("drop_after:0.1,timeout_after:0.05,timeout=2,search_lag=7,seed=3")
    assert (spec.drop_after, spec.timeout_after, spec.timeout_seconds, spec.search_lag) == (0.1, 0.05, 2.0, 7.0)
    assert FaultSpec.parse(spec.describe()) == spec
    with pytest.raises(ValueError):
        FaultSpec.parse("drop_after:0.7,timeout_after:0.7")
    with pytest.raises(ValueError):
        FaultSpec.parse("search_lag=-1")


def test_drop_after_commits_then_loses_the_response(api, control, emu):
    before = api.get("/api/v2/persons", params={"limit": 500}).json()["data"]
    control.post("/faults", {"lose": {"kind": "drop_after", "count": 1}})
    with pytest.raises(requests.ConnectionError):
        requests.post(emu.base_url + "/api/v2/persons", json=_person("dropped@newco.example"),
                      headers={"x-api-token": emu.api_token}, verify=emu.ca_path, timeout=10)
    after = api.get("/api/v2/persons", params={"limit": 500}).json()["data"]
    created = [p for p in after if p["id"] not in {b["id"] for b in before}]
    assert [p["emails"][0]["value"] for p in created] == ["dropped@newco.example"]  # committed once
    assert control.get("/faults")["faults"]["injected"] == {"drop_after": 1}


def test_timeout_after_holds_then_closes(cert_dir):
    with PipedriveEmulator(port=0, cert_dir=cert_dir, faults="timeout_after:1,timeout=0.5") as emu:
        with pytest.raises(requests.ConnectionError):
            requests.post(emu.base_url + "/api/v2/deals", json={"title": "held"},
                          headers={"x-api-token": emu.api_token}, verify=emu.ca_path, timeout=10)
        emu.state.faults.configure(None)
        deals = requests.get(emu.base_url + "/api/v2/deals", params={"limit": 500},
                             headers={"x-api-token": emu.api_token}, verify=emu.ca_path, timeout=10).json()["data"]
        assert [d["title"] for d in deals].count("held") == 1


def test_search_lag_person_found_only_after_the_index_catches_up(api, control):
    control.post("/faults", {"spec": "search_lag=30"})
    created = api.post("/api/v2/persons", json=_person("late@newco.example")).json()["data"]
    assert api.get(f"/api/v2/persons/{created['id']}").status_code == 200  # the record itself is there at once
    assert _search(api, "late@newco.example") == []
    control.post("/clock/advance", {"seconds": 20})
    assert _search(api, "late@newco.example") == []
    control.post("/clock/advance", {"seconds": 11})
    assert _search(api, "late@newco.example") == [created["id"]]
    # A change is indexed late too: the old email is still what the index finds for a while.
    api.patch(f"/api/v2/persons/{created['id']}", json={"emails": [{"value": "renamed@newco.example", "primary": True,
                                                                       "label": "work"}]})
    assert _search(api, "late@newco.example") == [created["id"]]
    assert _search(api, "renamed@newco.example") == []
    control.post("/clock/advance", {"seconds": 31})
    assert _search(api, "late@newco.example") == []
    assert _search(api, "renamed@newco.example") == [created["id"]]


def test_without_lag_search_is_immediate(api):
    created = api.post("/api/v2/persons", json=_person("now@newco.example")).json()["data"]
    assert _search(api, "now@newco.example") == [created["id"]]
