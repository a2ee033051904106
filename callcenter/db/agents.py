"""The agents table, kept in step with the configuration (the configuration is the source of truth)."""

from __future__ import annotations

from sqlalchemy import insert, select

from callcenter.db.engine import Database
from callcenter.db.models import Agent


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
