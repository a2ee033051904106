"""The contact store on SQLite and PostgreSQL: rows, queue events, dispositions with callbacks, crash clean-up."""

import datetime as dt

import pytest
from sqlalchemy import func, select

from callcenter.db.interactions import SqlInteractionStore
from callcenter.db.models import Callback, Disposition, Interaction

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


def test_interaction_lifecycle(migrated_db):
    store = SqlInteractionStore(migrated_db)
    store.open(call_id="c1", direction="inbound", ani="+8613912345678", dnis="4000", display_name="张三 " + "x" * 300,
               customer_id=None, arrived_at=T0)
    store.update("c1", queue="sales", queued_at=T0 + dt.timedelta(seconds=20), ivr_path=[{"node": "main"}])
    store.log_queue_event(at=T0, event="ENTERQUEUE", queue="sales", call_id="c1", agent_id=None, data={"data": []})
    store.update("c1", ended_at=T0 + dt.timedelta(seconds=90), outcome="abandoned", wait_seconds=70.0)
    row = store.get("c1")
    assert row["outcome"] == "abandoned" and row["queue"] == "sales" and row["ivr_path"] == [{"node": "main"}]
    assert len(row["display_name"]) == 200, "caller-controlled text is cut to the column, not rejected"
    assert store.queue_events("c1") == [("ENTERQUEUE", "sales", None)]
    with pytest.raises(ValueError, match="not interaction fields"):
        store.update("c1", direction="outbound")


def test_disposition_and_callback_are_written_together(migrated_db):
    store = SqlInteractionStore(migrated_db)
    store.open(call_id="c2", direction="inbound", ani="+8613912345678", dnis=None, display_name=None,
               customer_id=None, arrived_at=T0)
    store.save_disposition(call_id="c2", code="callback", notes="call after 6pm", agent_id=None,
                           callback={"number": "+8613912345678", "due_from": T0 + dt.timedelta(days=1)})
    with pytest.raises(LookupError):
        store.save_disposition(call_id="missing", code="x", notes=None, agent_id=None,
                               callback={"number": "+1", "due_from": T0})
    with migrated_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Disposition)) == 1
        assert s.scalar(select(func.count()).select_from(Callback)) == 1, "no orphan callback from the failed save"


def test_close_unfinished_after_a_crash(migrated_db):
    store = SqlInteractionStore(migrated_db)
    for call_id in ("a", "b", "c"):
        store.open(call_id=call_id, direction="inbound", ani=None, dnis=None, display_name=None, customer_id=None,
                   arrived_at=T0)
    store.update("a", ended_at=T0, outcome="answered")
    assert store.close_unfinished(reason="failed_worker", call_ids=["b"]) == 1
    assert store.close_unfinished(reason="server_restart") == 1
    assert [store.get(c)["outcome"] for c in "abc"] == ["answered", "failed_worker", "server_restart"]
    assert store.count_open() == 0


def test_a_dial_now_attempt_points_the_callback_at_its_contact(migrated_db):
    store = SqlInteractionStore(migrated_db)
    with migrated_db.session() as s:
        callback = Callback(number="+8613912345678", source="agent", status="pending", due_from=T0)
        s.add(callback)
        s.flush()
        callback_id = callback.id
    for call_id in ("first", "second"):
        store.open(call_id=call_id, direction="outbound", ani="+8613912345678", dnis="4008001234", display_name=None,
                   customer_id=None, arrived_at=T0)
        store.callback_progress(callback_id, status="in_progress", result=f"dialled on call {call_id}", attempt=True,
                                call_id=call_id)
    store.callback_progress(callback_id, status="pending", result="busy")  # settling keeps the link
    with migrated_db.session() as s:
        callback = s.get(Callback, callback_id)
        second = s.scalar(select(Interaction.id).where(Interaction.call_id == "second"))
        assert (callback.status, callback.attempts, callback.last_attempt_id) == ("pending", 2, second)


def test_settling_an_attempt_does_not_reopen_a_callback_closed_meanwhile(migrated_db):
    store = SqlInteractionStore(migrated_db)
    with migrated_db.session() as s:
        callback = Callback(number="+8613912345678", source="agent", status="pending", due_from=T0)
        s.add(callback)
        s.flush()
        callback_id = callback.id
    store.callback_progress(callback_id, status="in_progress", result="dialled", attempt=True)
    with migrated_db.session() as s:
        s.get(Callback, callback_id).status = "cancelled"  # a supervisor or the customer closed it
    store.callback_progress(callback_id, status="pending", result="busy")
    with migrated_db.session() as s:
        assert s.get(Callback, callback_id).status == "cancelled"
