"""A deliberately naive engine: same rules, no routing indexes.

Every decision scans: a call looking for an agent walks all members of its queue, an agent
looking for a call walks every call present in each of its queues, and skill eligibility is
recomputed each time. That is how Asterisk's ``app_queue`` picks a member (a loop over the
queue's members per attempt). It exists as the baseline for ``bench/acd_bench.py`` and as an
oracle in the tests: fed the same events, it must return exactly the same actions as
:class:`acd.engine.AcdEngine`.
"""

from __future__ import annotations

from acd.engine import AVAILABLE, WAITING, AcdEngine

__all__ = ["NaiveAcdEngine"]


def _qualified(skills: dict, req: tuple) -> bool:
    for skill, level in req:
        if skills.get(skill, 0) < level:
            return False
    return True


class NaiveAcdEngine(AcdEngine):
    """:class:`AcdEngine` with linear scans instead of heaps (reference and benchmark baseline)."""

    def _index_agent(self, a) -> None:  # no index to maintain
        return None

    def _index_call(self, c) -> None:
        c.version += 1

    def _unindex_call(self, c) -> None:
        c.version += 1

    def _match_call(self, c) -> None:
        q = c.q
        req = c.req
        missed = c.missed_by
        best = None
        best_key = None
        skipped = []
        for a in q.members.values():
            if a.state != AVAILABLE or not _qualified(a.skills, req):
                continue
            key = self._key(q, a)
            if missed and a.id in missed:
                skipped.append((key, a.id))
                continue
            if best_key is None or key < best_key:
                best, best_key = a, key
        if best is not None:
            passed = tuple(aid for key, aid in sorted(skipped) if key < best_key)
            self._offer(c, best, "call", passed, best_key)
        elif skipped:
            self._fallback(c, [self._agents[aid] for _, aid in sorted(skipped)])

    def _match_agent(self, a) -> None:
        best = None
        best_key = None
        skills = a.skills
        for q in a.queues:
            for c in q.present.values():
                if c.state != WAITING or not _qualified(skills, c.req):
                    continue
                key = (-c.priority, c.seq)
                if best_key is None or key < best_key:
                    best, best_key = c, key
        if best is not None:
            self._offer(best, a, "agent", (), self._key(best.q, a))
