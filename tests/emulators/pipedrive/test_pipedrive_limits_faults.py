"""Token budget, burst limit, 429/403, fault plans and bursts, usage counters."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from refstage_devkit.emulators.pipedrive.faults import FaultSpec
from refstage_devkit.emulators.pipedrive.server import PipedriveEmulator


class _HeldClock:
    """The emulated clock with wall time held still: only `advance()` moves it, so the 53 requests below fall
    inside one 2 s window however slowly a loaded machine serves them."""

    def __init__(self, clock):
        self._clock = clock
        self._held = clock.ts() - clock.offset

    def ts(self) -> float:
        return self._held + self._clock.offset


def test_burst_limit_then_429_then_403(cert_dir, session_for, control):
    with PipedriveEmulator(port=0, cert_dir=cert_dir, burst_limit=5) as emu:
        emu.state.limiter.clock = _HeldClock(emu.state.clock)
        s = session_for(emu, emu.api_token)
        codes = [s.get("/api/v2/deals/1").status_code for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        r = s.get("/api/v2/deals/1")
        assert r.status_code == 429 and r.json()["success"] is False and r.json()["data"] is None
        assert r.headers["x-ratelimit-remaining"] == "0" and int(r.headers["x-ratelimit-reset"]) >= 1
        # hammering while limited earns the HTML 403 page
        codes = [s.get("/api/v2/deals/1").status_code for _ in range(45)]
        assert codes[-1] == 403
        # the rolling 2 s window frees up on the emulated clock
        s.post(emu.base_url + "/_emulator/clock/advance", json={"seconds": 3})
        assert s.get("/api/v2/deals/1").status_code == 200


def test_search_has_its_own_burst_of_ten(api):
    params = {"term": "example.com", "fields": "email"}
    codes = [api.get("/api/v2/persons/search", params=params).status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]
    assert api.get("/api/v2/deals").status_code == 200


def test_daily_token_budget_uses_documented_costs(cert_dir, session_for):
    with PipedriveEmulator(port=0, cert_dir=cert_dir, daily_token_budget=30) as emu:
        s = session_for(emu, emu.api_token)
        assert s.get("/api/v2/deals").headers["x-token-cost"] == "10"
        assert s.post("/api/v2/deals", json={"title": "a"}).headers["x-token-cost"] == "5"
        assert s.get("/api/v2/deals/1").headers["x-token-cost"] == "1"
        assert s.get("/api/v2/deals").status_code == 200  # 26 used
        r = s.get("/api/v2/deals")
        assert r.status_code == 429 and "budget" in r.json()["error"]
        usage = s.get(emu.base_url + "/_emulator/usage").json()["usage"]
        assert usage["tokens_used"] == 26 and usage["rejected_429"] == 1
        assert usage["by_endpoint"]["GET /api/v2/deals"] == {"requests": 3, "tokens": 20}
        # the budget resets at the next UTC midnight of the emulated clock
        s.post(emu.base_url + "/_emulator/clock/advance", json={"seconds": 86400})
        assert s.get("/api/v2/deals").status_code == 200


def test_control_bursts(api, control):
    control.post("/faults", {"burst": {"status": 503, "count": 2}})
    assert [api.get("/api/v2/deals").status_code for _ in range(3)] == [503, 503, 200]
    control.post("/faults", {"burst": {"status": 429, "count": 1}})
    r = api.get("/api/v2/deals")
    assert r.status_code == 429 and "x-ratelimit-reset" in r.headers
    assert control.get("/faults")["faults"]["injected"] == {"503": 2, "429": 1}


def test_fault_plan_is_deterministic(cert_dir, session_for):
    def run() -> list[int]:
        with PipedriveEmulator(port=0, cert_dir=cert_dir, faults="429:0.2,503:0.1,seed=7") as emu:
            s = session_for(emu, emu.api_token)
            return [s.get("/api/v2/deals/1").status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert {200, 429, 503} <= set(first)


def test_fault_spec_parsing():
    spec = FaultSpec.parse("429:0.1,503:0.05,drop_webhook:0.2,dup_webhook:0.2,seed=7")
    assert spec.statuses == {429: 0.1, 503: 0.05} and spec.drop_webhook == 0.2 and spec.seed == 7
    for bad in ("429", "999:0.1", "429:2", "teapot:0.1", "429:0.7,503:0.6"):
        with pytest.raises(ValueError):
            FaultSpec.parse(bad)


def test_cli_help_and_bad_faults():
    from refstage_devkit.emulators.pipedrive.cli import pipedrive

    runner = CliRunner()
    assert "--faults" in runner.invoke(pipedrive, ["--help"]).output
    result = runner.invoke(pipedrive, ["--faults", "nope:1"])
    assert result.exit_code != 0 and "unknown fault" in result.output


def test_reset_and_seed(api, control):
    created = control.post("/seed", {"persons": 3, "deals": 4})
    assert len(created["persons"]) == 3 and len(created["deals"]) == 4
    assert len(api.get("/api/v2/deals").json()["data"]) == 10
    control.post("/reset", {"seed": "empty"})
    assert api.get("/api/v2/deals").json()["data"] == []
    control.post("/reset", {"seed": "demo"})
    assert len(api.get("/api/v2/deals").json()["data"]) == 6
