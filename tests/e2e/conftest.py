"""Fixtures of the end-to-end tests: the IVR prompts, recorded once for the whole run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.sip_support import Server


@pytest.fixture(scope="session")
def prompts(tmp_path_factory) -> Path:
    """config/ivr.toml's prompts (espeak-ng), shared by every end-to-end test (they only read them)."""
    folder = tmp_path_factory.mktemp("prompts")
    workdir = tmp_path_factory.mktemp("prompt-build")
    result = Server(workdir, 5060, f"sqlite:///{workdir / 'x.db'}", folder, {}).run("prompts", "build", timeout=300)
    assert result.returncode == 0, result.stderr
    return folder
