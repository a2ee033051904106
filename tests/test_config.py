"""Configuration: precedence, validation messages with file and key path, secrets never shown."""

from pathlib import Path

import pytest

from callcenter.config import ConfigError, Settings, load
from tests.conftest import SAMPLE_CONFIG


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cc.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_sample_config_is_valid_and_complete():
    settings = load(SAMPLE_CONFIG, environ={}).settings
    assert set(settings.queues) == {"sales", "support", "vip", "general"}
    assert settings.queues["sales"].overflow.target == "queue:general"
    assert settings.agents["1001"].skills["sales"] == 5
    assert settings.dispositions["callback"].requires_callback
    assert settings.hours.timezone == "Asia/Shanghai"
    assert settings.center.default_region == "CN"


def test_defaults_alone_are_valid():
    settings = Settings()
    assert settings.database.url.startswith("sqlite:///")
    assert settings.redis.url is None


def test_precedence_defaults_file_env_flags(tmp_path):
    path = write(tmp_path, '[sip]\nport = 5080\nworker_base_port = 6000\n[ivr]\nfallback_queue = "q"\n[queues.q]\nwrapup_seconds = 5\n')
    env = {"CALLCENTER_SIP__PORT": "5090", "CALLCENTER_QUEUES__Q__WRAPUP_SECONDS": "7"}
    loaded = load(path, environ=env, overrides=["sip.port=5095"])
    s = loaded.settings
    assert s.sip.port == 5095, "flag beats environment"
    assert s.queues["q"].wrapup_seconds == 7, "environment beats file"
    assert s.sip.worker_base_port == 6000, "file beats default"
    assert s.sip.rtp_port_start == 20000, "default when nobody says"
    assert loaded.origins[("sip", "port")] == "--set sip.port"


def test_env_lists_use_toml_syntax(tmp_path):
    s = load(write(tmp_path, ""), environ={"CALLCENTER_SIP__TRUNK_ALLOW": '["10.1.0.0/16", "192.0.2.7"]'}).settings
    assert s.sip.trunk_allow == ["10.1.0.0/16", "192.0.2.7"]


def test_config_file_from_environment(tmp_path, monkeypatch):
    path = write(tmp_path, '[center]\nname = "From env"\n')
    assert load(None, environ={"CALLCENTER_CONFIG": str(path)}).settings.center.name == "From env"


def problems(tmp_path, text, environ=None, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), environ=environ or {}, overrides=overrides)
    assert info.value.exit_code == 2
    return str(info.value)


def test_bad_strategy_names_file_key_value_and_choices(tmp_path):
    message = problems(tmp_path, '[queues.sales]\nstrategy = "fastest"\n')
    assert "cc.toml" in message
    assert "queues.sales.strategy = 'fastest'" in message
    assert "longest_idle" in message and "least_talk_time" in message


def test_every_problem_is_listed(tmp_path):
    message = problems(
        tmp_path,
        '[sip]\nport = 70000\ntrunk_allow = ["not-an-ip"]\n[hours]\ntimezone = "Mars/Olympus"\n'
        '[queues.q]\nrequired_skills = { sales = 9 }\nstratgy = "x"\n',
    )
    assert "(5 problems)" in message
    assert "sip.port = 70000" in message
    assert "sip.trunk_allow" in message and "not-an-ip" in message
    assert "hours.timezone" in message and "IANA" in message
    assert "queues.q.required_skills.sales = 9" in message
    assert "queues.q.stratgy" in message and "unknown key" in message


def test_cross_references_are_checked(tmp_path):
    message = problems(
        tmp_path,
        '[ivr]\nfallback_queue = "a"\n[queues.a]\noverflow = { after_seconds = 10, target = "queue:nowhere" }\n'
        '[agents.7]\nname = "x"\nphone = "sip:7@h"\nqueues = ["a", "b"]\n'
        'pin_hash = "scrypt$16384$8$1$eToSEyRepz8/B7kSvgrVHA==$k8q9Slthdu3HBTs/msj+qrqaj7f11Iwjdbu3EQSmOXs="\n',
    )
    assert "queues.a.overflow.target = 'queue:nowhere'" in message and "does not exist" in message
    assert "agents.7.queues.1 = 'b'" in message


def test_fallback_queue_must_exist(tmp_path):
    message = problems(tmp_path, '[queues.only]\nname = "Only"\n')
    assert "ivr.fallback_queue: queue 'general' does not exist (known: only)" in message


def test_env_problem_names_the_variable(tmp_path):
    message = problems(tmp_path, "", environ={"CALLCENTER_SIP__PORT": "many"})
    assert "sip.port = 'many' (from CALLCENTER_SIP__PORT)" in message


def test_toml_syntax_error_names_line(tmp_path):
    message = problems(tmp_path, "[sip\nport = 1\n")
    assert "cc.toml" in message and "TOML syntax error" in message and "line 1" in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.toml", environ={})


def test_secrets_are_never_echoed(tmp_path):
    message = problems(
        tmp_path,
        '[agents.7]\nname = "x"\nphone = "sip:7@h"\npin_hash = "4321"\n',
        environ={"CALLCENTER_DATABASE__URL": "mysql://cc:hunter2@db/x"},
    )
    assert "4321" not in message and "hunter2" not in message
    assert "agents.7.pin_hash = (hidden)" in message
    assert "mysql://cc:***@db/x" in message


def test_cli_config_check_exit_codes(sqlite_cli, tmp_path):
    ok = sqlite_cli("config", "check")
    assert ok.code == 0, ok.text
    assert "valid" in ok.out
    bad = write(tmp_path, '[queues.sales]\nstrategy = "fastest"\n[database]\nurl = "postgresql://u:topsecret@h/db"\n'
                '[sip]\nport = "x"\n')
    result = sqlite_cli("config", "check", str(bad))
    assert result.code == 2
    assert "queues.sales.strategy" in result.err and "cc.toml" in result.err
    assert "Traceback" not in result.text
    assert "topsecret" not in result.text


def test_cli_set_flag_errors_cleanly(sqlite_cli):
    result = sqlite_cli("--set", "nonsense", "config", "check")
    assert result.code == 2 and "KEY.PATH=VALUE" in result.err and "Traceback" not in result.err


def test_queue_choices_and_defaults_have_one_home_in_the_acd_settings():
    """The configuration offers what the engine accepts, with the engine's defaults (announcements aside)."""
    import typing

    from acd.settings import AFTER_CALL_WORK, STRATEGIES, WHEN_NO_AGENTS, OverflowSettings, QueueSettings
    from callcenter.config import Overflow, QueueConfig

    fields = QueueConfig.model_fields
    assert typing.get_args(fields["strategy"].annotation) == STRATEGIES
    assert typing.get_args(fields["when_no_agents"].annotation) == WHEN_NO_AGENTS
    assert typing.get_args(fields["after_call_work"].annotation) == AFTER_CALL_WORK
    engine, configured = QueueSettings(), QueueSettings.from_config(QueueConfig())
    assert {k: v for k, v in configured.to_dict().items() if k != "announce_every_seconds"} == \
        {k: v for k, v in engine.to_dict().items() if k != "announce_every_seconds"}
    assert OverflowSettings(**Overflow().model_dump()) == OverflowSettings()


def test_elastic_pool_settings_are_checked_against_max_legs(tmp_path):
    s = load(write(tmp_path, ""), environ={}).settings
    assert (s.sip.workers, s.sip.spare_legs, s.sip.worker_idle_retire_seconds, s.sip.worker_lead_seconds) == (0, 4, 300, 2)
    message = problems(tmp_path, "[sip]\nmax_legs = 8\nspare_legs = 10\n")
    assert "sip.spare_legs = 10" in message and "more than max_legs (8)" in message
    assert load(write(tmp_path, "[sip]\nworkers = 2\nmax_legs = 8\nspare_legs = 10\n"), environ={}).settings.sip.workers == 2
    message = problems(tmp_path, "[sip]\nspare_legs = 1\nworker_idle_retire_seconds = 0\n")
    assert "sip.spare_legs = 1" in message and "sip.worker_idle_retire_seconds = 0" in message


def test_the_elastic_pool_rules_come_from_the_sip_settings(tmp_path):
    from callcenter import bootstrap

    s = load(write(tmp_path, "[sip]\nspare_legs = 6\nworker_idle_retire_seconds = 60\nworker_lead_seconds = 1.5\n"),
             environ={}).settings
    rules = bootstrap.worker_sizing(s)
    assert (rules.spare_legs, rules.idle_retire_seconds, rules.lead_seconds) == (6, 60, 1.5)
    assert bootstrap.worker_count(s) == 4  # the elastic pool's slots: max_legs 16 / 4
