"""Composition root: settings → engine → runtime (→ queue). Nothing is built at import time."""

from __future__ import annotations

import logging
from typing import Any

from refstage.adapters import outbound
from refstage.adapters.crm import factory
from refstage.adapters.crm.pipedrive import connector as pipedrive_connector
from refstage.adapters.crm.salesforce import connector as salesforce_connector
from refstage.adapters.crypto import Vault
from refstage.adapters.db.database import make_engine, make_session_factory
from refstage.adapters.db.unit_of_work import UnitOfWork
from refstage.config import Settings, load_settings
from refstage.services.runtime import Runtime

log = logging.getLogger(__name__)


def adapter_ports() -> dict[str, Any]:
    """The adapters behind the services' ports (services.ports), by Runtime field: services never import them."""
    return {"crm_gateways": factory.gateway_for, "salesforce": salesforce_connector, "pipedrive": pipedrive_connector,
            "outbound": outbound}


def build_runtime(settings: Settings | None = None, *, queue: Any = None, engine: Any = None, **overrides: Any) -> Runtime:
    settings = settings or load_settings()
    if settings.generated_secrets:
        log.warning("development secrets in use (generated under %s); set SECRET_KEY and "
                    "REFSTAGE_ENCRYPTION_KEYS in production", settings.instance_dir)
    engine = engine or make_engine(settings.database_url)
    overrides.setdefault("unit_of_work", UnitOfWork)
    for name, port in adapter_ports().items():
        overrides.setdefault(name, port)
    rt = Runtime(settings=settings, session_factory=make_session_factory(engine), vault=Vault(settings.encryption_keys), **overrides)
    if queue is None:
        from refstage.jobs.queue import HueyQueue, make_huey

        queue = HueyQueue(make_huey(settings), rt)
    rt.jobs = queue
    return rt


def migrate(settings: Settings | None = None) -> None:
    """Bring the database to the newest schema (`refstage serve` does this first)."""
    from refstage.adapters.db.migrate import upgrade

    upgrade((settings or load_settings()).database_url)
