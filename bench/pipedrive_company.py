"""The emulated Pipedrive company for benchmarks: its own process (so its CPU is not ours), reached over its
public API with the company's API token, as a user's script or the Pipedrive app would."""

from __future__ import annotations

import contextlib
from pathlib import Path

import requests

from bench.common import emulator_process, own_cpu_seconds

# The seeded admin's personal API token (fixed, so the benchmark can hand it to the connection).
API_TOKEN = "bench-pipedrive-api-token"


class Company:
    def __init__(self, base: str, ca: str, pid: int):
        self.base, self.ca, self.pid = base, ca, pid
        self.http = requests.Session()
        self.http.headers["x-api-token"] = API_TOKEN

    def api(self, method: str, path: str, **kw):
        """One call to /api/<path> (e.g. "v2/deals"); its `data`. verify= on each call: REQUESTS_CA_BUNDLE would
        override the session's."""
        r = self.http.request(method, f"{self.base}/api/{path}", verify=self.ca, timeout=30, **kw)
        r.raise_for_status()
        return r.json()["data"]

    def cpu_seconds(self) -> float:
        return own_cpu_seconds(self.pid)


@contextlib.contextmanager
def emulated_company(workdir: Path, seed: str = "empty"):
    """seed "empty": the standard fields and one pipeline ("Referrals", stages 1-5), no deals."""
    with emulator_process(workdir, "pipedrive", "--seed", seed, "--api-token", API_TOKEN,
                          probe="/_emulator/info") as (base, ca, pid):
        yield Company(base, ca, pid)
