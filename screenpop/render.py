"""Rich rendering of a customer profile: one renderable for the agent console and the CLI.

Every string that came from a caller or a spreadsheet goes through :func:`safe_text`, which
builds a ``rich.text.Text`` (never parsed as markup) with control characters made visible, so a
display name like ``[red]x`` or ``\\x1b[2J`` is shown as typed and cannot style or clear a screen.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from screenpop.numbers import display
from screenpop.pop import CallContext, CustomerCandidate, ScreenPop
from screenpop.profile import CustomerProfile
from screenpop.text import format_duration

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_TIER_STYLE = {"vip": "bold magenta", "gold": "bold yellow", "silver": "bold white", "standard": "dim"}
_WARRANTY_STYLE = {"active": "green", "expiring": "yellow", "expired": "red", "none": "dim"}


def clean(value: object, limit: int = 500) -> str:
    """Plain text with control and bidi-override characters replaced by a visible mark."""
    text = "" if value is None else str(value)
    text = _CONTROL.sub("\ufffd", text)
    text = "".join(ch if unicodedata.category(ch) != "Cs" else "\ufffd" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_text(value: object, style: str = "", limit: int = 500) -> Text:
    return Text(clean(value, limit), style=style)


def money(amount: Decimal, currency: str = "CNY") -> str:
    symbol = {"CNY": "¥", "USD": "$", "EUR": "€"}.get(currency, currency + " ")
    return f"{symbol}{amount:,.2f}"


def _at(title: str, zone: dt.tzinfo | None, moment: dt.datetime) -> str:
    """A column of times says its zone once (``When (CST)``): the center's time, not the reader's."""
    if zone is None:
        return title
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    name = moment.astimezone(zone).tzname()
    return f"{title} ({name})" if name else title


def _when(value: dt.datetime | None, zone: dt.tzinfo | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _flags(profile: CustomerProfile, now: dt.datetime, repeat: bool | None = None, repeat_hours: float = 24) -> Text:
    flags = Text()
    flags.append(f" {profile.tier.upper()} ", style=f"reverse {_TIER_STYLE.get(profile.tier, '')}")
    if profile.blacklisted:
        flags.append("  BLACKLISTED", style="bold white on red")
        flags.append(" ")
        flags.append_text(safe_text(profile.blacklist_reason or "", "red"))
    if profile.do_not_call:
        flags.append("  DO NOT CALL", style="bold black on yellow")
        flags.append(" ")
        flags.append_text(safe_text(profile.do_not_call_reason or "", "yellow"))
    if profile.in_arrears:
        flags.append(f"  ARREARS {money(profile.balance)}", style="bold red")
    if profile.repeat_caller(now, repeat_hours) if repeat is None else repeat:
        flags.append(f"  REPEAT CALLER ({repeat_hours:g} h)", style="bold cyan")
    if profile.open_cases:
        flags.append(f"  {len(profile.open_cases)} OPEN CASE(S)", style="bold yellow")
    return flags


def render_profile(
    profile: CustomerProfile,
    *,
    now: dt.datetime,
    region: str = "CN",
    zone: dt.tzinfo | None = None,
    max_rows: int = 5,
    repeat_caller: bool | None = None,
    repeat_hours: float = 24,
) -> RenderableType:
    """The whole screen pop: identity and flags, value, products and warranty, cases, history, callbacks.

    ``repeat_caller`` overrides the flag computed from the profile's contacts (the live pop
    knows which contact is the call in progress and leaves it out).
    """
    today = now.astimezone(zone).date() if zone else now.date()
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    title = safe_text(profile.name, "bold")
    if profile.company:
        title.append("  ·  ")
        title.append_text(safe_text(profile.company, "italic"))
    header.add_row("Customer", title)
    header.add_row("Numbers", Text(", ".join(display(n, region) for n in profile.numbers) or "—"))
    ident = Text(f"#{profile.customer_id}")
    if profile.external_id:
        ident.append("  ext ")
        ident.append_text(safe_text(profile.external_id))
    if profile.language:
        ident.append("  lang ")
        ident.append_text(safe_text(profile.language))
    header.add_row("Id", ident)
    if profile.email:
        header.add_row("Email", safe_text(profile.email))
    rfm = profile.rfm(now)
    value = Text(f"{money(profile.lifetime_spend)} over {profile.order_count} order(s)  ·  RFM {rfm.code} ")
    value.append(rfm.label, style="bold green" if rfm.label in ("champion", "loyal") else "bold")
    value.append(f"  ·  credit {money(profile.credit_limit)}")
    header.add_row("Value", value)
    header.add_row("Flags", _flags(profile, now, repeat_caller, repeat_hours))
    if profile.notes:
        header.add_row("Notes", safe_text(profile.notes, "italic"))

    parts: list[RenderableType] = [header]

    products = Table(title="Products and warranty", box=box.SIMPLE_HEAD, expand=True, title_justify="left")
    for column in ("Order", "Date", "Product", "Serial", "Warranty"):
        products.add_column(column)
    shown = 0
    for order in profile.orders:
        for line in order.lines:
            if shown >= max_rows * 2:
                break
            status = line.warranty_status(today)
            until = f"{status} {line.warranty_end}" if line.warranty_end else status
            products.add_row(
                safe_text(order.order_number),
                _when(order.ordered_at, zone)[:10],
                safe_text(line.product),
                safe_text(line.serial_number or "—"),
                Text(until, style=_WARRANTY_STYLE[status]),
            )
            shown += 1
    if shown:
        parts.append(products)

    if profile.cases:
        cases = Table(title="Cases", box=box.SIMPLE_HEAD, expand=True, title_justify="left")
        for column in ("#", "Kind", "Status", _at("Opened", zone, now), "Summary"):
            cases.add_column(column)
        ordered = sorted(profile.cases, key=lambda c: (c.status == "closed", -c.opened_at.timestamp()))
        for case in ordered[:max_rows]:
            style = "" if case.status == "closed" else "bold yellow"
            cases.add_row(
                str(case.case_id), case.kind, Text(case.status, style=style), _when(case.opened_at, zone),
                safe_text(case.summary, limit=120),
            )
        parts.append(cases)

    if profile.contacts:
        history = Table(title="Last contacts", box=box.SIMPLE_HEAD, expand=True, title_justify="left")
        for column in (_at("When", zone, now), "Dir", "Queue", "Agent", "Outcome", "Disposition", "Notes"):
            history.add_column(column)
        for contact in profile.contacts[:max_rows]:
            history.add_row(
                _when(contact.at, zone), contact.direction[:3], safe_text(contact.queue or "—"),
                safe_text(contact.agent or "—"), safe_text(contact.outcome or "—"),
                safe_text(contact.disposition or "—"), safe_text(contact.notes or "", limit=80),
            )
        parts.append(history)

    pending = [c for c in profile.callbacks if c.status in ("pending", "scheduled", "in_progress")]
    if pending:
        callbacks = Table(title="Pending callbacks", box=box.SIMPLE_HEAD, expand=True, title_justify="left")
        for column in ("#", "Number", _at("Due", zone, now), "Owner", "Attempts", "Status"):
            callbacks.add_column(column)
        for cb in pending[:max_rows]:
            overdue = (cb.due_until or cb.due_from) < now
            callbacks.add_row(
                str(cb.callback_id), display(cb.number, region), _when(cb.due_from, zone),
                safe_text(cb.owner or "anyone"), str(cb.attempts),
                Text("overdue" if overdue else cb.status, style="bold red" if overdue else ""),
            )
        parts.append(callbacks)

    border = "red" if profile.blacklisted else ("magenta" if profile.vip else "blue")
    return Panel(Group(*parts), title=Text("Customer 360"), border_style=border, expand=True)


# --------------------------------------------------------------------------- the live pop


def render_call_context(call: CallContext, *, region: str = "CN", repeat: int = 0, repeat_hours: float = 24) -> RenderableType:
    """This call: who the network says is calling, the queue, the wait, the IVR route and keys."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    caller = Text()
    if call.ani:
        caller.append_text(safe_text(display(call.ani, region) if call.ani.startswith("+") else call.ani, "bold"))
    else:
        caller.append("withheld", style="dim")
    if call.display_name:
        caller.append("  “")
        caller.append_text(safe_text(call.display_name, limit=80))
        caller.append("”")
    grid.add_row("Caller", caller)
    if call.callback_number:
        grid.add_row("Callback", safe_text(display(call.callback_number, region), "bold yellow"))
    queue = safe_text(call.queue_name or call.queue or "—")
    queue.append(f"   waited {format_duration(call.waited_seconds, missing='—')}")
    grid.add_row("Queue", queue)
    route = call.route
    grid.add_row("IVR", safe_text(" → ".join(route) if route else "—", limit=200))
    digits = call.digits
    grid.add_row("Keys", safe_text(" ".join(digits) if digits else "—", limit=80))
    if repeat:
        grid.add_row("Repeat", Text(f"{repeat} other contact(s) in the last {repeat_hours:g} h", style="bold cyan"))
    return grid


def render_candidates(candidates: tuple[CustomerCandidate, ...] | list[CustomerCandidate], *, region: str = "CN",
                      title: str = "Several customers share this number: pick one") -> RenderableType:
    table = Table(title=title, box=box.SIMPLE_HEAD, expand=True, title_justify="left")
    for column in ("#", "Id", "Name", "Company", "Tier", "Flags", "Numbers"):
        table.add_column(column)
    for index, c in enumerate(candidates, 1):
        flags = Text()
        if c.blacklisted:
            flags.append("BLACKLISTED ", style="bold red")
        if c.do_not_call:
            flags.append("DO NOT CALL", style="bold yellow")
        table.add_row(
            str(index), str(c.customer_id), safe_text(c.name, "bold"), safe_text(c.company or ""),
            Text(c.tier, style=_TIER_STYLE.get(c.tier, "")), flags,
            Text(", ".join(display(n, region) for n in c.numbers[:3])),
        )
    return table


def _history(contacts, zone: dt.tzinfo | None, title: str, now: dt.datetime) -> Table:
    history = Table(title=title, box=box.SIMPLE_HEAD, expand=True, title_justify="left")
    for column in (_at("When", zone, now), "Dir", "Queue", "Agent", "Outcome", "Disposition", "Notes"):
        history.add_column(column)
    for contact in contacts:
        history.add_row(
            _when(contact.at, zone), contact.direction[:3], safe_text(contact.queue or "—"),
            safe_text(contact.agent or "—"), safe_text(contact.outcome or "—"),
            safe_text(contact.disposition or "—"), safe_text(contact.notes or "", limit=80),
        )
    return history


def render_pop(
    pop: ScreenPop,
    *,
    now: dt.datetime,
    region: str = "CN",
    zone: dt.tzinfo | None = None,
    max_rows: int = 5,
) -> RenderableType:
    """The live screen pop: this call's context above the customer (or the choice, or the new contact)."""
    parts: list[RenderableType] = []
    if pop.call is not None:
        parts.append(
            Panel(render_call_context(pop.call, region=region, repeat=pop.recent_calls, repeat_hours=pop.repeat_hours),
                  title=Text("This call"), border_style="cyan", expand=True)
        )
    if pop.kind == "customer" and pop.profile is not None:
        parts.append(render_profile(pop.profile, now=now, region=region, zone=zone, max_rows=max_rows,
                                    repeat_caller=pop.repeat_caller, repeat_hours=pop.repeat_hours))
    else:
        inner: list[RenderableType] = []
        number = Text("Number  ")
        number.append_text(safe_text(display(pop.number, region) if pop.number else "not readable", "bold"))
        if pop.repeat_caller:
            number.append(f"   REPEAT CALLER ({pop.repeat_hours:g} h)", style="bold cyan")
        inner.append(number)
        if pop.kind == "choose":
            inner.append(render_candidates(pop.candidates, region=region))
            title, border = f"{len(pop.candidates)} customers share this number", "yellow"
        else:
            inner.append(Text("No customer has this number. Press a to create one (name, number, language).",
                              style="bold"))
            title, border = "New contact", "green"
        if pop.number_history:
            inner.append(_history(pop.number_history[:max_rows], zone, "Earlier contacts from this number", now))
        pending = [c for c in pop.number_callbacks if c.status in ("pending", "scheduled", "in_progress")]
        if pending:
            callbacks = Table(title="Pending callbacks to this number", box=box.SIMPLE_HEAD, expand=True,
                              title_justify="left")
            for column in ("#", _at("Due", zone, now), "Owner", "Status"):
                callbacks.add_column(column)
            for cb in pending[:max_rows]:
                callbacks.add_row(str(cb.callback_id), _when(cb.due_from, zone), safe_text(cb.owner or "anyone"),
                                  safe_text(cb.status))
            inner.append(callbacks)
        parts.append(Panel(Group(*inner), title=Text(title), border_style=border, expand=True))
    return Group(*parts)


_URGENCY_STYLE = {"overdue": "bold red", "due": "bold yellow", "later": ""}


def render_callbacks(callbacks, *, now: dt.datetime, region: str = "CN", zone: dt.tzinfo | None = None) -> RenderableType:
    """An agent's callbacks, most urgent first (the CLI and tests; the console uses a table widget)."""
    table = Table(title="My callbacks", box=box.SIMPLE_HEAD, expand=True, title_justify="left")
    for column in ("#", _at("Due", zone, now), _at("Until", zone, now), "Customer", "Number", "Owner", "Tries",
                   "State"):
        table.add_column(column)
    for cb in callbacks:
        urgency = cb.urgency(now)
        table.add_row(
            str(cb.callback_id), _when(cb.due_from, zone), _when(cb.due_until, zone),
            safe_text(cb.customer_name or "—"), Text(display(cb.number, region)), safe_text(cb.owner or "anyone"),
            str(cb.attempts), Text(urgency, style=_URGENCY_STYLE[urgency]),
        )
    return table
