"""The public referral form's one write (rate-limit counters + the intake row), on the hottest path of
the app. The statements are ordinary Core statements from the models, compiled once per dialect and
run on the DBAPI cursor in one transaction: SQLAlchemy's per-execution work (events, execution
context, result objects) cost several times what the database spent on them. Types are still
converted by the columns' own bind processors, so SQLite and PostgreSQL store what the ORM would."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from operator import itemgetter
from typing import Any, Iterator

from sqlalchemy import Engine, bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import sessionmaker

from refstage.adapters.db import models as m
from refstage.adapters.db.database import BUSY_TIMEOUT_MS


class Prepared:
    """A statement compiled for one dialect, with its parameters put in the driver's order and form."""

    def __init__(self, stmt: Any, dialect: Any, column_keys: list[str] | None = None, for_executemany: bool = False):
        # for_executemany: no RETURNING of generated keys (PostgreSQL would send one back per row, unread).
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys, for_executemany=for_executemany)
        self.sql = compiled.string
        self.positional = compiled.positional
        # Columns whose Python-side defaults SQLAlchemy's own execution would compute (we pass values as given).
        self.insert_prefetch = [c.key for c in getattr(compiled, "insert_prefetch", ())]
        names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
        self.names = names
        self.processors = {name: _with_constants(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                           for name in set(names)}
        self._order = [(name, self.processors[name]) for name in names]
        # Positional rows that hold every name (the bulk writes' case): values picked in one C call, and only the
        # columns that have a bind processor visited in Python.
        self._pick = itemgetter(*names) if len(names) > 1 else None
        self._converted = [(i, proc) for i, (_, proc) in enumerate(self._order) if proc is not None]

    def args(self, values: dict[str, Any]) -> Any:
        """The driver's parameters for one row; every value goes through its bind processor, None included (a
        JSON column stores None as JSON null, as the ORM does)."""
        if self.positional:
            if self._pick is not None:
                try:
                    row = list(self._pick(values))
                except KeyError:
                    pass  # a name left out binds None, as below
                else:
                    for i, proc in self._converted:
                        row[i] = proc(row[i])
                    return row
            get = values.get
            return [get(name) if proc is None else proc(get(name)) for name, proc in self._order]
        get = values.get
        return {name: get(name) if proc is None else proc(get(name)) for name, proc in self.processors.items()}


def _with_constants(process: Any) -> Any:
    """A bind processor that answers None and the empty list from a table: a big sync binds hundreds of thousands
    of JSON columns holding one of the two (no flags, no 'before'), and serialising them each time cost more than
    storing them. The answers are the processor's own, computed once."""
    if process is None:
        return None
    try:
        for_none, for_empty = process(None), process([])
    except Exception:  # noqa: BLE001 - a type that refuses a list (or None) keeps its own processor unchanged
        return process
    if not isinstance(for_empty, str):
        return process  # only JSON-like columns, whose empty list is text, take the shortcut

    def constant_or_process(value: Any) -> Any:
        if value is None:
            return for_none
        if value.__class__ is list and not value:
            return for_empty
        return process(value)

    return constant_or_process


_PREPARED: dict[tuple[str, str], Prepared] = {}


def statement(dialect_name: str, which: str) -> tuple[Any, list[str] | None]:
    """The Core statement for "counter" (the rate-limit upsert, returning the new count) or "intake" (the
    submission insert), with the column keys it binds (None: its own bind parameters)."""
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    if which == "counter":
        t = m.RateLimitRow.__table__
        n = bindparam("n", type_=t.c.count.type)
        return (insert(t).values(key=bindparam("key", type_=t.c.key.type), count=n,
                                 expires_at=bindparam("expires_at", type_=t.c.expires_at.type))
                .on_conflict_do_update(index_elements=["key"], set_={"count": t.c.count + n}).returning(t.c.count)), None
    t = m.ReferralIntakeRow.__table__
    return insert(t).on_conflict_do_nothing(index_elements=["id"]), [c.name for c in t.c]


def _prepared(dialect: Any, which: str) -> Prepared:
    found = _PREPARED.get((dialect.name, which))
    if found is None:
        stmt, column_keys = statement(dialect.name, which)
        found = _PREPARED[(dialect.name, which)] = Prepared(stmt, dialect, column_keys)
    return found


class HotTransaction:
    def __init__(self, cursor: Any, dialect: Any):
        self.cursor, self.dialect = cursor, dialect

    def bump_counters(self, counters: list[tuple[str, int, dt.datetime]]) -> dict[str, int]:
        """Add n to each (key, n, expires_at) counter (created at n); the new totals by key."""
        stmt = _prepared(self.dialect, "counter")
        totals = {}
        for key, n, expires_at in counters:
            self.cursor.execute(stmt.sql, stmt.args({"key": key, "n": n, "expires_at": expires_at}))
            totals[key] = int(self.cursor.fetchone()[0])
        return totals

    def insert_intake(self, rows: list[dict[str, Any]]) -> None:
        """Store submissions; a row whose id is already there (the same post again) is left as it is."""
        if rows:
            stmt = _prepared(self.dialect, "intake")
            self.cursor.executemany(stmt.sql, [stmt.args(row) for row in rows])

    def drop_expired_counters(self, now: dt.datetime) -> None:
        """Delete the counters whose window ended before `now` (the occasional tidy, services.protection)."""
        key = (self.dialect.name, "expired counters")
        stmt = _PREPARED.get(key)
        if stmt is None:
            t = m.RateLimitRow.__table__
            stmt = _PREPARED[key] = Prepared(delete(t).where(t.c.expires_at < bindparam("now", type_=t.c.expires_at.type)),
                                             self.dialect)
        self.cursor.execute(stmt.sql, stmt.args({"now": now}))


def _begin_immediate(cursor: Any, timeout: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """BEGIN IMMEDIATE, retried every millisecond or less while another writer holds the lock, up to the usual
    busy timeout. SQLite's own busy handler sleeps longer the longer it waits (up to 100 ms a try): with web
    processes committing form posts back to back, those sleeps were where a post spent its time."""
    deadline = time.monotonic() + timeout
    delay = 0.0001
    cursor.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.001)
    finally:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


@contextlib.contextmanager
def transaction(session_factory: sessionmaker) -> Iterator[HotTransaction]:
    """One write transaction on a pooled DBAPI connection of the sessions' engine; committed when the
    block ends without error, rolled back otherwise."""
    engine: Engine = session_factory.kw["bind"]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "sqlite":
            # Our SQLite connections run in autocommit mode (see database.py): take the write lock up front.
            _begin_immediate(cursor)
        try:
            yield HotTransaction(cursor, engine.dialect)
        except BaseException:
            raw.rollback()
            raise
        raw.commit()
    finally:
        raw.close()
