"""The agents table, kept in step with the configuration (the configuration is the source of truth)."""

from __future__ import annotations

import hashlib

from sqlalchemy import func, insert, select

from callcenter.db.engine import Database
from callcenter.db.models import Agent, SipCredential


def sync_agents(db: Database, agents: dict) -> tuple[int, int]:
    """Mirror the configured agents into the agents table (added, updated); agents gone from config are deactivated."""
    added = updated = 0
    with db.session() as session:
        rows = {a.id: a for a in session.scalars(select(Agent))}
        for agent_id, cfg in agents.items():
            values = {
                "name": cfg.name, "phone_uri": cfg.phone, "role": cfg.role, "skills": dict(cfg.skills),
                "queues": list(cfg.queues), "active": True,
            }
            row = rows.get(agent_id)
            if row is None:
                session.execute(insert(Agent).values(id=agent_id, **values))
                added += 1
            elif any(getattr(row, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(row, key, value)
                updated += 1
        for agent_id, row in rows.items():
            if agent_id not in agents and row.active:
                row.active = False
                updated += 1
    return added, updated


def digest_ha1(username: str, realm: str, password: str) -> str:
    """HA1 of RFC 2617/7616 digest with MD5: what a SIP registrar checks a phone's answer against."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def set_sip_password(db: Database, agent_id: str, username: str, realm: str, password: str) -> None:
    """Store the phone's HA1 (never the password); replaces any earlier one."""
    ha1 = digest_ha1(username, realm, password)
    with db.session() as session:
        if session.get(Agent, agent_id) is None:
            raise LookupError(f"agent {agent_id} is not in the database: run 'callcenter db upgrade' to sync the "
                              "configured agents")
        row = session.get(SipCredential, agent_id)
        clash = session.scalar(select(SipCredential).where(SipCredential.username == username,
                                                           SipCredential.agent_id != agent_id))
        if clash is not None:
            session.delete(clash)  # the user moved to this agent in the configuration
            session.flush()
        if row is None:
            session.add(SipCredential(agent_id=agent_id, username=username, realm=realm, ha1=ha1))
        else:
            row.username, row.realm, row.ha1 = username, realm, ha1


def sip_credentials(db: Database, users: dict[str, str], realm: str) -> tuple[dict[str, str], list[str]]:
    """HA1 per SIP user for the agents in ``users`` (agent -> user), and the agents whose stored credential
    cannot be used (another realm or user than configured now: set the password again)."""
    found: dict[str, str] = {}
    stale: list[str] = []
    with db.session() as session:
        for row in session.scalars(select(SipCredential).where(SipCredential.agent_id.in_(list(users)))):
            if row.realm == realm and row.username == users[row.agent_id]:
                found[row.username] = row.ha1
            else:
                stale.append(row.agent_id)
    return found, sorted(stale)


def sip_credentials_version(db: Database) -> tuple[int, str | None]:
    """Changes when any credential is set or removed (count and latest change): cheap to poll."""
    with db.session() as session:
        count, latest = session.execute(select(func.count(), func.max(SipCredential.updated_at))).one()
    return int(count), latest.isoformat() if latest else None
