"""The menu checker and ``callcenter ivr check``: every finding on a small broken menu, and the sample menu."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ivr_support import PROMPT_IDS, REPO
from typer.testing import CliRunner

import callcenter.cli.ivr_cmd  # noqa: F401  (registers `ivr` and `prompts` on the app)
from callcenter.cli import app
from callcenter.config import load
from callcenter.errors import ConfigError
from callcenter.prompts import load_menu
from ivr import check_menu

SAMPLE_CONFIG = REPO / "config" / "callcenter.toml"
SAMPLE_MENU = REPO / "config" / "ivr.toml"
QUEUES = ("sales", "support", "vip", "general")

PROMPTS = "\n".join(
    ["[prompts.zh]"] + [f'{p} = "zh {p}"' for p in PROMPT_IDS] + ["", "[prompts.en]"] + [f'{p} = "en {p}"' for p in PROMPT_IDS]
)
GOOD = """
start = "main"

[menus.main]
prompt = "menu"
options = { 1 = "sales", 2 = "bye" }

[menus.sales]
type = "queue"
queue = "sales"

[menus.bye]
type = "hangup"
prompt = "bye"
"""


def write(tmp_path: Path, body: str, *, prompts: str = PROMPTS) -> Path:
    path = tmp_path / "ivr.toml"
    path.write_text(textwrap.dedent(body) + "\n" + prompts + "\n", encoding="utf-8")
    return path


def findings(tmp_path: Path, body: str, **kwargs) -> list[str]:
    path = write(tmp_path, body, **({"prompts": kwargs.pop("prompts")} if "prompts" in kwargs else {}))
    menu = load_menu(path).menu
    found = check_menu(menu, queues=QUEUES, languages=kwargs.get("languages", ["zh", "en"]), default_language="zh")
    return [f.format(str(path)) for f in found if f.severity == "error" or kwargs.get("warnings")]


def test_a_good_menu_has_no_findings(tmp_path):
    assert findings(tmp_path, GOOD) == []


def test_target_that_does_not_exist(tmp_path):
    body = GOOD.replace('2 = "bye" }', '2 = "bye", 4 = "nowhere" }')
    path = tmp_path / "ivr.toml"
    assert findings(tmp_path, body) == [f"{path}: menus.main.options.4: target 'nowhere' does not exist"]


def test_start_and_on_failure_targets_are_checked(tmp_path):
    body = GOOD.replace('start = "main"', 'start = "begin"').replace('prompt = "menu"', 'prompt = "menu"\non_failure = "gone"')
    found = findings(tmp_path, body)
    assert any(": start: target 'begin' does not exist" in f for f in found)
    assert any(": menus.main.on_failure: target 'gone' does not exist" in f for f in found)


def test_queue_that_does_not_exist(tmp_path):
    body = GOOD.replace('queue = "sales"', 'queue = "billing"\ntier_queue = { vip = "platinum" }')
    found = findings(tmp_path, body)
    assert any(f.endswith("menus.sales.queue: queue 'billing' does not exist (queues: general, sales, support, vip)") for f in found)
    assert any("menus.sales.tier_queue.vip: queue 'platinum' does not exist" in f for f in found)


def test_unreachable_node(tmp_path):
    body = GOOD + '\n[menus.orphan]\ntype = "hangup"\n'
    assert [f.split(": ", 1)[1] for f in findings(tmp_path, body)] == [
        "menus.orphan: unreachable: no path from start (or caller.blacklisted, limits.on_limit) leads here"
    ]


def test_loop_with_no_way_out(tmp_path):
    body = """
    start = "a"

    [menus.a]
    prompt = "menu"
    options = { 1 = "b" }
    on_failure = "b"

    [menus.b]
    prompt = "sub"
    options = { 1 = "a", 2 = "c" }
    on_failure = "a"

    [menus.c]
    type = "play"
    prompt = "ok"
    next = "a"
    """
    found = findings(tmp_path, body)
    assert len(found) == 1
    assert "menus.a: loop with no way out (a → b → " in found[0]
    assert "no path reaches a queue, callback, transfer or hang-up" in found[0]


def test_a_loop_with_an_exit_is_fine(tmp_path):
    body = """
    start = "a"

    [menus.a]
    prompt = "menu"
    options = { 1 = "b" }

    [menus.b]
    prompt = "sub"
    options = { 1 = "a" }
    """
    assert findings(tmp_path, body) == []  # the last retry hangs up: a way out


def test_loop_without_caller_input(tmp_path):
    body = """
    start = "a"

    [menus.a]
    type = "language"
    language = "en"
    next = "b"

    [menus.b]
    type = "hours"
    open = "a"
    closed = "bye"

    [menus.bye]
    type = "hangup"
    """
    found = findings(tmp_path, body)
    assert len(found) == 1 and "menus.a: loop without any caller input (a → b → a)" in found[0]


def test_key_bound_twice(tmp_path):
    body = GOOD.replace('2 = "bye" }', '2 = "bye", "*" = "bye" }') + '\n[defaults]\nrepeat_key = "*"\n'
    found = findings(tmp_path, body)
    assert [f.split(": ", 1)[1] for f in found] == [
        "menus.main.options.*: key '*' is bound twice: to 'bye' here and as the repeat key (defaults.repeat_key)"
    ]


def test_repeat_and_back_on_the_same_key(tmp_path):
    body = GOOD.replace('prompt = "menu"', 'prompt = "menu"\nrepeat_key = "#"\nback_key = "#"')
    found = findings(tmp_path, body)
    assert len(found) == 1 and "menus.main.back_key: key '#' is bound twice" in found[0]


def test_prompt_texts_and_variables(tmp_path):
    body = GOOD.replace('prompt = "bye"', 'prompt = ["bye", "farewell", "{money:order.amount}", "status_{order.status}"]')
    found = [f.split(": ", 1)[1] for f in findings(tmp_path, body)]
    assert "menus.bye.prompt.1: prompt 'farewell' has no text in [prompts.zh], [prompts.en]" in found
    assert any(f.startswith("menus.bye.prompt.2: variable 'order.amount' is never set") for f in found)
    assert any(f.startswith("menus.bye.prompt.3: variable 'order.status' is never set") for f in found)


def test_template_prompts_need_every_value(tmp_path):
    body = GOOD.replace('[menus.bye]', '''[menus.lookup]
type = "lookup"
lookup = "balance"
found = "say"
not_found = "bye"

[menus.say]
type = "play"
prompt = ["status_{order.status}"]
next = "bye"

[menus.order]
type = "lookup"
lookup = "order_status"
input = "order_number"
found = "say"
not_found = "bye"

[menus.bye]''').replace('2 = "bye" }', '2 = "bye", 3 = "lookup", 4 = "order" }')
    found = [f.split(": ", 1)[1] for f in findings(tmp_path, body)]
    assert "menus.order.input: variable 'order_number' is not collected by any collect node" in found
    # status_placed ... status_returned are in the prompt tables; all six statuses are covered
    assert not any("lacks" in f for f in found)
    prompts = PROMPTS.replace('status_returned = "en status_returned"\n', "")
    found = [f.split(": ", 1)[1] for f in findings(tmp_path, body, prompts=prompts)]
    assert "menus.say.prompt.0: [prompts.en] lacks status_returned (values of order.status)" in found
    assert "prompts.en: 'status_returned' is in [prompts.zh] but not here" in found


def test_languages_from_the_settings_need_prompt_tables(tmp_path):
    prompts = "\n".join(["[prompts.zh]"] + [f'{p} = "zh {p}"' for p in PROMPT_IDS])
    found = [f.split(": ", 1)[1] for f in findings(tmp_path, GOOD, prompts=prompts)]
    assert found == ["prompts: language 'en' (ivr.languages in the settings) has no [prompts.en] table"]


def test_unused_prompts_are_warnings(tmp_path):
    found = findings(tmp_path, GOOD, warnings=True)
    assert any(f.endswith("prompts.zh.hello: not used by any node (warning)") for f in found)


# ----------------------------------------------------------------------------- schema errors


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GOOD.replace("options = {", "options = { 10 = \"bye\","), "menus.main.options.10: '10' is not a DTMF key"),
        (GOOD.replace('type = "queue"', 'type = "queeue"'), "menus.sales: unknown node type 'queeue'"),
        (GOOD.replace('prompt = "menu"', 'prompt = "menu"\ntimeout = 0'), "menus.main.timeout: Input should be greater than 0"),
        (GOOD.replace('prompt = "menu"', 'prompt = "menu"\ncolour = "red"'), "menus.main.colour: unknown key"),
        (GOOD.replace('queue = "sales"', ""), "menus.sales.queue: required key is missing"),
        (GOOD.replace('prompt = "bye"', 'prompt = ["bye", "Not An Id"]'), "menus.bye.prompt.1: 'Not An Id' is not a prompt item"),
    ],
)
def test_schema_errors_name_the_key_path(tmp_path, body, expected):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_menu(path)
    assert info.value.exit_code == 2
    assert str(path) in str(info.value) and expected in str(info.value)


def test_toml_syntax_error(tmp_path):
    path = write(tmp_path, GOOD + '\n[menus.main]\nprompt = "again"\n')  # a table defined twice
    with pytest.raises(ConfigError) as info:
        load_menu(path)
    assert f"{path}: TOML syntax error" in str(info.value)


# ----------------------------------------------------------------------------- the command


def run_cli(*args: str):
    return CliRunner().invoke(app, ["--config", str(SAMPLE_CONFIG), *args])


def test_the_sample_menu_checks_clean_against_the_sample_queues():
    settings = load(SAMPLE_CONFIG, environ={}).settings
    assert set(QUEUES) == set(settings.queues)
    menu = load_menu(SAMPLE_MENU).menu
    found = check_menu(menu, queues=list(settings.queues), languages=settings.ivr.languages, default_language="zh")
    assert found == []
    result = run_cli("ivr", "check", str(SAMPLE_MENU), "--no-prompts")
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output


def test_sample_menu_shape():
    menu = load_menu(SAMPLE_MENU).menu
    first = menu.menus[menu.start]
    assert first.type == "menu" and set(first.options) == {"1", "2"}
    assert {menu.menus[first.options["1"]].language, menu.menus[first.options["2"]].language} == {"zh", "en"}
    main = menu.menus["main"]
    assert set(main.options) == {"1", "2", "3", "9", "0"}
    assert menu.menus[main.options["1"]].queue == "sales"
    assert menu.menus[main.options["0"]].queue == "general"
    assert set(menu.prompts) == {"zh", "en"}


def test_check_command_reports_problems_with_exit_1(tmp_path):
    path = write(tmp_path, GOOD.replace('2 = "bye" }', '2 = "bye", 4 = "nowhere" }'))
    result = run_cli("ivr", "check", str(path), "--no-prompts")
    assert result.exit_code == 1
    assert f"{path}: menus.main.options.4: target 'nowhere' does not exist" in result.output


def test_check_command_warns_when_prompts_were_never_built(tmp_path):
    path = write(tmp_path, GOOD)
    result = run_cli("--set", f"ivr.prompts_dir={tmp_path / 'prompts'}", "ivr", "check", str(path))
    assert result.exit_code == 0, result.output
    assert "have never been built" in result.output and "(warning)" in result.output


def test_check_command_exits_2_without_a_traceback_on_a_bad_file(tmp_path):
    path = write(tmp_path, GOOD.replace('type = "queue"', 'type = "queeue"'))
    code = "import sys; import callcenter.cli.ivr_cmd; from callcenter.cli import main; sys.argv[0] = 'callcenter'; main()"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    proc = subprocess.run(
        [sys.executable, "-c", code, "--config", str(SAMPLE_CONFIG), "ivr", "check", str(path)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    # rich wraps long lines anywhere, paths included (pytest-xdist's temporary paths are long)
    assert "menus.sales: unknown node type 'queeue'" in " ".join(proc.stderr.split())
    assert str(path) in "".join(proc.stderr.split()) and "Traceback" not in proc.stderr


def test_a_language_without_a_voice(tmp_path):
    body = GOOD.replace('start = "main"', 'start = "main"\n\n[voices]\nzh = "cmn"')
    found = [f.split(": ", 1)[1] for f in findings(tmp_path, body)]
    assert found == ["voices: no espeak-ng voice for language 'en' (add en = \"VOICE\" to [voices])"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--caller", "not a number"], "--caller 'not a number' is not a phone number"),
        (["--at", "tomorrow"], "--at 'tomorrow' is not an ISO 8601 time"),
        (["--lang", "fr"], "--lang 'fr': the menu has prompts for zh, en"),
    ],
)
def test_simulate_refuses_bad_arguments_before_starting(args, message):
    result = run_cli("ivr", "simulate", "--menu", str(SAMPLE_MENU), *args)
    assert isinstance(result.exception, ConfigError) and message in str(result.exception)
