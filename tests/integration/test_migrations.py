from sqlalchemy import inspect

from refstage.adapters.db.database import make_engine
from refstage.adapters.db.migrate import downgrade_engine, upgrade_engine
from refstage.adapters.db.models import Base


def test_migrations_match_models_and_round_trip(tmp_path, db_backend):
    if db_backend != "sqlite":
        import pytest

        pytest.skip("the PostgreSQL run migrates its schema at session start; round trip checked on SQLite")
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade_engine(engine)
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set(Base.metadata.tables)
    for table in Base.metadata.tables.values():
        columns = {c["name"] for c in inspect(engine).get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    downgrade_engine(engine)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade_engine(engine)
    engine.dispose()


def test_schema_on_configured_database_matches_models(engine):
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set(Base.metadata.tables)
