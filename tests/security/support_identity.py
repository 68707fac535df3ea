"""Attackers' infrastructure for the identity and SSRF tests, all on loopback:

* `FakeIdentityProvider`: an OpenID provider over real HTTPS (its own discovery document, JWKS, authorize
  and token endpoints, identity URL) that signs whatever identity it is told to claim, and records every
  request, so a test can assert that the Salesforce client secret never reached it.
* `Listener`: a plain HTTP server that records every request and answers with an "internal" body.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

from refstage_devkit.emulators.tls import ensure_certificates
from tests.admin.conftest import csrf  # the console tests' one CSRF helper (also re-exported)


class FakeIdentityProvider:
    """An identity provider an attacker runs. `claims` are the identity its id tokens assert."""

    def __init__(self, cert_dir, *, org_id: str, user_id: str, client_id: str) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "attacker", "use": "sig", "alg": "RS256"})
        self.org_id, self.user_id, self.client_id = org_id, user_id, client_id
        self.requests: list[dict[str, Any]] = []
        self.nonces: dict[str, str] = {}
        self.overrides: dict[str, str] = {}  # discovery fields to point elsewhere
        self.certs = ensure_certificates(cert_dir)
        app = Flask("fake-idp")
        app.add_url_rule("/.well-known/openid-configuration", view_func=self._discovery)
        app.add_url_rule("/services/oauth2/authorize", view_func=self._authorize)
        app.add_url_rule("/services/oauth2/token", view_func=self._token, methods=["POST"])
        app.add_url_rule("/services/oauth2/revoke", view_func=self._revoke, methods=["POST"])
        app.add_url_rule("/id/keys", view_func=self._keys)
        app.add_url_rule("/id/<org>/<user>", view_func=self._identity)
        app.before_request(self._record)
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.certs.cert), str(self.certs.key))
        self.server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=context)
        self.base_url = f"https://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- what the tests look at ------------------------------------------------------------------
    def secret_seen(self, secret: str) -> bool:
        return any(secret in json.dumps(r) for r in self.requests)

    def __enter__(self) -> "FakeIdentityProvider":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.thread.join(5)

    # --- the provider ------------------------------------------------------------------------------
    def _record(self) -> None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            auth = base64.b64decode(auth[6:]).decode("utf-8", "replace")
        self.requests.append({"method": request.method, "path": request.path, "args": request.args.to_dict(),
                              "form": request.form.to_dict(), "authorization": auth})

    def _discovery(self):
        base = self.base_url
        doc = {"issuer": base, "authorization_endpoint": f"{base}/services/oauth2/authorize",
               "token_endpoint": f"{base}/services/oauth2/token", "jwks_uri": f"{base}/id/keys",
               "id_token_signing_alg_values_supported": ["RS256"]}
        return jsonify({**doc, **self.overrides})

    def _authorize(self):
        code = f"code-{len(self.nonces) + 1}"
        self.nonces[code] = request.args.get("nonce", "")
        query = urlencode({"code": code, "state": request.args.get("state", "")})
        return redirect(f"{request.args['redirect_uri']}?{query}")

    def _token(self):
        now = int(time.time())
        issuer = self.overrides.get("issuer", self.base_url)
        claims = {"iss": issuer, "aud": self.client_id, "sub": f"{self.base_url}/id/{self.org_id}/{self.user_id}",
                  "exp": now + 300, "iat": now, "nonce": self.nonces.get(request.form.get("code", ""), ""),
                  "organization_id": self.org_id, "user_id": self.user_id}
        id_token = jwt.encode({"alg": "RS256", "kid": "attacker"}, claims, self.key)
        return jsonify({"access_token": "attacker-access", "refresh_token": "attacker-refresh", "id_token": id_token,
                        "instance_url": self.base_url, "id": f"{self.base_url}/id/{self.org_id}/{self.user_id}",
                        "issued_at": str(now * 1000), "token_type": "Bearer", "scope": "api refresh_token id openid"})

    def _revoke(self):
        return "", 200

    def _keys(self):
        return jsonify({"keys": [self.key.as_dict(private=False)]})

    def _identity(self, org: str, user: str):
        return jsonify({"organization_id": org, "user_id": user, "username": "victim@victim.test"})


def follow_authorize(authorize_url: str, ca: str) -> dict[str, str]:
    """What the victim's browser does at the attacker's authorize page: returns the callback's query."""
    import requests

    resp = requests.get(authorize_url, verify=ca, allow_redirects=False, timeout=10)
    return {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}


class Listener:
    """An internal service an attacker wants to reach: records requests, answers a secret body (with a
    5xx by default, so a delivery log that keeps bodies would show it)."""

    BODY = b"INTERNAL-ONLY: db_password=hunter2"

    def __init__(self, status: int = 503, location: str | None = None) -> None:
        self.hits: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_ANY(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.hits.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                   "body": self.rfile.read(length).decode("utf-8", "replace")})
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(Listener.BODY)))
                self.end_headers()
                self.wfile.write(Listener.BODY)

            do_GET = do_POST = do_PUT = do_ANY

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Listener":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def side_effects(rt) -> dict[str, Any]:
    """What an attack could change: people, keys, connections and their secrets, audit, webhooks."""
    from sqlalchemy import func, select

    from refstage.adapters.db import models as m

    def count(model, *where) -> int:
        return s.scalar(select(func.count()).select_from(model).where(*where))

    with rt.session_factory() as s:
        return {
            "users": count(m.UserRow), "api_keys": count(m.ApiKeyRow), "connections": count(m.ConnectionRow),
            "active": count(m.ConnectionRow, m.ConnectionRow.status == "active"),
            "credentials": count(m.ConnectionRow, m.ConnectionRow.credentials.is_not(None)),
            "audit": count(m.AuditRow), "webhook_endpoints": count(m.WebhookEndpointRow),
            "webhook_deliveries": count(m.WebhookDeliveryRow),
        }


def sign_in(client, email: str, password: str) -> None:
    resp = client.post("/admin/login", data={"email": email, "password": password, "csrf_token": csrf(client)})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
