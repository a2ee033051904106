"""The supervisor dashboard's charts: queue trends over the last hour and Erlang C staffing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from callcenter.tui.supervisor_model import (
    percent,
)
from screenpop.render import safe_text

if TYPE_CHECKING:
    pass
from callcenter.tui.supervisor_screens import ModeScreen, RowTable

# ----------------------------------------------------------------------------- trends


class TrendsScreen(ModeScreen):
    """The last hour, per minute: waiting calls (peak), service level, arrivals."""

    MODE = "trends"
    BINDINGS = [Binding("left_square_bracket", "queue(-1)", "Prev queue"),
                Binding("right_square_bracket", "queue(1)", "Next queue")]

    class Shown(Message):
        """The mode came to the front: the app loads the trends of the queue shown."""

    class Stepped(Message):
        """``[`` or ``]``: the app moves to the previous or next queue (or all queues) and loads its trends."""

        def __init__(self, step: int) -> None:
            super().__init__()
            self.step = step

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, Any] | None = None

    def content(self) -> ComposeResult:
        yield Static(Text(""), id="trends-title")
        with Vertical(id="charts"):
            yield PlotextPlot(id="chart-waiting")
            yield PlotextPlot(id="chart-sl")
            yield PlotextPlot(id="chart-arrivals")

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.post_message(self.Shown())

    def action_queue(self, step: int) -> None:
        self.post_message(self.Stepped(step))

    def show(self, data: dict[str, Any] | None) -> None:
        self.data = data
        self.render_model(None)

    def render_model(self, change: dict[str, Any] | None) -> None:
        super().render_model(change)
        qid = self.app.trend_queue
        name = "All queues" if qid is None else self.app.model.queues.get(qid, {}).get("name") or qid
        title = Text(" Last hour, per minute: ")
        title.append_text(safe_text(name, "bold", limit=40))
        title.append("   [ ] other queue", style="dim")
        self.query_one("#trends-title", Static).update(title, layout=False)
        if change is not None:
            return  # the charts change when new trend data comes (every sample), not on each push
        data = self.data if self.data and self.data.get("queue") == qid else None
        points = (data or {}).get("points") or []
        xs = [p["offset"] / 60 for p in points]
        self._chart("#chart-waiting", "Waiting calls (peak per minute)", xs, [p["waiting"] for p in points])
        sl = [(p["offset"] / 60, p["sl"] * 100) for p in points if p.get("sl") is not None]
        self._chart("#chart-sl", "Service level % (answered in threshold / answered + abandoned)",
                    [x for x, _ in sl], [y for _, y in sl], ylim=(0, 100))
        self._chart("#chart-arrivals", "Arrivals per minute", xs, [p["arrivals"] for p in points], bar=True)

    def _chart(self, selector: str, title: str, xs: list[float], ys: list[float], *, ylim=None,
               bar: bool = False) -> None:
        widget = self.query_one(selector, PlotextPlot)
        plt = widget.plt
        plt.clear_figure()
        plt.title(title)
        plt.xlabel("minutes ago")
        plt.xlim(-60, 0)
        if ylim:
            plt.ylim(*ylim)
        elif ys:
            plt.ylim(0, max(1, max(ys)) * 1.1)
        else:
            plt.ylim(0, 1)
        if xs:
            if bar:
                plt.bar(xs, ys, width=0.6)
            else:
                plt.plot(xs, ys, marker="braille")
        plt.xticks([-60, -45, -30, -15, 0], ["-60", "-45", "-30", "-15", "now"])
        widget.refresh()


# ----------------------------------------------------------------------------- staffing

STAFF_COLUMNS = [("queue", "Queue", 18), ("cph", "Calls/h", 7), ("aht", "AHT", 12),
                 ("traffic", "Erlangs", 7), ("target", "Target", 10), ("need", "Erlang C needs", 14),
                 ("have", "Logged in", 9), ("gap", "Gap", 4), ("predicted", "SL with logged in", 17),
                 ("note", "Note", 28)]


class StaffingScreen(ModeScreen):
    """Erlang C: agents needed for the last 30 minutes' arrivals and handle time, against those logged in."""

    MODE = "staffing"

    def content(self) -> ComposeResult:
        yield Static(Text(" Erlang C per queue, from the arrival rate and handle time of the last 30 minutes "
                          "(refreshed every few seconds)"), id="staff-title")
        table = DataTable(id="staff-table", cursor_type="row", zebra_stripes=True)
        self.rows = RowTable(table, STAFF_COLUMNS)
        yield table

    def _row(self, s: dict[str, Any]) -> list[Text]:
        need, have = s.get("recommended"), s.get("logged_in") or 0
        gap = Text("—")
        if need is not None:
            diff = have - need
            gap = Text(f"{diff:+d}", style="bold red" if diff < 0 else "green")
        aht = s.get("aht")
        source = " (today)" if s.get("aht_source") == "today" else ""
        return [
            safe_text(s.get("name") or s.get("queue"), "bold", limit=30), Text(f"{s.get('calls_per_hour', 0):g}"),
            Text(f"{aht:.0f}s{source}" if aht is not None else "—"),
            Text(f"{s['traffic']:.1f}" if s.get("traffic") is not None else "—"),
            Text(f"{percent(s.get('sl_target'))} in {s.get('sl_seconds', 0):.0f}s"),
            Text(str(need) if need is not None else "—", style="bold"), Text(str(have)), gap,
            Text(percent(s.get("predicted_sl"))), safe_text(s.get("note") or "", "dim", limit=50),
        ]

    def render_model(self, change: dict[str, Any] | None) -> None:
        super().render_model(change)
        if change is not None and not change.get("staffing"):
            return
        staffing = self.app.model.staffing
        self.rows.sync(list(staffing), lambda qid: self._row(staffing[qid]))
