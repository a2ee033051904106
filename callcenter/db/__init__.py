"""Durable storage: the only package that imports SQLAlchemy.

``Database`` is the handle everything else receives from the composition root; repositories in
this package take it and return plain values, never ORM objects, to callers outside.

The root of this package's exceptions is :class:`~callcenter.errors.DatabaseError`. It lives in
:mod:`callcenter.errors`, which loads no SQLAlchemy, so code outside this package can catch it
without importing the database layer.
"""

from callcenter.db.engine import Database, SchemaOutOfDate, describe_error
from callcenter.db.migrate import current_revision, head_revision, upgrade
from callcenter.errors import DatabaseError

__all__ = [
    "Database",
    "describe_error",
    "current_revision",
    "head_revision",
    "upgrade",
    # errors
    "DatabaseError",
    "SchemaOutOfDate",
]
