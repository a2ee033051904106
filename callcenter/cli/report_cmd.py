"""``callcenter report``: the end-of-day report (rich tables, or CSV for spreadsheets)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from rich.text import Text

from callcenter.clock import utcnow
from callcenter import bootstrap
from callcenter.cli import app, console, state
from callcenter.errors import CallCenterError
from screenpop.text import format_duration

def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    if value == "today":
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CallCenterError(f"{option} {value!r}: write the date as YYYY-MM-DD, e.g. 2026-11-23") from None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _sec(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}s"


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    first: Annotated[Optional[str], typer.Option("--from", help="First day, YYYY-MM-DD in the center's time zone (default: today).")] = None,
    last: Annotated[Optional[str], typer.Option("--to", help="Last day, inclusive (default: the --from day).")] = None,
    queue: Annotated[Optional[str], typer.Option("--queue", "-q", help="Only this queue (its id).")] = None,
    csv_path: Annotated[
        Optional[Path],
        typer.Option("--csv", help="Write CSV instead of tables: a directory gets one file per section; "
                                   "a FILE.csv gets all sections one after the other."),
    ] = None,
) -> None:
    """End-of-day report from the stored records, for a range of days in the center's time zone.

    Per queue: offered, answered, abandoned, overflowed, callbacks asked for, service level both
    ways (answered within the queue's threshold over answered, and over answered + abandoned),
    abandon rate, ASA, longest wait, AHT. Per agent: calls answered, talk, wrap, AHT, missed
    offers, dispositions saved. The dispositions breakdown, the callbacks made (asked for in the
    range) and what became of them (kept, failed, cancelled, still waiting, overdue), and the
    service level per half hour. Works on SQLite and PostgreSQL.
    """
    from callcenter.db.report import build_report

    settings = state(ctx).settings
    zone = settings.hours.timezone
    today = utcnow().astimezone(bootstrap.center_zone(settings)).date()
    first_day = _date(first, "--from") or today
    last_day = _date(last, "--to") or first_day
    if last_day < first_day:
        raise CallCenterError(f"--to {last_day} is before --from {first_day}")
    if queue is not None and queue not in settings.queues:
        raise CallCenterError(f"--queue {queue!r}: no such queue; configured: {', '.join(settings.queues)}")
    db = bootstrap.database(settings)
    try:
        report = build_report(
            db, first_day=first_day, last_day=last_day, zone=zone, queue=queue,
            sl_seconds={q: c.service_level_seconds for q, c in settings.queues.items()},
            queue_names={q: c.name or q for q, c in settings.queues.items()},
            agent_names={a: c.name for a, c in settings.agents.items()},
            dispositions={code: (d.label, d.outcome) for code, d in settings.dispositions.items()},
            now=utcnow(),
        )
    finally:
        db.dispose()
    if csv_path is not None:
        written = write_csv(report, csv_path)
        for path in written:
            console.print(f"wrote {path}", highlight=False, markup=False)
        return
    print_report(report)


def _rows(report) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Each section as (header, rows) of plain values, for CSV."""
    def table(items: list) -> tuple[list[str], list[list[Any]]]:
        if not items:
            return [], []
        header = list(items[0].as_dict())
        return header, [[_plain(v) for v in item.as_dict().values()] for item in items]

    return {
        "queues": table(report.queues + ([report.totals()] if len(report.queues) > 1 else [])),
        "agents": table(report.agents),
        "dispositions": table(report.dispositions),
        "callbacks": table([report.callbacks]),
        "half_hours": table(report.half_hours),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return "" if value is None else value


def write_csv(report, path: Path) -> list[Path]:
    sections = _rows(report)
    if path.suffix.lower() == ".csv":
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["report", str(report.first_day), str(report.last_day), report.zone, report.queue or "all"])
            for name, (header, rows) in sections.items():
                out.writerow([])
                out.writerow([f"# {name}"])
                if header:
                    out.writerow(header)
                out.writerows(rows)
        return [path]
    if path.exists() and not path.is_dir():
        raise CallCenterError(f"--csv {path}: exists and is not a directory (give a directory or a name ending .csv)")
    path.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (header, rows) in sections.items():
        target = path / f"{name}.csv"
        with target.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            if header:
                out.writerow(header)
            out.writerows(rows)
        written.append(target)
    return written


def print_report(report) -> None:
    span = str(report.first_day) if report.first_day == report.last_day else f"{report.first_day} to {report.last_day}"
    title = f"Report {span} ({report.zone})" + (f", queue {report.queue}" if report.queue else "")
    console.print(Text(title, style="bold"))

    t = Table(title="Queues", title_justify="left")
    for column in ("Queue", "Offered", "Answered", "Abandoned", "Overflowed", "Callback asked", "SL answered",
                   "SL offered", "Threshold", "Abandon rate", "ASA", "Longest wait", "AHT"):
        t.add_column(column, justify="left" if column == "Queue" else "right", no_wrap=column == "Queue")
    lines = report.queues + ([report.totals()] if len(report.queues) > 1 else [])
    for q in lines:
        t.add_row(Text(q.name, style="bold" if not q.queue else ""), str(q.offered), str(q.answered),
                  str(q.abandoned), str(q.overflowed), str(q.callback_requested), _pct(q.sl_answered),
                  _pct(q.sl_offered), _sec(q.sl_seconds) if q.queue else "", _pct(q.abandon_rate), _sec(q.asa),
                  _sec(q.max_wait), _sec(q.aht))
    if not lines:
        t.add_row(Text("no calls were queued in this range", style="dim"), *[""] * 12)
    console.print(t)

    t = Table(title="Agents", title_justify="left")
    for column in ("Agent", "Name", "Answered", "Talk", "Avg talk", "Avg wrap", "AHT", "Missed offers",
                   "Dispositions"):
        t.add_column(column, justify="left" if column in ("Agent", "Name") else "right")
    for a in report.agents:
        t.add_row(Text(a.agent_id), Text(a.name), str(a.answered), format_duration(a.talk, hours="always"), _sec(a.avg_talk), _sec(a.avg_wrap),
                  _sec(a.aht), str(a.missed_offers), str(a.dispositions))
    if not report.agents:
        t.add_row(Text("no agent activity", style="dim"), *[""] * 8)
    console.print(t)

    t = Table(title="Dispositions", title_justify="left")
    for column in ("Code", "Label", "Outcome", "Count", "Share"):
        t.add_column(column, justify="right" if column in ("Count", "Share") else "left")
    for d in report.dispositions:
        t.add_row(Text(d.code), Text(d.label), Text(d.outcome), str(d.count), _pct(d.share))
    if not report.dispositions:
        t.add_row(Text("none saved", style="dim"), "", "", "", "")
    console.print(t)

    c = report.callbacks
    t = Table(title="Callbacks asked for in the range", title_justify="left")
    for column in ("Made", "Kept (done)", "Failed", "Cancelled", "In progress", "Waiting", "Overdue"):
        t.add_column(column, justify="right")
    t.add_row(str(c.made), str(c.kept), str(c.failed), str(c.cancelled), str(c.in_progress), str(c.waiting),
              Text(str(c.overdue), style="bold red" if c.overdue else ""))
    console.print(t)

    t = Table(title="Service level per half hour", title_justify="left")
    for column in ("From", "Offered", "Answered", "Abandoned", "In threshold", "SL answered", "SL offered"):
        t.add_column(column, justify="left" if column == "From" else "right")
    for h in report.half_hours:
        t.add_row(h.start.strftime("%Y-%m-%d %H:%M"), str(h.offered), str(h.answered), str(h.abandoned),
                  str(h.answered_in_sl), _pct(h.sl_answered), _pct(h.sl_offered))
    if not report.half_hours:
        t.add_row(Text("no calls", style="dim"), "", "", "", "", "", "")
    console.print(t)
