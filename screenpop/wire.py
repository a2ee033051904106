"""Screen-pop values to and from JSON-ready dicts, for the CTI link.

Amounts travel as decimal strings (never floats), times as ISO 8601 with their offset, dates as
``YYYY-MM-DD``. Decoding checks every field against the dataclass's annotations and raises
:class:`WireError` on anything else, so a console never renders a half-understood pop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, TypeVar

from screenpop.errors import ScreenpopError
from screenpop.pop import AgentCallback, CustomerCandidate, RecentContact, ScreenPop
from screenpop.profile import CustomerProfile

T = TypeVar("T")

__all__ = ["WireError", "to_wire", "from_wire", "pop_to_wire", "pop_from_wire", "profile_to_wire",
           "profile_from_wire", "candidate_from_wire", "callback_from_wire", "contact_from_wire"]


class WireError(ScreenpopError, ValueError):
    """A dict that does not describe the expected value.

    Also a :class:`ValueError` (the value on the wire is bad), so callers that catch ``ValueError``
    keep working.
    """


def to_wire(value: Any) -> Any:
    """Dataclasses, tuples, Decimals, dates and datetimes as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_wire(cls: type[T], data: Any, path: str = "") -> T:
    """Rebuild a dataclass of ``cls`` from :func:`to_wire` output; raises :class:`WireError`."""
    return _decode(cls, data, path or cls.__name__)


def _decode(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise WireError(f"{path}: missing")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _decode(arg, value, path)
            except WireError as exc:
                errors.append(str(exc))
        raise WireError(errors[0] if errors else f"{path}: unexpected value")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise WireError(f"{path}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise WireError(f"{path}: expected a list")
        (item, *_rest) = typing.get_args(tp)
        return tuple(_decode(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise WireError(f"{path}: expected an object")
        return dict(value)
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise WireError(f"{path}: expected a list")
        return list(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise WireError(f"{path}: expected an object")
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _decode(hints[f.name], value[f.name], f"{path}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise WireError(f"{path}.{f.name}: missing")
        return tp(**kwargs)
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise WireError(f"{path}: expected a decimal string")
        try:
            return Decimal(value)
        except InvalidOperation:
            raise WireError(f"{path}: {value!r} is not a number") from None
    if tp is dt.datetime:
        try:
            moment = dt.datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise WireError(f"{path}: expected an ISO 8601 time") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if tp is dt.date:
        try:
            return dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise WireError(f"{path}: expected a date YYYY-MM-DD") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise WireError(f"{path}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise WireError(f"{path}: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WireError(f"{path}: expected a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise WireError(f"{path}: expected a string")
        return value
    raise WireError(f"{path}: cannot decode {tp!r}")


def pop_to_wire(pop: ScreenPop) -> dict[str, Any]:
    return to_wire(pop)


def pop_from_wire(data: Any) -> ScreenPop:
    return from_wire(ScreenPop, data, "pop")


def profile_to_wire(profile: CustomerProfile) -> dict[str, Any]:
    return to_wire(profile)


def profile_from_wire(data: Any) -> CustomerProfile:
    return from_wire(CustomerProfile, data, "profile")


def candidate_from_wire(data: Any) -> CustomerCandidate:
    return from_wire(CustomerCandidate, data, "customer")


def callback_from_wire(data: Any) -> AgentCallback:
    return from_wire(AgentCallback, data, "callback")


def contact_from_wire(data: Any) -> RecentContact:
    return from_wire(RecentContact, data, "contact")
