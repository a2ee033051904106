"""Migrations build exactly the models' schema, on SQLite and on a real PostgreSQL."""

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from callcenter.db import Database, SchemaOutOfDate, current_revision, head_revision, upgrade
from callcenter.db.migrate import downgrade
from callcenter.db.models import Base, QueueEvent


def test_upgrade_creates_schema_matching_models(migrated_db):
    assert current_revision(migrated_db) == head_revision()
    with migrated_db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_upgrade_is_idempotent_and_downgrade_works(migrated_db):
    before, after = upgrade(migrated_db)
    assert before == after == head_revision()
    downgrade(migrated_db, "base")
    assert current_revision(migrated_db) is None
    assert set(migrated_db.table_names()) <= {"alembic_version"}
    upgrade(migrated_db)
    assert "customers" in migrated_db.table_names()


@pytest.mark.parametrize("statement", ["UPDATE queue_events SET event = 'x'", "DELETE FROM queue_events"])
def test_queue_event_log_is_append_only(migrated_db, statement):
    with migrated_db.engine.begin() as conn:
        conn.execute(insert(QueueEvent).values(at=dt.datetime.now(dt.UTC), event="joined", queue="sales", data={}))
    with pytest.raises(DBAPIError, match="append-only"):
        with migrated_db.engine.begin() as conn:
            conn.execute(text(statement))
    with migrated_db.engine.connect() as conn:
        assert conn.execute(text("SELECT event FROM queue_events")).scalar_one() == "joined"


def test_unmigrated_database_is_refused_with_instructions(database_url):
    db = Database(database_url)
    with pytest.raises(SchemaOutOfDate, match="callcenter db upgrade"):
        db.check_schema()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


def test_cli_db_upgrade_and_status(cli):
    status = cli("db", "status")
    # the message holds the database's path: its line breaks depend on how long the path is
    assert status.code == 1 and "needs 'callcenter db upgrade'" in " ".join(status.out.split())
    first = cli("db", "upgrade")
    assert first.code == 0 and "migrated empty" in first.out and "6 added" in first.out
    again = cli("db", "upgrade")
    assert again.code == 0 and "up to date" in again.out
    assert cli("db", "status").code == 0


def test_cli_refuses_unmigrated_database(cli):
    result = cli("customers", "show", "13912345678")
    assert result.code == 1 and "db upgrade" in result.err and "Traceback" not in result.err


def test_unreachable_database_is_a_clear_error(sqlite_cli):
    result = sqlite_cli("db", "status", env={"CALLCENTER_DATABASE__URL": "postgresql://cc:pw@127.0.0.1:1/none"})
    assert result.code == 1
    assert "cannot reach the database" in result.err and "database.url" in result.err and "pw@" not in result.err and "Traceback" not in result.err
