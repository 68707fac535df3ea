"""Storage for the Pipedrive emulator: one company in SQLite (in-memory unless a path is given).

Every entity is a row of `objects` keyed by (kind, id) whose `data` column holds the API v2
representation (JSON); the columns the list endpoints filter and sort on are copied out so the
filters run in SQL. An emulated clock (real UTC plus an offset the control API can advance) gives
every timestamp, token expiry and webhook schedule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import sqlite3
import threading
from typing import Any, Iterable

# Kinds whose writes feed the search index (what /persons/search reads).
SEARCHABLE = ("person",)

_COLUMNS = ("owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "status", "is_deleted",
            "add_time", "update_time")


class Clock:
    """Wall clock plus an offset; `advance()` moves emulated time forward."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self._listeners: list[Any] = []

    def ts(self) -> float:
        with self._lock:
            return dt.datetime.now(dt.timezone.utc).timestamp() + self._offset

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.ts(), dt.timezone.utc)

    def iso(self) -> str:
        return to_iso(self.now())

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += float(seconds)
        for listener in list(self._listeners):
            listener()

    def subscribe(self, listener: Any) -> None:
        self._listeners.append(listener)

    @property
    def offset(self) -> float:
        return self._offset


def to_iso(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a Z suffix and whole seconds, as API v2 writes it."""
    return value.astimezone(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp; raises ValueError on anything else."""
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return parsed.astimezone(dt.timezone.utc)


def v1_time(iso: str | None) -> str | None:
    """API v1 writes `YYYY-MM-DD HH:MM:SS` (UTC)."""
    if not iso:
        return None
    return parse_iso(iso).strftime("%Y-%m-%d %H:%M:%S")


def field_hash() -> str:
    """A 40-hex-character custom field key, like Pipedrive's."""
    return hashlib.sha1(secrets.token_bytes(16)).hexdigest()


class Store:
    def __init__(self, clock: Clock, path: str = ":memory:") -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=MEMORY")
        # Seconds the search index trails a write by (0: indexed at once); read at each write.
        self.search_lag: Any = lambda: 0.0
        self._create()

    def _create(self) -> None:
        with self.lock:
            self.conn.executescript(
                """
                DROP TABLE IF EXISTS objects;
                DROP TABLE IF EXISTS counters;
                DROP TABLE IF EXISTS search_documents;
                CREATE TABLE objects (
                    kind TEXT NOT NULL, id INTEGER NOT NULL,
                    owner_id INTEGER, person_id INTEGER, org_id INTEGER, pipeline_id INTEGER,
                    stage_id INTEGER, status TEXT, is_deleted INTEGER NOT NULL DEFAULT 0,
                    add_time TEXT, update_time TEXT, data TEXT NOT NULL,
                    PRIMARY KEY (kind, id));
                CREATE INDEX objects_update ON objects (kind, update_time, id);
                CREATE TABLE counters (kind TEXT PRIMARY KEY, last INTEGER NOT NULL);
                -- Each write of a searchable object queues a snapshot that becomes the searchable
                -- version of the object at visible_at (the index trails the table by search_lag).
                CREATE TABLE search_documents (
                    kind TEXT NOT NULL, id INTEGER NOT NULL, visible_at REAL NOT NULL,
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, is_deleted INTEGER NOT NULL, data TEXT NOT NULL);
                CREATE INDEX search_documents_object ON search_documents (kind, id, visible_at);
                """
            )

    def clear(self) -> None:
        self._create()

    # -- rows ---------------------------------------------------------------------------
    def next_id(self, kind: str) -> int:
        with self.lock:
            row = self.conn.execute("SELECT last FROM counters WHERE kind=?", (kind,)).fetchone()
            value = (row[0] if row else 0) + 1
            self.conn.execute("INSERT OR REPLACE INTO counters (kind, last) VALUES (?, ?)", (kind, value))
            return value

    def put(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if not obj.get("id"):
                obj["id"] = self.next_id(kind)
            cols = [obj.get(c) for c in _COLUMNS]
            cols[_COLUMNS.index("is_deleted")] = 1 if obj.get("is_deleted") else 0
            self.conn.execute(
                f"INSERT OR REPLACE INTO objects (kind, id, {', '.join(_COLUMNS)}, data) "
                f"VALUES (?, ?, {', '.join('?' for _ in _COLUMNS)}, ?)",
                (kind, obj["id"], *cols, json.dumps(obj, ensure_ascii=False)),
            )
            if kind in SEARCHABLE:
                self._index(kind, obj)
            return obj

    def _index(self, kind: str, obj: dict[str, Any]) -> None:
        lag = max(0.0, float(self.search_lag() or 0.0))
        now = self.clock.ts()
        self.conn.execute(
            "INSERT INTO search_documents (kind, id, visible_at, is_deleted, data) VALUES (?, ?, ?, ?, ?)",
            (kind, obj["id"], now + lag, 1 if obj.get("is_deleted") else 0, json.dumps(obj, ensure_ascii=False)))
        # Snapshots superseded by one already visible are never read again.
        self.conn.execute(
            "DELETE FROM search_documents WHERE kind=? AND id=? AND visible_at < "
            "(SELECT MAX(visible_at) FROM search_documents WHERE kind=? AND id=? AND visible_at <= ?)",
            (kind, obj["id"], kind, obj["id"], now))

    def searchable(self, kind: str) -> list[dict[str, Any]]:
        """The objects as the search index sees them now: each one's latest snapshot already visible,
        without the deleted ones (a write not yet indexed is not seen, with its old values or at all)."""
        now = self.clock.ts()
        with self.lock:
            rows = self.conn.execute(
                "SELECT d.data FROM search_documents d WHERE d.kind=? AND d.visible_at <= ? AND d.seq = "
                "(SELECT e.seq FROM search_documents e WHERE e.kind=d.kind AND e.id=d.id AND e.visible_at <= ? "
                " ORDER BY e.visible_at DESC, e.seq DESC LIMIT 1) AND d.is_deleted = 0 ORDER BY d.id",
                (kind, now, now)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def get(self, kind: str, obj_id: int) -> dict[str, Any] | None:
        with self.lock:
            row = self.conn.execute(
                "SELECT data FROM objects WHERE kind=? AND id=?", (kind, obj_id)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def delete_row(self, kind: str, obj_id: int) -> None:
        with self.lock:
            self.conn.execute("DELETE FROM objects WHERE kind=? AND id=?", (kind, obj_id))
            self.conn.execute("DELETE FROM search_documents WHERE kind=? AND id=?", (kind, obj_id))

    def all(self, kind: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT data FROM objects WHERE kind=?"
        if not include_deleted:
            sql += " AND is_deleted=0"
        with self.lock:
            rows = self.conn.execute(sql + " ORDER BY id", (kind,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def count(self, kind: str) -> int:
        with self.lock:
            return self.conn.execute("SELECT COUNT(*) FROM objects WHERE kind=?", (kind,)).fetchone()[0]

    def query(
        self,
        kind: str,
        *,
        equals: dict[str, Any] | None = None,
        statuses: Iterable[str] | None = None,
        include_deleted: bool = False,
        updated_since: str | None = None,
        updated_until: str | None = None,
        ids: Iterable[int] | None = None,
        sort_by: str = "id",
        descending: bool = False,
        after: tuple[Any, int] | None = None,
        limit: int = 100,
        where_like: str | None = None,
    ) -> list[dict[str, Any]]:
        """Keyset-paginated listing: rows strictly after `after` = (sort value, id)."""
        if sort_by not in ("id", "update_time", "add_time", "order_nr"):
            raise ValueError(sort_by)
        clauses = ["kind=?"]
        params: list[Any] = [kind]
        for col, value in (equals or {}).items():
            if col not in _COLUMNS:
                raise ValueError(col)
            clauses.append(f"{col}=?")
            params.append(value)
        if statuses is not None:
            statuses = list(statuses)
            real = [s for s in statuses if s != "deleted"]
            parts = []
            if real:
                parts.append(f"(status IN ({', '.join('?' for _ in real)}) AND is_deleted=0)")
                params.extend(real)
            if "deleted" in statuses:
                parts.append("is_deleted=1")
            clauses.append("(" + " OR ".join(parts) + ")")
        elif not include_deleted:
            clauses.append("is_deleted=0")
        if updated_since:
            clauses.append("update_time >= ?")
            params.append(updated_since)
        if updated_until:
            clauses.append("update_time < ?")
            params.append(updated_until)
        if ids is not None:
            ids = [int(i) for i in ids]
            clauses.append(f"id IN ({', '.join('?' for _ in ids) or 'NULL'})")
            params.extend(ids)
        if where_like:
            clauses.append("data LIKE ?")
            params.append(f"%{where_like}%")
        sort_expr = "id" if sort_by == "id" else (
            "CAST(json_extract(data, '$.order_nr') AS INTEGER)" if sort_by == "order_nr" else sort_by)
        op = "<" if descending else ">"
        if after is not None:
            value, last_id = after
            if sort_by == "id":
                clauses.append(f"id {op} ?")
                params.append(last_id)
            else:
                clauses.append(f"({sort_expr} {op} ? OR ({sort_expr} = ? AND id {op} ?))")
                params.extend([value, value, last_id])
        direction = "DESC" if descending else "ASC"
        sql = (f"SELECT data FROM objects WHERE {' AND '.join(clauses)} "
               f"ORDER BY {sort_expr} {direction}, id {direction} LIMIT ?")
        params.append(limit)
        with self.lock:
            rows = self.conn.execute(sql, params).fetchall()
        return [json.loads(r[0]) for r in rows]
