"""Customer CSV files: the column set, row validation and streaming reads with line numbers.

A row is either a :class:`CustomerRecord` ready to store or a :class:`RejectedRow` saying which
line and why. Only columns present in the file are written, so a file with just the required
columns never resets a customer's tier or flags that were set elsewhere.
"""

from __future__ import annotations

import csv
import re
import signal
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from callcenter.errors import CallCenterError
from screenpop.numbers import normalize

REQUIRED = ("external_id", "name", "phone")
OPTIONAL = (
    "company", "email", "tier", "language", "notes", "segment",
    "blacklisted", "blacklist_reason", "do_not_call", "do_not_call_reason", "credit_limit", "balance",
)
COLUMNS = REQUIRED + OPTIONAL
TIERS = ("standard", "silver", "gold", "vip")
_LIMITS = {
    "external_id": 64, "name": 200, "company": 200, "email": 254, "language": 16, "segment": 64,
    "blacklist_reason": 200, "do_not_call_reason": 200, "notes": 4000,
}
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_NUMBERS = 10


class CsvFormatError(CallCenterError):
    """The file as a whole cannot be imported (missing columns, not CSV)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Phone:
    e164: str
    kind: str
    raw: str


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    line: int
    external_id: str
    values: dict[str, Any]
    phones: tuple[Phone, ...]
    raw: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str
    raw: dict[str, str] = field(default_factory=dict)


def _text(name: str, value: str | None) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if "\x00" in value or any(0xDC80 <= ord(ch) <= 0xDCFF for ch in value):
        raise ValueError(f"{name} is not valid UTF-8 text")
    if len(value) > _LIMITS.get(name, 200):
        raise ValueError(f"{name} is longer than {_LIMITS.get(name, 200)} characters")
    return value


def _bool(name: str, value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name} {value!r} is not yes/no (use true, false, yes, no, 1 or 0)")


def _money(name: str, value: str | None) -> Decimal:
    text = (value or "").strip().replace(",", "")
    if not text:
        return Decimal("0")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{name} {value!r} is not a number") from None
    if not amount.is_finite() or abs(amount) >= Decimal("1e12"):
        raise ValueError(f"{name} {value!r} is out of range")
    return amount.quantize(Decimal("0.01"))


def parse_row(row: dict[str, str], line: int, columns: tuple[str, ...], region: str) -> CustomerRecord | RejectedRow:
    """Validate one CSV row; the first problem found is the reason it is rejected."""
    raw = {k: v for k, v in row.items() if k is not None}
    if None in row:
        return RejectedRow(line, f"{len(row[None])} more field(s) than the header has columns", raw)
    try:
        external_id = _text("external_id", row.get("external_id"))
        if not external_id:
            return RejectedRow(line, "external_id is empty", raw)
        name = _text("name", row.get("name"))
        if not name:
            return RejectedRow(line, "name is empty", raw)
        phones: list[Phone] = []
        pieces = [p.strip() for p in (row.get("phone") or "").split(";") if p.strip()]
        if not pieces:
            return RejectedRow(line, "phone is empty", raw)
        if len(pieces) > _MAX_NUMBERS:
            return RejectedRow(line, f"more than {_MAX_NUMBERS} phone numbers", raw)
        for piece in pieces:
            number = normalize(piece, region)
            if number is None:
                return RejectedRow(line, f"phone {piece!r} is not a valid number (default region {region})", raw)
            if all(p.e164 != number.e164 for p in phones):
                phones.append(Phone(number.e164, number.kind, piece[:64]))
        values: dict[str, Any] = {"name": name}
        for column in columns:
            if column in REQUIRED:
                continue
            value = row.get(column)
            if column in ("blacklisted", "do_not_call"):
                values[column] = _bool(column, value)
            elif column in ("credit_limit", "balance"):
                values[column] = _money(column, value)
            elif column == "tier":
                tier = (value or "").strip().lower() or "standard"
                if tier not in TIERS:
                    return RejectedRow(line, f"tier {value!r} is not one of {', '.join(TIERS)}", raw)
                values[column] = tier
            else:
                values[column] = _text(column, value)
        email = values.get("email")
        if email and not _EMAIL.match(email):
            return RejectedRow(line, f"email {email!r} is not an address", raw)
    except ValueError as exc:
        return RejectedRow(line, str(exc), raw)
    return CustomerRecord(line, external_id, values, tuple(phones), raw)


def _header(reader: csv.DictReader, path: Path) -> tuple[str, ...]:
    try:
        fields = reader.fieldnames
    except csv.Error as exc:
        raise CsvFormatError(f"{path}: line 1: not a readable CSV header ({exc})") from None
    if not fields:
        raise CsvFormatError(f"{path}: the file is empty; the first line must name the columns")
    names = tuple((f or "").strip().lower() for f in fields)
    reader.fieldnames = list(names)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise CsvFormatError(
            f"{path}: line 1: missing required column(s) {', '.join(missing)}; "
            f"the header needs {','.join(REQUIRED)} and may add {','.join(OPTIONAL)}"
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CsvFormatError(f"{path}: line 1: column(s) {', '.join(dupes)} appear more than once")
    return names


@dataclass
class CsvReadStats:
    unknown_columns: tuple[str, ...] = ()


RawRow = tuple[int, dict[str, str]]


def raw_rows(handle: IO[str], path: Path, stats: CsvReadStats | None = None) -> tuple[tuple[str, ...], Iterator[RawRow | RejectedRow]]:
    """Check the header, then stream (line, row) pairs; records the CSV module cannot read become rejects."""
    reader = csv.DictReader(handle)
    names = _header(reader, path)
    if stats is not None:
        stats.unknown_columns = tuple(n for n in names if n not in COLUMNS)
    columns = tuple(n for n in names if n in COLUMNS)

    def rows() -> Iterator[RawRow | RejectedRow]:
        previous_end = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RejectedRow(previous_end + 1, f"not readable as CSV ({exc})")
                previous_end = reader.line_num
                continue
            line, previous_end = previous_end + 1, reader.line_num
            if None in row or any((v or "").strip() for v in row.values()):
                yield line, row

    return columns, rows()


def parse_rows(items: list[RawRow], columns: tuple[str, ...], region: str) -> list[CustomerRecord | RejectedRow]:
    """Validate a chunk of rows (module-level, so a process pool can run it)."""
    return [parse_row(row, line, columns, region) for line, row in items]


class DuplicateFilter:
    """Rejects a second row with an external_id seen earlier in the same file."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, item: CustomerRecord | RejectedRow) -> CustomerRecord | RejectedRow:
        if isinstance(item, RejectedRow):
            return item
        first = self._seen.setdefault(item.external_id, item.line)
        if first != item.line:
            return RejectedRow(item.line, f"external_id {item.external_id!r} already on line {first}", item.raw)
        return item


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def read_customers(
    handle: IO[str], path: Path, region: str, stats: CsvReadStats | None = None, *, workers: int = 1, chunk: int = 1000
) -> Iterator[CustomerRecord | RejectedRow]:
    """Stream validated rows in file order; with ``workers`` > 1 the validation runs in a process pool.

    Validation (phone number parsing above all) is most of an import's CPU; the pool spreads it
    over the cores while this process reads the file and writes the database.
    """
    columns, items = raw_rows(handle, path, stats)
    dedupe = DuplicateFilter()
    if workers <= 1:
        for item in items:
            if isinstance(item, RejectedRow):
                yield item
            else:
                yield dedupe(parse_row(item[1], item[0], columns, region))
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint) as pool:
        pending: deque = deque()

        def submit(batch: list[RawRow], early: list[RejectedRow]) -> None:
            pending.append((early, pool.submit(parse_rows, batch, columns, region)))

        batch: list[RawRow] = []
        early: list[RejectedRow] = []
        try:
            for item in items:
                if isinstance(item, RejectedRow):
                    early.append(item)
                    continue
                batch.append(item)
                if len(batch) >= chunk:
                    submit(batch, early)
                    batch, early = [], []
                    while len(pending) > workers * 2:
                        yield from _drain(pending.popleft(), dedupe)
            submit(batch, early)
            while pending:
                yield from _drain(pending.popleft(), dedupe)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _drain(entry, dedupe: DuplicateFilter) -> Iterator[CustomerRecord | RejectedRow]:
    early, future = entry
    results = sorted([*early, *future.result()], key=lambda r: r.line)
    for result in results:
        yield dedupe(result)


def write_rejects(path: Path, rejects: list[RejectedRow]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "reason", *COLUMNS])
        for reject in rejects:
            writer.writerow([reject.line, reject.reason, *(reject.raw.get(c, "") for c in COLUMNS)])
