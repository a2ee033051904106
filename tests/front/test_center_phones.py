"""Registering agent phones in the whole center, on real SIP: the front, pjsua2 workers, SIPp phones.

An agent whose phone is ``sip:USER@center`` is not offered a call until the phone registers with the
password set by ``agents set-sip-password`` (taken by the running server, no restart); once it has,
the worker dials it through the front, which finds it at the address it registered from (behind a
NAT here: its Contact names a private address); when it unregisters, its agent is not ready
(``phone_offline``) and callers wait for someone else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.db.agents import set_sip_password
from tests.front.front_support import free_block, running_center
from tests.front.test_front_sip import ivr_callers, require_tools, tree_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
PASSWORD = "correct horse 2001"


def register(sipps, name: str, front: str, port: int, *, expires: int, password: str = PASSWORD):
    inf = sipps.root / f"{name}.csv"
    inf.parent.mkdir(parents=True, exist_ok=True)
    inf.write_text(f"SEQUENTIAL\n2001;2001;{password}\n")
    return sipps.start(name, SCENARIOS / "register_phone.xml", remote=front, calls=1, port=port, timeout=30,
                       keys={"domain": "center", "contact_host": "192.168.1.50", "contact_port": "5060",
                             "expires": str(expires), "then": "stay"},
                       extra=["-inf", str(inf), "-d", "0", "-aa"])


async def test_a_registered_phone_takes_calls_and_an_unregistered_one_is_never_offered(tmp_path, prompts, sipps):
    require_tools()
    tree, _ = tree_for(tmp_path, prompts, agents=2)
    tree["agents"]["2001"]["phone"] = "sip:2001@center"
    tree["agents"]["2002"]["auto_login"] = False  # 2001 is the only agent: who gets the caller is clear
    tree["repair"] = {"sweep_seconds": 1.0, "grace_seconds": 1.0}
    async with running_center(tree, workers=2) as running:
        server, center = running.server, running.server.center
        front = running.address
        assert center.engine.agent_state("2001") == ("not_ready", "phone_offline")
        assert center.agent_snapshot("2001")["phone_status"] == "offline"

        # no password yet: the phone is refused (403 after the challenge), nothing changes
        port = free_block(1)
        refused = register(sipps, "refused", front, port, expires=300)
        await refused.finished(20)
        assert "FORBIDDEN" in " ".join(refused.log_lines()), refused.report()
        assert center.phone_status("2001") == "offline"

        set_sip_password(server.db, "2001", "2001", "center", PASSWORD)  # the running server follows
        await running.wait_for(lambda: server.front._credentials.get("2001"), 8, "the new password at the front")
        registered = register(sipps, "register", front, port, expires=300)
        assert await registered.finished(20) == 0, registered.report()
        await running.wait_for(lambda: center.engine.agent_state("2001") == ("available", None), 5,
                               "agent 2001 ready once the phone registered")
        binding = next(iter(center.bindings["2001"].values()))
        assert binding.contact == "sip:2001@192.168.1.50:5060" and binding.received == f"127.0.0.1:{port}"

        # the phone answers where it registered from (the NAT's public side); its SDP says 192.168.1.50
        phone = sipps.start("phone", SCENARIOS / "phone_answer.xml", calls=1, port=port, timeout=60,
                            keys={"user": "2001", "contact_host": "192.168.1.50", "contact_port": "5060",
                                  "then": "wait"})
        callers = ivr_callers(sipps, tmp_path, running, name="callers", calls=1, hold_ms=3000)
        assert await callers.finished(60) == 0, callers.report() + phone.report()
        assert await phone.finished(30) == 0, phone.report()
        assert [line.split()[0] for line in phone.log_lines()] == ["ANSWERED", "BYE_IN"]
        rows = running.rows()
        assert [(r.agent_id, r.outcome) for r in rows] == [("2001", "answered")], [(r.agent_id, r.outcome) for r in rows]

        # the phone unregisters: its agent is not ready, a caller waits and is never offered to it
        await running.wait_for(lambda: center.engine.agent_state("2001")[0] == "available", 10, "wrap-up over")
        gone = register(sipps, "unregister", front, port, expires=0)
        await gone.finished(20)
        await running.wait_for(lambda: center.engine.agent_state("2001") == ("not_ready", "phone_offline"), 5,
                               "agent 2001 not ready after the phone left")
        waiting = ivr_callers(sipps, tmp_path, running, name="waiting", calls=1, hold_ms=6000)
        await waiting.finished(60)
        assert center.counters.get("repairs_today", 0) == 0  # events did it all; nothing for the sweep
        assert [r.agent_id for r in running.rows()[1:]] == [None]
        assert all(r.ended_at is not None for r in running.rows())
