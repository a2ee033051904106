"""IVR files on disk: reading the menu file, and recording its prompts as WAV files with espeak-ng.

Layout: ``<prompts_dir>/<language>/<prompt id>.wav`` (fragments such as ``say/3`` live in
``<language>/say/``), mono 16-bit PCM at 8 or 16 kHz, and ``<language>/manifest.json`` with a
hash of text + voice + rate per prompt, so a rebuild records only what changed.
"""

from __future__ import annotations

import array
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import wave
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.config import read_toml
from callcenter.errors import CallCenterError, ConfigError
from ivr.check import Finding
from ivr.errors import MenuError
from ivr.menu import IvrMenu, parse_menu
from ivr.speech import FRAGMENTS

RATES = (8000, 16000)
MANIFEST = "manifest.json"
_FORMAT = 1  # bump when the way prompts are recorded changes: everything is recorded again
_ESPEAK_HINT = "espeak-ng is not installed; install it with: apt-get install espeak-ng"


class PromptError(CallCenterError):
    """Prompts could not be recorded (espeak-ng missing or failing, unwritable directory)."""


# ------------------------------------------------------------------------------ menu file


@dataclass(frozen=True)
class LoadedMenu:
    path: Path
    tree: dict[str, Any]
    menu: IvrMenu


def load_menu(path: str | Path) -> LoadedMenu:
    """Read and validate a menu file; any problem is a :class:`ConfigError` naming file and key path."""
    path = Path(path)
    tree = read_toml(path, missing="IVR menu file not found (set ivr.menu_file in the settings)")
    try:
        menu = parse_menu(tree, str(path))
    except MenuError as exc:
        raise ConfigError(str(exc) + "\nSee docs/ivr.md for the menu format.") from None
    return LoadedMenu(path, tree, menu)


# ------------------------------------------------------------------------------ what to record


def prompt_texts(menu: IvrMenu, language: str) -> dict[str, str]:
    """Every prompt of a language: the menu's texts and the number/date fragments."""
    return {**FRAGMENTS.get(language, {}), **menu.prompts.get(language, {})}


def prompt_file(prompts_dir: Path, language: str, prompt_id: str) -> Path:
    return prompts_dir / language / f"{prompt_id}.wav"


def prompt_hash(text: str, voice: str, rate: int) -> str:
    data = f"{_FORMAT}\0{voice}\0{rate}\0{text}".encode()
    return hashlib.sha256(data).hexdigest()[:32]


def read_manifest(prompts_dir: Path, language: str) -> dict[str, Any] | None:
    path = prompts_dir / language / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"rate": None, "prompts": {}}
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), dict):
        return {"rate": None, "prompts": {}}
    return data


def _write_manifest(prompts_dir: Path, language: str, data: dict[str, Any]) -> None:
    path = prompts_dir / language / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ WAV files


@dataclass(frozen=True)
class WavInfo:
    channels: int
    sample_width: int
    rate: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate if self.rate else 0.0


def wav_info(path: Path) -> WavInfo:
    """The header of a PCM WAV file (``wave`` refuses anything that is not PCM)."""
    with wave.open(str(path), "rb") as handle:
        return WavInfo(handle.getnchannels(), handle.getsampwidth(), handle.getframerate(), handle.getnframes())


def _resample_python(source: Path, target: Path, rate: int) -> None:
    """Linear-interpolation resampling to mono 16-bit (used when sox is not installed)."""
    with wave.open(str(source), "rb") as handle:
        channels, width, src_rate = handle.getnchannels(), handle.getsampwidth(), handle.getframerate()
        raw = handle.readframes(handle.getnframes())
    if width != 2:
        raise PromptError(f"{source}: expected 16-bit samples from espeak-ng, got {8 * width}-bit")
    samples = array.array("h")
    samples.frombytes(raw)
    if sys.byteorder == "big":
        samples.byteswap()
    if channels > 1:
        samples = array.array("h", (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels)))
    if src_rate != rate and samples:
        step = src_rate / rate
        count = int(len(samples) / step)
        last = len(samples) - 1
        out = array.array("h")
        for index in range(count):
            position = index * step
            left = int(position)
            right = min(left + 1, last)
            fraction = position - left
            out.append(int(samples[left] + (samples[right] - samples[left]) * fraction))
        samples = out
    if sys.byteorder == "big":
        samples.byteswap()
    with wave.open(str(target), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())


def synthesize(text: str, voice: str, rate: int, target: Path, *, espeak: str, sox: str | None) -> WavInfo:
    """Record ``text`` into ``target`` (mono, 16-bit PCM, ``rate`` Hz) and check the result's header."""
    target.parent.mkdir(parents=True, exist_ok=True)
    raw = target.with_name(target.stem + ".espeak.tmp.wav")
    converted = target.with_name(target.stem + ".tmp.wav")
    try:
        try:
            subprocess.run(
                [espeak, "-v", voice, "-w", str(raw), "--stdin"],
                input=text.encode("utf-8"),
                capture_output=True,
                check=True,
                timeout=60,
            )
        except subprocess.CalledProcessError as exc:
            detail = exc.stderr.decode("utf-8", "replace").strip() or f"exit status {exc.returncode}"
            raise PromptError(f"espeak-ng failed for voice {voice!r}: {detail}") from None
        except subprocess.TimeoutExpired:
            raise PromptError(f"espeak-ng took too long for {target.name}") from None
        if sox:
            try:
                subprocess.run(
                    [sox, str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer", str(converted)],
                    capture_output=True,
                    check=True,
                    timeout=60,
                )
            except subprocess.CalledProcessError as exc:
                raise PromptError(f"sox failed: {exc.stderr.decode('utf-8', 'replace').strip()}") from None
        else:
            _resample_python(raw, converted, rate)
        info = wav_info(converted)
        if (info.channels, info.sample_width, info.rate) != (1, 2, rate):
            raise PromptError(
                f"{target}: recorded as {info.channels} channel(s), {8 * info.sample_width}-bit, {info.rate} Hz; "
                f"expected mono 16-bit {rate} Hz"
            )
        os.replace(converted, target)
        return info
    finally:
        raw.unlink(missing_ok=True)
        converted.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ building


@dataclass
class BuildReport:
    built: list[tuple[str, str]] = field(default_factory=list)
    unchanged: int = 0
    removed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.built) + self.unchanged


def find_espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise PromptError(_ESPEAK_HINT)
    return path


ProgressCallback = Callable[[str, int, int], None]  # (what, done, total)


def build_prompts(
    menu: IvrMenu,
    prompts_dir: str | Path,
    *,
    languages: Iterable[str],
    rate: int = 8000,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
    only: Iterable[str] | None = None,
    jobs: int | None = None,
) -> BuildReport:
    """Record every prompt (menu texts and fragments) of each language that changed since the last build.

    ``only`` limits the build to some prompt ids (tests, quick previews).
    """
    if rate not in RATES:
        raise PromptError(f"rate {rate} Hz is not supported; use {' or '.join(map(str, RATES))}")
    prompts_dir = Path(prompts_dir)
    languages = list(languages)
    for language in languages:
        if language not in menu.prompts:
            raise PromptError(f"language {language!r} has no [prompts.{language}] table in the menu file")
        if language not in menu.voices:
            raise PromptError(f"no espeak-ng voice for language {language!r}: add it to [voices] in the menu file")
    espeak = find_espeak()
    sox = shutil.which("sox")
    wanted = set(only) if only is not None else None
    report = BuildReport()
    plans: list[tuple[str, str, str, str, Path]] = []  # language, id, text, hash, file
    manifests: dict[str, dict[str, Any]] = {}
    for language in languages:
        voice = menu.voices[language]
        texts = prompt_texts(menu, language)
        if wanted is not None:
            texts = {k: v for k, v in texts.items() if k in wanted}
        manifest = read_manifest(prompts_dir, language) or {"prompts": {}}
        old = manifest.get("prompts", {})
        entries: dict[str, Any] = {}
        for prompt_id, text in sorted(texts.items()):
            digest = prompt_hash(text, voice, rate)
            target = prompt_file(prompts_dir, language, prompt_id)
            previous = old.get(prompt_id)
            entries[prompt_id] = {"hash": digest, "text": text}
            if not force and isinstance(previous, dict) and previous.get("hash") == digest and target.exists():
                report.unchanged += 1
                continue
            plans.append((language, prompt_id, text, digest, target))
        if wanted is None:
            for prompt_id in sorted(set(old) - set(entries)):
                prompt_file(prompts_dir, language, prompt_id).unlink(missing_ok=True)
                report.removed.append((language, prompt_id))
        else:  # a partial build keeps what it did not touch
            entries = {**{k: v for k, v in old.items() if k not in entries}, **entries}
        manifests[language] = {"format": _FORMAT, "voice": voice, "rate": rate, "prompts": entries}
        try:
            (prompts_dir / language).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PromptError(f"cannot create {prompts_dir / language}: {exc.strerror}") from None

    total = len(plans)
    if on_progress:
        on_progress("", 0, total)
    done = 0
    failed: Exception | None = None
    # Prompts that fail keep their old manifest entry out, so the next build tries them again.
    finished: set[tuple[str, str]] = set()
    with ThreadPoolExecutor(max_workers=jobs or min(8, (os.cpu_count() or 2) * 2)) as pool:
        futures = {
            pool.submit(synthesize, text, menu.voices[language], rate, target, espeak=espeak, sox=sox): (language, pid)
            for language, pid, text, _digest, target in plans
        }
        for future, key in futures.items():
            try:
                future.result()
                finished.add(key)
                report.built.append(key)
            except Exception as exc:  # keep going; report the first failure after the manifests are saved
                failed = failed or exc
            done += 1
            if on_progress:
                on_progress(f"{key[0]}/{key[1]}", done, total)
    for language, data in manifests.items():
        for _language, pid, _text, _digest, _target in plans:
            if _language == language and (language, pid) not in finished:
                data["prompts"].pop(pid, None)
        _write_manifest(prompts_dir, language, data)
    if failed is not None:
        if isinstance(failed, CallCenterError):
            raise failed
        raise PromptError(f"recording prompts failed: {failed}")
    if wanted is None:
        write_hold_music(hold_music_file(prompts_dir), rate)
    return report


HOLD_MUSIC = "moh.wav"


def hold_music_file(prompts_dir: str | Path) -> Path:
    return Path(prompts_dir) / HOLD_MUSIC


def write_hold_music(path: Path, rate: int, *, seconds: float = 16.0) -> bool:
    """A calm synthesised arpeggio for callers on hold (written once per rate); True when written."""
    if path.exists():
        try:
            if wav_info(path).rate == rate:
                return False
        except Exception:  # an unreadable file is simply replaced
            pass
    notes = [261.63, 329.63, 392.00, 523.25, 392.00, 329.63, 293.66, 349.23, 440.00, 349.23, 293.66, 246.94]
    step = seconds / len(notes)
    samples = array.array("h")
    for i in range(int(seconds * rate)):
        t = i / rate
        index, phase = divmod(t, step)
        frequency = notes[int(index) % len(notes)]
        envelope = min(1.0, phase * 20) * math.exp(-2.5 * phase)
        value = 0.22 * envelope * (math.sin(2 * math.pi * frequency * t) + 0.3 * math.sin(4 * math.pi * frequency * t))
        samples.append(int(max(-1.0, min(1.0, value)) * 32767))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return True


# ------------------------------------------------------------------------------ checking files


def audit_prompt_files(menu: IvrMenu, prompts_dir: str | Path, languages: Iterable[str]) -> list[Finding]:
    """Prompt files that are missing or older than their text.

    A language whose prompts were never built (no manifest) gives one warning instead of an error
    per file, so a fresh checkout checks clean until ``callcenter prompts build`` has run.
    """
    prompts_dir = Path(prompts_dir)
    findings: list[Finding] = []
    for language in languages:
        if language not in menu.prompts:
            continue  # reported by the menu checker
        manifest = read_manifest(prompts_dir, language)
        if manifest is None:
            findings.append(
                Finding(
                    "prompts",
                    f"prompts for {language!r} have never been built in {prompts_dir / language}; "
                    "run 'callcenter prompts build'",
                    "warning",
                )
            )
            continue
        voice = menu.voices.get(language, "")
        rate = manifest.get("rate")
        recorded = manifest.get("prompts", {})
        for prompt_id, text in sorted(prompt_texts(menu, language).items()):
            path = f"prompts.{language}.{prompt_id}" if prompt_id in menu.prompts[language] else f"prompts.{language} ({prompt_id})"
            target = prompt_file(prompts_dir, language, prompt_id)
            if not target.exists():
                findings.append(Finding(path, f"prompt file {target} is missing; run 'callcenter prompts build'"))
                continue
            entry = recorded.get(prompt_id)
            if not isinstance(entry, dict) or rate not in RATES or entry.get("hash") != prompt_hash(text, voice, rate):
                findings.append(Finding(path, f"prompt file {target} is out of date (text or voice changed); run 'callcenter prompts build'"))
    return findings
