"""Fixtures of the SIP front tests: IVR prompts recorded once, SIPp runs always cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.front.front_support import LOOPBACK, REPO, Sipps


@pytest.fixture(scope="session")
def prompts(tmp_path_factory) -> Path:
    """The IVR prompts of config/ivr.toml, recorded once for the session (espeak-ng)."""
    folder = tmp_path_factory.mktemp("front-prompts")
    result = subprocess.run(
        [sys.executable, "-m", "callcenter", "--config", str(LOOPBACK), "--set", f"ivr.prompts_dir={folder}",
         "--set", f"ivr.menu_file={REPO / 'config' / 'ivr.toml'}", "prompts", "build"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")},
    )
    assert result.returncode == 0, f"recording the prompts failed (espeak-ng installed?):\n{result.stderr[-2000:]}"
    return folder


@pytest.fixture
def sipps(tmp_path):
    """SIPp processes of one test, killed at the end whatever happened."""
    runs = Sipps(tmp_path / "sipp")
    try:
        yield runs
    finally:
        runs.close()
