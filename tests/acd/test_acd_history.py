"""Queue history from samples of the running totals: windows for staffing, per-minute trends."""

from __future__ import annotations

from acd import AcdEngine, AcdSettings, AgentLoggedIn, AgentSettings, CallEnded, CallQueued, OfferAccepted, QueueSettings
from acd.history import QueueHistory, Sample


def s(at, entered=0, answered=0, in_sl=0, abandoned=0, completed=0, handle=0.0, waiting=0):
    return Sample(at, entered, answered, in_sl, abandoned, completed, handle, waiting)


def test_window_differences_and_a_reset_in_between():
    h = QueueHistory()
    h.add(s(0, entered=10, completed=4, handle=400))
    h.add(s(600, entered=16, answered=5, in_sl=4, abandoned=1, completed=8, handle=1000))
    h.add(s(1200, entered=22, answered=11, in_sl=10, abandoned=1, completed=12, handle=1400))
    w = h.window(600)
    assert (w.seconds, w.arrivals, w.completed, w.handle) == (600, 6, 4, 400)
    assert w.arrival_rate == 0.01 and w.aht == 100
    whole = h.window(1800)  # older than the history: all of it
    assert (whole.seconds, whole.arrivals, whole.service_level) == (1200, 12, 10 / 12)
    h.add(s(1800, entered=3, answered=2, in_sl=2, completed=1, handle=60))  # midnight reset: totals restart
    w = h.window(600)
    assert (w.arrivals, w.answered, w.completed, w.handle) == (3, 2, 1, 60)


def test_old_samples_are_dropped_and_out_of_order_ones_ignored():
    h = QueueHistory(keep=100)
    for t in range(0, 1000, 10):
        h.add(s(t, entered=t))
    h.add(s(5, entered=999))
    assert h.samples[-1].at == 990 and h.samples[0].at >= 880
    assert h.window(50).arrivals == 50


def test_trend_buckets_by_minute():
    h = QueueHistory()
    h.add(s(0))
    h.add(s(30, entered=2, waiting=2))
    h.add(s(50, entered=3, answered=1, in_sl=1, waiting=1))
    h.add(s(130, entered=5, answered=3, in_sl=2, abandoned=1, waiting=0))
    points = h.trend(now=180, seconds=180, bucket=60)
    assert [(p.start, p.waiting, p.arrivals, p.answered_in_sl, p.handled) for p in points] == [
        (0, 2, 3, 1, 1), (120, 0, 2, 1, 3)]
    assert points[0].service_level == 1.0 and points[1].service_level == 1 / 3


def test_samples_from_the_engine():
    eng = AcdEngine(AcdSettings(queues={"q": QueueSettings(service_level_seconds=20)},
                                agents={"a": AgentSettings(queues=("q",))}))
    h = QueueHistory()
    eng.handle(AgentLoggedIn("a"), 0.0)
    h.add(eng.queue_stats("q", 0.0))
    eng.handle(CallQueued("c1", "q"), 10.0)
    eng.handle(OfferAccepted("c1", "a"), 15.0)
    eng.handle(CallEnded("c1"), 115.0)
    h.add(eng.queue_stats("q", 120.0))
    w = h.window(1800)
    assert (w.arrivals, w.answered, w.answered_in_sl, w.completed) == (1, 1, 1, 1)
    assert w.aht == 100.0
