"""Alembic migrations on SQLite and on the loopback PostgreSQL: the schema at head is the
models', and 0005 (``instance.patient_key``) upgrades over rows already there and downgrades."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, select, text

from db.instances import ReceivedInstance, record_instance
from db.models import Base, Instance
from db.session import alembic_config, make_sessionmaker, upgrade
from kernel.patient import patient_key
from phantom.us_dicom import write_us_study
from pipeline.scoping import study_patient_count
from tests.support.databases import database_url

BEFORE = "0004_mpps"
KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


def _schema(engine: Engine, table: str) -> dict[str, Any]:
    """What a migration may change of ``table``: columns, indexes, keys."""
    found = inspect(engine)
    return {
        "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)],
        "indexes": sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in found.get_indexes(table)
        ),
        "primary_key": found.get_pk_constraint(table)["constrained_columns"],
        "foreign_keys": sorted(
            (tuple(k["constrained_columns"]), k["referred_table"])
            for k in found.get_foreign_keys(table)
        ),
    }


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _old_rows(engine: Engine, path: Path) -> int:
    """A study with one instance, written as the node wrote it before 0005; the study's id."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO study (study_instance_uid, state, first_received_at, "
                "last_received_at, generation, assembled_generation) "
                "VALUES ('1.2.3', 'RECEIVING', :now, :now, 0, -1)"
            ),
            {"now": "2026-12-01 08:00:00"},
        )
        connection.execute(
            text(
                "INSERT INTO series (study_id, series_instance_uid, modality) "
                "SELECT id, '1.2.3.1', 'US' FROM study"
            )
        )
        connection.execute(
            text(
                "INSERT INTO instance (study_id, series_id, sop_instance_uid, sop_class_uid, "
                "transfer_syntax_uid, number_of_frames, path, size_bytes, received_at, state) "
                "SELECT study_id, id, '1.2.3.1.1', '1.2.840.10008.5.1.4.1.1.6.1', "
                "'1.2.840.10008.1.2.1', 1, :path, 100, :now, 'RECEIVED' FROM series"
            ),
            {"path": str(path), "now": "2026-12-01 08:00:00"},
        )
        return int(connection.execute(text("SELECT id FROM study")).scalar_one())


@pytest.mark.parametrize("kind", KINDS)
def test_migrations_head_schema_is_the_models(tmp_path: Path, kind: str) -> None:
    with database_url(kind, tmp_path) as url:
        upgrade(url)
        engine = create_engine(url)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        engine.dispose()


@pytest.mark.parametrize("kind", KINDS)
def test_migration_0005_old_rows_unkeyed_then_downgrade_keeps_rows_drops_column(
    tmp_path: Path, kind: str
) -> None:
    [old_file] = write_us_study(tmp_path / "old", seed=41, count=1, rows=32, cols=32)
    with database_url(kind, tmp_path) as url:
        config, engine = alembic_config(url), create_engine(url)
        command.upgrade(config, BEFORE)
        before = _schema(engine, "instance")
        study = _old_rows(engine, old_file)

        command.upgrade(config, "0005_instance_patient_key")
        assert _revision(engine) == "0005_instance_patient_key"
        columns = {c["name"]: c for c in inspect(engine).get_columns("instance")}
        assert columns["patient_key"]["nullable"]
        with engine.connect() as connection:
            assert connection.execute(text("SELECT patient_key FROM instance")).all() == [(None,)]

        # the old row's patient comes from its file; a new row's from its key
        sessions = make_sessionmaker(url, migrate=False)
        with sessions() as session, session.begin():
            assert study_patient_count(session, study) == 1
            new = pydicom.Dataset()
            new.PatientID = "PAT-OTHER"
            record_instance(
                session,
                ReceivedInstance(
                    "1.2.3",
                    "1.2.3.1",
                    "1.2.3.1.2",
                    "1.2.840.10008.5.1.4.1.1.6.1",
                    "1.2.840.10008.1.2.1",
                    "/gone.dcm",
                    100,
                    patient_key=patient_key(new),
                ),
            )
        with sessions() as session:
            assert study_patient_count(session, study) == 2
            header = pydicom.dcmread(old_file, stop_before_pixels=True)
            keys = session.scalars(select(Instance.patient_key).order_by(Instance.id)).all()
            assert keys == [None, patient_key(new)] and patient_key(header) != keys[1]
        sessions.kw["bind"].dispose()

        command.downgrade(config, BEFORE)
        assert _revision(engine) == BEFORE
        assert _schema(engine, "instance") == before
        with engine.connect() as connection:
            assert connection.execute(
                text("SELECT sop_instance_uid, path FROM instance ORDER BY id")
            ).all() == [("1.2.3.1.1", str(old_file)), ("1.2.3.1.2", "/gone.dcm")]

        command.upgrade(config, "head")  # and up again: every row unkeyed now
        with engine.connect() as connection:
            assert connection.execute(text("SELECT patient_key FROM instance")).all() == [
                (None,),
                (None,),
            ]
        engine.dispose()


HISTORY_INDEXES = {
    "study": {
        ("ix_study_state", ("state",)),
        ("ix_study_last_received_at", ("last_received_at", "id")),
    },
    "delivery": {("ix_delivery_state", ("state",))},
    "audit_event": {("ix_audit_event_action_entity", ("action", "entity", "entity_id"))},
    "mpps": {("ix_mpps_status_acted_at", ("status", "acted_at"))},
}


def _indexes(engine: Engine, table: str) -> set[tuple[str, tuple[str, ...]]]:
    return {(i["name"], tuple(i["column_names"])) for i in inspect(engine).get_indexes(table)}


@pytest.mark.parametrize("kind", KINDS)
def test_migration_0006_indexes_over_rows_then_downgrade_restores_mpps_status(
    tmp_path: Path, kind: str
) -> None:
    with database_url(kind, tmp_path) as url:
        config, engine = alembic_config(url), create_engine(url)
        command.upgrade(config, "0005_instance_patient_key")
        before = {table: _schema(engine, table) for table in HISTORY_INDEXES}
        _old_rows(engine, tmp_path / "gone.dcm")

        command.upgrade(config, "head")
        assert _revision(engine) == "0006_history_indexes"
        for table, wanted in HISTORY_INDEXES.items():
            assert wanted <= _indexes(engine, table)
        assert ("ix_mpps_status", ("status",)) not in _indexes(engine, "mpps")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM instance")).scalar_one() == 1

        command.downgrade(config, "0005_instance_patient_key")
        assert {table: _schema(engine, table) for table in HISTORY_INDEXES} == before
        engine.dispose()
