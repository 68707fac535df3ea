"""The emulator's WSGI application, its TLS server and the in-process ``SalesforceEmulator`` handle."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from refstage_devkit.emulators.tls import ensure_certificates

from . import ids
from .errors import SFError
from .faults import AFTER_HANDLER, Faults
from .store import Clock, Store

log = logging.getLogger(__name__)

API_VERSIONS = [f"{v}.0" for v in range(31, 67)]
DEFAULT_VERSION = "62.0"
ORG_ID = ids.make_id("00D", 1)


def version_label(version: str) -> str:
    v = int(float(version))
    return f"{['Winter', 'Spring', 'Summer'][(v - 20) % 3]} '{11 + (v - 20) // 3:02d}"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json;charset=UTF-8")


def error_response(err: SFError) -> Response:
    return json_response(err.body(), err.status)


class ApiUsage:
    """Rolling 24-hour counters of API calls and Bulk API work, bucketed per minute."""

    DEFAULT_LIMITS = {
        "DailyApiRequests": 100000,
        "DailyBulkApiBatches": 15000,
        "DailyBulkV2QueryJobs": 10000,
        "DailyBulkV2QueryFileStorageMB": 976562,
        "DataStorageMB": 1024,
        "DailyAsyncApexExecutions": 250000,
        "ConcurrentAsyncGetReportInstances": 200,
        "DailyStreamingApiEvents": 1000000,
        "HourlyODataCallout": 10000,
    }

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.max = dict(self.DEFAULT_LIMITS)
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[int, int]] = {}
        self.ingest_records: dict[int, int] = {}

    def _minute(self) -> int:
        return self.clock.now_ms() // 60000

    def add(self, counter: str, n: int = 1) -> None:
        with self._lock:
            b = self._buckets.setdefault(counter, {})
            m = self._minute()
            b[m] = b.get(m, 0) + n

    def used(self, counter: str) -> int:
        with self._lock:
            b = self._buckets.get(counter, {})
            floor = self._minute() - 24 * 60
            for k in [k for k in b if k <= floor]:
                del b[k]
            return sum(b.values())

    def remaining(self, counter: str) -> int:
        return max(0, self.max.get(counter, 0) - self.used(counter))

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def header(self) -> str:
        return f"api-usage={self.used('DailyApiRequests')}/{self.max['DailyApiRequests']}"

    def limits_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, mx in sorted(self.max.items()):
            out[name] = {"Max": mx, "Remaining": self.remaining(name)}
        out["DailyBulkV2IngestRecords"] = {"Max": 150000000, "Remaining": self.remaining("DailyBulkV2IngestRecords")
                                           if "DailyBulkV2IngestRecords" in self.max else
                                           150000000 - self.used("DailyBulkV2IngestRecords")}
        return out


class Org:
    """Everything one emulated org knows: records, tokens, config, faults, usage, jobs, rules."""

    def __init__(self, *, seed: str = "demo", data_file: str | Path | None = None, faults: str | None = None,
                 client_id: str = "refstage-demo", client_secret: str = "refstage-demo-secret",
                 admin_username: str = "admin@refstage.test", admin_password: str = "refstage-demo",
                 session_timeout: int = 7200, metadata_dir: str | Path | None = None,
                 outbound_retry_base: float = 2.0, bulk_delay: float = 0.0, bare: bool = False) -> None:
        from .bulk2 import Bulk2
        from .deploy import Deployer
        from .flows import Automation
        from .control import seed_org
        from .oauth import OAuth
        from .outbound import Outbound

        self.clock = Clock()
        self.store = Store(data_file, Path(metadata_dir) if metadata_dir else None, self.clock)
        self.faults = Faults(faults)
        self.usage = ApiUsage(self.clock)
        self.client_id = client_id
        self.client_secret = client_secret
        self.admin_username = admin_username
        self.admin_password = admin_password
        self.session_timeout = session_timeout
        self.base_url = ""
        self.stopping = threading.Event()
        self.oauth = OAuth(self)
        self.bulk = Bulk2(self, delay=bulk_delay)
        self.outbound = Outbound(self, retry_base=outbound_retry_base)
        self.deployer = Deployer(self)
        self.automation = Automation(self)
        self.deployer.listeners.append(self.automation.reload)
        self.package_source = None if bare else package_source(metadata_dir)
        self.seed_name = seed
        if self.store.kv_get("seeded") is None:
            seed_org(self, seed)
        self.admin_id = self.store.kv_get("admin_id") or ""
        self.install_package()
        self.automation.reload()

    def install_package(self) -> list[str]:
        """Install the package's data model (its CustomObjects) through the Metadata API deploy, as an org
        where the package was installed; ``bare`` orgs start with standard objects only."""
        from .deploy import DeployOptions, install_source

        if self.package_source is None:
            return []
        source, types = self.package_source
        job = install_source(self, source, types=types, options=DeployOptions())
        if not job.success:
            problems = "; ".join(f"{m['fullName']}: {m['problem']}" for m in job.failures)
            raise RuntimeError(f"installing {source} failed: {job.error_message or problems}")
        return [m["fullName"] for m in job.successes if m["componentType"] == "CustomObject"]

    @property
    def org_id(self) -> str:
        return ORG_ID


def package_source(metadata_dir: str | Path | None) -> tuple[Path, set[str]] | None:
    """What an org starts with: an SFDX ``objects`` folder (its data model) or the repository's package."""
    if metadata_dir is None:
        path = Path(__file__).resolve().parents[4] / "sfdx" / "force-app"
    else:
        path = Path(metadata_dir)
    if path.name == "objects":
        path = path.parent
    if not path.is_dir():
        return None
    return path, {"CustomObject"}


Handler = Callable[..., Response]


class App:
    def __init__(self, org: Org) -> None:
        from . import bulk1, bulk2, control, oauth, rest, soap_partner, ui_api
        from .preview import pages as preview_pages

        self.org = org
        rules: list[Rule] = []
        self.handlers: dict[str, Handler] = {}
        from . import metadata_api, tooling

        for module in (oauth, rest, bulk2, control, ui_api, preview_pages, soap_partner, bulk1, metadata_api,
                       tooling):
            for path, methods, fn in module.routes():
                endpoint = f"{module.__name__}.{fn.__name__}"
                self.handlers[endpoint] = fn
                rules.append(Rule(path, methods=methods, endpoint=endpoint, strict_slashes=False,
                                  merge_slashes=False))
        self.url_map = Map(rules)

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        request.max_form_memory_size = 50 * 1024 * 1024
        response = self.handle(request)
        lost = environ.get(LOSE_RESPONSE)
        if lost:
            self.lose(lost, request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        org = self.org
        path = request.path
        fault = org.faults.draw(path, request.method)
        if fault in AFTER_HANDLER:
            request.environ[LOSE_RESPONSE] = fault  # served in full below, then lost by __call__
        elif fault:
            injected = self.inject(fault, request)
            if injected is not None:
                return self.decorate(request, injected)
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            if path.startswith("/services/data"):
                return self.decorate(request, error_response(
                    SFError(404, "NOT_FOUND", "The requested resource does not exist")))
            return Response("Not Found", 404)
        except MethodNotAllowed as exc:
            if path.startswith("/services/data"):
                allowed = ",".join(sorted(m for m in exc.valid_methods or [] if m not in ("HEAD", "OPTIONS")))
                return self.decorate(request, error_response(SFError(
                    405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}")))
            return Response("Method Not Allowed", 405)
        except HTTPException as exc:
            return exc.get_response()
        try:
            response = self.handlers[endpoint](org, request, **args)
        except SFError as err:
            response = error_response(err)
        except Exception:  # pragma: no cover - surfaced as Salesforce does
            log.exception("emulator error on %s %s", request.method, path)
            response = error_response(SFError(500, "UNKNOWN_EXCEPTION",
                                              "An unexpected error occurred. Please include this ErrorId if you "
                                              "contact support: 1234567890-12345 (-1234567890)"))
        return self.decorate(request, response)

    def decorate(self, request: Request, response: Response) -> Response:
        if request.path.startswith("/services/data") or request.path.startswith("/services/async"):
            response.headers["Sforce-Limit-Info"] = self.org.usage.header()
        response.headers.setdefault("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")
        return response

    def inject(self, fault: str, request: Request) -> Response | None:
        org = self.org
        if fault == "503":
            return error_response(SFError(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable"))
        if fault == "500":
            return error_response(SFError(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include "
                                          "this ErrorId if you contact support: 1234567890-99999 (-1234567890)"))
        if fault == "401":
            return error_response(SFError(401, "INVALID_SESSION_ID", "Session expired or invalid"))
        if fault == "403":
            return error_response(SFError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
        if fault == "lock":
            return error_response(SFError(400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this "
                                          "record or 1 records: " + ids.make_id("001", 0)))
        if fault == "slow":
            org.stopping.wait(org.faults.plan.slow_seconds)
            return None
        if fault in ("drop", "timeout"):
            if fault == "timeout":
                org.stopping.wait(org.faults.plan.timeout_seconds)
            sock = request.environ.get("werkzeug.socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return Response(b"", 500)
        return None


    def lose(self, fault: str, request: Request) -> None:
        """The handler ran (a write committed); now the response never arrives."""
        if fault == "timeout_after":
            self.org.stopping.wait(self.org.faults.plan.timeout_seconds)
        sock = request.environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise ConnectionAbortedError(f"emulator fault {fault}: response lost after the handler ran")


LOSE_RESPONSE = "refstage.lose_response"


class _OrgClockHandler(WSGIRequestHandler):
    """Salesforce's Date header and its SystemModstamps come from one clock: the org's (advanceable) one.
    The standard library writes the Date header itself; this makes it the org's."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        app = getattr(self.server, "app", None)
        org = getattr(app, "org", None)
        if timestamp is None and org is not None:
            timestamp = org.clock.now().timestamp()
        return super().date_time_string(timestamp)


class _QuietHandler(_OrgClockHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        if os.environ.get("REFSTAGE_SF_ACCESS_LOG"):
            super().log_request(*args, **kwargs)

    def log_error(self, *args: Any) -> None:  # noqa: D102
        pass


class SalesforceEmulator:
    """Run one emulated org over HTTPS on a background thread.

    ``SalesforceEmulator(port=0, seed="demo", ...)``; ``start()`` returns once listening;
    ``base_url``, ``ca_path``, ``org`` (state), ``control`` (the same operations as ``/_emulator/``).
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", seed: str = "demo",
                 data_file: str | Path | None = None, faults: str | None = None,
                 cert_dir: str | Path | None = None, session_timeout: int = 7200,
                 client_id: str = "refstage-demo", client_secret: str = "refstage-demo-secret",
                 admin_username: str = "admin@refstage.test", admin_password: str = "refstage-demo",
                 metadata_dir: str | Path | None = None, outbound_retry_base: float = 2.0,
                 bulk_delay: float = 0.0, access_log: bool = False, bare: bool = False) -> None:
        self.host = host
        self.port = port
        self.cert_paths = ensure_certificates(cert_dir)
        self.org = Org(seed=seed, data_file=data_file, faults=faults, client_id=client_id,
                       client_secret=client_secret, admin_username=admin_username, admin_password=admin_password,
                       session_timeout=session_timeout, metadata_dir=metadata_dir,
                       outbound_retry_base=outbound_retry_base, bulk_delay=bulk_delay, bare=bare)
        self.app = App(self.org)
        self.access_log = access_log
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        from .control import Control

        self.control = Control(self.org)

    @property
    def ca_path(self) -> str:
        return str(self.cert_paths.ca)

    @property
    def base_url(self) -> str:
        return self.org.base_url

    @property
    def instance_url(self) -> str:
        return self.org.base_url

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert_paths.cert), str(self.cert_paths.key))
        return ctx

    def start(self) -> SalesforceEmulator:
        handler = _OrgClockHandler if self.access_log else _QuietHandler
        self._server = make_server(self.host, self.port, self.app, threaded=True,
                                   ssl_context=self.ssl_context(), request_handler=handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        host = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"
        self.org.base_url = f"https://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sf-emulator-{self.port}", daemon=True)
        self._thread.start()
        self.org.outbound.start()
        return self

    def serve_forever(self) -> None:
        if self._server is None:
            self.start()
        try:
            while self._thread and self._thread.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        self.org.stopping.set()
        self.org.outbound.stop()
        self.org.bulk.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SalesforceEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def now(self) -> dt.datetime:
        return self.org.clock.now()
