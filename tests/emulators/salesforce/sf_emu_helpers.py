"""Helpers shared by the Salesforce emulator tests (imported by conftest and test modules)."""

from __future__ import annotations

from pathlib import Path

import requests

from refstage_devkit.emulators.salesforce.server import SalesforceEmulator

HERE = Path(__file__).parent
FIXTURE_METADATA = HERE / "metadata" / "objects"
VERSION = "62.0"
CLIENT_ID = "refstage-demo"
CLIENT_SECRET = "refstage-demo-secret"
ADMIN = ("admin@refstage.test", "refstage-demo")


def make_emulator(cert_dir: Path, **kw) -> SalesforceEmulator:
    kw.setdefault("metadata_dir", FIXTURE_METADATA)
    kw.setdefault("outbound_retry_base", 0.2)
    return SalesforceEmulator(port=0, cert_dir=cert_dir, **kw)


def password_token(emu: SalesforceEmulator) -> dict:
    r = requests.post(f"{emu.base_url}/services/oauth2/token", data={
        "grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "username": ADMIN[0], "password": ADMIN[1]}, timeout=10)
    r.raise_for_status()
    return r.json()


class Api:
    """Plain requests against one org, with the version prefix and bearer token filled in."""

    def __init__(self, emu: SalesforceEmulator, token: str) -> None:
        self.emu = emu
        self.base = emu.base_url
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {token}"
        self.token = token

    def url(self, path: str) -> str:
        if path.startswith("/"):
            return self.base + path
        return f"{self.base}/services/data/v{VERSION}/{path}"

    def get(self, path: str, **kw) -> requests.Response:
        return self.s.get(self.url(path), timeout=30, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return self.s.post(self.url(path), timeout=30, **kw)

    def patch(self, path: str, **kw) -> requests.Response:
        return self.s.patch(self.url(path), timeout=30, **kw)

    def put(self, path: str, **kw) -> requests.Response:
        return self.s.put(self.url(path), timeout=30, **kw)

    def delete(self, path: str, **kw) -> requests.Response:
        return self.s.delete(self.url(path), timeout=30, **kw)

    def control(self, path: str, body: dict | None = None, method: str = "POST") -> requests.Response:
        return self.s.request(method, f"{self.base}/_emulator/{path}", json=body, timeout=120)
