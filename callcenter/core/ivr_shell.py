"""The IVR shell: each caller's pure ``ivr.IvrSession`` driven with telephony events and timers, its actions
carried out; and the queue side of a caller (entering, music, announcements, callbacks asked for)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import acd
import ivr
from callcenter.core import queue_log as ql
from callcenter.core import telephony_protocol as tp
from callcenter.core.calls import (
    CALLBACK,
    IVR,
    LEAVING,
    QUEUED,
    RINGING,
    Call,
    new_call_id,
)
from ivr.ports import run_lookup
from ivr.queue_prompts import CALLBACK_CONFIRM

log = logging.getLogger("callcenter.core.contact_center")


class IvrShell:
    """Part of :class:`~callcenter.core.contact_center.ContactCenter`: the caller before an agent."""

    def _ivr(self, call: Call, event: Any) -> None:
        if call.session is None or call.phase != IVR:
            return
        try:
            actions = call.session.handle(event, self.now())
        except ivr.IvrError as exc:
            log.error("IVR session of %s: %s", call.call_id, exc)
            self._enqueue(call, self.settings.ivr.fallback_queue, 0, {})
            return
        self._apply_ivr(call, actions)

    def _apply_ivr(self, call: Call, actions: list[Any]) -> None:
        for action in actions:
            if call.phase != IVR:
                break
            if isinstance(action, ivr.SetLanguage):
                call.language = action.language
            elif isinstance(action, ivr.Play):
                files = tuple(str(self._prompt(action.language, p)) for p in action.prompts)
                playback = self._send(tp.PlayPrompts(leg=call.leg, files=files))
                call.playback = playback
                call.ivr_plays[playback] = action.play_id
            elif isinstance(action, ivr.StartTimer):
                old = call.timers.pop(action.timer_id, None)
                if old:
                    old.cancel()
                call.timers[action.timer_id] = self._loop.call_later(
                    action.seconds, self._ivr_timeout, call.call_id, action.timer_id)
            elif isinstance(action, ivr.Lookup):
                self._lookup(call, action)
            elif isinstance(action, ivr.RouteToQueue):
                self._save_ivr(call)
                self._enqueue(call, action.queue, action.priority, dict(action.skills))
            elif isinstance(action, ivr.RequestCallback):
                self._ivr_callback(call, action)
            elif isinstance(action, ivr.Transfer):
                self._save_ivr(call)
                log.warning("call %s: transfer to %s is not supported; routing to %s", call.call_id,
                            action.destination, self.settings.ivr.fallback_queue)
                self._enqueue(call, self.settings.ivr.fallback_queue, 0, {})
            elif isinstance(action, ivr.Hangup):
                self._save_ivr(call)
                if call.kept:  # the caller leaves; the callback keeps its place in the ACD
                    call.phase = CALLBACK
                    call.caller_leaving = True
                else:
                    call.outcome = call.outcome or action.reason
                    call.phase = LEAVING
                self._send(tp.Hangup(leg=call.leg, reason=action.reason))

    def _prompt(self, language: str, prompt_id: str) -> Path:
        return self.prompts_dir / language / f"{prompt_id}.wav"

    def _ivr_timeout(self, call_id: str, timer_id: int) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            call.timers.pop(timer_id, None)
            self._ivr(call, ivr.TimedOut(timer_id))

    def _lookup(self, call: Call, action: ivr.Lookup) -> None:
        future = self._loop.run_in_executor(self._lookups, run_lookup, self.selfservice, action)

        def done(f: asyncio.Future) -> None:
            current = self.calls.get(call.call_id)
            if current is None or f.cancelled():
                return
            result = f.result() if f.exception() is None else ivr.LookupCompleted(action.request_id, error=str(f.exception()))
            if action.kind == "caller" and result.result is not None:
                current.customer_id = getattr(result.result, "customer_id", None)
                if current.customer_id is not None:
                    self.records.write(self.store.update, current.call_id, customer_id=current.customer_id)
            self._ivr(current, result)

        future.add_done_callback(done)

    def _save_ivr(self, call: Call) -> None:
        if call.session is not None:
            self.records.write(self.store.update, call.inbound_record or call.record, ivr_path=call.session.path_json(),
                        language=call.language)

    def _ivr_callback(self, call: Call, action: ivr.RequestCallback) -> None:
        now = self.now()
        number = action.number or call.ani
        self.records.write(self.store.add_callback, number=number, customer_id=action.customer_id or call.customer_id,
                    queue=action.queue, due_from=action.due or now,
                    due_until=(action.due or now) + dt.timedelta(hours=2), source="ivr", call_id=call.record)
        if action.keep_place:
            call.queue = action.queue
            call.queued_at = now
            self._keep_place(call, number)
            request = acd.CallbackRequested(call.call_id, number, queue=action.queue, priority=action.priority)
            # After the IVR's next steps (the confirmation and the hang-up) are under way: an agent
            # free at once would otherwise stop the session before the caller hears them.
            self._loop.call_soon(lambda: self._acd(request) if call.call_id in self.calls else None)
            return
        call.outcome = "callback_requested"

    # ------------------------------------------------------------------ queue

    def _enqueue(self, call: Call, queue: str, priority: int, skills: dict[str, int]) -> None:
        if queue not in self.settings.queues:
            log.error("call %s routed to unknown queue %r; using %s", call.call_id, queue,
                      self.settings.ivr.fallback_queue)
            queue = self.settings.ivr.fallback_queue
        now = self.now()
        self._cancel_timers(call)
        call.phase = QUEUED
        call.queue = queue
        call.priority = priority
        call.queued_at = now
        self.records.write(self.store.update, call.record, queue=queue, queued_at=now)
        self.records.qlog(call.record, queue, None, ql.ENTERQUEUE, "", call.ani)
        self._hold_music(call)
        self._acd(acd.CallQueued(call.call_id, queue, priority=priority, skills=skills or None, caller=call.ani))

    def _hold_music(self, call: Call) -> None:
        if call.leg and call.phase in (QUEUED, RINGING):
            call.announcing = False
            call.playback = self._send(tp.PlayPrompts(leg=call.leg, files=(str(self.prompts_dir / "moh.wav"),),
                                                      loop=True))

    def _play_in_queue(self, call: Call, prompts: tuple[str, ...]) -> None:
        if call.leg is None:
            return
        call.announcing = True
        files = tuple(str(self._prompt(call.language, p)) for p in prompts)
        call.playback = self._send(tp.PlayPrompts(leg=call.leg, files=files))

    def _leave_with_callback(self, call: Call, *, prompt: str, outcome: str) -> None:
        now = self.now()
        self.records.write(self.store.add_callback, number=call.ani, customer_id=call.customer_id, queue=call.queue,
                    due_from=now, due_until=now + dt.timedelta(hours=4), source="ivr", call_id=call.record)
        self._finish_with_prompt(call, prompt, outcome=outcome)

    def _finish_with_prompt(self, call: Call, prompt: str, *, outcome: str) -> None:
        """Say one last thing, then hang up (the call has already left the ACD)."""
        call.outcome = outcome
        call.phase = LEAVING
        if call.leg is None:
            self._finish(call)
            return
        call.hangup_after_playback = True
        call.playback = self._send(tp.PlayPrompts(leg=call.leg, files=(str(self._prompt(call.language, prompt)),)))

    def _caller_wants_callback(self, call: Call) -> None:
        """The caller pressed the callback key while waiting: keep the place, hang up, ring back later.

        queue_log: ``EXITWITHKEY`` closes the caller's call; the callback is a call of its own
        (``ENTERQUEUE`` … ``CONNECT`` … ``COMPLETE*``, or ``ABANDON`` when it ends unanswered).
        """
        self.records.qlog(call.record, call.queue, None, ql.EXITWITHKEY, self.settings.queues[call.queue].callback_key)
        self.records.write(self.store.add_callback, number=call.ani, customer_id=call.customer_id, queue=call.queue,
                    due_from=self.now(), due_until=None, source="ivr", call_id=call.record)
        self._keep_place(call, call.ani)
        call.phase = CALLBACK
        call.hangup_after_playback = True
        call.playback = self._send(tp.PlayPrompts(leg=call.leg,
                                                  files=(str(self._prompt(call.language, CALLBACK_CONFIRM)),)))
        self._acd(acd.CallbackRequested(call.call_id, call.ani))

    def _keep_place(self, call: Call, number: str) -> None:
        """A kept-place callback starts: a contact of its own in the records, while the ACD keeps the place."""
        now = self.now()
        call.kept = True
        call.callback_number = number
        call.inbound_record = call.record
        call.record = new_call_id()
        self.by_record[call.record] = call.call_id
        self.records.write(self.store.update, call.inbound_record, outcome="callback_requested")
        self.records.write(self.store.open, call_id=call.record, direction="outbound", ani=number,
                    dnis=self.settings.sip.caller_id or "", display_name=call.display_name or None,
                    customer_id=call.customer_id, arrived_at=now)
        self.records.write(self.store.update, call.record, queue=call.queue, queued_at=call.queued_at or now)
        self.records.qlog(call.record, call.queue, None, ql.ENTERQUEUE, "", number)
        call.outcome = "callback_waiting"

    def _close_inbound(self, call: Call) -> None:
        """The caller's own call ends (they hung up after leaving a callback, or talk on it as the callback)."""
        if call.inbound_record is None:
            return
        values: dict[str, Any] = {"ended_at": self.now(), "outcome": "callback_requested"}
        if call.session is not None:
            values["ivr_path"] = call.session.path_json()
        self.records.write(self.store.update, call.inbound_record, **values)
        call.inbound_record = None

    def _callback_progress(self, call: Call, status: str, result: str, *, attempt: bool = False) -> None:
        """The callback row of a kept-place callback follows its attempts: in progress, done, or pending again."""
        if not call.kept:
            return
        self.records.write(self.store.callback_progress_of_request, call.call_id, status=status, result=result,
                    attempt=attempt, attempt_call_id=call.record if attempt else None)
