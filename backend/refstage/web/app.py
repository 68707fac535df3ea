"""Flask app factory: the only place the web layer is assembled."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from refstage.config import Settings, load_settings
from refstage.logs import configure_logging
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    """defaults → environment → test overrides. Refuses to start in production without secrets."""
    if runtime is None:
        configure_logging()
        from refstage.bootstrap import build_runtime

        runtime = build_runtime(settings or load_settings())
    settings = runtime.settings
    app = Flask(__name__, instance_path=str(settings.instance_dir), instance_relative_config=False)
    from refstage.web.json_body import BoundedJSONProvider

    app.json = BoundedJSONProvider(app)  # request JSON: bounded depth, no NUL or lone surrogates
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        MAX_CONTENT_LENGTH=1 * 1024 * 1024,
        REFSTAGE_DEMO=settings.env == "demo",
    )
    if test_config:
        app.config.update(test_config)
    app.extensions["refstage"] = runtime

    from refstage.web import api, csrf, errors, headers, health, openapi, pipedrive, public, salesforce, sessions
    from refstage.web.admin import bp as admin_bp

    app.session_interface = sessions.LazySessionInterface()

    errors.init_app(app)
    headers.init_app(app)
    csrf.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    app.register_blueprint(openapi.bp, url_prefix="/api")  # the OpenAPI document and /api/docs
    app.register_blueprint(public.bp)  # /r/<code>, /join, advocate status pages
    from refstage.web import identity

    app.register_blueprint(identity.bp)  # company_of(program) in every template
    app.register_blueprint(admin_bp)  # /admin
    app.register_blueprint(salesforce.bp)  # OAuth connect and the Outbound Message receiver
    app.register_blueprint(pipedrive.bp)  # OAuth/API-token connect and the webhook receiver
    if settings.trusted_proxies:
        # Behind a load balancer: the client address, scheme and host come from the proxies' X-Forwarded-*
        # headers, counting only the last `trusted_proxies` hops (anything earlier a client could forge).
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]
    if settings.generated_secrets:
        log.warning("running with generated development secrets from %s", settings.instance_dir)
    return app
