"""A media worker's prompts, bridges and recordings: pjsua2's conference bridge driven for one leg or two.

Part of :class:`~callcenter.telephony.worker.Worker` (same thread, same rules: players and recorders
stay referenced while in use and are destroyed from the loop, never from a callback).
"""

from __future__ import annotations

import os
from pathlib import Path

from callcenter.core import telephony_protocol as p
from callcenter.telephony.legs import Leg, Playback, Recording, Refused, SharedLoop, monotonic, pj_reason

__all__ = ["MediaCommands"]


class MediaCommands:
    """Prompts, bridges and recordings of :class:`~callcenter.telephony.worker.Worker`."""

    def _audio(self, leg: Leg):
        call = self.calls.get(leg.id)
        if call is None:
            raise Refused(f"leg {leg.id} has no call")
        try:
            return call.getAudioMedia(-1)
        except self.pj.Error as exc:
            raise Refused(f"leg {leg.id} has no audio: {pj_reason(exc)}") from None

    def _play(self, cmd: p.PlayPrompts) -> None:
        leg = self._leg(cmd.leg)
        for f in cmd.files:
            if not os.path.isfile(f):
                raise Refused(f"no such prompt file: {f}")
        if not self._media_ready(leg, cmd):
            return
        self._stop_playback(leg, emit=True)
        if cmd.loop and len(cmd.files) == 1:
            leg.playback = Playback(cmd.id, tuple(cmd.files), True, shared=cmd.files[0])
            try:
                self._join_loop(leg, cmd.files[0])
            except Refused:
                leg.playback = None
                raise
            return
        leg.playback = Playback(cmd.id, tuple(cmd.files), cmd.loop, index=-1)
        self._advance_playback(leg)

    def _join_loop(self, leg: Leg, path: str) -> None:
        """Let ``leg`` hear the worker's looping player of ``path``, started for the first listener."""
        pj = self.pj
        loop = self.loops.get(path)
        if loop is None:
            player = pj.AudioMediaPlayer()
            try:
                player.createPlayer(path, 0)  # 0: loops at the end of the file, no EOF callback
            except pj.Error as exc:
                raise Refused(f"cannot play {path}: {pj_reason(exc)}") from None
            loop = self.loops[path] = SharedLoop(path, player)
        try:
            loop.player.startTransmit(self._audio(leg))
        except pj.Error as exc:
            self._leave_loop(leg, path)
            raise Refused(f"cannot play to {leg.id}: {pj_reason(exc)}") from None
        loop.listeners.add(leg.id)

    def _leave_loop(self, leg: Leg, path: str) -> None:
        loop = self.loops.get(path)
        if loop is None:
            return
        loop.listeners.discard(leg.id)
        call = self.calls.get(leg.id)
        if call is not None:
            try:
                loop.player.stopTransmit(call.getAudioMedia(-1))
            except Exception:  # noqa: BLE001 - media may be gone already
                pass
        if not loop.listeners:
            del self.loops[path]
            loop.player = None  # pjsua_player_destroy, from the loop

    def _advance_playback(self, leg: Leg) -> None:
        pb = leg.playback
        if pb is None:
            return
        self._destroy_player(leg, pb)
        attempts = 0
        while True:
            pb.index += 1
            if pb.index >= len(pb.files):
                if not pb.loop:
                    leg.playback = None
                    self.emit(p.PlaybackFinished(leg=leg.id, playback=pb.id, completed=True))
                    return
                pb.index = 0
            attempts += 1
            if attempts > len(pb.files) + 1:
                leg.playback = None
                self.emit(p.PlaybackFinished(leg=leg.id, playback=pb.id, completed=False))
                return
            try:
                self._start_player(leg, pb)
                return
            except Refused as exc:
                self.emit(p.CommandFailed(command_id=pb.id, command="PlayPrompts", reason=str(exc), leg=leg.id))

    def _start_player(self, leg: Leg, pb: Playback) -> None:
        pj = self.pj
        path = pb.files[pb.index]
        pb.token += 1
        player = self.player_class(self, leg.id, pb.token)
        try:
            player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
        except pj.Error as exc:
            raise Refused(f"cannot play {path}: {pj_reason(exc)}") from None
        pb.player = player
        try:
            player.startTransmit(self._audio(leg))
        except pj.Error as exc:
            raise Refused(f"cannot play to {leg.id}: {pj_reason(exc)}") from None

    def _destroy_player(self, leg: Leg, pb: Playback) -> None:
        if pb.shared is not None:
            self._leave_loop(leg, pb.shared)
            return
        player, pb.player = pb.player, None
        if player is None:
            return
        call = self.calls.get(leg.id)
        if call is not None:
            try:
                player.stopTransmit(call.getAudioMedia(-1))
            except Exception:  # noqa: BLE001 - media may be gone already
                pass
        del player  # pjsua_player_destroy, from the loop, never from onEof2

    def _stop_playback(self, leg: Leg, *, emit: bool) -> None:
        pb = leg.playback
        if pb is None:
            return
        leg.playback = None
        self._destroy_player(leg, pb)
        if emit:
            self.emit(p.PlaybackFinished(leg=leg.id, playback=pb.id, completed=False))

    def _bridge(self, cmd: p.Bridge) -> None:
        a, b = self._leg(cmd.a), self._leg(cmd.b)
        if not self._media_ready(a, cmd) or not self._media_ready(b, cmd):
            return
        self._stop_playback(a, emit=True)
        self._stop_playback(b, emit=True)
        ma, mb = self._audio(a), self._audio(b)
        try:
            ma.startTransmit(mb)
            mb.startTransmit(ma)
        except self.pj.Error as exc:
            raise Refused(f"cannot bridge: {pj_reason(exc)}") from None
        a.bridged.add(b.id)
        b.bridged.add(a.id)
        self.emit(p.Bridged(a=a.id, b=b.id))

    def _unbridge(self, cmd: p.Unbridge) -> None:
        a, b = self._leg(cmd.a), self._leg(cmd.b)
        if b.id not in a.bridged:
            raise Refused(f"{a.id} and {b.id} are not bridged")
        ma, mb = self._audio(a), self._audio(b)
        try:
            ma.stopTransmit(mb)
            mb.stopTransmit(ma)
        except self.pj.Error as exc:
            raise Refused(f"cannot unbridge: {pj_reason(exc)}") from None
        a.bridged.discard(b.id)
        b.bridged.discard(a.id)

    def _start_recording(self, cmd: p.StartRecording) -> None:
        pj = self.pj
        if cmd.conversation in self.recordings:
            raise Refused(f"recording {cmd.conversation!r} is running already")
        legs = [self._leg(x) for x in cmd.legs]
        for leg in legs:
            if not self._media_ready(leg, cmd):
                return
        path = Path(cmd.path)
        if path.suffix.lower() != ".wav":
            raise Refused("recordings are WAV files: the path must end in .wav")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Refused(f"cannot create {path.parent}: {exc.strerror}") from None
        recorder = pj.AudioMediaRecorder()
        try:
            recorder.createRecorder(str(path))
        except pj.Error as exc:
            raise Refused(f"cannot record to {path}: {pj_reason(exc)}") from None
        rec = Recording(cmd.conversation, str(path), tuple(cmd.legs), recorder, monotonic())
        self.recordings[cmd.conversation] = rec
        for leg in legs:
            try:
                self._audio(leg).startTransmit(recorder)
            except pj.Error as exc:
                self._finish_recording(rec, emit=False)
                raise Refused(f"cannot record {leg.id}: {pj_reason(exc)}") from None
        self.emit(p.RecordingStarted(conversation=rec.conversation, path=rec.path))

    def _finish_recording(self, rec: Recording, *, emit: bool) -> None:
        if self.recordings.get(rec.conversation) is not rec:
            return
        del self.recordings[rec.conversation]
        for leg_id in rec.legs:
            call = self.calls.get(leg_id)
            if call is None:
                continue
            try:
                call.getAudioMedia(-1).stopTransmit(rec.recorder)
            except Exception:  # noqa: BLE001
                pass
        rec.recorder = None  # destroying the recorder writes the WAV header
        if emit:
            self.emit(p.RecordingFinished(conversation=rec.conversation, path=rec.path,
                                          duration=round(monotonic() - rec.started, 3)))
