"""Org state in SQLite: one table per object with typed columns, plus the emulator's own tables.

In memory by default (one shared connection guarded by a lock), or a file with ``--data``.
Timestamps are stored as Salesforce-formatted UTC strings (``2026-11-22T10:00:00.000+0000``), which
sort and compare correctly as text, dates as ``YYYY-MM-DD``, booleans as 0/1.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import ids
from .errors import SFError, not_found
from .formulas import Calculations, resolve_summary_types, summarize
from .schema import NUMERIC, STAGES, Field, SObject, custom_object_from_element, standard_objects

UTC = dt.timezone.utc
log = logging.getLogger(__name__)


def fmt_dt(value: dt.datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def fmt_ms(ms: int) -> str:
    return fmt_dt(dt.datetime.fromtimestamp(ms / 1000, UTC))


_DT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_datetime(text: str) -> dt.datetime:
    m = _DT_RE.match(text.strip())
    if not m:
        raise ValueError(text)
    y, mo, d, h, mi, s, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    offset = UTC
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        tz = tz[1:].replace(":", "")
        offset = dt.timezone(sign * dt.timedelta(hours=int(tz[:2]), minutes=int(tz[2:])))
    return dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), micro, offset).astimezone(UTC)


class Clock:
    """Wall clock plus an offset tests can advance; ``stamp()`` is strictly increasing (ms)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()
        self._last_ms = 0
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC) + self.offset

    def now_ms(self) -> int:
        return int(self.now().timestamp() * 1000)

    def stamp_ms(self, count: int = 1) -> int:
        """Reserve count consecutive strictly increasing millisecond stamps; return the first."""
        with self._lock:
            first = max(self.now_ms(), self._last_ms + 1)
            self._last_ms = first + count - 1
            return first

    def stamp(self) -> str:
        return fmt_ms(self.stamp_ms())

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.offset += dt.timedelta(seconds=seconds)

    def today(self) -> dt.date:
        return self.now().date()


def coerce(f: Field, value: Any) -> Any:
    """JSON/CSV value -> stored SQLite value; raises ValueError when not of the field's type."""
    if value is None:
        return None
    t = f.type
    if t == "boolean":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return int(value.lower() in ("true", "1"))
        raise ValueError(value)
    if value == "" and t not in ("string", "textarea", "email", "phone", "url"):
        return None
    if t == "int":
        if isinstance(value, bool):
            raise ValueError(value)
        fv = float(value)
        if fv != int(fv):
            raise ValueError(value)
        return int(fv)
    if t in NUMERIC:
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    if t == "date":
        if not isinstance(value, str):
            raise ValueError(value)
        text = value.strip()
        if len(text) > 10:
            return parse_datetime(text).date().isoformat()
        return dt.date.fromisoformat(text).isoformat()
    if t == "datetime":
        if not isinstance(value, str):
            raise ValueError(value)
        text = value.strip()
        if len(text) == 10:
            return fmt_dt(dt.datetime.fromisoformat(text).replace(tzinfo=UTC))
        return fmt_dt(parse_datetime(text))
    if t in ("id", "reference"):
        if value == "":
            return None
        norm = ids.normalize(value) if isinstance(value, str) else None
        if norm is None:
            raise ValueError(value)
        return norm
    if isinstance(value, (dict, list)):
        raise ValueError(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if text != "" else None


def to_json(f: Field, value: Any) -> Any:
    if value is None:
        return None
    if f.type == "boolean":
        return bool(value)
    if f.type == "int":
        return int(value)
    if f.type in NUMERIC:
        return float(value)
    return value


Hook = Callable[[str, SObject, list[str]], None]


class Store:
    def __init__(self, path: str | Path | None = None, metadata_dir: Path | None = None,
                 clock: Clock | None = None) -> None:
        self.path = str(path) if path else ":memory:"
        self.metadata_dir = metadata_dir
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=" + ("MEMORY" if self.path == ":memory:" else "WAL"))
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-200000")
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.ids = ids.IdFactory()
        self._tx = threading.local()
        self._calcs: Calculations | None = None
        self._calcs_signature: tuple = ()
        self.hooks: list[Hook] = []
        self._deferred: list[tuple[str, SObject, list[str]]] | None = None
        self._deferred_owner = 0
        self.objects: dict[str, SObject] = {}
        self._prefixes: dict[str, SObject] = {}
        # (object, id) -> {field: value before} of the latest write, for automation's "is changed" tests
        self.changes: dict[tuple[str, str], dict[str, Any]] = {}
        self._kv_init()
        self.load_schema()

    # ------------------------------------------------------------------ schema / tables
    def _kv_init(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS _kv (k TEXT PRIMARY KEY, v TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS _deleted (obj TEXT, id TEXT PRIMARY KEY, deleted TEXT)")
        # What the Metadata API deployed: the org's configuration (see deploy.py).
        self.db.execute("CREATE TABLE IF NOT EXISTS _metadata (type TEXT, full_name TEXT, file_name TEXT, "
                        "id TEXT, body BLOB, created TEXT, created_by TEXT, modified TEXT, modified_by TEXT, "
                        "seq INTEGER, PRIMARY KEY (type, full_name))")
        # Every file of a multi-file component (bundles, code with its -meta.xml), for retrieve.
        self.db.execute("CREATE TABLE IF NOT EXISTS _metadata_files (type TEXT, full_name TEXT, path TEXT, data BLOB, "
                        "PRIMARY KEY (type, full_name, path))")

    def kv_get(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT v FROM _kv WHERE k=?", (key,)).fetchone()
        return row[0] if row else default

    def kv_set(self, key: str, value: str) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO _kv VALUES (?, ?)", (key, value))

    def deployed(self, type_name: str) -> list[tuple[str, bytes]]:
        """(fullName, XML) of every deployed component of a type, in deploy order."""
        with self.lock:
            return [(r[0], r[1]) for r in self.db.execute(
                "SELECT full_name, body FROM _metadata WHERE type=? ORDER BY seq", (type_name,))]

    def custom_prefix(self, name: str) -> str:
        """A custom object's key prefix: assigned at its first deploy, stable afterwards."""
        key = f"prefix:{name}"
        prefix = self.kv_get(key)
        if prefix is None:
            n = int(self.kv_get("prefix_counter", "0") or 0)
            self.kv_set("prefix_counter", str(n + 1))
            prefix = "a" + format(n, "02X")[-2:]
            self.kv_set(key, prefix)
        return prefix

    def load_schema(self) -> list[str]:
        """The standard objects plus what the Metadata API deployed (CustomObject components)."""
        from .mdschema import parse_xml

        objects = standard_objects()
        for name, body in self.deployed("CustomObject"):
            root, _ = parse_xml(body)
            objects[name] = custom_object_from_element(name, root, self.custom_prefix(name), objects.get(name))
        return self.apply_schema(objects)

    def apply_schema(self, objects: dict[str, SObject]) -> list[str]:
        with self.lock:
            self.objects = objects
            resolve_summary_types(self.objects)
            self._calcs = None
            self._required: dict[str, list[str]] = {}
            self._prefixes = {o.key_prefix: o for o in self.objects.values()}
            for obj in self.objects.values():
                self._ensure_table(obj)
            max_counter = 0
            for obj in self.objects.values():
                row = self.db.execute(f"SELECT max(substr(Id, 7, 9)) FROM {obj.table}").fetchone()
                if row and row[0]:
                    n = 0
                    for ch in row[0]:
                        n = n * 62 + ids._BASE62.index(ch)
                    max_counter = max(max_counter, n)
            self.ids.bump_to(max_counter + 1)
            self.recalculate_all()
            return sorted(self.objects)

    def _ensure_table(self, obj: SObject) -> None:
        cols = ", ".join(
            f'"{f.name}" {f.sql_type}' + (" PRIMARY KEY" if f.name == "Id" else "")
            for f in obj.fields.values()
        )
        self.db.execute(f"CREATE TABLE IF NOT EXISTS {obj.table} ({cols})")
        existing = {r[1] for r in self.db.execute(f"PRAGMA table_info({obj.table})")}
        for f in obj.fields.values():
            if f.name not in existing:
                self.db.execute(f'ALTER TABLE {obj.table} ADD COLUMN "{f.name}" {f.sql_type}')
        idx = [("SystemModstamp",), ("LastModifiedDate",), ("CreatedDate",)]
        for f in obj.fields.values():
            if f.type == "reference" and f.name not in ("CreatedById", "LastModifiedById"):
                idx.append((f.name,))
        for (col,) in idx:
            self.db.execute(f'CREATE INDEX IF NOT EXISTS "ix_{obj.name}_{col}" ON {obj.table} ("{col}")')
        for f in obj.fields.values():
            if f.unique and f.name != "Id":
                self.db.execute(
                    f'CREATE UNIQUE INDEX IF NOT EXISTS "ux_{obj.name}_{f.name}" ON {obj.table} '
                    f'("{f.name}" COLLATE NOCASE)'
                )
            elif f.external_id:
                self.db.execute(
                    f'CREATE INDEX IF NOT EXISTS "ix_{obj.name}_{f.name}" ON {obj.table} ("{f.name}" COLLATE NOCASE)'
                )

        if obj.name == "PermissionSetAssignment":  # a user holds a permission set once
            self.db.execute('CREATE UNIQUE INDEX IF NOT EXISTS "ux_PermissionSetAssignment" ON '
                            f'{obj.table} ("AssigneeId", "PermissionSetId")')

    def sobject(self, name: str) -> SObject:
        obj = self.objects.get(name)
        if obj is None:
            low = name.lower()
            obj = next((o for o in self.objects.values() if o.name.lower() == low), None)
        if obj is None:
            raise SFError(404, "NOT_FOUND", "The requested resource does not exist")
        return obj

    def object_for_id(self, record_id: str) -> SObject | None:
        return self._prefixes.get(record_id[:3])

    def reset(self) -> None:
        with self.lock:
            for (name,) in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall():
                self.db.execute(f'DROP TABLE "{name}"')
            self.ids = ids.IdFactory()
            self._kv_init()
            self.load_schema()

    # ------------------------------------------------------------------ reads
    def get(self, obj: SObject, record_id: str, include_deleted: bool = False) -> dict[str, Any] | None:
        rid = ids.normalize(record_id)
        if rid is None:
            return None
        with self.lock:
            cur = self.db.execute(f"SELECT * FROM {obj.table} WHERE Id=?", (rid,))
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        if row is None:
            return None
        rec = dict(zip(names, row))
        if rec.get("IsDeleted") and not include_deleted:
            return None
        return rec

    def exists(self, obj: SObject, record_id: str) -> bool:
        """Whether a live (not deleted) record has this id: a lookup's target check reads no columns."""
        rid = ids.normalize(record_id)
        if rid is None:
            return False
        with self.lock:
            return self.db.execute(f"SELECT 1 FROM {obj.table} WHERE Id=? AND IsDeleted=0", (rid,)).fetchone() is not None

    def record_json(self, obj: SObject, rec: dict[str, Any], version: str,
                    fields: Iterable[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": obj.name, "url": f"{obj.url(version)}/{rec['Id']}"}}
        for name in fields or obj.fields:
            f = obj.fields[name]
            out[name] = to_json(f, rec.get(name))
        return out

    def find_by(self, obj: SObject, field: Field, value: Any) -> list[str]:
        collate = " COLLATE NOCASE" if field.type not in ("id", "reference") else ""
        with self.lock:
            rows = self.db.execute(
                f'SELECT Id FROM {obj.table} WHERE "{field.name}"=?{collate} AND IsDeleted=0', (value,)
            ).fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ writes
    def _validate(self, obj: SObject, values: dict[str, Any], creating: bool) -> dict[str, Any]:
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if key == "attributes":
                continue
            f = obj.field_ci(key)
            if f is None:
                raise SFError(400, "INVALID_FIELD",
                              f"No such column '{key}' on sobject of type {obj.name}", [key])
            if f.name == "Id" and not creating:
                continue
            if creating and not f.createable:
                raise SFError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                              f"Unable to create/update fields: {f.name}. Please check the security settings "
                              "of this field and verify that it is read/write for your profile or permission set.",
                              [f.name])
            if not creating and not f.updateable:
                raise SFError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                              f"Unable to create/update fields: {f.name}. Please check the security settings "
                              "of this field and verify that it is read/write for your profile or permission set.",
                              [f.name])
            try:
                v = coerce(f, value)
            except (ValueError, TypeError):
                if f.type in ("reference", "id"):
                    raise SFError(400, "MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}",
                                  [f.name]) from None
                raise SFError(400, "INVALID_TYPE_ON_FIELD_IN_RECORD",
                              f"{f.label}: value not of required type: {value}", [f.name]) from None
            if v is None and not f.nillable and f.type != "boolean":
                raise SFError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{f.name}]", [f.name])
            if v is None and f.type == "boolean":
                v = 0
            if isinstance(v, str) and f.length and len(v) > f.length and f.type not in ("date", "datetime"):
                raise SFError(400, "STRING_TOO_LONG",
                              f"{f.label}: data value too large: {v[:40]} (max length={f.length})", [f.name])
            if f.type == "picklist" and v is not None and f.restricted_picklist and v not in f.picklist:
                raise SFError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                              f"{f.label}: bad value for restricted picklist field: {v}", [f.name])
            if f.type == "reference" and v is not None:
                target = self.object_for_id(v)
                if target is None or target.name not in f.reference_to or not self.exists(target, v):
                    raise SFError(400, "INVALID_CROSS_REFERENCE_KEY",
                                  f"{f.label}: id value of incorrect type: {value}"
                                  if target is None or target.name not in f.reference_to
                                  else "invalid cross reference id", [f.name])
            clean[f.name] = v
        return clean

    def _derive(self, obj: SObject, rec: dict[str, Any]) -> None:
        if "FirstName" in obj.fields and "LastName" in obj.fields and "Name" in obj.fields:
            rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p) or None
        if obj.name == "Opportunity":
            stage = next((s for s in self.stages() if s[0] == rec.get("StageName")), None)
            if stage:
                rec["IsClosed"], rec["IsWon"] = int(stage[2]), int(stage[3])
                rec.setdefault("_stage_prob", stage[1])
                if not rec.get("ForecastCategoryName"):
                    rec["ForecastCategoryName"] = stage[4]
        if obj.name == "CampaignMember":
            rec["Name"] = rec.get("Name")

    def stages(self) -> list[tuple]:
        with self.lock:
            rows = self.db.execute(
                'SELECT ApiName, DefaultProbability, IsClosed, IsWon, ForecastCategoryName FROM "o_OpportunityStage" '
                "WHERE IsDeleted=0"
            ).fetchall()
        return rows or [(s[0], s[1], s[2], s[3], s[4]) for s in STAGES]

    def _check_required(self, obj: SObject, rec: dict[str, Any]) -> None:
        required = self._required.get(obj.name)
        if required is None:  # the schema does not change under a running org; describe order kept
            required = self._required[obj.name] = [f.name for f in obj.fields.values() if f.required
                                                    and f.name not in ("Id", "OwnerId") and not f.auto_number]
        missing = [name for name in required if rec.get(name) is None]
        if missing:
            raise SFError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                          missing)

    def _duplicate(self, obj: SObject, exc: sqlite3.IntegrityError, rec: dict[str, Any]) -> SFError:
        for f in obj.fields.values():
            if f.unique and f.name != "Id" and rec.get(f.name) is not None:
                row = self.db.execute(
                    f'SELECT Id FROM {obj.table} WHERE "{f.name}"=? COLLATE NOCASE AND Id<>?',
                    (rec[f.name], rec.get("Id", "")),
                ).fetchone()
                if row:
                    return SFError(400, "DUPLICATE_VALUE",
                                   f"duplicate value found: {f.name} duplicates value on record with id: {row[0]}",
                                   [])
        if obj.name == "PermissionSetAssignment":
            return SFError(400, "DUPLICATE_VALUE",
                           "duplicate value found: <unknown> duplicates value on record with id: <unknown>", [])
        return SFError(400, "DUPLICATE_VALUE", f"duplicate value found: {exc}", [])

    def _autonumber(self, obj: SObject, rec: dict[str, Any]) -> None:
        for f in obj.fields.values():
            if f.auto_number and rec.get(f.name) is None:
                key = f"autonumber:{obj.name}:{f.name}"
                n = int(self.kv_get(key, "0") or 0) + 1
                self.kv_set(key, str(n))
                rec[f.name] = f"{obj.label[:3].upper()}-{n:06d}"

    # ------------------------------------------------------------------ transactions and calculated fields
    def _stamp(self) -> str:
        """The SystemModstamp of this write: the enclosing transaction's one, else a fresh one."""
        shared = getattr(self._tx, "stamp", None)
        return shared if shared is not None else self.clock.stamp()

    def transaction_stamp(self) -> "_TransactionStamp":
        """``with store.transaction_stamp():`` every record written inside (a collection, a Bulk batch)
        gets one SystemModstamp / LastModifiedDate, as one database transaction does in a real org."""
        return _TransactionStamp(self)

    @property
    def calcs(self) -> Calculations:
        """The calculated-field plan; rebuilt when the schema changed under it (a deploy adds fields)."""
        signature = (id(self.objects), len(self.objects), sum(len(o.fields) for o in self.objects.values()))
        if self._calcs is None or self._calcs_signature != signature:
            resolve_summary_types(self.objects)
            self._calcs = Calculations(self.objects)
            self._calcs_signature = signature
            for problem in self._calcs.check():  # such a field stays blank, as #Error! shows in an org
                log.warning("calculated field not computed: %s", problem)
        return self._calcs

    def _calculate(self, obj: SObject, rec: dict[str, Any]) -> None:
        calcs = self.calcs
        if obj.name in calcs.formulas:
            now = self.clock.now()
            calcs.compute_formulas(obj, rec, lambda target, rid: self.get(target, rid), now.date(), now)

    def _roll_up(self, child: SObject, records: Iterable[dict[str, Any] | None], user_id: str, stamp: str) -> None:
        """Recompute the roll-ups of the masters RECORDS (a child's before/after values) point at."""
        for master, summary_field in self.calcs.summaries_by_child.get(child.name, ()):
            fk = child.field_ci(summary_field.summary.foreign_key)
            if fk is None:
                continue
            for master_id in {r.get(fk.name) for r in records if r and r.get(fk.name)}:
                self._refresh_master(master, master_id, user_id, stamp)

    def _refresh_master(self, master: SObject, master_id: str, user_id: str, stamp: str) -> None:
        current = self.get(master, master_id)
        if current is None:
            return
        rec = dict(current)
        for f in self.calcs.summaries.get(master.name, ()):
            spec = f.summary
            child = self.objects.get(spec.child)
            fk = child.field_ci(spec.foreign_key) if child else None
            if fk is None:
                continue
            cur = self.db.execute(f'SELECT * FROM {child.table} WHERE "{fk.name}"=? AND IsDeleted=0', (master_id,))
            names = [d[0] for d in cur.description]
            rec[f.name] = summarize(spec, child, [dict(zip(names, row)) for row in cur.fetchall()])
        self._calculate(master, rec)
        changed = [c for c in rec if rec[c] != current.get(c)]
        if not changed:
            return
        # The master is saved by the roll-up (its triggers and flows run), so its stamps move too.
        rec.update(LastModifiedDate=stamp, SystemModstamp=stamp, LastModifiedById=user_id)
        changed += ["LastModifiedDate", "SystemModstamp", "LastModifiedById"]
        self.db.execute(f"UPDATE {master.table} SET {', '.join(chr(34) + c + chr(34) + '=?' for c in changed)} "
                        "WHERE Id=?", [rec[c] for c in changed] + [master_id])
        self._roll_up(master, [rec], user_id, stamp)
        self._notify("updated", master, [master_id])

    def recalculate_all(self) -> None:
        """Compute every calculated field of every stored record (a schema with new formulas or roll-ups)."""
        calcs = self.calcs
        with self.lock:
            for name in set(calcs.formulas) | set(calcs.summaries):
                obj = self.objects[name]
                for (rid,) in self.db.execute(f"SELECT Id FROM {obj.table} WHERE IsDeleted=0").fetchall():
                    current = self.get(obj, rid) or {}
                    rec = dict(current)
                    if name in calcs.summaries:
                        self._refresh_master(obj, rid, current.get("LastModifiedById") or "", current.get(
                            "SystemModstamp") or self.clock.stamp())
                        rec = self.get(obj, rid) or rec
                        current = dict(rec)
                    self._calculate(obj, rec)
                    changed = [c for c in rec if rec[c] != current.get(c)]
                    if changed:
                        self.db.execute(f"UPDATE {obj.table} SET {', '.join(chr(34) + c + chr(34) + '=?' for c in changed)}"
                                        " WHERE Id=?", [rec[c] for c in changed] + [rid])

    def insert(self, obj: SObject, values: dict[str, Any], user_id: str, notify: bool = True) -> str:
        clean = self._validate(obj, values, creating=True)
        with self.lock:
            rec: dict[str, Any] = {}
            for f in obj.fields.values():
                if f.default is not None:
                    rec[f.name] = int(f.default) if isinstance(f.default, bool) else f.default
            rec.update(clean)
            rec["Id"] = self.ids.new(obj.key_prefix)
            stamp = self._stamp()
            rec.update(IsDeleted=0, CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp,
                       CreatedById=user_id, LastModifiedById=user_id)
            if obj.owned and not rec.get("OwnerId"):
                rec["OwnerId"] = user_id
            self._derive(obj, rec)
            prob = rec.pop("_stage_prob", None)
            if obj.name == "Opportunity" and rec.get("Probability") is None and prob is not None:
                rec["Probability"] = float(prob)
            self._autonumber(obj, rec)
            for f in self.calcs.summaries.get(obj.name, ()):  # a new master has no children yet
                child = self.objects.get(f.summary.child)
                rec[f.name] = summarize(f.summary, child, []) if child else None
            self._calculate(obj, rec)
            self._check_required(obj, rec)
            cols = list(rec)
            try:
                self.db.execute(
                    f"INSERT INTO {obj.table} ({', '.join(chr(34) + c + chr(34) for c in cols)}) "
                    f"VALUES ({', '.join('?' * len(cols))})",
                    [rec[c] for c in cols],
                )
            except sqlite3.IntegrityError as exc:
                raise self._duplicate(obj, exc, rec) from None
            self._roll_up(obj, [rec], user_id, stamp)
        if notify:
            self._notify("created", obj, [rec["Id"]])
        return rec["Id"]

    def update(self, obj: SObject, record_id: str, values: dict[str, Any], user_id: str,
               notify: bool = True) -> None:
        rid = ids.normalize(record_id)
        if rid is None or (rid and self.object_for_id(rid) is not obj):
            raise SFError(404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: "
                          + str(record_id)) if rid is None else \
                SFError(400, "MALFORMED_ID", f"{obj.name} ID: id value of incorrect type: {record_id}", ["Id"])
        clean = self._validate(obj, values, creating=False)
        with self.lock:
            current = self.get(obj, rid)
            if current is None:
                raise not_found()
            if obj.name == "Lead" and current.get("IsConverted"):
                raise SFError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
            rec = dict(current)
            rec.update(clean)
            stamp = self._stamp()
            rec.update(LastModifiedDate=stamp, SystemModstamp=stamp, LastModifiedById=user_id)
            self._derive(obj, rec)
            rec.pop("_stage_prob", None)
            if obj.name == "Opportunity" and "StageName" in clean and "Probability" not in clean:
                prob = next((s[1] for s in self.stages() if s[0] == rec.get("StageName")), None)
                if prob is not None:
                    rec["Probability"] = float(prob)
            self._calculate(obj, rec)
            self._check_required(obj, rec)
            changed = [c for c in rec if rec[c] != current.get(c)]
            self.changes[(obj.name, rid)] = {c: current.get(c) for c in changed}
            try:
                self.db.execute(
                    f"UPDATE {obj.table} SET {', '.join(chr(34) + c + chr(34) + '=?' for c in changed)} WHERE Id=?",
                    [rec[c] for c in changed] + [rid],
                )
            except sqlite3.IntegrityError as exc:
                raise self._duplicate(obj, exc, rec) from None
            self._roll_up(obj, [current, rec], user_id, stamp)
        if notify:
            self._notify("updated", obj, [rid])

    def set_system(self, obj: SObject, record_id: str, values: dict[str, Any], user_id: str) -> None:
        """Write fields that are read-only over the API (lead conversion), bumping the stamps."""
        with self.lock:
            stamp = self._stamp()
            values = {**values, "LastModifiedDate": stamp, "SystemModstamp": stamp, "LastModifiedById": user_id}
            current = self.get(obj, record_id, include_deleted=True) or {}
            rec = {**current, **values}
            self._calculate(obj, rec)
            values.update({c: rec[c] for c in rec if c not in values and rec[c] != current.get(c)})
            self.changes[(obj.name, record_id)] = {c: current.get(c) for c in values if current.get(c) != values[c]}
            self.db.execute(
                f"UPDATE {obj.table} SET {', '.join(chr(34) + c + chr(34) + '=?' for c in values)} WHERE Id=?",
                [*values.values(), record_id],
            )
            self._roll_up(obj, [current, rec], user_id, stamp)
        self._notify("updated", obj, [record_id])

    def delete(self, obj: SObject, record_id: str, user_id: str) -> None:
        rid = ids.normalize(record_id)
        if rid is None:
            raise SFError(400, "MALFORMED_ID", f"malformed id {record_id}", [])
        with self.lock:
            if self.get(obj, rid) is None:
                if self.get(obj, rid, include_deleted=True) is not None:
                    raise SFError(404, "ENTITY_IS_DELETED", "entity is deleted", [])
                raise not_found()
            before = self.get(obj, rid)
            stamp = self._stamp()
            self.db.execute(
                f"UPDATE {obj.table} SET IsDeleted=1, SystemModstamp=?, LastModifiedDate=?, LastModifiedById=? "
                "WHERE Id=?", (stamp, stamp, user_id, rid),
            )
            self.db.execute("INSERT OR REPLACE INTO _deleted VALUES (?, ?, ?)", (obj.name, rid, stamp))
            # cascade to master-detail children
            for child in self.objects.values():
                for f in child.fields.values():
                    if f.cascade_delete and obj.name in f.reference_to:
                        for (cid,) in self.db.execute(
                            f'SELECT Id FROM {child.table} WHERE "{f.name}"=? AND IsDeleted=0', (rid,)
                        ).fetchall():
                            self.delete(child, cid, user_id)
            self._roll_up(obj, [before], user_id, stamp)
        self._notify("deleted", obj, [rid])

    def undelete(self, obj: SObject, record_id: str, user_id: str) -> None:
        with self.lock:
            stamp = self._stamp()
            self.db.execute(f"UPDATE {obj.table} SET IsDeleted=0, SystemModstamp=? WHERE Id=?", (stamp, record_id))
            self.db.execute("DELETE FROM _deleted WHERE id=?", (record_id,))
            self._roll_up(obj, [self.get(obj, record_id)], user_id, stamp)

    def purge(self, obj: SObject, record_id: str) -> None:
        """Hard delete (emptying the recycle bin)."""
        with self.lock:
            self.db.execute(f"DELETE FROM {obj.table} WHERE Id=?", (record_id,))

    def _notify(self, event: str, obj: SObject, record_ids: list[str]) -> None:
        if self._deferred is not None and self._deferred_owner == threading.get_ident():
            self._deferred.append((event, obj, record_ids))
            return
        for hook in list(self.hooks):
            hook(event, obj, record_ids)

    def defer_notifications(self) -> None:
        """Hold change notifications until flush (call with the lock held, e.g. inside a savepoint)."""
        self._deferred = []
        self._deferred_owner = threading.get_ident()

    def discard_notifications(self) -> None:
        self._deferred = None

    def flush_notifications(self) -> None:
        pending, self._deferred = self._deferred or [], None
        for event, obj, record_ids in pending:
            self._notify(event, obj, record_ids)

    # ------------------------------------------------------------------ getUpdated / getDeleted
    def updated_between(self, obj: SObject, start: str, end: str) -> list[str]:
        with self.lock:
            return [r[0] for r in self.db.execute(
                f"SELECT Id FROM {obj.table} WHERE IsDeleted=0 AND SystemModstamp>=? AND SystemModstamp<? "
                "ORDER BY SystemModstamp", (start, end))]

    def deleted_between(self, obj: SObject, start: str, end: str) -> list[tuple[str, str]]:
        with self.lock:
            return self.db.execute(
                "SELECT id, deleted FROM _deleted WHERE obj=? AND deleted>=? AND deleted<? ORDER BY deleted",
                (obj.name, start, end)).fetchall()

    def bulk_insert_rows(self, obj: SObject, cols: list[str], rows: Iterable[tuple]) -> None:
        with self.lock:
            self.db.execute("BEGIN")
            try:
                self.db.executemany(
                    f"INSERT INTO {obj.table} ({', '.join(chr(34) + c + chr(34) for c in cols)}) "
                    f"VALUES ({', '.join('?' * len(cols))})", rows)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise


class _TransactionStamp:
    """One SystemModstamp for every write of a transaction on this thread (nested: the outer one)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.outer = False

    def __enter__(self) -> str:
        tx = self.store._tx
        if getattr(tx, "stamp", None) is None:
            tx.stamp = self.store.clock.stamp()
            self.outer = True
        return tx.stamp

    def __exit__(self, *exc: Any) -> None:
        if self.outer:
            self.store._tx.stamp = None
