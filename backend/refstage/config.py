"""Configuration from the environment. One place, read once per process, passed explicitly."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

log = logging.getLogger(__name__)

PRODUCTION_ENVS = {"production", "prod"}


class ConfigError(RuntimeError):
    """The process cannot run safely with the configuration it was given."""


def normalise_database_url(url: str) -> str:
    # Heroku-style URLs say postgres://; SQLAlchemy wants a dialect and driver.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@dataclass(frozen=True)
class Settings:
    env: str
    instance_dir: Path
    database_url: str
    secret_key: str
    encryption_keys: tuple[str, ...]
    base_url: str
    redis_url: str | None
    queue_path: Path
    generated_secrets: bool = False
    queue_name: str = "refstage"
    sync_interval_seconds: int = 300
    api_budget_fraction: float = 0.8
    smtp_url: str | None = None
    mail_from: str = "Refstage <no-reply@refstage.local>"
    extra: dict[str, str] = field(default_factory=dict)
    #: Extra Salesforce login hosts an administrator trusts (host names or *.suffix patterns).
    salesforce_login_hosts: tuple[str, ...] = ()
    #: Development/demo only: the CRM emulators on loopback count as Salesforce/Pipedrive hosts.
    allow_loopback_crm_hosts: bool = False
    #: Development only: webhook endpoints may point at loopback, private or link-local addresses.
    allow_private_webhook_targets: bool = False
    # How many reverse proxies in front of the web process append X-Forwarded-For/-Proto/-Host/-Port
    # (0: none, the headers are ignored, as anyone can send them).
    trusted_proxies: int = 0

    @property
    def is_production(self) -> bool:
        return self.env in PRODUCTION_ENVS

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _local_secret(instance_dir: Path, name: str, factory) -> str:
    """Dev/demo only: a secret generated once and kept in instance/, so restarts keep working."""
    path = instance_dir / name
    if path.exists():
        if path.stat().st_mode & 0o077:  # written world-readable by an older version
            path.chmod(0o600)
        return path.read_text().strip()
    value = factory()
    instance_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def _flag(env_vars: dict[str, str], name: str) -> bool:
    value = env_vars.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1/true/yes or 0/false/no, not {value!r}")


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env_vars = dict(os.environ if environ is None else environ)
    env = env_vars.get("REFSTAGE_ENV", "development").lower()
    instance_dir = Path(env_vars.get("REFSTAGE_INSTANCE_DIR", "instance")).resolve()
    database_url = normalise_database_url(
        env_vars.get("DATABASE_URL") or f"sqlite:///{instance_dir / 'refstage.db'}"
    )
    secret_key = env_vars.get("SECRET_KEY", "")
    keys = tuple(k.strip() for k in env_vars.get("REFSTAGE_ENCRYPTION_KEYS", "").split(",") if k.strip())
    generated = False
    if env in PRODUCTION_ENVS:
        missing = [name for name, value in (("SECRET_KEY", secret_key), ("REFSTAGE_ENCRYPTION_KEYS", keys)) if not value]
        if missing:
            raise ConfigError(
                f"refusing to start in production without {' and '.join(missing)}; "
                "generate a key with `refstage db generate-key`"
            )
        if len(secret_key) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters in production")
    else:
        if not secret_key:
            secret_key = _local_secret(instance_dir, "secret_key", lambda: secrets.token_urlsafe(48))
            generated = True
        if not keys:
            keys = (_local_secret(instance_dir, "encryption_key", lambda: Fernet.generate_key().decode()),)
            generated = True
    allow_loopback_crm = _flag(env_vars, "REFSTAGE_ALLOW_LOOPBACK_CRM_HOSTS")
    allow_private_webhooks = _flag(env_vars, "REFSTAGE_ALLOW_PRIVATE_WEBHOOK_TARGETS")
    if env in PRODUCTION_ENVS and (allow_loopback_crm or allow_private_webhooks):
        raise ConfigError("REFSTAGE_ALLOW_LOOPBACK_CRM_HOSTS and REFSTAGE_ALLOW_PRIVATE_WEBHOOK_TARGETS are for "
                          "development and demos; refusing to start in production with them set")
    from refstage.domain.hosts import parse_host_patterns

    try:
        login_hosts = parse_host_patterns(env_vars.get("REFSTAGE_SALESFORCE_LOGIN_HOSTS"))
    except ValueError as exc:
        raise ConfigError(f"REFSTAGE_SALESFORCE_LOGIN_HOSTS: {exc}") from exc
    for key in keys:
        try:
            Fernet(key.encode())
        except (ValueError, TypeError) as exc:
            raise ConfigError("REFSTAGE_ENCRYPTION_KEYS holds a key that is not a Fernet key") from exc
    return Settings(
        env=env,
        instance_dir=instance_dir,
        database_url=database_url,
        secret_key=secret_key,
        encryption_keys=keys,
        base_url=env_vars.get("REFSTAGE_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
        redis_url=env_vars.get("REDIS_URL") or None,
        queue_path=Path(env_vars.get("REFSTAGE_QUEUE_PATH", str(instance_dir / "queue.db"))),
        generated_secrets=generated,
        queue_name=env_vars.get("REFSTAGE_QUEUE_NAME", "refstage"),
        sync_interval_seconds=int(env_vars.get("REFSTAGE_SYNC_INTERVAL", "300")),
        api_budget_fraction=float(env_vars.get("REFSTAGE_API_BUDGET_FRACTION", "0.8")),
        smtp_url=env_vars.get("REFSTAGE_SMTP_URL") or None,
        mail_from=env_vars.get("REFSTAGE_MAIL_FROM", "Refstage <no-reply@refstage.local>"),
        salesforce_login_hosts=login_hosts,
        allow_loopback_crm_hosts=allow_loopback_crm,
        allow_private_webhook_targets=allow_private_webhooks,
        trusted_proxies=_trusted_proxies(env_vars.get("REFSTAGE_TRUSTED_PROXIES", "0")),
    )


def _trusted_proxies(raw: str) -> int:
    try:
        count = int(raw.strip() or "0")
    except ValueError:
        raise ConfigError("REFSTAGE_TRUSTED_PROXIES must be a whole number of proxies (0 to 5)") from None
    if not 0 <= count <= 5:
        raise ConfigError("REFSTAGE_TRUSTED_PROXIES must be between 0 and 5")
    return count
