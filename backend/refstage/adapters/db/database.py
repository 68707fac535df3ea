"""Engine and session factory. Built by the composition root, never at import time."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from refstage.adapters.db import json_codec


log = logging.getLogger(__name__)

#: How long a SQLite writer waits for another's transaction before "database is locked".
BUSY_TIMEOUT_MS = 30_000
#: Seconds between background WAL checkpoints (see WalCheckpointer).
CHECKPOINT_INTERVAL = 0.5


class WalCheckpointer:
    """Copies a SQLite database's write-ahead log into the database file from a background thread, every
    `interval` seconds, in PASSIVE mode (it never waits for readers or writers, nor blocks them).

    Without it, the commit that fills the log past wal_autocheckpoint copies the whole log and syncs it, on
    the request or job that made the commit: form posts under load stalled for about 100 ms each time, and
    posts queued behind them. With most of the log copied in the background, that commit has little left
    to do; the autocheckpoint stays on as the backstop. One per database file per process (a forked worker
    starts its own), shared by the engines on that file; it stops once they are all disposed or collected,
    or when the file is gone."""

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL) -> None:
        self.path = path
        self.key = (os.getpid(), path)  # its place in _CHECKPOINTERS
        self.interval = interval
        self.runs = 0
        self.last: tuple[int, int, int] | None = None  # (busy, frames in the log, frames copied)
        self._engines: weakref.WeakSet[Engine] = weakref.WeakSet()
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint {Path(path).name}", daemon=True)

    def start(self) -> "WalCheckpointer":
        self._thread.start()
        return self

    def attach(self, engine: Engine) -> None:
        self._engines.add(engine)

    def detach(self, engine: Engine) -> None:
        with _CHECKPOINTERS_LOCK:  # not while wal_checkpointer() hands this one to another engine
            self._engines.discard(engine)
            if not self._engines:
                self._stop.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def checkpoint(self) -> tuple[int, int, int]:
        # mode=rw: never create a database that was removed meanwhile.
        conn = sqlite3.connect(f"file:{quote(self.path)}?mode=rw", uri=True, timeout=0, check_same_thread=False)
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()
        self.runs += 1
        self.last = (busy, frames, copied)
        return self.last

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self._engines or not os.path.exists(self.path):
                break
            try:
                self.checkpoint()
            except sqlite3.Error as exc:  # the commits' own autocheckpoint still keeps the log in bounds
                # Once as a warning, not twice a second for as long as it lasts.
                log.log(logging.DEBUG if self._warned else logging.WARNING,
                        "background WAL checkpoint of %s failed: %s", self.path, exc)
                self._warned = True
        with _CHECKPOINTERS_LOCK:
            if _CHECKPOINTERS.get(self.key) is self:
                del _CHECKPOINTERS[self.key]


_CHECKPOINTERS: dict[tuple[int, str], WalCheckpointer] = {}
_CHECKPOINTERS_LOCK = threading.Lock()


def wal_checkpointer(path: str, engine: Engine) -> WalCheckpointer:
    """This process's running checkpointer for the database file at `path`, started if there is none, with
    `engine` among the engines it serves."""
    key = (os.getpid(), path)
    with _CHECKPOINTERS_LOCK:
        found = _CHECKPOINTERS.get(key)
        if found is None or not found.alive:
            found = WalCheckpointer(path)
            _CHECKPOINTERS[found.key] = found
            found.attach(engine)
            return found.start()
        found.attach(engine)
        return found


def private_dir(path: Path | str) -> None:
    """Create a folder only its owner can enter (0700); a folder that exists is left as it is (it may be
    one the operator chose and shares on purpose)."""
    Path(path).mkdir(mode=0o700, parents=True, exist_ok=True)


def private_file(path: Path | str) -> None:
    """Make sure a file we own (a database, a queue, a secret) exists with mode 0600, tightening one an
    older version created world-readable. SQLite gives its -wal and -shm files the database's mode."""
    path = Path(path)
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def make_engine(url: str, **kwargs: Any) -> Engine:
    kwargs.setdefault("json_serializer", json_codec.dumps)
    kwargs.setdefault("json_deserializer", json_codec.loads)
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        if not memory:
            path = url.split("///", 1)[-1].split("?", 1)[0]
            private_file(path)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
            **kwargs,
        )
        engine_ref = weakref.ref(engine)  # the listeners must not keep the engine alive for its checkpointer
        file_path = None if memory else str(Path(engine.url.database).resolve())

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                # The commits' own checkpoint only every ~40 MB instead of every 4 MB (a big sync's commits
                # otherwise each paid one, with its fsync); WalCheckpointer copies the log in between.
                cursor.execute("PRAGMA wal_autocheckpoint=10000")
            # 32 MiB of page cache instead of 2 MiB: inserts into indexes keyed by random UUIDs touch pages all
            # over a big table; re-reading them from the OS cache was much of a large sync's time.
            cursor.execute("PRAGMA cache_size=-32768")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.close()
            live = engine_ref()
            if file_path is not None and live is not None:
                wal_checkpointer(file_path, live)

        @event.listens_for(engine, "engine_disposed")
        def _stop_checkpoints(disposed: Engine) -> None:
            current = _CHECKPOINTERS.get((os.getpid(), file_path)) if file_path is not None else None
            if current is not None:
                current.detach(disposed)

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
