"""An elastic worker pool behind the real front: Kamailio lists the workers the pool starts, and a worker
the pool retires leaves Kamailio's list before it stops, as a retirement, not a death (no call ended,
no ``WorkerDied``).
"""

from __future__ import annotations

import pytest

from callcenter.core import telephony_protocol as p
from tests.front.front_support import process_alive, running_center
from tests.front.test_front_sip import plain_callers, require_tools, tree_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def listed(result) -> set[str]:
    """The destination URIs of a ``dispatcher.list`` answer."""
    found: set[str] = set()
    for record in result.get("RECORDS", []) if isinstance(result, dict) else []:
        for target in record.get("SET", {}).get("TARGETS", []):
            found.add(target["DEST"]["URI"])
    return found


async def test_an_elastic_pool_behind_the_front_withdraws_a_retiring_worker_before_it_stops(tmp_path, prompts, sipps):
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, with_phones=False, workers=0, max_legs=12, spare_legs=4,
                       worker_idle_retire_seconds=3, worker_lead_seconds=0)
    async with running_center(tree, workers=None) as center:
        pool, front = center.pool, center.front
        assert pool.elastic and [w.name for w in pool.workers] == ["w1"], pool.describe()
        uri = {w.name: f"sip:{w.address}:{w.port}" for w in pool.slots}
        assert listed(await front.rpc("dispatcher.list")) == {uri["w1"]}

        retirements: list[tuple[str, bool, bool]] = []  # worker, still listed, process alive: once withdrawn
        withdraw = pool.on_retiring

        async def watched(name: str) -> None:
            await withdraw(name)
            pid = next(w.pid for w in pool.slots if w.name == name)
            retirements.append((name, uri[name] in listed(await front.rpc("dispatcher.list")), process_alive(pid)))

        pool.on_retiring = watched

        # Three callers a second apart: w1 fills, the pool starts w2 then w3 ahead of them, the front
        # lists each, and nobody is turned away.
        holders = plain_callers(sipps, tmp_path, center, name="holders", calls=3, hold_ms=6000, rate=1)
        await center.wait_for(lambda: holders.outcomes()["ANSWERED"] == 3, 40, "3 callers answered")
        await center.wait_for(lambda: sum(1 for w in pool.workers if w.state == "running") == 3, 20, "3 workers")
        await center.wait_for(lambda: front.counters["workers_added"] >= 2, 10, "the new workers listed")
        assert listed(await front.rpc("dispatcher.list")) == set(uri.values())
        assert await holders.finished(60) == 0, holders.report() + center.describe()
        assert holders.outcomes()["REFUSED"] == 0 and front.counters["blocked"] == 0, holders.report()

        # Idle again: the two extra workers retire one after the other; w1 stays as the floor.
        await center.wait_for(lambda: pool.describe() == "1 running, 2 stopped (elastic)", 40,
                              f"two retirements ({pool.describe()})")
        assert len(retirements) == 2 and {name for name, _, _ in retirements} == {w.name for w in pool.slots} - {
            w.name for w in pool.workers}, retirements
        assert all(not still_listed and alive for _, still_listed, alive in retirements), retirements
        assert listed(await front.rpc("dispatcher.list")) == {uri[w.name] for w in pool.workers}
        assert front.counters["workers_retired"] == 2
        assert front.counters["workers_removed"] == 0 and front.counters["calls_ended"] == 0, front.counters
        assert not center.of(p.WorkerDied)
        await center.wait_for(lambda: len(center.rows()) == 3 and all(r.ended_at for r in center.rows()), 20,
                              "every contact closed")
        assert not [r for r in center.rows() if r.outcome == "failed_worker"]

        # And the center still takes calls (a retired slot comes back when they need it).
        later = plain_callers(sipps, tmp_path, center, name="later", calls=2, hold_ms=2000, rate=1)
        assert await later.finished(40) == 0, later.report() + center.describe()
        assert later.outcomes()["ANSWERED"] == 2, later.report()
