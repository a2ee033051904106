"""``callcenter ivr`` (check and simulate menus) and ``callcenter prompts`` (record voice prompts)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from callcenter.cli import app, console, state
from callcenter.errors import CallCenterError, ConfigError
from callcenter.prompts import RATES, audit_prompt_files, build_prompts, find_espeak, load_menu
from ivr import check_menu

ivr_app = typer.Typer(help="IVR menus: check them and walk through them in a simulator.", no_args_is_help=True)
app.add_typer(ivr_app, name="ivr")
prompts_app = typer.Typer(help="Voice prompts of the IVR: record them with espeak-ng.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")


def _menu_path(ctx: typer.Context, file: Optional[Path]) -> Path:
    return file if file is not None else Path(state(ctx).settings.ivr.menu_file)


@ivr_app.command("check")
def check(
    ctx: typer.Context,
    file: Annotated[Optional[Path], typer.Argument(help="Menu file \\[default: ivr.menu_file from the settings].")] = None,
    no_prompts: Annotated[
        bool, typer.Option("--no-prompts", help="Do not look for the recorded prompt files.")
    ] = False,
) -> None:
    """Check a menu for mistakes before callers find them.

    Reports targets and queues that do not exist, unreachable nodes, loops with no way out, keys bound twice, missing prompt texts, unknown variables and missing or out-of-date prompt files.

    Exit status: 0 clean (warnings allowed), 1 problems found, 2 the file cannot be read or does not follow the menu format. Prompts that were never built give a warning; missing or out-of-date files of a built language are problems.
    """
    settings = state(ctx).settings
    path = _menu_path(ctx, file)
    loaded = load_menu(path)
    findings = check_menu(
        loaded.menu,
        queues=list(settings.queues),
        languages=settings.ivr.languages,
        default_language=settings.ivr.default_language,
    )
    if not no_prompts:
        findings += audit_prompt_files(loaded.menu, Path(settings.ivr.prompts_dir), settings.ivr.languages)
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    for finding in errors + warnings:
        style = "red" if finding.severity == "error" else "yellow"
        console.print(Text(finding.format(str(path)), style=style), soft_wrap=True)
    summary = f"{path}: {len(loaded.menu.menus)} nodes, languages {', '.join(loaded.menu.languages)}"
    if errors:
        console.print(Text(f"✗ {summary}: {len(errors)} problem(s), {len(warnings)} warning(s)", style="bold red"))
        raise typer.Exit(1)
    console.print(Text(f"✓ {summary}: no problems" + (f", {len(warnings)} warning(s)" if warnings else ""), style="green"))


@ivr_app.command("simulate")
def simulate(
    ctx: typer.Context,
    caller: Annotated[Optional[str], typer.Option("--caller", help="Calling number (caller ID), any common format.")] = None,
    at: Annotated[
        Optional[str], typer.Option("--at", help="Time of the call, ISO 8601 (e.g. 2026-10-01T10:00+08:00); default: now.")
    ] = None,
    lang: Annotated[Optional[str], typer.Option("--lang", help="Starting prompt language \\[default: ivr.default_language].")] = None,
    file: Annotated[Optional[Path], typer.Option("--menu", help="Menu file \\[default: ivr.menu_file].")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Prompts end at once instead of taking their reading time.")] = False,
) -> None:
    """Walk through the IVR in the terminal, without a phone.

    Prompts are shown as text, keys 0-9 * # are the keypad, timers count down, and lookups use the configured database.
    """
    from callcenter.db.engine import Database
    from callcenter.db.selfservice import SqlSelfService
    from callcenter.tui.ivr_simulator import IvrSimulatorApp
    from ivr import CallInfo
    from screenpop.numbers import normalize

    settings = state(ctx).settings
    loaded = load_menu(_menu_path(ctx, file))
    language = lang or settings.ivr.default_language
    if language not in loaded.menu.prompts:
        raise ConfigError(f"--lang {language!r}: the menu has prompts for {', '.join(loaded.menu.languages)}")
    number = None
    if caller:
        parsed = normalize(caller, settings.center.default_region, strict=False)
        if parsed is None:
            raise ConfigError(f"--caller {caller!r} is not a phone number")
        number = parsed.e164
    start_at = None
    if at:
        try:
            start_at = dt.datetime.fromisoformat(at)
        except ValueError:
            raise ConfigError(f"--at {at!r} is not an ISO 8601 time such as 2026-10-01T10:00+08:00") from None
        if start_at.tzinfo is None:
            start_at = start_at.replace(tzinfo=settings.hours.zone)
    db = Database(settings.database.url)
    port = SqlSelfService(db, timezone=settings.hours.timezone)
    notice = None
    try:
        db.check_schema()
    except CallCenterError as exc:
        notice = f"database lookups will fail: {exc}"
    simulator = IvrSimulatorApp(
        loaded.menu,
        call=CallInfo("simulated-1", caller=number, dialed="ivr-simulator"),
        hours=settings.hours,
        language=language,
        port=port,
        start_at=start_at,
        seconds_per_char=0.0 if fast else 0.06,
        notice=notice,
    )
    try:
        record = simulator.run()
    finally:
        db.dispose()
    if record is not None:
        console.print(Text(f"outcome: {record.outcome or 'call still in the IVR'} · {len(record.steps)} steps"))


@prompts_app.command("build")
def build(
    ctx: typer.Context,
    lang: Annotated[
        Optional[list[str]], typer.Option("--lang", help="Only this language (repeatable) \\[default: ivr.languages].")
    ] = None,
    rate: Annotated[int, typer.Option("--rate", help="Sample rate in Hz: 8000 or 16000.")] = 8000,
    force: Annotated[bool, typer.Option("--force", help="Record every prompt again, changed or not.")] = False,
    file: Annotated[Optional[Path], typer.Option("--menu", help="Menu file \\[default: ivr.menu_file].")] = None,
) -> None:
    """Record the IVR prompts as WAV files with espeak-ng.

    Records the menu texts and the fragments numbers, money, dates and times are spoken from, as mono 16-bit PCM at --rate in ivr.prompts_dir/<language>/. Only prompts whose text, voice or rate changed are recorded again. Needs espeak-ng (apt-get install espeak-ng); sox resamples when installed.
    """
    if rate not in RATES:
        raise ConfigError(f"--rate {rate}: use 8000 or 16000")
    settings = state(ctx).settings
    loaded = load_menu(_menu_path(ctx, file))
    languages = lang or settings.ivr.languages
    prompts_dir = Path(settings.ivr.prompts_dir)
    find_espeak()  # a clear message before any progress bar
    with Progress(
        TextColumn("[bold]recording[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}", markup=False),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("prompts", total=None, current="")

        def on_progress(what: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, current=what)

        report = build_prompts(
            loaded.menu, prompts_dir, languages=languages, rate=rate, force=force, on_progress=on_progress
        )
    console.print(
        Text(
            f"✓ {prompts_dir}: {len(report.built)} recorded, {report.unchanged} unchanged, "
            f"{len(report.removed)} removed ({', '.join(languages)}, {rate} Hz)",
            style="green",
        )
    )
