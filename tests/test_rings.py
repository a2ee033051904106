"""The pure packages and core must not load I/O libraries (DESIGN.md, 'Rooms')."""

import json
import subprocess
import sys

FORBIDDEN = ("textual", "pjsua2", "sqlalchemy", "redis", "websockets", "psycopg", "alembic")
PURE = ("acd", "ivr", "screenpop", "dialer", "callcenter.core", "callcenter.config", "callcenter.clock", "callcenter.dispositions")


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


def test_core_imports_nothing_from_the_adapters_or_the_consoles():
    """The call flow depends on ports (``callcenter.core.ports``), never on telephony, CTI, db or tui."""
    import pkgutil

    import callcenter.core

    modules = ["callcenter.core"] + [m.name for m in pkgutil.walk_packages(callcenter.core.__path__, "callcenter.core.")]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[:2] in "
        "(['callcenter', 'telephony'], ['callcenter', 'cti'], ['callcenter', 'db'], ['callcenter', 'tui']))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [], f"callcenter.core loaded {out}"
    assert "callcenter.core.call_flow" in modules and "callcenter.core.telephony_protocol" in modules


def test_core_dispatch_tables_name_every_event_and_action_they_take():
    import acd
    from callcenter.core import telephony_protocol as tp
    from callcenter.core.contact_center import ContactCenter

    assert ContactCenter.EVENT_HANDLERS and all(issubclass(t, tp.Event) for t in ContactCenter.EVENT_HANDLERS)
    actions = {getattr(acd, name) for name in acd.__all__ if isinstance(getattr(acd, name), type)
               and issubclass(getattr(acd, name), acd.Action) and getattr(acd, name) is not acd.Action}
    assert set(ContactCenter.ACTION_HANDLERS) <= actions
    unhandled = {t.__name__ for t in actions - set(ContactCenter.ACTION_HANDLERS)}
    assert unhandled == set(), f"ACD actions the contact center ignores: {unhandled}"
