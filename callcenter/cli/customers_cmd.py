"""``callcenter customers``: import, export and look up customers."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from callcenter.clock import utcnow
from callcenter import bootstrap
from callcenter.cli import app, console, err_console, escape, state
from callcenter.customer_csv import (
    COLUMNS, AtomicOutput, CsvPathError, CsvReadStats, CustomerRecord, RejectedRow, open_customer_csv, read_customers,
    shown, write_rejects,
)
from callcenter.db.customer_import import BatchResult, export_rows, upsert_customers
from callcenter.db.customer_profile import load_profile
from callcenter.db.directory import count_customers, find_customers
from callcenter.db.models import AuditEntry
from callcenter.logsafe import log_safe
from callcenter.errors import CallCenterError, NotFound
from screenpop.numbers import normalize
from screenpop.render import render_profile, safe_text

customers_app = typer.Typer(help="Import, export and look up customers.", no_args_is_help=True)
app.add_typer(customers_app, name="customers")

_SHOWN_REJECTS = 20


class _CountingReader:
    """Text file wrapper that reports bytes read, for a progress bar over a file of unknown row count."""

    def __init__(self, handle, advance):
        self._handle = handle
        self._advance = advance

    def __iter__(self):
        return self

    def __next__(self):
        line = next(self._handle)
        self._advance(len(line.encode("utf-8", "surrogateescape")))
        return line


@customers_app.command("import")
def import_cmd(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a header: external_id,name,phone[,company,email,tier,language,notes,...].", readable=False
        ),
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and count what would change; write nothing.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=20000, help="Rows per committed transaction.")] = 2000,
    rejects: Annotated[
        Optional[Path],
        typer.Option("--rejects", help="Write every rejected row with its line and reason to this CSV.", readable=False),
    ] = None,
) -> None:
    """Import customers from CSV, idempotently (keyed on external_id).

    Several numbers go in one `phone` field separated by `;`. Numbers without a country code are
    read in the configured default region. Bad rows (unreadable number, missing name, duplicate
    external_id in the file, not UTF-8, ...) are reported with their line number and skipped; good
    rows are imported. Rows are committed in batches: an interruption keeps whole batches only, and
    running the same import again resumes (rows already imported are unchanged). The rejects file
    is written whole or not at all. Exit status 0 when every row was good, 1 when some were
    rejected, 2 when nothing was imported because the file or the --rejects path is unusable.
    """
    settings = state(ctx).settings
    handle = open_customer_csv(file)
    rejects_out: AtomicOutput | None = None
    try:
        if rejects is not None:
            if _same_file(rejects, file):
                raise CsvPathError(
                    f"--rejects {shown(rejects)} is the file being imported and would overwrite it; "
                    f"choose another name, e.g. {shown(file.with_name(file.stem + '-rejects.csv'))}"
                )
            rejects_out = AtomicOutput(rejects, "--rejects ", example="rejects.csv")
        _import(settings, file, handle, dry_run, batch_size, rejects_out)
    finally:
        handle.close()
        if rejects_out is not None:
            rejects_out.discard()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _import(settings, file: Path, handle, dry_run: bool, batch_size: int, rejects_out: AtomicOutput | None) -> None:
    db = bootstrap.database(settings)
    total = BatchResult()
    rejected: list[RejectedRow] = []
    stats = CsvReadStats()
    committed_line = 0
    started = time.perf_counter()
    rows_read = 0
    size = os.fstat(handle.fileno()).st_size
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err_console, transient=False,
    )

    def flush(batch: list[CustomerRecord]) -> None:
        nonlocal committed_line
        if not batch:
            return
        with db.session() as session:
            result = upsert_customers(session, batch)
            if dry_run:
                session.rollback()
        total.add(result)
        committed_line = batch[-1].line
        batch.clear()

    batch: list[CustomerRecord] = []
    task = progress.add_task("dry run" if dry_run else "importing", total=size, rows=0)
    counting = _CountingReader(handle, lambda n: progress.advance(task, n))
    try:
        items = read_customers(counting, file, settings.center.default_region, stats, workers=_parse_workers(size))
        with progress:
            for item in items:
                rows_read += 1
                if isinstance(item, RejectedRow):
                    rejected.append(item)
                else:
                    batch.append(item)
                    if len(batch) >= batch_size:
                        flush(batch)
                if rows_read % 1000 == 0:
                    progress.update(task, rows=rows_read)
            flush(batch)
            progress.update(task, rows=rows_read, completed=size)
    except KeyboardInterrupt:
        err_console.print(
            f"[yellow]interrupted[/]: rows up to line {committed_line} are committed "
            f"({total.inserted} new, {total.updated} updated); the batch in progress was rolled back. "
            "Run the same import again to finish: rows already imported are left unchanged.",
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    except OSError as exc:
        raise CsvPathError(
            f"{shown(file)}: read error ({exc.strerror or exc}); rows up to line {committed_line} are committed. "
            "Run the same import again once the file is readable: rows already imported are left unchanged."
        ) from None

    elapsed = time.perf_counter() - started
    if stats.unknown_columns:
        err_console.print(
            f"[yellow]ignored unknown column(s):[/] "
            f"{escape(', '.join(log_safe(c, 60) for c in stats.unknown_columns))}", highlight=False
        )
    if rows_read == 0:
        err_console.print(
            f"[yellow]note:[/] {escape(shown(file))} has a header but no rows: nothing to import", highlight=False
        )
    _report(total, rejected, rows_read, elapsed, dry_run, rejects_out is not None)
    if not dry_run:
        with db.session() as session:
            session.add(
                AuditEntry(
                    actor="cli", action="customers.import", target=shown(file.name),
                    details={
                        "inserted": total.inserted, "updated": total.updated, "unchanged": total.unchanged,
                        "rejected": len(rejected), "rows": rows_read,
                    },
                )
            )
    if rejects_out is not None:
        _save_rejects(rejects_out, rejected)
    if rejected:
        raise typer.Exit(1)


def _parse_workers(size: int) -> int:
    """Big files are validated by one process per core; small ones are not worth the start-up."""
    return max(1, min(os.cpu_count() or 1, 8)) if size > 1_000_000 else 1


def _save_rejects(out: AtomicOutput, rejected: list[RejectedRow]) -> None:
    """Written even when empty, so a rejects file left from an earlier run never lists rows that are now fine."""
    try:
        write_rejects(out.handle, rejected)
        out.commit()
    except OSError as exc:
        out.discard()
        raise CallCenterError(
            f"--rejects {shown(out.path)}: could not be written ({exc.strerror or exc}); "
            "the import itself is done as summarised above"
        ) from None
    if rejected:
        console.print(f"Rejected rows written to {shown(out.path)}", highlight=False, markup=False)
    else:
        console.print(f"No rows rejected; {shown(out.path)} has the header only", highlight=False, markup=False)


def _report(total: BatchResult, rejected: list[RejectedRow], rows: int, elapsed: float, dry_run: bool, rejects: bool) -> None:
    verb = "would be" if dry_run else "were"
    table = Table(title="Import summary" + (" (dry run: nothing written)" if dry_run else ""), title_justify="left")
    table.add_column("rows read", justify="right")
    table.add_column(f"new ({verb} added)", justify="right")
    table.add_column(f"changed ({verb} updated)", justify="right")
    table.add_column("unchanged", justify="right")
    table.add_column("rejected", justify="right", style="red" if rejected else "")
    table.add_column("rows/s", justify="right")
    table.add_row(
        f"{rows:,}", f"{total.inserted:,}", f"{total.updated:,}", f"{total.unchanged:,}", f"{len(rejected):,}",
        f"{rows / elapsed:,.0f}" if elapsed > 0 else "—",
    )
    console.print(table)
    if rejected:
        bad = Table(title=f"Rejected rows ({len(rejected):,})", title_justify="left")
        bad.add_column("line", justify="right")
        bad.add_column("reason")
        for row in rejected[:_SHOWN_REJECTS]:
            bad.add_row(str(row.line), safe_text(row.reason))
        console.print(bad)
        if len(rejected) > _SHOWN_REJECTS and not rejects:
            console.print(f"… and {len(rejected) - _SHOWN_REJECTS:,} more: add --rejects FILE to write them all.")


@customers_app.command("export")
def export_cmd(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="CSV file to write (the import format; '-' for standard output).", readable=False)
    ],
) -> None:
    """Export every customer to CSV in the import format, so the file can be imported again unchanged.

    The file is written under a temporary name beside the target and renamed when complete, so a
    failed or interrupted export leaves the target as it was. Exit status 2 when the path is unusable.
    """
    settings = state(ctx).settings
    out = None if str(file) == "-" else AtomicOutput(file)
    written = 0
    try:
        db = bootstrap.database(settings)
        stream = typer.get_text_stream("stdout") if out is None else out.handle
        with db.session() as session:
            total = count_customers(session)
            writer = csv.DictWriter(stream, fieldnames=list(COLUMNS))
            writer.writeheader()
            with Progress(
                TextColumn("[bold]exporting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=err_console, disable=out is None,
            ) as progress:
                task = progress.add_task("export", total=total)
                for row in export_rows(session):
                    writer.writerow(row)
                    written += 1
                    if written % 1000 == 0:
                        progress.update(task, completed=written)
                progress.update(task, completed=written)
        if out is not None:
            out.commit()
    except OSError as exc:
        target = "standard output" if out is None else shown(file)
        kept = "" if out is None else f"; {shown(file)} was left as it was"
        raise CallCenterError(f"{target}: could not be written ({exc.strerror or exc}){kept}") from None
    finally:
        if out is not None:
            out.discard()
    err_console.print(f"[green]✓[/] {written:,} customers written to {escape(shown(file))}", highlight=False)


@customers_app.command("show")
def show_cmd(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="A phone number (any format), an external id, or a customer id.")],
) -> None:
    """Show a customer's whole picture: flags, value, products and warranty, cases, contacts, callbacks.

    When several customers share a number, they are listed so you can pick one by id.
    """
    settings = state(ctx).settings
    db = bootstrap.database(settings)
    number = normalize(key, settings.center.default_region, strict=False)
    with db.session() as session:
        matches = find_customers(session, e164=number.e164 if number else None, key=key.strip())
        if not matches:
            raise NotFound(f"no customer with number, external id or id {key!r}")
        if len(matches) > 1:
            table = Table(title=f"{len(matches)} customers match {key!r}: run 'customers show ID' with one id")
            for column in ("id", "external id", "name", "company", "tier", "numbers"):
                table.add_column(column)
            for m in matches:
                table.add_row(
                    str(m.customer_id), safe_text(m.external_id or ""), safe_text(m.name), safe_text(m.company or ""),
                    m.tier, ", ".join(m.numbers),
                )
            console.print(table)
            return
        profile = load_profile(session, matches[0].customer_id)
    console.print(
        render_profile(profile, now=utcnow(), region=settings.center.default_region, zone=bootstrap.center_zone(settings))
    )
