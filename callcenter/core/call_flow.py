"""The call flow: what each telephony event (a call arriving, a leg answered, failed or ended, a worker lost)
does to a contact, and how a contact ends and is recorded."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import acd
import ivr
from callcenter.core import queue_log as ql
from callcenter.core import telephony_protocol as tp
from callcenter.core.calls import (
    CALLBACK,
    CONNECTED,
    ENDED,
    IVR,
    LEAVING,
    OFFER_RETRY_SECONDS,
    QUEUED,
    RINGING,
    Call,
    dialable,
    new_call_id,
)
from callcenter.logsafe import log_safe
from screenpop.numbers import normalize

log = logging.getLogger("callcenter.core.contact_center")


class CallFlow:
    """Part of :class:`~callcenter.core.contact_center.ContactCenter`: telephony events in, contacts moved on."""

    def _on_call_arrived(self, event: tp.CallArrived) -> None:
        now = self.now()
        self.counters["arrived"] += 1
        host = self._source_host(event)
        if not self._allowed(host):
            self.counters["refused_source"] += 1
            log.warning("refused call from %s (not in sip.trunk_allow): ani=%s dnis=%s", log_safe(host or "unknown"),
                        log_safe(event.ani, 80), log_safe(event.dnis, 80))
            self._send(tp.RejectCall(leg=event.leg, status=403, reason="Forbidden"))
            return
        number = normalize(event.ani, self.settings.center.default_region, strict=False)
        ani = number.e164 if number else event.ani
        call = Call(call_id=new_call_id(), leg=event.leg, ani=ani, dnis=event.dnis,
                    display_name=event.display_name, arrived_at=now, language=self.settings.ivr.default_language)
        self.calls[call.call_id] = call
        self.by_leg[event.leg] = call.call_id
        self.records.write(self.store.open, call_id=call.call_id, direction="inbound", ani=ani, dnis=event.dnis,
                    display_name=event.display_name, customer_id=None, arrived_at=now)
        self._send(tp.AnswerCall(leg=event.leg))
        call.session = ivr.IvrSession(self.menu, ivr.CallInfo(call.call_id, caller=ani, dialed=event.dnis,
                                                              display_name=event.display_name),
                                      hours=self.settings.hours, language=call.language)
        self._apply_ivr(call, call.session.start(now))

    def _source_host(self, event: tp.CallArrived) -> str:
        """The caller's address: the remote address, or behind the SIP front the one it forwards."""
        remote = event.remote_address or ""
        if self.front_address and remote == self.front_address:
            remote = next((value for name, value in event.headers.items() if name.lower() == "x-src-addr"), "")
        return remote.strip().rsplit(":", 1)[0].strip("[]") if remote else ""

    def _allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trunk_networks)

    def _on_call_refused(self, event: tp.CallRefused) -> None:
        if self.front_address and event.worker != "front" and event.remote_address == self.front_address:
            # Behind the SIP front a worker's refusal is a failover: the front tries the next worker
            # and reports the callers it really turns away (worker "front").
            self.counters["worker_refused"] = self.counters.get("worker_refused", 0) + 1
            return
        self.counters["blocked"] += 1
        now = self.now()
        call_id = new_call_id()
        self.records.write(self.store.open, call_id=call_id, direction="inbound", ani=event.ani, dnis=event.dnis,
                    display_name=None, customer_id=None, arrived_at=now)
        self.records.write(self.store.update, call_id, ended_at=now, outcome="blocked")
        self.notifier.to_supervisors({"type": "call.blocked", "status": event.status, "reason": event.reason})

    def _on_playback_finished(self, event: tp.PlaybackFinished) -> None:
        call = self._call_of_leg(event.leg)
        if call is None or event.playback != call.playback:
            return
        call.playback = None
        if call.hangup_after_playback:
            call.hangup_after_playback = False
            if not call.kept:  # a kept-place callback may already ring an agent: its phase is not ours
                call.phase = LEAVING
            call.caller_leaving = call.kept and event.leg == call.leg
            self._send(tp.Hangup(leg=event.leg, reason=call.outcome or ""))
            return
        if call.kept and event.leg == call.leg and call.phase != IVR:
            # the callback was offered while the caller still listened to the IVR: their part is over
            call.ivr_plays.pop(event.playback, None)
            call.caller_leaving = True
            self._send(tp.Hangup(leg=event.leg, reason="callback_requested"))
            return
        play_id = call.ivr_plays.pop(event.playback, None)
        if play_id is not None:
            self._ivr(call, ivr.PromptFinished(play_id))
        elif call.announcing and call.phase in (QUEUED, RINGING):
            self._hold_music(call)

    def _on_digit_received(self, event: tp.DigitReceived) -> None:
        call = self._call_of_leg(event.leg)
        if call is None or event.leg != call.leg:
            return
        if call.phase == IVR:
            if (call.playback in call.ivr_plays and call.session is not None and len(event.digit) == 1
                    and event.digit in ivr.events.DTMF_KEYS and call.session.waiting_for == "digits"):
                # barge-in (Play.barge_in): the key stops the prompt now, not when the next one replaces it
                call.ivr_plays.pop(call.playback)
                call.playback = None
                self._send(tp.StopPlayback(leg=call.leg))
            self._ivr(call, ivr.DigitReceived(event.digit))
        elif call.phase == QUEUED and call.queue:
            key = self.settings.queues[call.queue].callback_key
            if key and event.digit == key and call.callback_number is None:
                if dialable(call.ani):
                    self._caller_wants_callback(call)
                else:
                    log.info("call %s: callback key pressed, but the caller's number %s cannot be dialled back",
                             call.call_id, log_safe(call.ani, 40))

    def _on_leg_answered(self, event: tp.LegAnswered) -> None:
        call = self._call_of_leg(event.leg)
        if call is None:
            return
        now = self.now()
        if event.leg == call.agent_leg and call.phase == RINGING:
            self._acd(acd.OfferAccepted(call.call_id, call.agent_id))
            if call.call_id not in self.calls or call.phase != RINGING:
                return
            call.phase = CONNECTED
            call.answered_at = now
            call.outcome = "answered" if call.callback_number is None else (
                "customer_no_answer" if call.outbound else call.outcome)
            self.last_call_of_agent[call.agent_id] = call.record
            self.handled_by[call.record] = call.agent_id
            ring = (now - (call.offered_at or now)).total_seconds()
            if call.callback_number is None:
                wait = (now - (call.queued_at or now)).total_seconds()
                self._send(tp.Bridge(a=call.leg, b=call.agent_leg))
                self._record(call)
                self.records.write(self.store.update, call.record, answered_at=now, wait_seconds=round(wait, 3),
                            outcome="answered")
                self.records.qlog(call.record, call.queue, call.agent_id, ql.CONNECT, int(wait), call.agent_leg, int(ring))
            self.notifier.to_agent(call.agent_id, {"type": "call.connected", "call_id": call.record})
        elif event.leg == call.customer_leg:
            if call.phase not in (RINGING, CONNECTED) or not call.agent_leg:  # the agent hung up meanwhile
                self._send(tp.Hangup(leg=event.leg, reason="agent gone"))
                return
            call.outcome = "callback_answered"
            self._send(tp.Bridge(a=call.agent_leg, b=call.customer_leg))
            self._record(call)
            self.records.write(self.store.update, call.record, answered_at=now, outcome="callback_answered")
            self._callback_result(call, "done", f"reached on call {call.call_id} by agent {call.agent_id}")
            self._callback_progress(call, "done", f"reached on call {call.record} by agent {call.agent_id}")
            self.records.qlog(call.record, call.queue, call.agent_id, ql.CONNECT, 0, call.customer_leg, 0)

    def _record(self, call: Call) -> None:
        if not self.settings.recording.enabled or self.recordings_dir is None:
            return
        path = self.recordings_dir / f"{self.now():%Y%m%d}" / f"{call.call_id}.wav"  # the worker makes the folder
        self._send(tp.StartRecording(conversation=call.call_id, legs=tuple(l for l in (call.leg or call.customer_leg,
                                     call.agent_leg) if l), path=str(path)))
        self.records.write(self.store.update, call.record, recording_path=str(path))

    def _on_leg_failed(self, event: tp.LegFailed) -> None:
        call = self._call_of_leg(event.leg)
        self.by_leg.pop(event.leg, None)
        if call is None:
            return
        if event.leg == call.agent_leg:
            call.agent_leg = None
            if call.phase == RINGING:
                agent = call.agent_id
                if not call.outbound:  # the agent's own dial: not a missed offer
                    self.records.qlog(call.record, call.queue, agent, ql.RINGNOANSWER, 0,
                               extra={"status": event.status, "reason": event.reason})
                call.phase = CALLBACK if call.callback_number else QUEUED
                self._acd(acd.OfferRejected(call.call_id, agent))
                if call.outbound:
                    self._end_dial(call, "agent_no_answer", f"agent {agent} did not answer ({event.status})")
        elif event.leg == call.customer_leg:
            call.customer_leg = None
            if call.phase != CONNECTED:  # the conversation already ended (the agent hung up): its outcome stands
                if not call.legs() and call.phase == LEAVING:
                    self._finish(call)
                return
            log.warning("callback %s to %s failed: %s %s", call.call_id, log_safe(call.callback_number, 80),
                        event.status, log_safe(event.reason, 120))
            call.outcome = f"callback_failed_{event.status}"
            self._callback_result(call, "pending", f"not reached on call {call.call_id}: {event.status} {event.reason}")
            self._callback_progress(call, "pending", f"not reached on call {call.record}: {event.status} {event.reason}")
            if call.agent_leg:
                self._send(tp.Hangup(leg=call.agent_leg, reason="customer unreachable"))
            elif call.phase == LEAVING:  # the agent's leg is gone already: nothing else will close it
                self._finish(call)

    def _on_command_failed(self, event: tp.CommandFailed) -> None:
        log.warning("telephony command %s (%s) failed: %s", event.command, event.command_id,
                    log_safe(event.reason, 200))
        call = self._call_of_leg(event.leg) if event.leg else None
        if call is None:
            return
        if event.command == "PlayPrompts" and event.command_id == call.playback:
            # A missing prompt must not strand the caller: carry on as if it had been heard.
            self._on_playback_finished(tp.PlaybackFinished(leg=event.leg, playback=event.command_id, completed=False))
        elif event.command == "Dial" and event.leg == call.agent_leg and call.phase == RINGING and not call.outbound:
            self._offer_never_rang(call, event.reason)
        elif event.command == "Dial":
            self._on_leg_failed(tp.LegFailed(leg=event.leg, status=500, reason=event.reason))

    def _offer_never_rang(self, call: Call, reason: str) -> None:
        """The agent's phone was never dialled (no room on a worker): not a missed offer.

        The agent stays reserved a moment before the call goes back to its place, so a pool that
        is full is not asked again in a tight loop.
        """
        agent, offered = call.agent_id, call.offered_at
        if call.agent_leg:
            self.by_leg.pop(call.agent_leg, None)
        call.agent_leg = None
        self.records.qlog(call.record, call.queue, agent, ql.RINGCANCELED, 0, extra={"reason": f"not dialled: {reason}"})
        log.warning("call %s: the offer to agent %s could not be dialled (%s); trying again", call.call_id, agent,
                    log_safe(reason, 120))

        def retry() -> None:
            current = self.calls.get(call.call_id)
            if current is None or current.phase != RINGING or current.agent_id != agent or current.agent_leg \
                    or current.offered_at != offered:  # a later offer (released and made again meanwhile)
                return
            current.phase = CALLBACK if current.callback_number else QUEUED
            self._acd(acd.OfferFailed(current.call_id, agent))

        self._loop.call_later(OFFER_RETRY_SECONDS, retry)

    def _on_leg_ended(self, event: tp.LegEnded) -> None:
        call = self._call_of_leg(event.leg)
        self.by_leg.pop(event.leg, None)
        if call is None:
            return
        now = self.now()
        if event.leg == call.leg and call.kept:
            # The caller hung up after leaving a kept-place callback: their call is over, the
            # callback (its own contact) goes on in the ACD whatever phase it is in.
            call.leg = None
            self._cancel_timers(call)
            if call.session is not None and not call.session.ended:
                call.session.handle(ivr.CallerHungUp(), now)
            self._close_inbound(call)
        elif event.leg == call.leg:
            call.leg = None
            self._cancel_timers(call)
            if call.phase == IVR:
                if call.session is not None and not call.session.ended:
                    call.session.handle(ivr.CallerHungUp(), now)
                self._save_ivr(call)
                call.outcome = call.outcome or "abandoned_ivr"
            elif call.phase in (QUEUED, RINGING):
                waited = (now - (call.queued_at or now)).total_seconds()
                self.records.qlog(call.record, call.queue, None, ql.ABANDON, 1, 1, int(waited))
                call.outcome = "abandoned"
                self.records.write(self.store.update, call.record, wait_seconds=round(waited, 3))
                self._drop_agent_leg(call)
                self._acd(acd.CallAbandoned(call.call_id))
            elif call.phase == CONNECTED:
                self.records.qlog(call.record, call.queue, call.agent_id, ql.COMPLETECALLER,
                           int((call.answered_at - call.queued_at).total_seconds()) if call.queued_at else 0,
                           int((now - call.answered_at).total_seconds()), 1)
                self._end_conversation(call, now)
            elif call.phase == CALLBACK:
                return  # the caller left on purpose; the callback stays queued
        elif event.leg == call.agent_leg:
            call.agent_leg = None
            if call.phase == CONNECTED and call.callback_number is not None and not call.outbound \
                    and call.outcome != "callback_answered":
                # the customer was not reached, or the agent hung up first: the callback ends unanswered
                if not (call.outcome or "").startswith("callback_failed"):
                    call.outcome = "callback_agent_hung_up"
                    self._callback_progress(call, "pending", f"agent {call.agent_id} hung up before the customer "
                                                             f"answered on call {call.record}")
                self.records.qlog(call.record, call.queue, call.agent_id, ql.ABANDON, 1, 1,
                           int((now - (call.queued_at or now)).total_seconds()), extra={"reason": call.outcome})
                self._end_conversation(call, now)
            elif call.phase == CONNECTED:
                self.records.qlog(call.record, call.queue, call.agent_id, ql.COMPLETEAGENT,
                           int((call.answered_at - call.queued_at).total_seconds()) if call.queued_at else 0,
                           int((now - call.answered_at).total_seconds()), 1)
                self._end_conversation(call, now)
            elif call.phase == RINGING:
                self._on_leg_failed(tp.LegFailed(leg=event.leg, status=event.status or 487, reason=event.cause))
                return
        elif event.leg == call.customer_leg:
            call.customer_leg = None
            if call.phase == CONNECTED and call.outcome == "callback_answered":
                self.records.qlog(call.record, call.queue, call.agent_id, ql.COMPLETECALLER,
                           int((call.answered_at - call.queued_at).total_seconds())
                           if call.queued_at and call.answered_at else 0,
                           int((now - (call.answered_at or now)).total_seconds()), 1)
                self._end_conversation(call, now)
            elif call.phase == CONNECTED:  # the customer was never reached (busy, no answer)
                self.records.qlog(call.record, call.queue, call.agent_id, ql.ABANDON, 1, 1,
                           int((now - (call.queued_at or now)).total_seconds()),
                           extra={"reason": call.outcome or "customer_not_reached"})
                self._end_conversation(call, now)
        if not call.legs() and call.phase != CALLBACK:
            self._finish(call)

    def _end_conversation(self, call: Call, now: dt.datetime) -> None:
        talk = (now - call.answered_at).total_seconds() if call.answered_at else 0.0
        self.records.write(self.store.update, call.record, talk_seconds=round(talk, 3))
        if self.settings.recording.enabled and self.recordings_dir is not None:
            self._send(tp.StopRecording(conversation=call.call_id))
        call.phase = LEAVING
        for leg in call.legs():
            self._send(tp.Hangup(leg=leg, reason="conversation ended"))
        if call.agent_id and call.answered_at is not None:
            self._owe(call.agent_id, self._owed_of(call, now), notify=False)  # told with call.ended below
        self._acd(acd.CallEnded(call.call_id))
        if call.agent_id and (call.agent_id, call.record) in self.disposed:  # saved while it was on
            self._acd(acd.CallDisposed(call.agent_id, call.call_id))
        if call.agent_id:
            self.notifier.to_agent(call.agent_id, {"type": "call.ended", "call_id": call.record,
                                                   "owed": self.owed_list(call.agent_id)})

    def _drop_agent_leg(self, call: Call) -> None:
        """Cancel a ringing agent leg at once; whatever that leg reports afterwards is ignored."""
        if call.agent_leg:
            self._send(tp.Hangup(leg=call.agent_leg, reason="offer cancelled"))
            self.by_leg.pop(call.agent_leg, None)
            call.agent_leg = None
            if call.phase == RINGING and call.agent_id:
                self.notifier.to_agent(call.agent_id, {"type": "call.offer_cancelled", "call_id": call.record,
                                                       "reason": "caller_hung_up"})

    def _on_worker_died(self, event: tp.WorkerDied) -> None:
        lost = {self.by_leg.get(leg) for leg in event.legs} - {None}
        log.error("worker %s died (rc %s): %d call(s) lost", event.worker, event.returncode, len(lost))
        self.counters["failed_worker"] += len(lost)
        for call_id in lost:
            call = self.calls.get(call_id)
            if call is None:
                continue
            for leg in call.legs():
                self.by_leg.pop(leg, None)
            call.leg = call.agent_leg = call.customer_leg = None
            self._cancel_timers(call)
            call.outcome = "failed_worker"
            if call.phase == CONNECTED:
                self._end_conversation(call, self.now())  # owed, wrap-up and call.ended as for any call
            elif call.phase in (QUEUED, RINGING, CALLBACK):
                self._acd(acd.CallAbandoned(call.call_id))
            self._finish(call)

    def _close_queue_log(self, call: Call, reason: str) -> None:
        self.records.close_queue_call(call.record, call.queue, call.agent_id, call.queued_at, call.answered_at, reason)

    def _cancel_timers(self, call: Call) -> None:
        for handle in call.timers.values():
            handle.cancel()
        call.timers.clear()

    def _finish(self, call: Call) -> None:
        """The contact is over: complete its row and forget it."""
        if call.phase == ENDED:
            return
        call.phase = ENDED
        now = self.now()
        if call.outbound:  # a dial-now that ends without reaching the customer leaves its callback to do
            self._callback_result(call, "pending", f"not reached on call {call.call_id}: {call.outcome or 'ended'}")
        if call.kept and call.outcome != "callback_answered":  # never reached: left for agents to call
            self._callback_progress(call, "pending", f"not reached on call {call.record}: {call.outcome or 'ended'}")
        values: dict[str, Any] = {"ended_at": now, "outcome": call.outcome or "ended"}
        if call.session is not None and call.queued_at is None:
            values["ivr_path"] = call.session.path_json()
        self._close_queue_log(call, call.outcome or "ended")
        self._close_inbound(call)
        self.records.write(self.store.update, call.record, **values)
        self.calls.pop(call.call_id, None)
        self.by_record.pop(call.record, None)
        for leg in (call.leg, call.agent_leg, call.customer_leg):
            if leg:
                self.by_leg.pop(leg, None)

    # event type -> handler (events with no entry are of no interest to the call flow)
    EVENT_HANDLERS: ClassVar[dict[type, Callable[[Any, Any], None]]] = {
        tp.CallArrived: _on_call_arrived,
        tp.CallRefused: _on_call_refused,
        tp.CommandFailed: _on_command_failed,
        tp.DigitReceived: _on_digit_received,
        tp.LegAnswered: _on_leg_answered,
        tp.LegEnded: _on_leg_ended,
        tp.LegFailed: _on_leg_failed,
        tp.PlaybackFinished: _on_playback_finished,
        tp.WorkerDied: _on_worker_died,
    }
