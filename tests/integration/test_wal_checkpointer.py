"""The background WAL checkpointer of SQLite file databases (adapters/db/database.py): it copies the log while
the app writes, so a commit that reaches wal_autocheckpoint does not copy the whole log itself."""

import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from refstage.adapters.db import database


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _write(engine, rows=500):
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (a TEXT)"))
        for _ in range(rows):
            conn.execute(text("INSERT INTO t VALUES (:a)"), {"a": "x" * 500})


def _checkpointer(path):
    return database._CHECKPOINTERS.get((os.getpid(), str(path.resolve())))


def test_a_file_database_gets_a_checkpointer_that_copies_the_log_in_the_background(tmp_path):
    engine = database.make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        _write(engine)
        checkpointer = _checkpointer(tmp_path / "app.db")
        assert checkpointer is not None and checkpointer.alive
        # Nothing but the background thread checkpoints here: the log is far below wal_autocheckpoint.
        assert _wait(lambda: checkpointer.last is not None and checkpointer.last[1] > 0)
        busy, frames, copied = checkpointer.last
        assert busy == 0 and copied == frames
    finally:
        engine.dispose()


def test_engines_on_one_file_share_it_and_it_stops_when_the_last_is_disposed(tmp_path):
    first = database.make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    second = database.make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    _write(first, 10)
    _write(second, 10)
    checkpointer = _checkpointer(tmp_path / "app.db")
    first.dispose()
    assert checkpointer.alive  # the second engine still writes to the file
    second.dispose()
    assert _wait(lambda: not checkpointer._thread.is_alive())
    assert _checkpointer(tmp_path / "app.db") is None


def test_an_engine_used_again_after_dispose_gets_a_running_one(tmp_path):
    engine = database.make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    _write(engine, 10)
    engine.dispose()
    _write(engine, 10)
    try:
        assert _checkpointer(tmp_path / "app.db").alive
    finally:
        engine.dispose()


def test_it_stops_when_the_file_is_gone_and_never_creates_it_again(tmp_path):
    path = tmp_path / "app.db"
    engine = database.make_engine(f"sqlite:///{path}")
    _write(engine, 10)
    checkpointer = _checkpointer(path)
    engine.dispose()  # closes the pooled connections, as a test's teardown would before deleting its files
    checkpointer.attach(engine)  # ...but suppose an engine were still alive: the missing file alone stops it
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.remove(f"{path}{suffix}")
    assert _wait(lambda: not checkpointer._thread.is_alive())
    assert not path.exists()


def test_each_process_has_its_own(tmp_path, monkeypatch):
    engine = database.make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        _write(engine, 10)
        parent = _checkpointer(tmp_path / "app.db")
        monkeypatch.setattr(database.os, "getpid", lambda: -1)  # as in a forked worker: the parent's thread is not there
        child = database.wal_checkpointer(str((tmp_path / "app.db").resolve()), engine)
        assert child is not parent and child.alive
        child.detach(engine)
        assert _wait(lambda: not child._thread.is_alive())
        assert (-1, str((tmp_path / "app.db").resolve())) not in database._CHECKPOINTERS  # it removed itself
    finally:
        monkeypatch.undo()
        engine.dispose()


def test_in_memory_databases_have_none(monkeypatch):
    started = []
    monkeypatch.setattr(database, "wal_checkpointer", lambda *args: started.append(args))
    engine = database.make_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    assert started == []
    file_engine = database.make_engine("sqlite:///" + str(Path(tempfile.mkdtemp()) / "app.db"))
    with file_engine.begin() as conn:  # the same check sees a file database's
        conn.execute(text("SELECT 1"))
    file_engine.dispose()
    assert len(started) == 1


def test_a_failing_checkpoint_is_logged_once_as_a_warning_and_the_thread_keeps_going(tmp_path, monkeypatch, caplog):
    path = tmp_path / "app.db"
    engine = database.make_engine(f"sqlite:///{path}")
    _write(engine, 10)
    engine.dispose()

    def failing(self):
        self.runs += 1
        raise database.sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(database.WalCheckpointer, "checkpoint", failing)
    checkpointer = database.WalCheckpointer(str(path.resolve()), interval=0.01)
    checkpointer.attach(engine)
    with caplog.at_level("DEBUG", logger="refstage.adapters.db.database"):
        checkpointer.start()
        assert _wait(lambda: checkpointer.runs >= 5)
        checkpointer.detach(engine)
    failures = [r for r in caplog.records if "background WAL checkpoint" in r.getMessage()]
    assert [r.levelname for r in failures[:2]] == ["WARNING", "DEBUG"]
    assert sum(r.levelname == "WARNING" for r in failures) == 1
