"""``callcenter supervisor``: what is refused before the dashboard starts, and what --help says."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from callcenter.cli import app
from callcenter.errors import CallCenterError
from tests.conftest import SAMPLE_CONFIG


@pytest.mark.parametrize(("args", "message"), [
    (["--server", "http://example.com"], "ws://HOST:PORT"),
    (["--ca-file", "/nonexistent/ca.pem", "--server", "wss://example.com:8800"], "no such file"),
])
def test_bad_options_are_refused_before_the_dashboard_starts(args, message):
    result = CliRunner().invoke(app, ["--config", str(SAMPLE_CONFIG), "supervisor", "--id", "9001", *args],
                                env={"CALLCENTER_PIN": "9999"})
    assert isinstance(result.exception, CallCenterError) and message in str(result.exception)


def test_help_explains_the_modes_and_who_may_use_it():
    result = CliRunner().invoke(app, ["supervisor", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for expected in ("--id", "--server", "--pin-file", "--ca-file", "1 wallboard", "2 agents", "3 queue detail",
                     "4 trends", "5 staffing", 'role = "supervisor"', "callcenter agent", "audit log",
                     "[supervisor] section", "[agents.ID]"):
        assert expected in text, expected


def test_report_help_names_every_option():
    result = CliRunner().invoke(app, ["report", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    for option in ("--from", "--to", "--queue", "--csv"):
        assert option in result.output
