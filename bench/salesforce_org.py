"""The emulated Salesforce org for benchmarks: its own process (so its CPU and memory are not ours),
seeded through the control API, with API usage read from the org's own counters."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import requests

from bench.common import emulator_process, own_cpu_seconds

CLIENT_ID, CLIENT_SECRET = "refstage-demo", "refstage-demo-secret"
VERSION = "62.0"


class Org:
    def __init__(self, base: str, ca: str, pid: int | None = None):
        self.base, self.ca, self.pid = base, ca, pid
        self.http = requests.Session()
        self.http.verify = ca
        self._token: str | None = None

    def control(self, method: str, path: str, **kw) -> dict:
        r = self.http.request(method, f"{self.base}/_emulator{path}", timeout=600, **kw)
        r.raise_for_status()
        return r.json() if r.content else {}

    def cpu_seconds(self) -> float:
        """CPU time the org's process has used so far (user + system), from /proc: how much of a wall time
        was the emulator working rather than us."""
        return 0.0 if self.pid is None else own_cpu_seconds(self.pid)

    def api_used(self) -> int:
        return int(self.control("GET", "/usage")["DailyApiRequests"]["Used"])

    def token(self) -> str:
        if self._token is None:
            self._token = self.http.post(f"{self.base}/services/oauth2/token", data={
                "grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "username": "admin@refstage.test", "password": "refstage-demo"}, timeout=30).json()["access_token"]
        return self._token

    def query_ids(self, soql: str) -> list[str]:
        """Set-up reads (their API calls are reset before measuring)."""
        headers = {"Authorization": f"Bearer {self.token()}", "Sforce-Query-Options": "batchSize=2000"}
        r = self.http.get(f"{self.base}/services/data/v{VERSION}/query", params={"q": soql}, headers=headers, timeout=600).json()
        ids = [rec["Id"] for rec in r["records"]]
        while not r.get("done", True):
            r = self.http.get(self.base + r["nextRecordsUrl"], headers=headers, timeout=600).json()
            ids.extend(rec["Id"] for rec in r["records"])
        return ids

    def bulk_update(self, sobject: str, header: list[str], rows: list[list[str]]) -> None:
        """An admin's mass update through Bulk API 2.0 (how 'everything changed' happens in a real org)."""
        h = {"Authorization": f"Bearer {self.token()}"}
        api = f"{self.base}/services/data/v{VERSION}/jobs/ingest"
        job = self.http.post(api, json={"object": sobject, "operation": "update", "contentType": "CSV", "lineEnding": "LF"},
                             headers=h, timeout=60).json()
        body = "\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n"
        self.http.put(f"{api}/{job['id']}/batches", data=body.encode(), headers={**h, "Content-Type": "text/csv"},
                      timeout=600).raise_for_status()
        self.http.patch(f"{api}/{job['id']}", json={"state": "UploadComplete"}, headers=h, timeout=60).raise_for_status()
        while True:
            state = self.http.get(f"{api}/{job['id']}", headers=h, timeout=60).json()
            if state["state"] in ("JobComplete", "Failed", "Aborted"):
                if state["state"] != "JobComplete" or int(state.get("numberRecordsFailed", 0)):
                    raise RuntimeError(f"set-up bulk update failed: {state}")
                return
            time.sleep(0.5)


@contextlib.contextmanager
def emulated_org(workdir: Path, seed: str = "demo"):
    with emulator_process(workdir, "salesforce", "--seed", seed) as (base, ca, pid):
        # requests lets REQUESTS_CA_BUNDLE override a session's verify: point it at the org's CA.
        previous = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = ca
        try:
            yield Org(base, ca, pid)
        finally:
            if previous is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = previous
