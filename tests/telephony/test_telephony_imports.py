"""Only the worker process loads pjsua2; the control-process side of telephony stays light."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_control_side_modules_do_not_load_pjsua2():
    code = (
        "import json, sys\n"
        "import callcenter.telephony, callcenter.core.telephony_protocol, callcenter.telephony.admission\n"
        "import callcenter.telephony.pool, callcenter.telephony.worker\n"
        "print(json.dumps(sorted(m for m in ('pjsua2', '_pjsua2') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert json.loads(out) == []


# The bare-stack yardstick of bench/sip_load.py: pjsua2 answering and playing with none of our layers.
BARE_REFERENCE = pathlib.Path("bench/pjsua_reference.py")


def test_pjsua2_is_imported_only_by_the_worker():
    offenders = []
    for path in ROOT.glob("**/*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in (".venv", "build", "tests") or rel in (pathlib.Path("callcenter/telephony/worker.py"),
                                                                   BARE_REFERENCE):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "import pjsua2" in text or "from pjsua2" in text:
            offenders.append(str(rel))
    assert offenders == []
