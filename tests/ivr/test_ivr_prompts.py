"""Recording prompts with the real espeak-ng: WAV headers, incremental rebuilds, the file audit."""

from __future__ import annotations

import json
import shutil
import wave

import pytest
from ivr_support import menu
from typer.testing import CliRunner

from callcenter.prompts import PromptError, audit_prompt_files, build_prompts, prompt_file, wav_info

ESPEAK = shutil.which("espeak-ng")
assert ESPEAK, "espeak-ng is missing: make test installs it (apt-get install espeak-ng)"

BODY = """
[menus.main]
prompt = ["hello", "{number:x}"]
options = { 1 = "bye" }

[menus.bye]
type = "hangup"
prompt = "bye"
"""
ONLY = ["hello", "bye", "say/3", "say/100"]


@pytest.fixture
def two_languages():
    return menu(BODY, languages=("zh", "en"))


def header(path) -> tuple[int, int, int, str]:
    with open(path, "rb") as handle:
        riff = handle.read(44)
    assert riff[:4] == b"RIFF" and riff[8:12] == b"WAVE"
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getcomptype()


@pytest.mark.parametrize("rate", [8000, 16000])
def test_build_records_mono_16_bit_at_the_rate_and_rebuilds_nothing(tmp_path, two_languages, rate):
    report = build_prompts(two_languages, tmp_path, languages=["zh", "en"], rate=rate, only=ONLY)
    assert sorted(report.built) == sorted((lang, pid) for lang in ("zh", "en") for pid in ONLY)
    for language in ("zh", "en"):
        for prompt_id in ONLY:
            path = prompt_file(tmp_path, language, prompt_id)
            assert header(path) == (1, 2, rate, "NONE")
            assert wav_info(path).seconds > 0.1, "there is speech in it"
    assert (tmp_path / "zh" / "say" / "3.wav").exists()

    again = build_prompts(two_languages, tmp_path, languages=["zh", "en"], rate=rate, only=ONLY)
    assert again.built == [] and again.unchanged == len(ONLY) * 2


def test_a_changed_text_or_rate_records_only_what_changed(tmp_path, two_languages):
    build_prompts(two_languages, tmp_path, languages=["en"], rate=8000, only=["hello", "bye"])
    before = prompt_file(tmp_path, "en", "bye").stat().st_mtime_ns
    changed = menu(BODY).model_copy(
        update={"prompts": {"en": {**two_languages.prompts["en"], "hello": "Good morning"}}}
    )
    report = build_prompts(changed, tmp_path, languages=["en"], rate=8000, only=["hello", "bye"])
    assert report.built == [("en", "hello")]
    assert prompt_file(tmp_path, "en", "bye").stat().st_mtime_ns == before
    manifest = json.loads((tmp_path / "en" / "manifest.json").read_text())
    assert manifest["prompts"]["hello"]["text"] == "Good morning" and manifest["rate"] == 8000

    report = build_prompts(changed, tmp_path, languages=["en"], rate=16000, only=["hello", "bye"])
    assert sorted(report.built) == [("en", "bye"), ("en", "hello")]
    forced = build_prompts(changed, tmp_path, languages=["en"], rate=16000, only=["bye"], force=True)
    assert forced.built == [("en", "bye")]


def test_audit_finds_missing_and_stale_files(tmp_path, two_languages):
    assert [f.severity for f in audit_prompt_files(two_languages, tmp_path, ["zh", "en"])] == ["warning", "warning"]
    build_prompts(two_languages, tmp_path, languages=["en"], rate=8000, only=["hello", "bye"])
    found = audit_prompt_files(two_languages, tmp_path, ["en"])
    missing = {f.path for f in found if "is missing" in f.message}
    assert "prompts.en (say/3)" in missing and "prompts.en.hello" not in missing
    assert all(f.severity == "error" for f in found)
    changed = two_languages.model_copy(update={"prompts": {**two_languages.prompts, "en": {**two_languages.prompts["en"], "bye": "See you"}}})
    stale = [f for f in audit_prompt_files(changed, tmp_path, ["en"]) if "out of date" in f.message]
    assert [f.path for f in stale] == ["prompts.en.bye"]


def test_missing_espeak_is_a_clear_error(tmp_path, two_languages, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(PromptError, match="apt-get install espeak-ng"):
        build_prompts(two_languages, tmp_path, languages=["en"], rate=8000)


def test_unsupported_rate_and_language(tmp_path, two_languages):
    with pytest.raises(PromptError, match="8000 or 16000"):
        build_prompts(two_languages, tmp_path, languages=["en"], rate=44100)
    with pytest.raises(PromptError, match="fr"):
        build_prompts(two_languages, tmp_path, languages=["fr"], rate=8000)


def test_prompts_build_command(tmp_path):
    import callcenter.cli.ivr_cmd  # noqa: F401
    from callcenter.cli import app
    from ivr_support import PROMPT_IDS, REPO

    menu_file = tmp_path / "ivr.toml"
    menu_file.write_text(
        'start = "main"\n[menus.main]\ntype = "hangup"\nprompt = "bye"\n[prompts.en]\nbye = "Goodbye"\n', encoding="utf-8"
    )
    assert "bye" in PROMPT_IDS
    args = ["--config", str(REPO / "config" / "callcenter.toml"), "--set", f"ivr.prompts_dir={tmp_path / 'p'}"]
    result = CliRunner().invoke(app, [*args, "prompts", "build", "--menu", str(menu_file), "--lang", "en", "--rate", "16000"])
    assert result.exit_code == 0, result.output
    assert header(tmp_path / "p" / "en" / "bye.wav") == (1, 2, 16000, "NONE")
    assert "recorded" in result.output
    result = CliRunner().invoke(app, [*args, "prompts", "build", "--menu", str(menu_file), "--lang", "en", "--rate", "16000"])
    assert "0 recorded" in " ".join(result.output.split())  # the line holds the path: breaks vary
    result = CliRunner().invoke(app, [*args, "prompts", "build", "--menu", str(menu_file), "--rate", "11025"])
    assert result.exit_code != 0
