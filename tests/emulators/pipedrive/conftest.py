"""Fixtures for the Pipedrive emulator tests.

`api` is a requests.Session that talks HTTPS to a fresh emulator (verify=emu.ca_path) and checks
EVERY response it receives against the official OpenAPI files in backend/refstage_devkit/emulators/reference (response
schema of the matched operation and status), the documented error envelope for errors the files
do not describe, and the documented OAuth token response. Known bugs of the official files are
patched in KNOWN_SPEC_BUGS below; each is listed in docs/emulators-pipedrive.md.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from refstage_devkit.emulators.pipedrive.server import PipedriveEmulator

from refstage_devkit.emulators.reference import PIPEDRIVE_OPENAPI_DIR as REFERENCE  # vendored, see its README

# Properties the files type as non-nullable that the real API sends as null (open deals have no
# won_time, a person without an organization has org_id null, the last page has next_cursor null...).
NULLABLE_IN_PRACTICE = {
    "org_id", "person_id", "won_time", "lost_time", "close_time", "stage_change_time",
    "archive_time", "expected_close_date", "picture_id", "next_cursor", "organization", "address",
    "last_name", "deal", "person", "lead_id", "primary_email", "probability", "lost_reason",
    "origin_id", "channel", "channel_id", "acv", "arr", "mrr", "days_to_rotten", "icon_url",
}

KNOWN_SPEC_BUGS = """
1. Non-nullable types for values the API returns as null (NULLABLE_IN_PRACTICE).
2. v2 POST /persons request lists `title` as required (persons have no title; `name` is what is required).
3. Email/phone `label` is typed boolean in v2 request bodies; real payloads carry strings ("work").
4. v1 GET /dealFields and /personFields: `field_type` is allOf two enums whose intersection leaves
   out standard types the API returns (int, status, stage, varchar_options...); checked against the union.
5. v1 field `add_time`/`update_time` are format date-time, but v1 sends "YYYY-MM-DD HH:MM:SS".
6. v1 list pagination is documented as additional_data.{start,limit,more_items_in_collection}; the API
   nests it under additional_data.pagination.
"""


def _patch(schema: Any, path: tuple[str, ...] = ()) -> Any:
    if isinstance(schema, list):
        return [_patch(s, path) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _patch(v, path + (k,)) for k, v in schema.items()}
    props = out.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            if name in NULLABLE_IN_PRACTICE and isinstance(sub, dict):
                sub["nullable"] = True
            if name in ("add_time", "update_time") and isinstance(sub, dict) and sub.get("format") == "date-time" \
                    and "field_type" in props:
                sub.pop("format")  # bug 5
            if name == "field_type" and isinstance(sub, dict) and "allOf" in sub:
                enums: list[str] = []
                for part in sub["allOf"]:
                    enums.extend(part.get("enum", []))
                props[name] = {"type": "string"}  # bug 4: checked against the union below
                props[name]["enum"] = sorted(set(enums) | {
                    "boolean", "double", "int", "json", "date", "daterange", "time", "timerange",
                    "text", "varchar", "varchar_auto", "varchar_options", "address", "enum",
                    "monetary", "phone", "set", "activity", "deal", "lead", "org", "people",
                    "pipeline", "product", "project", "stage", "user", "billing_frequency",
                    "picture", "price_list", "projects_board", "projects_phase", "status",
                    "visible_to"})
            if name == "label" and isinstance(sub, dict) and sub.get("type") == "boolean":
                props[name] = {"type": "string"}  # bug 3
    if isinstance(out.get("allOf"), list):
        # allOf members with overlapping field_type enums -- flatten the inner allOf of fields
        out["allOf"] = [m for m in out["allOf"]
                        if not (isinstance(m, dict) and set(m.get("properties", {})) == {"field_type"})]
    return out


ERROR_ENVELOPE = {
    "type": "object",
    "required": ["success", "error"],
    "properties": {
        "success": {"type": "boolean", "enum": [False]},
        "error": {"type": "string"},
        "error_info": {"type": "string"},
        "data": {"nullable": True},
        "code": {"type": "string"},
        "errorCode": {"type": "integer"},
    },
}
TOKEN_RESPONSE = {
    "type": "object",
    "required": ["access_token", "token_type", "refresh_token", "expires_in", "scope", "api_domain"],
    "properties": {"access_token": {"type": "string"}, "token_type": {"type": "string", "enum": ["Bearer"]},
                   "refresh_token": {"type": "string"}, "expires_in": {"type": "integer"},
                   "scope": {"type": "string"}, "api_domain": {"type": "string"}},
}
OAUTH_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


class Contract:
    def __init__(self) -> None:
        self.specs: dict[str, dict] = {}
        self.routes: dict[str, list[tuple[re.Pattern, str, dict]]] = {}
        for version in ("v1", "v2"):
            doc = yaml.load((REFERENCE / f"pipedrive-openapi-{version}.yaml").read_text(),
                            Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            routes = []
            for template, ops in doc["paths"].items():
                regex = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
                routes.append((regex, template, ops))
            # literal segments win over parameters (/persons/search before /persons/{id})
            routes.sort(key=lambda r: r[1].count("{"))
            self.routes[version] = routes
        self.checked: list[str] = []
        self._cache: dict[tuple, Any] = {}

    def operation(self, version: str, path: str, method: str) -> tuple[str, dict] | None:
        for regex, template, ops in self.routes[version]:
            if regex.match(path) and method.lower() in ops:
                return template, ops[method.lower()]
        return None

    def response_schema(self, version: str, path: str, method: str, status: int) -> tuple[str, Any]:
        found = self.operation(version, path, method)
        if found is None:
            return "undocumented", None
        template, op = found
        key = (version, template, method, status)
        if key not in self._cache:
            resp = op.get("responses", {}).get(str(status))
            schema = None
            if resp is not None:
                schema = _patch(copy.deepcopy(resp["content"]["application/json"]["schema"]))
            self._cache[key] = schema
        return f"{method} /{version}{template} {status}", self._cache[key]

    def validate(self, schema: dict, body: Any, label: str) -> None:
        validator = OAS30Validator(schema, format_checker=oas30_format_checker)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            details = "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
            raise AssertionError(f"contract violation on {label}: {details}")

    def check(self, resp: requests.Response) -> None:
        path = requests.utils.urlparse(resp.url).path
        method = resp.request.method
        status = resp.status_code
        if path.startswith("/api/") and "json" in resp.headers.get("Content-Type", ""):
            version, rest = path.split("/")[2], "/" + path.split("/", 3)[3]
            label, schema = self.response_schema(version, rest, method, status)
            body = resp.json()
            if schema is not None:
                self.validate(schema, body, label)
            elif status >= 400:
                self.validate(ERROR_ENVELOPE, body, f"error envelope {method} {path} {status}")
                assert body.get("data", None) is None
            else:
                raise AssertionError(f"{method} {path} {status} is not in the official files")
            self.checked.append(label)
        elif path == "/oauth/token":
            self.validate(TOKEN_RESPONSE if status == 200 else OAUTH_ERROR, resp.json(),
                          f"oauth token {status}")
            self.checked.append(f"oauth token {status}")
        elif path.startswith("/api/") and status == 403:
            assert "text/html" in resp.headers["Content-Type"]


@pytest.fixture(scope="session")
def contract() -> Contract:
    return Contract()


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pd-certs")


@pytest.fixture
def emu(cert_dir: Path):
    with PipedriveEmulator(port=0, seed="demo", cert_dir=cert_dir, webhook_time_scale=0.01) as emulator:
        yield emulator


class CheckedSession(requests.Session):
    def __init__(self, contract: Contract, base_url: str, ca: str) -> None:
        super().__init__()
        self.contract = contract
        self.base_url = base_url
        self.verify = ca

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if url.startswith("/"):
            url = self.base_url + url
        # REQUESTS_CA_BUNDLE in the environment would override session.verify: pass it explicitly.
        kwargs.setdefault("verify", self.verify)
        resp = super().request(method, url, *args, **kwargs)
        self.contract.check(resp)
        return resp


@pytest.fixture
def api(emu: PipedriveEmulator, contract: Contract):
    """Authenticated with the seeded API token (x-api-token header)."""
    session = CheckedSession(contract, emu.base_url, emu.ca_path)
    session.headers["x-api-token"] = emu.api_token
    yield session
    session.close()


@pytest.fixture
def session_for(contract: Contract):
    """Factory: a contract-checked session for another emulator instance."""
    made: list[CheckedSession] = []

    def make(emulator: PipedriveEmulator, token: str | None = None) -> CheckedSession:
        session = CheckedSession(contract, emulator.base_url, emulator.ca_path)
        if token:
            session.headers["x-api-token"] = token
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()


@pytest.fixture
def anon(emu: PipedriveEmulator, contract: Contract):
    session = CheckedSession(contract, emu.base_url, emu.ca_path)
    yield session
    session.close()


@pytest.fixture
def control(emu: PipedriveEmulator):
    session = requests.Session()
    session.verify = emu.ca_path

    class Control:
        def post(self, path: str, body: dict | None = None) -> dict:
            r = session.post(emu.base_url + "/_emulator" + path, json=body or {}, verify=emu.ca_path)
            assert r.status_code == 200, r.text
            return r.json()

        def get(self, path: str) -> dict:
            r = session.get(emu.base_url + "/_emulator" + path, verify=emu.ca_path)
            assert r.status_code == 200, r.text
            return r.json()

    yield Control()
    session.close()


class Receiver:
    """A plain-HTTP webhook receiver on loopback that records deliveries and answers per a script."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.auth: list[str | None] = []
        self.statuses: list[int] = []  # answers to hand out in order; then `default`
        self.default = 200
        self.delay = 0.0
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with receiver.cond:
                    receiver.events.append(body)
                    receiver.auth.append(self.headers.get("Authorization"))
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                    receiver.cond.notify_all()
                if receiver.delay:
                    import time
                    time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/pipedrive"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.events) >= count, timeout=timeout)
            return list(self.events)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
