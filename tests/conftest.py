"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when REFSTAGE_TEST_DATABASE_URL
names one), a runtime with a controllable clock, the Flask app and client."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from refstage.adapters.db.database import make_engine
from refstage.adapters.db.migrate import upgrade_engine
from refstage.config import Settings
from refstage.services.runtime import RecordingQueue, Runtime

TEST_DB_URL = os.environ.get("REFSTAGE_TEST_DATABASE_URL", "").strip()
TEST_REDIS_URL = os.environ.get("REFSTAGE_TEST_REDIS_URL", "").strip()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False, help="also run slow/long-mode tests")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long mode, run with --long")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long mode: run with --long")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


class Clock:
    """A clock tests move by hand; services read time only through the runtime."""

    def __init__(self, start: dt.datetime | None = None):
        self.now = start or dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> dt.datetime:
        self.now += dt.timedelta(**kwargs)
        return self.now


@pytest.fixture(scope="session")
def db_backend() -> str:
    return "postgresql" if TEST_DB_URL.startswith("postgresql") else "sqlite"


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_engine(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _postgres_engine():
    if not TEST_DB_URL:
        yield None
        return
    engine = make_engine(TEST_DB_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade_engine(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db_url(tmp_path: Path, _sqlite_template: Path, _postgres_engine) -> str:
    if _postgres_engine is not None:
        tables = [r[0] for r in _postgres_engine.connect().execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"))]
        with _postgres_engine.begin() as conn:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        return TEST_DB_URL
    path = tmp_path / "refstage.db"
    shutil.copy(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        env="test", instance_dir=tmp_path, database_url=db_url, secret_key="t" * 48,
        encryption_keys=(Fernet.generate_key().decode(),), base_url="https://refer.example.test",
        redis_url=None, queue_path=tmp_path / "queue.db",
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(settings: Settings):
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def rt(settings: Settings, engine, clock: Clock) -> Runtime:
    from refstage.bootstrap import build_runtime

    return build_runtime(settings, engine=engine, queue=RecordingQueue(), clock=clock)


@pytest.fixture
def app(rt: Runtime):
    from refstage.web.app import create_app

    return create_app(runtime=rt, test_config={"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()
