"""The end-of-day report on SQLite and PostgreSQL: every figure checked against a hand-made day."""

from __future__ import annotations

import csv
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from callcenter.config import load
from callcenter.db import Database, upgrade
from callcenter.db.agents import sync_agents
from callcenter.db.models import Callback, Disposition, Interaction, QueueEvent
from callcenter.db.report import build_report, day_range
from tests.conftest import SAMPLE_CONFIG

ZONE = "Asia/Shanghai"
SH = ZoneInfo(ZONE)
DAY = dt.date(2026, 11, 23)
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)  # 20:00 in Shanghai
SL = {"sales": 20, "support": 30, "vip": 10, "general": 30}
NAMES = {"sales": "Sales", "support": "Technical support", "vip": "VIP service", "general": "General enquiries"}


def local(day: dt.date, hh: int, mm: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=SH).astimezone(dt.UTC)


def call(s, call_id, queue, at, *, outcome, wait=None, talk=None, wrap=None, agent=None, direction="inbound"):
    answered = at + dt.timedelta(seconds=wait) if outcome in ("answered", "callback_answered") else None
    row = Interaction(call_id=call_id, direction=direction, ani="+8613900000000", queue=queue, agent_id=agent,
                      arrived_at=at - dt.timedelta(seconds=15), queued_at=at, answered_at=answered,
                      wait_seconds=wait, talk_seconds=talk, wrap_seconds=wrap, outcome=outcome, ivr_path=[],
                      ended_at=at + dt.timedelta(minutes=5))
    s.add(row)
    s.flush()
    return row


def fill(db: Database) -> None:
    settings = load(SAMPLE_CONFIG, environ={}).settings
    sync_agents(db, settings.agents)
    with db.session() as s:
        c1 = call(s, "c1", "sales", local(DAY, 9, 5), outcome="answered", wait=10, talk=100, wrap=20, agent="1001")
        c2 = call(s, "c2", "sales", local(DAY, 9, 10), outcome="answered", wait=30, talk=200, agent="1001")
        call(s, "c3", "sales", local(DAY, 9, 40), outcome="abandoned", wait=50)
        call(s, "c4", "sales", local(DAY, 9, 45), outcome="overflowed")
        c5 = call(s, "c5", "general", local(DAY, 10, 2), outcome="answered", wait=25, talk=60, wrap=10, agent="1002")
        call(s, "c6", "general", local(DAY, 10, 20), outcome="callback_requested")
        call(s, "c9", "general", local(DAY, 0, 0), outcome="abandoned", wait=5)  # the first instant of the day
        # an agent's own dial-outs are not queue traffic (they carry the agent's home queue)
        call(s, "d1", "sales", local(DAY, 9, 20), outcome="callback_answered", wait=0, talk=50, agent="1001",
             direction="outbound")
        call(s, "d2", "sales", local(DAY, 9, 25), outcome="agent_no_answer", direction="outbound")
        # outside the day, or never queued
        call(s, "c7", "sales", local(DAY - dt.timedelta(days=1), 23, 59), outcome="answered", wait=1, talk=9,
             agent="1001")
        call(s, "c8", "sales", local(DAY + dt.timedelta(days=1), 0, 0), outcome="abandoned", wait=3)
        s.add(Interaction(call_id="b1", direction="inbound", ani="+8613900000001", arrived_at=local(DAY, 9, 0),
                          ended_at=local(DAY, 9, 0), outcome="blocked", ivr_path=[]))
        for interaction, code, agent in ((c1, "sale", "1001"), (c2, "no_sale", "1001"), (c5, "resolved", "1002")):
            s.add(Disposition(interaction_id=interaction.id, code=code, agent_id=agent,
                              created_at=interaction.answered_at + dt.timedelta(minutes=6)))
        s.add(QueueEvent(at=local(DAY, 9, 7), event="RINGNOANSWER", queue="sales", call_id="c2", agent_id="1002",
                         data={}))
        s.add(QueueEvent(at=local(DAY, 9, 8), event="CONNECT", queue="sales", call_id="c2", agent_id="1001", data={}))
        s.add(QueueEvent(at=local(DAY - dt.timedelta(days=1), 9, 7), event="RINGNOANSWER", queue="sales",
                         call_id="c7", agent_id="1002", data={}))
        for status, due_until, queue in (("done", NOW, "general"), ("pending", NOW - dt.timedelta(hours=1), "general"),
                                         ("pending", NOW + dt.timedelta(hours=1), "sales"),
                                         ("failed", None, "sales")):
            s.add(Callback(number="+8613900000000", queue=queue, due_from=local(DAY, 10, 0), due_until=due_until,
                           status=status, source="ivr", created_at=local(DAY, 10, 21)))
        s.add(Callback(number="+8613900000000", queue="sales", due_from=local(DAY, 1, 0), status="pending",
                       source="ivr", created_at=local(DAY - dt.timedelta(days=2), 10, 0)))


def report(db, **kw):
    return build_report(db, first_day=kw.pop("first", DAY), last_day=kw.pop("last", DAY), zone=ZONE, sl_seconds=SL,
                        queue_names=NAMES, agent_names={"1001": "Li Wei", "1002": "Wang Fang"},
                        dispositions={"sale": ("Sale made", "sale"), "no_sale": ("No sale", "no_sale"),
                                      "resolved": ("Resolved", "resolved")}, now=NOW, **kw)


def test_a_day_of_calls(migrated_db):
    fill(migrated_db)
    r = report(migrated_db)
    assert [q.queue for q in r.queues] == ["sales", "general"], "configured order; queues without calls left out"
    sales, general = r.queues
    assert (sales.offered, sales.answered, sales.abandoned, sales.overflowed, sales.answered_in_sl) == (4, 2, 1, 1, 1)
    assert sales.sl_answered == 0.5 and sales.sl_offered == pytest.approx(1 / 3)
    assert sales.asa == pytest.approx(20) and sales.max_wait == pytest.approx(30) and sales.aht == pytest.approx(160)
    assert sales.abandon_rate == pytest.approx(1 / 3) and sales.sl_seconds == 20
    assert (general.offered, general.answered, general.abandoned, general.callback_requested) == (3, 1, 1, 1)
    assert general.sl_answered == 1.0 and general.sl_offered == 0.5 and general.aht == pytest.approx(70)
    total = r.totals()
    assert (total.offered, total.answered, total.abandoned, total.answered_in_sl) == (7, 3, 2, 2)
    assert total.sl_offered == pytest.approx(2 / 5) and total.asa == pytest.approx(65 / 3)

    a1, a2 = r.agents
    assert (a1.agent_id, a1.name, a1.answered, a1.talk, a1.avg_talk, a1.avg_wrap, a1.aht) == (
        "1001", "Li Wei", 2, 300, 150, 20, 160)
    assert (a1.missed_offers, a1.dispositions) == (0, 2)
    assert (a2.agent_id, a2.answered, a2.missed_offers, a2.dispositions, a2.aht) == ("1002", 1, 1, 1, 70)

    assert [(d.code, d.label, d.count) for d in r.dispositions] == [
        ("no_sale", "No sale", 1), ("resolved", "Resolved", 1), ("sale", "Sale made", 1)]
    assert sum(d.share for d in r.dispositions) == pytest.approx(1)

    c = r.callbacks
    assert (c.made, c.kept, c.failed, c.cancelled, c.waiting, c.overdue) == (4, 1, 1, 0, 1, 1)

    assert [(h.start.strftime("%H:%M"), h.offered, h.answered, h.abandoned, h.answered_in_sl) for h in r.half_hours] == [
        ("00:00", 1, 0, 1, 0), ("09:00", 2, 2, 0, 1), ("09:30", 2, 0, 1, 0), ("10:00", 2, 1, 0, 1)]
    assert r.half_hours[1].sl_answered == 0.5 and r.half_hours[3].sl_offered == 1.0
    assert r.half_hours[0].start.tzinfo is not None and r.half_hours[0].start.utcoffset() == dt.timedelta(hours=8)


def test_one_queue_and_a_longer_range(migrated_db):
    fill(migrated_db)
    r = report(migrated_db, queue="sales")
    assert [q.queue for q in r.queues] == ["sales"]
    assert [(a.agent_id, a.answered, a.missed_offers, a.dispositions) for a in r.agents] == [
        ("1001", 2, 0, 2), ("1002", 0, 1, 0)]
    assert {d.code for d in r.dispositions} == {"sale", "no_sale"}
    assert (r.callbacks.made, r.callbacks.waiting, r.callbacks.failed) == (2, 1, 1)
    three = report(migrated_db, first=DAY - dt.timedelta(days=1), last=DAY + dt.timedelta(days=1), queue="sales")
    assert three.queues[0].offered == 6, "c7 and c8 are in the three days"


def test_an_empty_range_and_a_backwards_one(migrated_db):
    r = report(migrated_db)
    assert (r.queues, r.agents, r.dispositions, r.half_hours) == ([], [], [], [])
    assert r.callbacks.made == 0
    with pytest.raises(ValueError, match="ends"):
        day_range(DAY, DAY - dt.timedelta(days=1), ZONE)


def test_the_command_prints_tables_and_writes_csv(cli, tmp_path):
    db = Database(cli.database_url)
    upgrade(db)
    fill(db)
    db.dispose()
    shown = cli("report", "--from", "2026-11-23", "--to", "2026-11-23")
    assert shown.code == 0, shown.text
    for expected in ("Report 2026-11-23 (Asia/Shanghai)", "Sales", "General enquiries", "All queues", "50.0%",
                     "33.3%", "Li Wei", "Sale made", "Overdue", "09:30", "Service level per half hour"):
        assert expected in shown.out, expected
    folder = tmp_path / "out"
    written = cli("report", "--from", "2026-11-23", "--csv", str(folder))
    assert written.code == 0, written.text
    with (folder / "queues.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["queue"], r["offered"], r["answered"], r["sl_answered"]) for r in rows] == [
        ("sales", "4", "2", "0.5"), ("general", "3", "1", "1.0"), ("", "7", "3", "0.6667")]
    with (folder / "half_hours.csv").open(newline="", encoding="utf-8") as f:
        assert [r["start"][11:16] for r in csv.DictReader(f)] == ["00:00", "09:00", "09:30", "10:00"]
    single = tmp_path / "day.csv"
    assert cli("report", "--from", "2026-11-23", "--queue", "sales", "--csv", str(single)).code == 0
    text = single.read_text(encoding="utf-8")
    assert "# queues" in text and "# callbacks" in text and "general" not in text.split("# agents")[0]


def test_the_command_explains_bad_input(sqlite_cli):
    db = Database(sqlite_cli.database_url)
    upgrade(db)
    db.dispose()
    for args, words in ((("--from", "23/11/2026"), "YYYY-MM-DD"), (("--from", "2026-11-23", "--to", "2026-11-22"),
                                                                   "before --from"),
                        (("--queue", "nope"), "no such queue")):
        result = sqlite_cli("report", *args)
        assert result.code != 0 and words in result.text, result.text
