"""The JSON columns' codec (orjson, the standard module behind it) reads back what it was given."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, insert, select

from refstage.adapters.db import json_codec
from refstage.adapters.db.database import make_engine


@pytest.mark.parametrize("value", [None, [], {}, {"a": 1, "b": [1, 2.5, "x", None, True]}, "é☃\u2028", [{"amount": "10.00"}]])
def test_round_trip(value):
    assert json_codec.loads(json_codec.dumps(value)) == value


def test_text_is_valid_json_for_any_reader():
    text = json_codec.dumps({"flags": [{"reason": "self_referral", "detail": {"score": 0.5}}]})
    assert json.loads(text) == {"flags": [{"reason": "self_referral", "detail": {"score": 0.5}}]}


def test_non_string_keys_become_strings_as_with_the_standard_module():
    assert json_codec.loads(json_codec.dumps({1: "x"})) == json.loads(json.dumps({1: "x"}))


def test_values_orjson_refuses_fall_back_to_the_standard_module():
    assert json_codec.dumps(2**70) == json.dumps(2**70)
    with pytest.raises(TypeError):
        json_codec.dumps({"when": object()})


def test_integers_beyond_64_bits_read_back_exact():
    assert json_codec.loads(json_codec.dumps({"n": 2**70})) == {"n": 2**70}
    assert json_codec.loads(b'{"n": 18446744073709551616}') == {"n": 2**64}


def test_what_the_standard_module_refused_is_still_refused():
    for value in ({"when": dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc)}, [dt.date(2026, 12, 2)]):
        with pytest.raises(TypeError):
            json_codec.dumps(value)


def test_str_subclasses_are_written_as_their_text():
    from refstage.domain.rewards import RewardStatus

    assert json_codec.loads(json_codec.dumps({"status": RewardStatus.APPROVED})) == {"status": "approved"}


def test_texts_the_standard_module_wrote_before_still_read():
    assert json_codec.loads('{"x": NaN}')["x"] != json_codec.loads('{"x": NaN}')["x"]  # NaN
    assert json_codec.loads('{"a": 1, "b": [1, 2]}') == {"a": 1, "b": [1, 2]}


def test_empty_values_are_new_objects_each_time():
    first, second = json_codec.loads("[]"), json_codec.loads("[]")
    first.append(1)
    assert second == [] and json_codec.loads("{}") is not json_codec.loads("{}")


def test_an_engine_stores_and_reads_json_columns_through_it(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/j.db")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("doc", JSON))
    table.metadata.create_all(engine)
    doc = {"at": dt.date(2026, 12, 2).isoformat(), "n": [1, 2, 3], "none": None}
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": 1, "doc": doc}, {"id": 2, "doc": []}])
        stored = conn.exec_driver_sql("SELECT doc FROM t WHERE id = 1").scalar()
        assert json.loads(stored) == doc
        assert dict(conn.execute(select(table.c.id, table.c.doc)).all()) == {1: doc, 2: []}
    engine.dispose()
