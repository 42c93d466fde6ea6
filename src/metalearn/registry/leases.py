"""Heartbeat leases: an active attempt renews its lease while its process lives; one whose
lease ran out (the process was killed or lost) is marked interrupted by the next read."""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import Engine, and_, func, select

from metalearn.registry import schema
from metalearn.registry.engine import read_tx, write_tx
from metalearn.registry.values import utcnow

log = logging.getLogger(__name__)

A = schema.attempts


class Leases:
    """The Store's lease renewal and reaping (heartbeat sets fields: AttemptWrites.update_attempt)."""

    engine: Engine

    def heartbeat(self, attempt_id: int, lease_s: float) -> bool:
        """Mark an active attempt alive for lease_s more seconds; False if it is no longer active."""
        now = utcnow()
        return self.update_attempt(
            attempt_id,
            only_status=schema.ACTIVE,
            heartbeat_at=now,
            lease_until=now + timedelta(seconds=lease_s),
        )

    def reap_stale(self) -> list[int]:
        """Mark active attempts whose heartbeat lease ran out as interrupted; return their ids."""
        now = utcnow()
        stale = and_(A.c.status.in_(schema.ACTIVE), A.c.lease_until < now)
        with read_tx(self.engine) as conn:
            ids = [int(i) for i in conn.execute(select(A.c.id).where(stale)).scalars()]
        if not ids:
            return []
        with write_tx(self.engine) as conn:
            conn.execute(
                A.update()
                .where(A.c.id.in_(ids), stale)
                .values(
                    status=schema.INTERRUPTED,
                    ended_at=A.c.lease_until,
                    lease_until=None,
                    error=func.coalesce(
                        A.c.error, "heartbeat went stale: the process was killed or lost"
                    ),
                )
            )
        log.info("marked stale attempts interrupted: %s", ids)
        return ids
