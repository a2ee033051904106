"""Customer CSV files: the column set, row validation and streaming reads with line numbers.

A row is either a :class:`CustomerRecord` ready to store or a :class:`RejectedRow` saying which
line and why. Only columns present in the file are written, so a file with just the required
columns never resets a customer's tier or flags that were set elsewhere.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import tempfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from callcenter.errors import CallCenterError
from callcenter.logsafe import log_safe
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
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by errors="surrogateescape"


class CsvFormatError(CallCenterError):
    """The file as a whole cannot be imported (missing columns, not CSV)."""

    exit_code = 2


class CsvPathError(CallCenterError):
    """A file named on the command line cannot be read or written; nothing was imported or exported."""

    exit_code = 2


def shown(path: Path | str) -> str:
    """A path as printable text: bytes of a file name that are not UTF-8 become \\xNN instead of a crash."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# File signatures worth naming: people pick the workbook instead of its CSV export.
_NOT_CSV = {
    b"\xff\xfe": "UTF-16 text", b"\xfe\xff": "UTF-16 text", b"PK\x03\x04": "a ZIP archive (an .xlsx workbook?)",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook", b"\x1f\x8b": "gzip-compressed",
}


def open_customer_csv(path: Path) -> IO[str]:
    """Open an import file, or say plainly what is wrong with it and what to do (exit status 2).

    Bytes that are not UTF-8 are kept as surrogate escapes, so one bad row is rejected with its
    line instead of failing the whole file.
    """
    name = shown(path)
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise CsvPathError(f"{name}: no such file; check the name and the folder") from None
    except IsADirectoryError:
        raise CsvPathError(f"{name}: is a directory, give a CSV file") from None
    except PermissionError:
        raise CsvPathError(f"{name}: permission denied; make the file readable by this user, or copy it") from None
    except OSError as exc:
        raise CsvPathError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    try:
        head = raw.peek(4)[:4]
    except OSError as exc:
        raw.close()
        raise CsvPathError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    for magic, kind in _NOT_CSV.items():
        if head.startswith(magic):
            raw.close()
            raise CsvFormatError(f"{name}: the file is {kind}, not CSV text; save it as CSV (UTF-8) and import that")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _file_mode(path: Path) -> int:
    """Keep the target's permissions when replacing it; a new file gets the usual umask ones."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


class AtomicOutput:
    """A text file written under a temporary name beside its target and renamed over it when complete.

    A failure or an interruption therefore never leaves a half-written file at the target path;
    opening it up front also reports a bad path before any work is done.
    """

    def __init__(self, path: Path, label: str = "", example: str = "customers.csv") -> None:
        self.path = path
        name = f"{label}{shown(path)}"
        if path.is_symlink():
            path = Path(os.path.realpath(path))  # replace the file the link points to, not the link
        self._target = path
        folder = path.parent
        if path.is_dir():
            raise CsvPathError(f"{name}: is a directory; give a file name in it, e.g. {shown(path / example)}")
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        except FileNotFoundError:
            raise CsvPathError(f"{name}: folder {shown(folder)} does not exist; create it or choose another path") from None
        except NotADirectoryError:
            raise CsvPathError(f"{name}: {shown(folder)} is a file, not a folder; choose another path") from None
        except PermissionError:
            raise CsvPathError(
                f"{name}: permission denied: cannot write in folder {shown(folder)}; choose a folder you can write to"
            ) from None
        except OSError as exc:
            raise CsvPathError(f"{name}: cannot be written ({exc.strerror or exc})") from None
        self._tmp: Path | None = Path(tmp)
        os.fchmod(fd, _file_mode(path))
        self.handle: IO[str] = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace", newline="")

    def commit(self) -> None:
        """Flush to disk, then rename over the target: readers see the old file or the whole new one."""
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            os.replace(self._tmp, self._target)
        except BaseException:
            self.discard()
            raise
        self._tmp = None

    def discard(self) -> None:
        """Remove the temporary file (no-op after commit); the target is left as it was."""
        if self._tmp is None:
            return
        try:
            self.handle.close()
        except OSError:
            pass
        self._tmp.unlink(missing_ok=True)
        self._tmp = None

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


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
    if "\x00" in value:
        raise ValueError(f"{name} contains a NUL character (binary data?)")
    if _ESCAPED.search(value):
        raise ValueError(f"{name} is not valid UTF-8 text; save the file as UTF-8")
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


class _LineTap:
    """Hands lines to the CSV reader and keeps those of the current record, to check and locate its bytes."""

    def __init__(self, lines) -> None:
        self._lines = iter(lines)
        self.taken: list[str] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.taken.append(line)
        return line

    def record(self, line_num: int) -> tuple[int, list[str]]:
        """The first line number and the lines of the record just read, without the blank lines skipped before it."""
        start, lines = line_num - len(self.taken) + 1, self.taken
        while lines and not lines[0].strip("\r\n"):
            start, lines = start + 1, lines[1:]
        return start, lines


def _bad_byte(start: int, lines: list[str]) -> str | None:
    """Where the first byte that is not UTF-8 sits in a record ("byte 0xe9 at column 12"), or None."""
    for offset, text in enumerate(lines):
        if text.isascii():
            continue
        found = _ESCAPED.search(text)
        if found:
            byte = ord(found.group()) - 0xDC00
            line = "" if offset == 0 else f"line {start + offset}, "
            return f"byte 0x{byte:02x} at {line}column {found.start() + 1}"
    return None


def _header(reader: csv.DictReader, tap: _LineTap, path: Path) -> tuple[str, ...]:
    name = shown(path)
    try:
        fields = reader.fieldnames
    except csv.Error as exc:
        raise CsvFormatError(f"{name}: line 1: not a readable CSV header ({exc})") from None
    text = "".join(tap.taken)
    if "\x00" in text:
        raise CsvFormatError(
            f"{name}: line 1 has NUL bytes: the file is binary or UTF-16, not CSV text; save it as CSV (UTF-8)"
        )
    where = _bad_byte(1, tap.taken)
    if where:
        raise CsvFormatError(f"{name}: line 1 is not UTF-8 text ({where}); save the file as CSV (UTF-8)")
    if not fields:
        if text:
            raise CsvFormatError(f"{name}: line 1 is blank; the first line must name the columns ({','.join(REQUIRED)},...)")
        raise CsvFormatError(f"{name}: the file is empty; the first line must name the columns ({','.join(REQUIRED)},...)")
    names = tuple((f or "").strip().lower() for f in fields)
    reader.fieldnames = list(names)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        hint = ""
        if len(names) == 1 and (";" in names[0] or "\t" in names[0]):
            hint = f" (the columns look separated by {'tabs' if chr(9) in names[0] else 'semicolons'}; use commas)"
        raise CsvFormatError(
            f"{name}: line 1: missing required column(s) {', '.join(missing)}{hint}; "
            f"the header needs {','.join(REQUIRED)} and may add {','.join(OPTIONAL)}"
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CsvFormatError(f"{name}: line 1: column(s) {', '.join(log_safe(d, 60) for d in dupes)} "
                             "appear more than once")
    return names


@dataclass
class CsvReadStats:
    unknown_columns: tuple[str, ...] = ()


RawRow = tuple[int, dict[str, str]]


def raw_rows(handle: IO[str], path: Path, stats: CsvReadStats | None = None) -> tuple[tuple[str, ...], Iterator[RawRow | RejectedRow]]:
    """Check the header, then stream (line, row) pairs; records that are not UTF-8 or not CSV become rejects."""
    tap = _LineTap(handle)
    reader = csv.DictReader(tap)
    names = _header(reader, tap, path)
    if stats is not None:
        stats.unknown_columns = tuple(n for n in names if n not in COLUMNS)
    columns = tuple(n for n in names if n in COLUMNS)

    def rows() -> Iterator[RawRow | RejectedRow]:
        while True:
            tap.taken = []
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RejectedRow(tap.record(reader.line_num)[0], f"not readable as CSV ({exc})")
                continue
            if None not in row and not any((v or "").strip() for v in row.values()):
                continue
            line, lines = tap.record(reader.line_num)
            where = _bad_byte(line, lines)
            if where:
                raw = {k: v for k, v in row.items() if k is not None}
                yield RejectedRow(line, f"not UTF-8 ({where}); save the file as UTF-8", raw)
            else:
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
    over the cores while this process reads the file and writes the database. The header is
    checked at the call, so a file that cannot be imported fails before any row is read.
    """
    columns, items = raw_rows(handle, path, stats)
    return _validated(columns, items, region, workers, chunk)


def _validated(
    columns: tuple[str, ...], items: Iterator[RawRow | RejectedRow], region: str, workers: int, chunk: int
) -> Iterator[CustomerRecord | RejectedRow]:
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


def _original(value: str | None) -> str:
    """A field as written in the file; bytes that were not UTF-8 appear as \\xNN so the rejects file stays UTF-8."""
    return (value or "").encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def write_rejects(out: IO[str], rejects: list[RejectedRow]) -> None:
    """Every rejected row with its line and reason, then its fields as they were in the file."""
    writer = csv.writer(out)
    writer.writerow(["line", "reason", *COLUMNS])
    for reject in rejects:
        writer.writerow([reject.line, _original(reject.reason), *(_original(reject.raw.get(c)) for c in COLUMNS)])
