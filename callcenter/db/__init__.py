"""Durable storage: the only package that imports SQLAlchemy.

``Database`` is the handle everything else receives from the composition root; repositories in
this package take it and return plain values, never ORM objects, to callers outside.
"""

from callcenter.db.engine import Database, SchemaOutOfDate, describe_error
from callcenter.db.migrate import current_revision, head_revision, upgrade

__all__ = ["Database", "SchemaOutOfDate", "describe_error", "current_revision", "head_revision", "upgrade"]
