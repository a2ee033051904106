"""The rooms of DESIGN.md for the agent desktop: websockets only in cti, textual only in tui, no database in either."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def loaded_by(module: str) -> list[str]:
    code = (f"import importlib, json, sys; importlib.import_module({module!r}); "
            "print(json.dumps(sorted(m for m in ('textual', 'websockets', 'sqlalchemy', 'alembic', 'psycopg') "
            "if m in sys.modules)))")
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                     cwd=ROOT).stdout)


def test_the_cti_server_and_client_need_no_database_and_no_textual():
    assert loaded_by("callcenter.cti.server") == ["websockets"]
    assert loaded_by("callcenter.cti.client") == ["websockets"]


def test_the_console_reaches_the_server_only_through_the_cti_client():
    assert loaded_by("callcenter.tui.agent_console") == ["textual", "websockets"]
    for path in (ROOT / "callcenter" / "tui").glob("agent_*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import websockets" not in text and "from websockets" not in text, path.name
        assert "callcenter.db" not in text and "sqlalchemy" not in text, path.name


def test_screenpop_stays_pure():
    assert loaded_by("screenpop.wire") == [] and loaded_by("screenpop.render") == []
