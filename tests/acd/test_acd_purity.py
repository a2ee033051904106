"""acd is pure: stdlib only, no I/O libraries, no clock or randomness in the engine."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ACD = Path(__file__).resolve().parents[2] / "acd"


def test_importing_acd_loads_no_io_or_ui_library():
    code = (
        "import json, sys\n"
        "import acd, acd.engine, acd.erlang, acd.simulation, acd.reference, acd.stats\n"
        "bad = ('textual', 'pjsua2', 'sqlalchemy', 'redis', 'rich', 'typer', 'callcenter', 'websockets')\n"
        "print(json.dumps(sorted(m for m in bad if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ACD.parent)
    assert json.loads(out.stdout) == []


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_standard_library_and_no_clock_in_the_engine():
    allowed = {"__future__", "acd", "collections", "dataclasses", "heapq", "math", "re", "typing", "fractions"}
    for path in sorted(ACD.glob("*.py")):
        extra = {"random"} if path.name == "simulation.py" else set()
        found = _imports(path) - allowed - extra
        assert not found, f"{path.name} imports {found}"
    for name in ("engine.py", "reference.py", "settings.py", "events.py", "actions.py", "stats.py"):
        text = (ACD / name).read_text(encoding="utf-8")
        for forbidden in ("time.time", "monotonic(", "datetime", "random.", "open("):
            assert forbidden not in text, f"{name} mentions {forbidden}"


def test_curated_public_names():
    import acd

    assert acd.__doc__.startswith("Pure ACD logic: queues, agents, routing, statistics, Erlang C.")
    for name in acd.__all__:
        assert hasattr(acd, name), name
    for name in ("AcdEngine", "CallQueued", "OfferCall", "AcdError", "QueueSettings", "Tick"):
        assert name in acd.__all__
    assert all(issubclass(getattr(acd, n), acd.AcdError) for n in acd.__all__ if n.endswith(("Error", "Unknown")) and n != "AcdError")
