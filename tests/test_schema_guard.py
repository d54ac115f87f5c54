"""The launcher refuses to start an MLflow older than the database schema (issue #15).

A real MLflow schema in SQLite, made by MLflow's own migrations; the guard
reads the alembic revision as the launcher does before the upgrade.
"""
from __future__ import annotations

import sqlalchemy

from modules.mlflow_instance import launcher as L


def _migrated(tmp_path) -> str:
    from mlflow.store.db.utils import _initialize_tables

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    engine = sqlalchemy.create_engine(uri)
    _initialize_tables(engine)
    engine.dispose()
    return uri


def _set_revision(uri: str, revision: str) -> None:
    engine = sqlalchemy.create_engine(uri)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_a_database_without_a_schema_is_not_refused(tmp_path):
    assert L.unknown_schema_revision(f"sqlite:///{tmp_path / 'empty.db'}") is None


def test_the_installed_mlflows_own_schema_is_not_refused(tmp_path):
    assert L.unknown_schema_revision(_migrated(tmp_path)) is None


def test_an_older_schema_is_not_refused_it_is_upgraded(tmp_path):
    uri = _migrated(tmp_path)
    _set_revision(uri, "451aebb31d03")  # MLflow 1.x's "add metric step": known, long before head
    assert L.unknown_schema_revision(uri) is None


def test_a_schema_a_newer_mlflow_migrated_is_refused_by_its_revision(tmp_path):
    uri = _migrated(tmp_path)
    _set_revision(uri, "ffffffffffff")  # a revision this MLflow's migrations do not contain
    assert L.unknown_schema_revision(uri) == "ffffffffffff"
