"""``callcenter agent``: where the PIN and the server come from, and what is refused before the console starts."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

import callcenter.cli.agent_cmd as agent_cmd
from callcenter.cli import app
from callcenter.config import load
from callcenter.cti.client import default_url
from callcenter.errors import CallCenterError
from tests.conftest import SAMPLE_CONFIG


def test_the_pin_comes_from_the_file_then_the_environment(tmp_path, capsys):
    pin_file = tmp_path / "pin"
    pin_file.write_text("4321\n")
    pin_file.chmod(0o600)
    assert agent_cmd.read_pin(pin_file, {"CALLCENTER_PIN": "1111"}) == "4321"
    assert agent_cmd.read_pin(None, {"CALLCENTER_PIN": " 1111 "}) == "1111"
    assert agent_cmd.read_pin(None, {}) is None, "then it is asked for"
    pin_file.chmod(0o644)
    assert agent_cmd.read_pin(pin_file, {}) == "4321"
    assert "can be read by other users" in " ".join(capsys.readouterr().err.split())
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(CallCenterError, match="empty"):
        agent_cmd.read_pin(tmp_path / "empty", {})
    with pytest.raises(CallCenterError, match="No such file"):
        agent_cmd.read_pin(tmp_path / "missing", {})


def test_the_default_server_is_cti_listen_of_the_configuration():
    settings = load(SAMPLE_CONFIG, environ={}).settings
    assert default_url(settings) == "ws://127.0.0.1:8800"
    tls = load(SAMPLE_CONFIG, environ={}, overrides=["cti.listen=ws://0.0.0.0:9443", "cti.certificate=/x.pem"]).settings
    assert default_url(tls) == "wss://127.0.0.1:9443", "a wildcard listen address is reached on loopback, over TLS"


@pytest.mark.parametrize(("args", "message"), [
    (["--server", "http://example.com"], "ws://HOST:PORT"),
    (["--ca-file", "/nonexistent/ca.pem", "--server", "wss://example.com:8800"], "no such file"),
])
def test_bad_options_are_refused_before_the_console_starts(args, message):
    result = CliRunner().invoke(app, ["--config", str(SAMPLE_CONFIG), "agent", "--agent", "1001", *args],
                                env={"CALLCENTER_PIN": "1234"})
    assert isinstance(result.exception, CallCenterError) and message in str(result.exception)


def test_help_names_every_option():
    result = CliRunner().invoke(app, ["agent", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    for option in ("--agent", "--server", "--pin-file", "--ca-file", "--not-ready", "--phone"):
        assert option in result.output


def test_help_shows_the_settings_section_in_square_brackets():
    result = CliRunner().invoke(app, ["agent", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert "Your agent id (as in [agents.ID])." in " ".join(result.output.split())


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_no_help_text_loses_its_square_brackets():
    """Rich reads ``[word]`` in a help text as markup and drops it unless escaped (``\\[word]``)."""
    for path, command in _commands(typer.main.get_command(app)):
        texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
        wanted = [m.group(1) for text in texts for m in re.finditer(r"\\?(\[[^\]]*\])", text)]
        if not wanted:
            continue
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
        shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())
        for bracketed in wanted:
            assert bracketed in shown, f"callcenter {' '.join(path)} --help: {bracketed}"
