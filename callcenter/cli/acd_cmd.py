"""``callcenter erlang`` (staffing with Erlang C / Erlang A) and ``callcenter simulate``
(run the real ACD engine on simulated traffic and compare with the prediction)."""

from __future__ import annotations

import json
import math
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from acd.erlang import ErlangError, StaffingResult, agents_for_service_level, staffing_report
from acd.settings import STRATEGIES
from acd.simulation import SimulationConfig, simulate as run_simulation
from callcenter.cli import app, console

_PROGRESS_MIN_CALLS = 20_000


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _secs(value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return "∞ (queue grows without bound)"
    return f"{value:.1f} s"


def _check(name: str, value: float | None, *, zero_ok: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise typer.BadParameter(f"must be {'zero or more' if zero_ok else 'more than zero'}, got {value:g}", param_hint=name)


def _fraction(name: str, value: float | None, *, one_ok: bool) -> None:
    if value is None:
        return
    if not (0 < value < 1 or (one_ok and value == 1)):
        hint = f" (write {value / 100:g} for {value:g}%)" if 1 < value <= 100 else ""
        raise typer.BadParameter(f"must be a fraction between 0 and 1, got {value:g}{hint}", param_hint=name)


@app.command("erlang")
def erlang(
    calls: Annotated[float, typer.Option("--calls", help="Calls offered in the period.", show_default=False)],
    period: Annotated[float, typer.Option("--period", help="Length of the period in seconds (1800 = half an hour).", show_default=False)],
    aht: Annotated[float, typer.Option("--aht", help="Average handle time in seconds (talk + hold + wrap-up).", show_default=False)],
    target: Annotated[float, typer.Option("--target", help="Service-level answer time in seconds (the T of 80/20).")] = 20.0,
    agents: Annotated[
        Optional[int], typer.Option("--agents", help="Agents on the phones: report what they achieve.", show_default=False)
    ] = None,
    service_level: Annotated[
        Optional[float],
        typer.Option("--service-level", help="Wanted service level as a fraction (0.8): find the fewest agents.", show_default=False),
    ] = None,
    max_occupancy: Annotated[
        Optional[float],
        typer.Option("--max-occupancy", help="With --service-level: also keep occupancy at or below this fraction.", show_default=False),
    ] = None,
    patience: Annotated[
        Optional[float],
        typer.Option("--patience", help="Mean caller patience in seconds: use Erlang A (with abandonment).", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Staffing arithmetic: Erlang C, or Erlang A when --patience is given.

    Give either --agents (what do N agents achieve?) or --service-level (how many agents are
    needed?). Example, the classic 100 calls per half hour of 3 minutes each, 80% in 20 s:

        callcenter erlang --calls 100 --period 1800 --aht 180 --target 20 --service-level 0.8

    Prints agents, probability of waiting, service level (share of all calls answered within
    the target), ASA (mean wait of answered calls), occupancy and, with --patience, the
    probability of abandoning.
    """
    _check("--calls", calls, zero_ok=True)
    _check("--period", period)
    _check("--aht", aht)
    _check("--target", target, zero_ok=True)
    _check("--patience", patience)
    if (agents is None) == (service_level is None):
        raise typer.BadParameter("give exactly one of --agents N or --service-level FRACTION", param_hint="--agents / --service-level")
    if agents is not None and agents < 1:
        raise typer.BadParameter(f"must be at least 1, got {agents}", param_hint="--agents")
    _fraction("--service-level", service_level, one_ok=False)
    _fraction("--max-occupancy", max_occupancy, one_ok=True)
    if max_occupancy is not None and service_level is None:
        raise typer.BadParameter("only applies with --service-level", param_hint="--max-occupancy")
    rate = calls / period
    try:
        if agents is not None:
            result = staffing_report(rate, aht, agents, target, patience)
        else:
            result = agents_for_service_level(
                rate, aht, target, service_level, max_occupancy=max_occupancy, patience=patience  # type: ignore[arg-type]
            )
    except ErlangError as exc:
        raise typer.BadParameter(str(exc)) from None
    if as_json:
        print(
            json.dumps(
                {
                    "agents": result.agents,
                    "p_wait": result.p_wait,
                    "service_level": result.service_level,
                    "asa_seconds": _finite(result.asa),
                    "occupancy": result.occupancy,
                    "p_abandon": result.p_abandon,
                }
            )
        )
        return
    _print_staffing(result, calls, period, service_level, max_occupancy)


def _print_staffing(
    r: StaffingResult, calls: float, period: float, wanted: float | None, max_occupancy: float | None
) -> None:
    model = "Erlang A (with abandonment)" if r.model == "erlang_a" else "Erlang C (no abandonment)"
    title = f"{model}: {calls:g} calls per {period:g} s, AHT {r.aht:g} s"
    table = Table(title=title, show_header=True, header_style="bold", min_width=min(len(title) + 4, 100))
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("traffic", f"{r.traffic:.2f} erlangs")
    label = "agents needed" if wanted is not None else "agents"
    table.add_row(label, str(r.agents))
    table.add_row("probability of waiting", _pct(r.p_wait))
    table.add_row(f"service level ({r.target:g} s)", _pct(r.service_level))
    if r.p_abandon is not None:
        table.add_row("  of answered calls", _pct(r.service_level_answered))
    table.add_row("ASA (answered calls)", _secs(r.asa))
    table.add_row("occupancy", _pct(r.occupancy))
    if r.p_abandon is not None:
        table.add_row(f"probability of abandoning (patience {r.patience:g} s)", _pct(r.p_abandon))
    console.print(table)
    if wanted is not None:
        extra = f" and occupancy at most {max_occupancy * 100:g}%" if max_occupancy is not None else ""
        console.print(f"Fewest agents for {wanted * 100:g}% answered within {r.target:g} s{extra}: [bold]{r.agents}[/]")
    if r.p_abandon is not None and r.p_abandon >= 0.1:
        console.print(
            f"[yellow]note:[/] {r.p_abandon * 100:.0f}% of callers abandon; the service level counts them as not answered in time."
        )
    elif r.p_abandon is None and r.agents <= r.traffic and wanted is None:
        console.print("[yellow]warning:[/] agents do not exceed the traffic: without abandonment the queue grows without bound.")


@app.command("simulate")
def simulate(
    calls_per_hour: Annotated[float, typer.Option("--calls-per-hour", help="Mean arrival rate (Poisson).", show_default=False)],
    aht: Annotated[float, typer.Option("--aht", help="Mean handle time in seconds (exponential).", show_default=False)],
    agents: Annotated[int, typer.Option("--agents", help="Agents logged in to the simulated queue.", show_default=False)],
    minutes: Annotated[float, typer.Option("--minutes", help="Simulated minutes to measure (after a warm-up).", show_default=False)],
    patience: Annotated[
        Optional[float], typer.Option("--patience", help="Mean caller patience in seconds (exponential); callers abandon.", show_default=False)
    ] = None,
    strategy: Annotated[str, typer.Option("--strategy", help=f"Routing strategy: {', '.join(STRATEGIES)}.")] = "longest_idle",
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same run.")] = 1,
    target: Annotated[float, typer.Option("--target", help="Service-level answer time in seconds.")] = 20.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Drive the real ACD engine with simulated calls and compare with Erlang.

    Calls arrive at random (Poisson), last an exponential time, and with --patience callers
    hang up after an exponential wait. Agents answer as soon as a call is offered. Prints
    the simulated service level, ASA, abandonment and occupancy beside the Erlang C (or
    Erlang A) prediction. Example:

        callcenter simulate --calls-per-hour 200 --aht 180 --agents 13 --minutes 600
    """
    _check("--calls-per-hour", calls_per_hour)
    _check("--aht", aht)
    _check("--minutes", minutes)
    _check("--patience", patience)
    _check("--target", target, zero_ok=True)
    if agents < 1:
        raise typer.BadParameter(f"must be at least 1, got {agents}", param_hint="--agents")
    if strategy not in STRATEGIES:
        raise typer.BadParameter(f"must be one of {', '.join(STRATEGIES)}, got {strategy!r}", param_hint="--strategy")
    try:
        config = SimulationConfig(
            calls_per_hour=calls_per_hour, aht=aht, agents=agents, minutes=minutes, patience=patience,
            strategy=strategy, seed=seed, target=target,
        )
    except ErlangError as exc:
        raise typer.BadParameter(str(exc)) from None
    expected_calls = calls_per_hour * (minutes * 60 + config.warmup) / 3600
    if as_json or expected_calls < _PROGRESS_MIN_CALLS:
        result = run_simulation(config)
    else:
        with Progress(
            TextColumn("simulating"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
            console=console, transient=True,
        ) as progress:
            task = progress.add_task("simulate", total=1.0)
            result = run_simulation(config, progress=lambda f: progress.update(task, completed=f))
    p = result.prediction
    if as_json:
        print(
            json.dumps(
                {
                    "offered": result.offered,
                    "answered": result.answered,
                    "abandoned": result.abandoned,
                    "service_level": result.service_level,
                    "asa_seconds": result.asa,
                    "abandon_rate": result.abandon_rate,
                    "occupancy": result.occupancy,
                    "predicted": {
                        "model": p.model,
                        "p_wait": p.p_wait,
                        "service_level": p.service_level,
                        "asa_seconds": _finite(p.asa),
                        "p_abandon": p.p_abandon,
                        "occupancy": p.occupancy,
                    },
                    "seed": seed,
                    "strategy": strategy,
                }
            )
        )
        return
    model = "Erlang A" if p.model == "erlang_a" else "Erlang C"
    title = f"{agents} agents, {calls_per_hour:g} calls/h, AHT {aht:g} s, {minutes:g} min (seed {seed}, {strategy})"
    table = Table(title=title, header_style="bold", min_width=min(len(title) + 4, 100))
    table.add_column("figure")
    table.add_column("simulated", justify="right")
    table.add_column(f"{model} prediction", justify="right")
    table.add_row("calls measured", f"{result.offered:,}", "")
    table.add_row(f"service level ({target:g} s)", _pct(result.service_level), _pct(p.service_level))
    table.add_row("ASA (answered calls)", _secs(result.asa), _secs(p.asa))
    table.add_row("abandoned", _pct(result.abandon_rate), _pct(p.p_abandon) if p.p_abandon is not None else "—")
    table.add_row("occupancy", _pct(result.occupancy), _pct(p.occupancy))
    console.print(table)
    if patience is None and agents <= p.traffic:
        console.print("[yellow]warning:[/] agents do not exceed the traffic: the queue only drains after arrivals stop.")
