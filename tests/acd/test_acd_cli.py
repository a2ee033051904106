"""``callcenter erlang`` and ``callcenter simulate``: output, --json keys, and error paths."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import callcenter.cli.acd_cmd  # noqa: F401  (registers the commands on the app)
from callcenter.cli import app

runner = CliRunner()
EXAMPLE = ["--calls", "100", "--period", "1800", "--aht", "180", "--target", "20"]
ERLANG_KEYS = {"agents", "p_wait", "service_level", "asa_seconds", "occupancy", "p_abandon"}


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def test_erlang_json_with_agents():
    result = run("erlang", *EXAMPLE, "--agents", "11", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert set(data) == ERLANG_KEYS
    assert data["agents"] == 11
    assert round(data["p_wait"], 4) == 0.6821
    assert data["p_abandon"] is None
    assert data["occupancy"] == pytest.approx(10 / 11)


def test_erlang_finds_agents_for_service_level():
    result = run("erlang", *EXAMPLE, "--service-level", "0.8", "--json")
    data = json.loads(result.output)
    assert data["agents"] == 14 and data["service_level"] >= 0.8
    result = run("erlang", *EXAMPLE, "--service-level", "0.8", "--max-occupancy", "0.7", "--json")
    assert json.loads(result.output)["agents"] == 15


def test_erlang_with_patience_reports_abandonment():
    result = run("erlang", *EXAMPLE, "--agents", "11", "--patience", "120", "--json")
    data = json.loads(result.output)
    assert 0 < data["p_abandon"] < 0.2
    table = run("erlang", *EXAMPLE, "--agents", "11", "--patience", "120")
    assert table.exit_code == 0
    for text in ("Erlang A", "probability of waiting", "service level (20 s)", "ASA", "occupancy", "abandoning"):
        assert text in table.output


def test_erlang_human_table():
    result = run("erlang", *EXAMPLE, "--service-level", "0.8")
    assert result.exit_code == 0
    assert "Erlang C" in result.output and "agents needed" in result.output and "14" in result.output


def test_erlang_overloaded_json_has_null_asa():
    data = json.loads(run("erlang", *EXAMPLE, "--agents", "9", "--json").output)
    assert data["asa_seconds"] is None and data["service_level"] == 0.0


@pytest.mark.parametrize(
    "args, text",
    [
        (["--agents", "11", "--service-level", "0.8"], "exactly one of"),
        ([], "exactly one of"),
        (["--agents", "11", "--period", "0"], "--period"),
        (["--agents", "0"], "--agents"),
        (["--service-level", "80"], "0.8"),
        (["--agents", "11", "--aht", "-5"], "--aht"),
        (["--agents", "11", "--max-occupancy", "0.8"], "--max-occupancy"),
        (["--agents", "11", "--patience", "0"], "--patience"),
    ],
)
def test_erlang_bad_input_exits_2_with_a_message(args, text):
    base = {"--calls": "100", "--period": "1800", "--aht": "180"}
    for flag in list(base):
        if flag in args:
            base.pop(flag)
    argv = ["erlang"] + [x for kv in base.items() for x in kv] + args
    result = run(*argv)
    assert result.exit_code == 2, result.output
    assert text in result.output


def test_simulate_json_and_table():
    result = run("simulate", "--calls-per-hour", "200", "--aht", "180", "--agents", "13", "--minutes", "300", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"offered", "service_level", "asa_seconds", "abandon_rate", "occupancy", "predicted"} <= set(data)
    assert data["predicted"]["model"] == "erlang_c" and data["predicted"]["p_abandon"] is None
    assert data["offered"] > 500
    again = json.loads(run("simulate", "--calls-per-hour", "200", "--aht", "180", "--agents", "13", "--minutes", "300", "--json").output)
    assert again == data  # same seed, same figures
    table = run("simulate", "--calls-per-hour", "200", "--aht", "180", "--agents", "13", "--minutes", "60", "--patience", "60")
    assert table.exit_code == 0
    assert "simulated" in table.output and "Erlang A prediction" in table.output


@pytest.mark.parametrize(
    "args, text",
    [
        (["--agents", "0"], "--agents"),
        (["--agents", "3", "--strategy", "random"], "--strategy"),
        (["--agents", "3", "--minutes", "0"], "--minutes"),
        (["--agents", "3", "--patience", "-1"], "--patience"),
    ],
)
def test_simulate_bad_input_exits_2(args, text):
    argv = ["simulate", "--calls-per-hour", "100", "--aht", "100"] + (["--minutes", "10"] if "--minutes" not in args else []) + args
    result = run(*argv)
    assert result.exit_code == 2, result.output
    assert text in result.output


def test_help_texts():
    for cmd in ("erlang", "simulate"):
        result = run(cmd, "--help")
        assert result.exit_code == 0
    assert "--service-level" in run("erlang", "--help").output
    assert "Erlang" in run("simulate", "--help").output
