"""Many-row INSERTs and UPDATEs of the sync's hot path (rewards, audit entries, write-back queue rows, CRM record
states; the referrals a sync moves).

A sync that qualifies 100,000 referrals inserts about a million rows. SQLAlchemy's executemany builds a
parameter dictionary per row through its compiled-statement machinery, which cost more than SQLite spent
storing the rows. Here each statement is compiled once per dialect and column set, each value goes
through its column's own bind processor (so both databases store exactly what the ORM would), and the
driver's executemany runs on the session's connection, inside the session's transaction."""

from __future__ import annotations

from operator import methodcaller
from typing import Any, Callable, Sequence

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from refstage.adapters.db.hot import Prepared

_PREPARED: dict[tuple[str, str, tuple[str, ...]], Prepared] = {}


def _prepared(dialect: Any, table: Table, columns: tuple[str, ...]) -> Prepared:
    key = (dialect.name, table.name, columns)
    found = _PREPARED.get(key)
    if found is None:
        found = Prepared(table.insert(), dialect, list(columns), for_executemany=True)
        computed = [name for name in found.insert_prefetch if name not in columns]
        if computed:
            # Python-side defaults are applied by SQLAlchemy's own executemany, not here: the caller must pass them.
            raise ValueError(f"insert_many into {table.name}: give values for {', '.join(computed)}")
        _PREPARED[key] = found
    return found


def _same_keys(rows: Sequence[dict[str, Any]]) -> bool:
    """Every row has the first row's keys (compared in C: a big sync checks a million rows)."""
    keys = rows[0].keys()
    return all(map(keys.__eq__, map(_keys_of, rows)))


_keys_of = methodcaller("keys")  # any mapping, not only a dict


def insert_many(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT `rows` (dicts with the same keys) into `table` in the session's transaction. A driver error is
    raised as SQLAlchemy's (IntegrityError for a constraint), as session.execute would."""
    if not rows:
        return
    session.flush()  # rows added through the ORM first: ours may refer to them
    connection = session.connection()
    dialect = connection.dialect
    columns = tuple(rows[0])
    if not _same_keys(rows):
        raise ValueError(f"insert_many into {table.name}: every row needs the same columns ({', '.join(columns)})")
    _run(connection, _prepared(dialect, table, columns), rows)


def _run(connection: Any, stmt: Prepared, rows: Sequence[dict[str, Any]]) -> int:
    """The driver's executemany on the session's connection; the rows it changed. A driver error is raised as
    SQLAlchemy's (IntegrityError for a constraint), as session.execute would."""
    dialect = connection.dialect
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(stmt.sql, [stmt.args(row) for row in rows])
        return cursor.rowcount
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(stmt.sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
    finally:
        cursor.close()


_STATEMENTS: dict[tuple[str, str, tuple[str, ...]], Prepared] = {}


def execute_many(session: Session, key: str, build: Callable[[], Any], rows: Sequence[dict[str, Any]]) -> int:
    """Run the statement `build()` returns for every row (dicts with the same keys, one per parameter of the
    statement), and return how many rows the database says it changed: the sum over rows, on both drivers.
    `key` names the statement; it is compiled once per dialect, key and column set. As with insert_many, the
    session is flushed first, so ORM changes pending in it are written before this statement."""
    if not rows:
        return 0
    columns = tuple(rows[0])
    if not _same_keys(rows):
        raise ValueError(f"execute_many {key}: every row needs the same columns ({', '.join(columns)})")
    session.flush()
    connection = session.connection()
    dialect = connection.dialect
    stmt = _STATEMENTS.get((dialect.name, key, columns))
    if stmt is None:
        stmt = Prepared(build(), dialect, for_executemany=True)
        missing = sorted(set(stmt.names) - set(columns))
        if missing:
            # A parameter no row gives would be bound as NULL on every row: refuse, as session.execute does.
            raise ValueError(f"execute_many {key}: rows give no value for {', '.join(missing)}")
        _STATEMENTS[(dialect.name, key, columns)] = stmt
    return _run(connection, stmt, rows)
