"""``callcenter demo-data``, ``callcenter overview`` and ``callcenter agents``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.columns import Columns
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from callcenter.clock import utcnow
from callcenter import bootstrap
from callcenter.cli import app, console, err_console, state
from callcenter.db.customer_profile import load_profile
from callcenter.db.demo import generate
from callcenter.db.overview import overview
from callcenter.errors import CallCenterError
from callcenter.db.agents import set_sip_password
from callcenter.security import hash_pin
from screenpop.render import render_profile

agents_app = typer.Typer(help="Agent accounts.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")


@app.command("demo-data")
def demo_data(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option("--customers", "-n", min=1, max=5_000_000, help="How many customers.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same data; re-running adds only what is missing.")] = 42,
) -> None:
    """Load realistic demo customers (zh_CN and en_US) with orders, warranties, cases, contacts and callbacks."""
    settings = state(ctx).settings
    db = bootstrap.database(settings)
    with Progress(
        TextColumn("[bold]demo data"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console
    ) as progress:
        task = progress.add_task("demo", total=customers)
        result = generate(
            db,
            customers,
            seed=seed,
            now=utcnow(),
            agent_ids=[a for a, cfg in settings.agents.items() if cfg.role == "agent"],
            queues=list(settings.queues),
            dispositions=list(settings.dispositions),
            progress=lambda n: progress.advance(task, n),
        )
    console.print(
        f"[green]✓[/] {result.customers:,} customers added ({result.skipped:,} already there), "
        f"{result.orders:,} orders, {result.cases:,} cases, {result.interactions:,} contacts, "
        f"{result.callbacks:,} callbacks",
        highlight=False,
    )


@app.command("overview")
def overview_cmd(ctx: typer.Context) -> None:
    """Summary of the contact center: queues, agents, hours, dispositions, customers and a sample screen pop."""
    settings = state(ctx).settings
    db = bootstrap.database(settings)
    now = utcnow()
    zone = bootstrap.center_zone(settings)
    facts = overview(db, now)

    local = now.astimezone(zone)
    is_open = settings.hours.is_open(now)
    hours = Text(f"{local:%a %Y-%m-%d %H:%M} {settings.hours.timezone}: ")
    hours.append("OPEN" if is_open else "CLOSED", style="bold green" if is_open else "bold red")
    if not is_open:
        nxt = settings.hours.next_opening(now)
        if nxt:
            hours.append(f" (opens {nxt:%a %H:%M})")
    console.rule(Text(settings.center.name, style="bold"))
    console.print(hours)

    queues = Table(title="Queues", title_justify="left")
    for column in ("id", "name", "strategy", "SL target", "wrap-up", "ring", "skills", "overflow", "agents"):
        queues.add_column(column)
    for qid, q in settings.queues.items():
        members = sum(1 for a in settings.agents.values() if qid in a.queues)
        overflow = f"{q.overflow.target} after {q.overflow.after_seconds}s" if q.overflow else "—"
        skills = ", ".join(f"{k}≥{v}" for k, v in q.required_skills.items()) or "—"
        queues.add_row(
            qid, q.name, q.strategy, f"{q.service_level_target:.0%} in {q.service_level_seconds}s",
            _after_call_work(q), f"{q.ring_timeout_seconds}s", skills, overflow, str(members),
        )
    console.print(queues)

    agents = Table(title="Agents", title_justify="left")
    for column in ("id", "name", "role", "queues", "skills", "phone", "auto login"):
        agents.add_column(column)
    for aid, a in settings.agents.items():
        agents.add_row(
            aid, Text(a.name), a.role, ", ".join(a.queues) or "—",
            ", ".join(f"{k}:{v}" for k, v in a.skills.items()), a.phone, "yes" if a.auto_login else "no",
        )
    console.print(agents)

    tiers = ", ".join(f"{t} {facts.by_tier.get(t, 0):,}" for t in ("vip", "gold", "silver", "standard"))
    cards = [
        Panel(f"[bold]{facts.customers:,}[/]\n{tiers}", title="customers"),
        Panel(f"[bold]{facts.numbers:,}[/] numbers\n[bold]{facts.orders:,}[/] orders", title="records"),
        Panel(f"[bold red]{facts.blacklisted:,}[/] blacklisted\n[yellow]{facts.do_not_call:,}[/] do not call\n"
              f"[red]{facts.in_arrears:,}[/] in arrears", title="flags"),
        Panel(f"[bold]{facts.open_cases:,}[/] open cases\n[bold]{facts.expired_warranties:,}[/] expired warranties",
              title="service"),
        Panel(f"[bold]{facts.pending_callbacks:,}[/] pending\n[red]{facts.overdue_callbacks:,}[/] overdue",
              title="callbacks"),
        Panel(f"[bold]{facts.interactions_30d:,}[/] contacts\n{facts.abandoned_30d:,} abandoned", title="last 30 days"),
    ]
    console.print(Columns(cards))

    codes = Table(title="Dispositions", title_justify="left")
    for column in ("code", "label", "outcome", "needs"):
        codes.add_column(column)
    for code, d in settings.dispositions.items():
        needs = ", ".join(n for n, flag in (("callback", d.requires_callback), ("note", d.requires_note)) if flag)
        codes.add_row(code, d.label, d.outcome, needs or "—")
    console.print(codes)

    if facts.sample_vip_id is not None:
        with db.session() as session:
            profile = load_profile(session, facts.sample_vip_id)
        console.print(Text("Sample screen pop (a VIP customer):", style="bold"))
        console.print(render_profile(profile, now=now, region=settings.center.default_region, zone=zone))
    elif facts.customers == 0:
        console.print("No customers yet: run 'callcenter demo-data' or 'callcenter customers import FILE.csv'.")


@agents_app.command("hash-pin")
def hash_pin_cmd(
    pin: Annotated[
        str, typer.Option("--pin", help="The PIN (prompted, hidden, when not given).", prompt=True, hide_input=True,
                          confirmation_prompt=True)
    ],
) -> None:
    """Print the scrypt hash of a PIN, for an agent's `pin_hash` in the configuration."""
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise CallCenterError("a PIN is 4 to 12 digits (agents type it on a phone keypad too)")
    console.print(hash_pin(pin), highlight=False, soft_wrap=True)


@agents_app.command("set-sip-password")
def set_sip_password_cmd(
    ctx: typer.Context,
    agent_id: Annotated[str, typer.Argument(help="The agent whose phone registers (its phone is sip:USER@DOMAIN).")],
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help="Read the password from the first line of this file instead of prompting "
                                "(for provisioning scripts; keep the file private).")] = None,
) -> None:
    """Set the SIP password the agent's phone signs in with; only its digest hash (HA1) is stored.

    The phone then registers as its user at phones.domain, with that domain as the realm. A running
    server takes the new password within a few seconds; no restart.
    """
    settings = state(ctx).settings
    if agent_id not in settings.agents:
        raise CallCenterError(f"no agent {agent_id!r} in the configuration (known: {', '.join(sorted(settings.agents))})")
    user = settings.phone_user(agent_id)
    if user is None:
        raise CallCenterError(
            f"agent {agent_id}'s phone {settings.agents[agent_id].phone} is a fixed address, not one that registers: "
            f"set its phone to sip:USER@{settings.phones.domain} in the configuration first")
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").splitlines()[0] if password_file.stat().st_size else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise CallCenterError(f"cannot read {password_file}: {exc}") from None
    else:
        password = typer.prompt("SIP password", hide_input=True, confirmation_prompt=True)
    if not 8 <= len(password) <= 128 or any(ord(ch) < 32 for ch in password):
        raise CallCenterError("a SIP password is 8 to 128 printable characters (a phone keeps it; make it long)")
    db = bootstrap.database(settings)
    try:
        set_sip_password(db, agent_id, user, settings.phones.domain, password)
    except LookupError as exc:
        raise CallCenterError(str(exc)) from None
    finally:
        db.dispose()
    console.print(f"SIP password set for agent {agent_id}: the phone signs in as user {user}, realm "
                  f"{settings.phones.domain} (only its digest hash is stored).", highlight=False, soft_wrap=True)


def _after_call_work(queue) -> str:
    """The queue's wrap-up as people read it: how long, or what ends it."""
    mode = queue.after_call_work
    if mode == "until_disposed":
        return "until disposed"
    if mode == "optional":
        return "none"
    if mode == "timed_extendable":
        return (f"{queue.wrapup_seconds}s +{queue.wrapup_extension_seconds}s"
                f"×{queue.wrapup_max_extensions}")
    return f"{queue.wrapup_seconds}s"
