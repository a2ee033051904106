"""The pure packages and core must not load I/O libraries (DESIGN.md, 'Rooms')."""

import json
import subprocess
import sys

FORBIDDEN = ("textual", "pjsua2", "sqlalchemy", "redis", "websockets", "psycopg", "alembic")
PURE = ("acd", "ivr", "screenpop", "callcenter.core", "callcenter.config")


def test_pure_packages_load_no_io_library():
    import pkgutil

    modules = []
    for top in PURE:
        modules.append(top)
        package = __import__(top, fromlist=["__path__"])
        if hasattr(package, "__path__"):
            modules += [m.name for m in pkgutil.walk_packages(package.__path__, prefix=top + ".")]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [], f"pure modules {modules} loaded {out}"
    assert len(modules) > len(PURE), "the walk should find the submodules too"


def test_sqlalchemy_is_imported_only_by_callcenter_db():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    offenders = []
    for path in root.glob("**/*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] in (".venv", "tests", "bench", "build") or rel.parts[:2] == ("callcenter", "db"):
            continue
        text = path.read_text(encoding="utf-8")
        if "import sqlalchemy" in text or "from sqlalchemy" in text:
            offenders.append(str(rel))
    assert offenders == []
