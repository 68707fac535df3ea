"""The Pipedrive emulator's Flask app and the in-process runner.

    from refstage_devkit.emulators.pipedrive.server import PipedriveEmulator
    with PipedriveEmulator(port=0, seed="demo", cert_dir=tmp) as emu:
        requests.get(emu.base_url + "/api/v2/deals", headers={"x-api-token": emu.api_token},
                     verify=emu.ca_path)
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Callable

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from refstage_devkit.emulators.tls import ensure_certificates

from . import api_v1, api_v2, control, oauth
from .company import ApiError, Company
from .faults import Faults
from .http import api_error, error_response
from .ratelimit import RateLimiter, cost_of
from .store import Clock, Store
from .webhooks import WebhookManager

log = logging.getLogger(__name__)

# OAuth scopes per operation, from the `security` blocks of the official OpenAPI files.
_R_DEALS = ("deals:read", "deals:full")
_R_CONTACTS = ("contacts:read", "contacts:full")
SCOPES: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("v2", "GET", "/deals"): _R_DEALS, ("v2", "GET", "/deals/archived"): _R_DEALS,
    ("v2", "GET", "/deals/{id}"): _R_DEALS,
    ("v2", "POST", "/deals"): ("deals:full",), ("v2", "PATCH", "/deals/{id}"): ("deals:full",),
    ("v2", "DELETE", "/deals/{id}"): ("deals:full",),
    ("v2", "GET", "/persons"): _R_CONTACTS, ("v2", "GET", "/persons/{id}"): _R_CONTACTS,
    ("v2", "GET", "/persons/search"): _R_CONTACTS + ("search:read",),
    ("v2", "POST", "/persons"): ("contacts:full",), ("v2", "PATCH", "/persons/{id}"): ("contacts:full",),
    ("v2", "DELETE", "/persons/{id}"): ("contacts:full",),
    ("v2", "GET", "/organizations"): _R_CONTACTS, ("v2", "GET", "/organizations/{id}"): _R_CONTACTS,
    ("v2", "POST", "/organizations"): ("contacts:full",),
    ("v2", "PATCH", "/organizations/{id}"): ("contacts:full",),
    ("v2", "DELETE", "/organizations/{id}"): ("contacts:full",),
    ("v2", "GET", "/pipelines"): _R_DEALS + ("admin",), ("v2", "GET", "/pipelines/{id}"): _R_DEALS + ("admin",),
    ("v2", "GET", "/stages"): _R_DEALS + ("admin",), ("v2", "GET", "/stages/{id}"): _R_DEALS + ("admin",),
    ("v1", "GET", "/dealFields"): _R_DEALS + ("admin",), ("v1", "GET", "/dealFields/{id}"): _R_DEALS + ("admin",),
    ("v1", "POST", "/dealFields"): ("admin",),
    ("v1", "GET", "/personFields"): _R_CONTACTS + ("admin",),
    ("v1", "GET", "/personFields/{id}"): _R_CONTACTS + ("admin",),
    ("v1", "POST", "/personFields"): ("admin",),
    ("v1", "GET", "/notes"): _R_DEALS + _R_CONTACTS, ("v1", "GET", "/notes/{id}"): _R_DEALS + _R_CONTACTS,
    ("v1", "POST", "/notes"): ("deals:full", "contacts:full"),
    ("v1", "GET", "/webhooks"): ("admin",), ("v1", "POST", "/webhooks"): ("admin",),
    ("v1", "DELETE", "/webhooks/{id}"): ("admin",),
    ("v1", "GET", "/users/me"): ("base",), ("v1", "GET", "/users"): ("users:read", "admin"),
}

_RULE_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def _template(rule: str) -> tuple[str, str]:
    """'/api/v2/deals/<int:deal_id>' -> ('v2', '/deals/{id}')."""
    _, _, version, rest = rule.split("/", 3)
    return version, "/" + _RULE_PARAM.sub("{id}", rest)


class EmulatorState:
    """Everything one emulated company holds; shared by the blueprints."""

    def __init__(self, *, seed: str = "demo", faults: str | None = None,
                 webhook_time_scale: float = 1.0, token_ttl: int = 3600,
                 daily_token_budget: int = 150_000, burst_limit: int = 80,
                 search_burst_limit: int = 10, api_token: str | None = None,
                 db_path: str = ":memory:", webhook_timeout: float = 10.0) -> None:
        self.clock = Clock()
        self.store = Store(self.clock, db_path)
        self.faults = Faults(faults)
        self.stopping = threading.Event()
        self.store.search_lag = lambda: self.faults.spec.search_lag
        self.limiter = RateLimiter(self.clock, daily_token_budget, burst_limit, search_burst_limit)
        self.webhooks = WebhookManager(self.store, self.clock, self.faults, time_scale=webhook_time_scale,
                                       timeout=webhook_timeout)
        self.company = Company(self.store, self.clock, on_event=self.webhooks.on_event)
        self.oauth = oauth.OAuthState(self.clock, token_ttl=token_ttl)
        self.api_token = self.oauth.seed(api_token)
        self.seed_kind = seed
        self.base_url = ""
        self.company.seed(seed)

    def reset(self, seed: str | None = None) -> None:
        """Back to a freshly seeded company. OAuth tokens and the API token survive."""
        seed = seed or self.seed_kind
        with self.store.lock:
            for hook in self.store.all("webhook"):
                self.webhooks.delete(hook["id"])
            self.webhooks.clear()
            self.store.clear()
            self.limiter.reset()
            self.company.seed(seed)
        self.seed_kind = seed


def create_app(state: EmulatorState) -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_blueprint(oauth.blueprint(state.oauth, lambda: state.base_url))
    app.register_blueprint(api_v2.blueprint(state))
    app.register_blueprint(api_v1.blueprint(state))
    app.register_blueprint(control.blueprint(state))

    @app.before_request
    def api_gate() -> Response | None:
        if not request.path.startswith("/api/"):
            return None
        search = request.path.endswith("/search")
        forced = state.faults.request_fault()
        if forced is not None:
            resp = error_response(forced, "Request over limit" if forced == 429 else
                                  {500: "Internal server error", 502: "Bad gateway",
                                   503: "Service unavailable", 504: "Gateway timeout"}.get(forced, "Error"),
                                  "Injected by the emulator's fault plan")
            if forced == 429:
                resp.headers.update(state.limiter.forced_headers("fault", search))
            return resp
        bearer = None
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            bearer = header[7:].strip()
        token = request.headers.get("x-api-token") or request.args.get("api_token")
        principal, why = state.oauth.authenticate(bearer, token)
        if principal is None:
            return error_response(401, "unauthorized access", why, errorCode=401)
        if request.url_rule is None:
            return error_response(404, "Unknown method .")
        version, template = _template(request.url_rule.rule)
        needed = SCOPES.get((version, request.method, template))
        if principal.scopes is not None and needed is not None and not (principal.scopes & set(needed)):
            return error_response(403, "Scope and URL mismatch", errorCode=403)
        decision = state.limiter.check(principal.key, f"{request.method} /api/{version}{template}",
                                       cost_of(request.method, version, template), search)
        if decision.status == 403:
            return Response("<html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1>"
                            "<p>Too many requests after rate limiting. Back off.</p></body></html>",
                            status=403, mimetype="text/html", headers=decision.headers)
        if not decision.allowed:
            resp = error_response(429, decision.reason, "Rate limit exceeded. Retry after x-ratelimit-reset seconds.")
            resp.headers.update(decision.headers)
            return resp
        g.principal = principal
        g.ratelimit_headers = decision.headers
        lose = state.faults.after_fault(request.method, request.path)
        if lose:
            request.environ[LOSE_RESPONSE] = lose  # served in full, then lost by lose_responses()
        return None

    @app.after_request
    def add_headers(resp: Response) -> Response:
        headers = getattr(g, "ratelimit_headers", None)
        if headers:
            for k, v in headers.items():
                resp.headers.setdefault(k, v)
        if request.path.startswith("/api/"):
            cost = None
            if request.url_rule is not None:
                version, template = _template(request.url_rule.rule)
                cost = cost_of(request.method, version, template)
            if cost is not None:
                resp.headers["x-token-cost"] = str(cost)
        return resp

    @app.errorhandler(ApiError)
    def on_api_error(exc: ApiError) -> Response:
        return api_error(exc)

    @app.errorhandler(HTTPException)
    def on_http(exc: HTTPException) -> Response:
        if request.path.startswith("/api/") or request.path.startswith("/_emulator/"):
            if exc.code == 404:
                return error_response(404, "Unknown method .")
            if exc.code == 405:
                return error_response(405, "Method not allowed")
            return error_response(exc.code or 500, exc.description or "Error")
        return exc.get_response()

    @app.errorhandler(Exception)
    def on_crash(exc: Exception) -> Response:
        log.exception("emulator crashed on %s %s", request.method, request.path)
        return error_response(500, "Internal server error", str(exc))

    app.wsgi_app = lose_responses(app.wsgi_app, state)  # type: ignore[method-assign]
    return app


LOSE_RESPONSE = "refstage.lose_response"


def lose_responses(wsgi_app: Callable, state: "EmulatorState") -> Callable:
    """The after-handler faults: the request is served in full (a write commits, its webhooks fire)
    and only then is the connection closed without a response, at once (`drop_after`) or after
    holding it for the plan's timeout (`timeout_after`)."""

    def app(environ: dict, start_response: Callable) -> Any:
        captured: list[tuple] = []
        body = wsgi_app(environ, lambda *args: captured.append(args) or (lambda data: None))
        kind = environ.get(LOSE_RESPONSE)
        if not kind:
            start_response(*captured[0])
            return body
        if hasattr(body, "close"):
            body.close()
        if kind == "timeout_after":
            state.stopping.wait(state.faults.spec.timeout_seconds)
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise ConnectionAbortedError(f"emulator fault {kind}: response lost after the handler ran")

    return app


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (the in-process runner is used by tests and benchmarks)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class PipedriveEmulator:
    """Run the emulator in a background thread over HTTPS."""

    def __init__(self, port: int = 0, seed: str = "demo", faults: str | None = None,
                 cert_dir: str | Path | None = None, webhook_time_scale: float = 1.0,
                 token_ttl: int = 3600, host: str = "127.0.0.1", api_token: str | None = None,
                 daily_token_budget: int = 150_000, burst_limit: int = 80,
                 search_burst_limit: int = 10, webhook_timeout: float = 10.0,
                 access_log: bool = False) -> None:
        self.host = host
        self.access_log = access_log
        self.port = port
        self.certs = ensure_certificates(cert_dir)
        self.state = EmulatorState(seed=seed, faults=faults, webhook_time_scale=webhook_time_scale,
                                   token_ttl=token_ttl, daily_token_budget=daily_token_budget,
                                   burst_limit=burst_limit, search_burst_limit=search_burst_limit,
                                   api_token=api_token, webhook_timeout=webhook_timeout)
        self.app = create_app(self.state)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def ca_path(self) -> str:
        return str(self.certs.ca)

    @property
    def api_token(self) -> str:
        return self.state.api_token

    @property
    def base_url(self) -> str:
        return self.state.base_url

    def start(self) -> "PipedriveEmulator":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.certs.cert), str(self.certs.key))
        self._server = make_server(self.host, self.port, self.app, threaded=True, ssl_context=ctx,
                                   request_handler=None if self.access_log else _QuietHandler)
        self.port = self._server.server_port
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        self.state.base_url = f"https://{host}:{self.port}"
        server = self._server
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05),
                                        name="pipedrive-emulator",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Foreground variant for the CLI (starts the server unless already started)."""
        if self._server is None:
            self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        self.state.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.state.webhooks.stop()

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        return self.state.webhooks.wait_idle(timeout)

    def __enter__(self) -> "PipedriveEmulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
