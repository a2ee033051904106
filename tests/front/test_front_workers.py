"""Keeping Kamailio's destination list in step with the pool, RPCs recorded instead of sent: a worker that
died is removed and its calls ended; one that retires is removed and nothing else (no death)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from callcenter.front.kamailio import KamailioFront


def worker(name: str, state: str, generation: int = 1, port: int = 5070) -> SimpleNamespace:
    return SimpleNamespace(name=name, address="127.0.0.1", port=port, generation=generation,
                           alive=state in ("running", "retiring", "stopping"), state=state)


class RecordingFront(KamailioFront):
    def __init__(self, workers: list) -> None:
        super().__init__(listen_address="127.0.0.1", port=5060, workers=lambda: workers)
        self.calls: list[tuple] = []
        self.proc = SimpleNamespace(returncode=None, pid=1)  # "running"
        self._list_lock = asyncio.Lock()

    async def rpc(self, method: str, *params, timeout: float = 3.0):
        self.calls.append((method, *params))
        return {}


def methods(front: RecordingFront) -> list[str]:
    return [call[0] for call in front.calls]


async def test_running_workers_are_listed_and_only_those():
    pool = [worker("w1", "running", port=5070), worker("w2", "starting", port=5071), worker("w3", "stopped", port=5072)]
    front = RecordingFront(pool)
    await front.sync_workers()
    assert front.calls == [("dispatcher.add", 1, "sip:127.0.0.1:5070", 8, 0, "duid=w1.1;maxload=2")]
    assert front._in_list == {"w1": "w1.1"}


async def test_a_retiring_worker_leaves_the_list_without_its_calls_being_ended():
    pool = [worker("w1", "running"), worker("w2", "running", port=5071)]
    front = RecordingFront(pool)
    await front.sync_workers()
    front.calls.clear()
    pool[1] = worker("w2", "retiring", port=5071)
    await front.withdraw("w2")
    assert front.calls == [("dispatcher.remove", 1, "sip:127.0.0.1:5071")]
    await front.withdraw("w2")  # already out: nothing more
    await front.sync_workers()  # the poll agrees
    assert methods(front) == ["dispatcher.remove"]
    assert front.counters["workers_retired"] == 1
    assert front.counters["workers_removed"] == 0 and front.counters["calls_ended"] == 0
    # Called back (an INVITE landed in the grace period): listed again, same generation.
    pool[1] = worker("w2", "running", port=5071)
    await front.sync_workers()
    assert front.calls[-1] == ("dispatcher.add", 1, "sip:127.0.0.1:5071", 8, 0, "duid=w2.1;maxload=2")


async def test_the_poll_alone_withdraws_a_retired_worker_quietly_even_once_the_pool_no_longer_lists_it():
    pool = [worker("w1", "running"), worker("w2", "running", port=5071), worker("w3", "running", port=5072)]
    front = RecordingFront(pool)
    await front.sync_workers()
    front.calls.clear()
    pool[1] = worker("w2", "stopped", port=5071)
    del pool[2]  # an elastic pool lists no stopped slot
    await front.sync_workers()
    assert sorted(front.calls) == [("dispatcher.remove", 1, "sip:127.0.0.1:5071"),
                                   ("dispatcher.remove", 1, "sip:127.0.0.1:5072")]
    assert front.counters["workers_retired"] == 2 and front.counters["workers_removed"] == 0


async def test_a_worker_that_died_is_removed_and_its_callers_hung_up():
    pool = [worker("w1", "running"), worker("w2", "running", port=5071)]
    front = RecordingFront(pool)
    await front.sync_workers()
    front.calls.clear()
    pool[1] = worker("w2", "down", port=5071)
    await front.sync_workers()
    assert methods(front) == ["dispatcher.remove", "dlg.profile_list"]
    assert front.counters["workers_removed"] == 1 and front.counters["workers_retired"] == 0
    pool[1] = worker("w2", "running", generation=2, port=5071)
    await front.sync_workers()
    assert front.calls[-1] == ("dispatcher.add", 1, "sip:127.0.0.1:5071", 8, 0, "duid=w2.2;maxload=2")


async def test_objects_without_a_state_are_listed_while_alive():
    plain = SimpleNamespace(name="w1", address="127.0.0.1", port=5070, generation=1, alive=True)
    front = RecordingFront([plain])
    await front.sync_workers()
    assert methods(front) == ["dispatcher.add"]
