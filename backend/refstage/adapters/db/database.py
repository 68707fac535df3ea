"""Engine and session factory. Built by the composition root, never at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool


#: How long a SQLite writer waits for another's transaction before "database is locked".
BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        if not memory:
            path = url.split("///", 1)[-1]
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                # Checkpoint the WAL every ~40 MB instead of every 4 MB: a big sync's commits otherwise each
                # pay a checkpoint (with its fsync).
                cursor.execute("PRAGMA wal_autocheckpoint=10000")
            # 32 MiB of page cache instead of 2 MiB: inserts into indexes keyed by random UUIDs touch pages all
            # over a big table; re-reading them from the OS cache was much of a large sync's time.
            cursor.execute("PRAGMA cache_size=-32768")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.close()

        # SQLite's default deferred transactions let two writers both read, then one fail to write.
        # BEGIN IMMEDIATE takes the write lock up front, so concurrent workers queue instead.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            # Read-only units of work (pages, look-ups) take no write lock and never wait for writers.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("refstage_readonly") else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
