"""insert_many: the sync's many-row INSERTs bypass SQLAlchemy's per-row parameter work; rows must come back
exactly as the ORM's own inserts do, and errors must surface as SQLAlchemy's (configured database)."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import String, cast, select
from sqlalchemy.exc import IntegrityError

from refstage.adapters.db import models as m
from refstage.adapters.db.bulk_insert import insert_many


def _audit_row(tenant_id, at, **extra):
    row = {"tenant_id": tenant_id, "entity_type": "referral", "entity_id": "r1", "action": "status", "actor_kind": "sync",
           "actor_id": None, "actor_label": "sync", "at": at, "before": {"status": "routed"}, "after": {"status": "qualified"},
           "reason": None}
    row.update(extra)
    return row


def test_rows_read_back_as_the_orm_writes_them(rt, world):
    at = dt.datetime(2026, 11, 2, 10, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    T = m.AuditRow.__table__
    with rt.session_factory() as s:
        insert_many(s, T, [_audit_row(world.tenant.id, at, entity_id="fast"), _audit_row(world.tenant.id, at, entity_id="fast2",
                                                                                          before=None)])
        s.execute(T.insert(), [_audit_row(world.tenant.id, at, entity_id="orm", before=None)])
        s.commit()
    with rt.session_factory() as s:
        rows = {r.entity_id: r for r in s.scalars(select(m.AuditRow).where(m.AuditRow.entity_id.in_(["fast", "fast2", "orm"])))}
        # Range queries written with the ORM find the fast rows (same stored format).
        assert set(s.scalars(select(m.AuditRow.entity_id).where(m.AuditRow.at >= at, m.AuditRow.at <= at))) == {"fast", "fast2", "orm"}
        # What is physically stored, not what the JSON type reads back (NULL and JSON null both read as None).
        stored = {e: s.execute(select(cast(T.c.before, String)).where(T.c.entity_id == e)).scalar_one()
                  for e in ("fast", "fast2", "orm")}
    assert rows["fast"].at == at and rows["fast"].at.tzinfo is not None
    assert rows["fast"].before == {"status": "routed"} and rows["fast"].after == {"status": "qualified"}
    assert stored["fast2"] == stored["orm"] == "null"  # None stored as the ORM stores it: JSON null, not SQL NULL
    assert stored["fast"] is not None and "routed" in stored["fast"]


def test_a_constraint_violation_is_sqlalchemys_integrity_error_and_rolls_back(rt, world):
    now = dt.datetime.now(dt.timezone.utc)
    conn_id = world.connection.id
    T = m.CrmRecordRow.__table__
    row = {"tenant_id": world.tenant.id, "connection_id": conn_id, "object_name": "Opportunity", "crm_id": "006X",
           "fields": {"StageName": "Closed Won"}, "modified_at": now, "deleted": False, "updated_at": now}
    with rt.session_factory() as s:
        insert_many(s, T, [row])
        s.commit()
    with rt.session_factory() as s:
        with pytest.raises(IntegrityError):
            with s.begin_nested():
                insert_many(s, T, [dict(row, crm_id="006Y"), row])  # the second is a duplicate
        s.commit()
    with rt.session_factory() as s:
        assert sorted(s.scalars(select(T.c.crm_id).where(T.c.tenant_id == world.tenant.id))) == ["006X"]


def test_columns_with_python_defaults_must_be_given(rt, world):
    row = _audit_row(world.tenant.id, dt.datetime.now(dt.timezone.utc))
    del row["actor_label"]  # has a Python-side default that only SQLAlchemy's own executemany applies
    with rt.session_factory() as s:
        with pytest.raises(ValueError, match="actor_label"):
            insert_many(s, m.AuditRow.__table__, [row])


def test_rows_with_different_columns_are_refused(rt, world):
    at = dt.datetime.now(dt.timezone.utc)
    short = _audit_row(world.tenant.id, at)
    del short["reason"]
    with rt.session_factory() as s:
        with pytest.raises(ValueError, match="same columns"):
            insert_many(s, m.AuditRow.__table__, [_audit_row(world.tenant.id, at), short])


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.timezones()))
def test_sqlite_datetimes_are_stored_in_sqlalchemys_own_text_format(value):
    """UTCDateTime writes SQLite's text in one step; it must be exactly what SQLAlchemy's DATETIME would store,
    or range queries would compare differently formatted strings."""
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    ours = m.UTCDateTime().bind_processor(dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    expected = theirs(value.astimezone(dt.timezone.utc).replace(tzinfo=None))
    assert ours(value) == expected
    assert ours(value) == expected  # again: the same object is answered from memory
    other = value + dt.timedelta(microseconds=1) if value.year < 9999 else value - dt.timedelta(microseconds=1)
    assert ours(other) != expected
    assert ours(None) is None
    with pytest.raises(ValueError):
        ours(value.replace(tzinfo=None))


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.timezones()),
       st.sampled_from(["", "date only", "no fraction"]))
def test_sqlite_datetimes_read_back_as_sqlalchemy_reads_them(value, shape):
    """UTCDateTime parses SQLite's text in one step; it must give what SQLAlchemy's DATETIME followed by the old
    two-step conversion gave, for the text we store and for shorter forms another writer may have left."""
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    text = m.UTCDateTime().bind_processor(dialect)(value)
    if shape == "date only":
        text = text[:10]
    elif shape == "no fraction":
        text = text[:19]
    ours = m.UTCDateTime().result_processor(dialect, None)
    theirs = DateTime().dialect_impl(dialect).result_processor(dialect, None)
    expected = m.UTCDateTime().process_result_value(theirs(text), dialect)
    assert ours(text) == expected and ours(text).tzinfo == dt.timezone.utc
    assert ours(text) == expected  # again, from memory
    assert ours(None) is None
    if shape == "":
        assert ours(text) == value.astimezone(dt.timezone.utc)  # (a local time in a DST gap never equals another zone's)


def test_execute_many_refuses_rows_that_leave_a_parameter_unset_and_reports_driver_errors_as_sqlalchemys(rt, world):
    from sqlalchemy import bindparam, update

    from refstage.adapters.db.bulk_insert import execute_many

    now = dt.datetime.now(dt.timezone.utc)
    T = m.CrmRecordRow.__table__
    rows = [{"tenant_id": world.tenant.id, "connection_id": world.connection.id, "object_name": "Opportunity", "crm_id": crm_id,
             "fields": {}, "modified_at": now, "deleted": False, "updated_at": now} for crm_id in ("006A", "006B")]
    with rt.session_factory() as s:
        insert_many(s, T, rows)
        s.commit()

    def rename():
        return update(T).where(T.c.crm_id == bindparam("b_crm_id", type_=T.c.crm_id.type)).values(
            crm_id=bindparam("crm_id", type_=T.c.crm_id.type), deleted=True)  # a literal value: a parameter too

    with rt.session_factory() as s:
        with pytest.raises(ValueError, match="no value for"):
            execute_many(s, "test.rename.unset", rename, [{"b_crm_id": "006A", "crm_id": "006C"}])
        with pytest.raises(ValueError, match="same columns"):
            execute_many(s, "test.rename.ragged", lambda: update(T), [{"a": 1}, {"b": 2}])

        def rename_only():
            return update(T).where(T.c.crm_id == bindparam("b_crm_id", type_=T.c.crm_id.type)).values(
                crm_id=bindparam("crm_id", type_=T.c.crm_id.type))

        assert execute_many(s, "test.rename", rename_only, [{"b_crm_id": "006A", "crm_id": "006C"},
                                                            {"b_crm_id": "006X", "crm_id": "006Y"}]) == 1
        with pytest.raises(IntegrityError):
            with s.begin_nested():
                execute_many(s, "test.rename", rename_only, [{"b_crm_id": "006B", "crm_id": "006C"}])  # unique key
        s.commit()
    with rt.session_factory() as s:
        assert sorted(s.scalars(select(T.c.crm_id).where(T.c.tenant_id == world.tenant.id))) == ["006B", "006C"]
