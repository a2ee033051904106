"""Engine and session handling for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.errors import DatabaseError
from callcenter.security import redact_url

log = logging.getLogger(__name__)


class SchemaOutOfDate(DatabaseError):
    """The database has not been migrated to the schema this version expects."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str, *, echo: bool = False):
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.engine: Engine = create_engine(parsed, echo=echo, future=True, pool_pre_ping=True)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on any exception."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise DatabaseError(f"database {self.safe_url}: {exc.orig}") from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def check_schema(self) -> None:
        """Refuse to work on a database that is not at the current migration head."""
        from callcenter.db.migrate import current_revision, head_revision

        try:
            current = current_revision(self)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot reach the database {self.safe_url}: {exc.__class__.__name__}: {exc}") from None
        if current != head_revision():
            state = "is empty" if current is None else f"is at revision {current}"
            raise SchemaOutOfDate(
                f"the database {self.safe_url} {state}; run 'callcenter db upgrade' first"
            )

    def table_names(self) -> list[str]:
        return inspect(self.engine).get_table_names()

    def dispose(self) -> None:
        self.engine.dispose()


def describe_error(exc: BaseException) -> str | None:
    """A one-paragraph message for a database failure that escaped a command, or None if it is not one."""
    if not isinstance(exc, SQLAlchemyError):
        return None
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = redact_url(detail[0] if detail else exc.__class__.__name__)
    if isinstance(exc, OperationalError):
        return f"cannot reach the database or it failed: {first}. Check database.url and that the server is running."
    return f"the database refused the operation ({exc.__class__.__name__}): {first}"
