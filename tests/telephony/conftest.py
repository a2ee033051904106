"""Fixtures of the telephony tests: SIPp runs that are always cleaned up."""

from __future__ import annotations

import pytest
from telephony_support import Sipp, require_pjsua2, require_sipp


@pytest.fixture
def sipp(tmp_path):
    """Starts SIPp processes for one test and kills any still running at the end, pass or fail."""
    require_sipp()
    runs = Sipp(tmp_path)
    try:
        yield runs
    finally:
        runs.close()


@pytest.fixture(scope="session")
def pjsua2_installed():
    require_pjsua2()
