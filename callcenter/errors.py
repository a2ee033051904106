"""One exception root for the application packages, so the CLI can turn any of them into a clean message."""

__all__ = ["CallCenterError", "ConfigError", "DatabaseError", "NotFound"]


class CallCenterError(Exception):
    """Base of every error the command line reports without a traceback."""

    exit_code = 1


class ConfigError(CallCenterError):
    """The configuration could not be read or is invalid; the message names file and key path."""

    exit_code = 2


class DatabaseError(CallCenterError):
    """The database is unreachable, not migrated, or refused a write.

    The root of the exceptions :mod:`callcenter.db` defines; it lives here so that code outside that
    package can catch it without loading SQLAlchemy.
    """


class NotFound(CallCenterError):
    """A looked-up record does not exist."""
