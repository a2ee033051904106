"""`pip install .` must carry everything the commands need (migrations included), not only the work tree."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_installs_a_working_command(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(tmp_path)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(tmp_path.glob("callcenter-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "callcenter = callcenter.cli:main" in entry_points
    assert any(n.startswith("callcenter/db/migrations/versions/") and n.endswith(".py") for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    # The installed copy first; dependencies from this environment; never the work tree.
    env["PYTHONPATH"] = str(target)
    env["CALLCENTER_DATABASE__URL"] = f"sqlite:///{elsewhere / 'cc.db'}"
    result = subprocess.run(
        [sys.executable, "-P", "-c", "import callcenter, sys; print(callcenter.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )
    assert result.stdout.startswith(str(target))
    upgrade = subprocess.run(
        [sys.executable, "-P", "-m", "callcenter", "db", "upgrade"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert "migrated empty" in upgrade.stdout
