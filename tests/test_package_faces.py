"""Each package's face: a curated ``__all__``, one exception root, and only face names imported from outside.

``acd`` set the pattern (``acd/errors.py``, ``acd/__init__.py``, ``tests/acd/test_acd_purity.py``);
this file holds the packages in ``ROOTS`` to it. A package's errors derive from its root; those of ``callcenter``'s subpackages are also
:class:`~callcenter.errors.CallCenterError`, which the command line reports without a traceback.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("callcenter", "acd", "ivr", "screenpop", "dialer", "bench")

# package -> (module of its exception root, the root's name); None: the package defines no exceptions.
ROOTS: dict[str, tuple[str, str] | None] = {
    "acd": ("acd.errors", "AcdError"),
    "ivr": ("ivr.errors", "IvrError"),
    "screenpop": ("screenpop.errors", "ScreenpopError"),
    "dialer": ("dialer.errors", "DialerError"),
    "callcenter.telephony": ("callcenter.telephony.errors", "TelephonyError"),
    "callcenter.front": ("callcenter.front.kamailio", "FrontError"),
    "callcenter.db": ("callcenter.errors", "DatabaseError"),
    "callcenter.tui": None,
    "callcenter.core": ("callcenter.core.errors", "CoreError"),
    "callcenter.cti": ("callcenter.cti.errors", "CtiError"),
    "callcenter": ("callcenter.errors", "CallCenterError"),
}
# Subpackages of callcenter with a face of their own: not part of the top-level group.
OWN_FACES = ("core", "cti", "telephony", "front", "db", "tui")

# Error classes that do not derive from their package's root yet, each with the reason.
PENDING: dict[tuple[str, str], str] = {}


def _group(package: str) -> list[str]:
    """The modules that belong to ``package``: the top-level ``callcenter`` group stops at the subpackages
    that have a face of their own (and leaves out ``__main__``, which runs the command line)."""
    face = importlib.import_module(package)
    if package != "callcenter":
        return [package] + [m.name for m in pkgutil.walk_packages(face.__path__, prefix=package + ".")]
    names = ["callcenter"]
    for info in pkgutil.iter_modules(face.__path__, prefix="callcenter."):
        short = info.name.rsplit(".", 1)[1]
        if short in OWN_FACES or short == "__main__":
            continue
        names.append(info.name)
        if info.ispkg:
            sub = importlib.import_module(info.name)
            names += [m.name for m in pkgutil.walk_packages(sub.__path__, prefix=info.name + ".")]
    return names


def _belongs(module: str, package: str) -> bool:
    if package != "callcenter":
        return module == package or module.startswith(package + ".")
    if module == "callcenter":
        return True
    parts = module.split(".")
    return parts[0] == "callcenter" and parts[1] not in OWN_FACES


def _root(package: str) -> type[BaseException]:
    module, name = ROOTS[package]
    return getattr(importlib.import_module(module), name)


def _error_classes(package: str) -> list[type[BaseException]]:
    found = []
    for name in _group(package):
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _face_imports() -> list[tuple[str, str, int, str]]:
    """Every ``from <face> import name`` in the scanned folders: (importing module, face, line, name)."""
    found = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in ROOTS:
                    found += [(_module_name(path), node.module, node.lineno, a.name) for a in node.names]
    return found


@pytest.mark.parametrize("package", sorted(ROOTS))
def test_the_face_has_a_curated_all_whose_names_exist(package):
    face = importlib.import_module(package)
    assert isinstance(face.__dict__.get("__all__"), list), f"{package}/__init__.py has no __all__ list"
    assert len(face.__all__) == len(set(face.__all__)), f"{package}.__all__ repeats a name"
    for name in face.__all__:
        assert hasattr(face, name), f"{package}.__all__ names {name!r}, which the face does not have"


@pytest.mark.parametrize("package", sorted(p for p in ROOTS if p != "callcenter" and ROOTS[p] is not None))
def test_the_face_exports_the_package_root(package):
    face = importlib.import_module(package)
    root = _root(package)
    assert root.__name__ in face.__all__ and getattr(face, root.__name__) is root


@pytest.mark.parametrize("package", sorted(ROOTS))
def test_every_error_class_derives_from_the_package_root(package):
    classes = _error_classes(package)
    if ROOTS[package] is None:
        assert classes == [], f"{package} defines {classes}: give it an exception root in ROOTS"
        return
    root = _root(package)
    if package.startswith("callcenter."):  # the pure packages know nothing of callcenter
        assert issubclass(root, _root("callcenter")), f"{root.__name__} should be a CallCenterError too"
    strays = [f"{c.__module__}.{c.__qualname__}" for c in classes
              if not issubclass(c, root) and (package, c.__name__) not in PENDING]
    assert strays == [], f"not under {root.__name__}: {strays}"


def test_every_pending_error_class_is_still_outside_its_root():
    """Keeps PENDING honest: an entry goes once its class is under the root (or gone)."""
    for package, name in PENDING:
        matches = [c for c in _error_classes(package) if c.__name__ == name]
        assert matches, f"{package} defines no {name} any more: drop it from PENDING"
        assert not any(issubclass(c, _root(package)) for c in matches), f"{name} is fixed: drop it from PENDING"


def test_code_outside_a_package_imports_from_its_face_only_names_in_all():
    offenders = []
    for importer, face_name, line, name in _face_imports():
        if _belongs(importer, face_name):
            continue
        face = importlib.import_module(face_name)
        is_submodule = importlib.util.find_spec(f"{face_name}.{name}") is not None if name != "*" else True
        if name not in face.__all__ and not is_submodule:
            offenders.append(f"{importer}:{line}: from {face_name} import {name}")
    hint = "import these from their modules, or add them to the face's __all__:\n"
    assert offenders == [], hint + "\n".join(offenders)


def test_the_scan_sees_the_face_imports():
    faces = {face for _, face, _, _ in _face_imports()}
    assert {"acd", "ivr", "screenpop", "callcenter", "callcenter.db", "callcenter.front"} <= faces


def test_the_telephony_face_loads_the_pool_only_on_first_use():
    """The worker process imports the package too: it must not bring in the pool and its asyncio."""
    code = (
        "import json, sys\n"
        "import callcenter.telephony as face\n"
        "before = 'callcenter.telephony.pool' in sys.modules\n"
        "from callcenter.telephony import WorkerPool\n"
        "print(json.dumps([before, 'callcenter.telephony.pool' in sys.modules, set(face.__all__) <= set(dir(face))]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert json.loads(out) == [False, True, True]
