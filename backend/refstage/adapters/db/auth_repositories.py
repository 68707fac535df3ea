"""Console sign-in state: server-side sessions and the login throttle (failed attempts and locks)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from refstage.adapters.db import models as m


class AdminSessionRepository:
    def __init__(self, session: Session, tenant_id: str):
        self.session, self.tenant_id = session, tenant_id

    def add(self, session_id: str, user_id: str, now: dt.datetime, expires_at: dt.datetime) -> None:
        self.session.add(m.AdminSessionRow(id=session_id, tenant_id=self.tenant_id, user_id=user_id, created_at=now,
                                           expires_at=expires_at))
        self.session.flush()

    def is_active(self, session_id: str, user_id: str, now: dt.datetime) -> bool:
        """One primary-key look-up per console request."""
        row = self.session.get(m.AdminSessionRow, session_id)
        return bool(row and row.tenant_id == self.tenant_id and row.user_id == user_id and row.expires_at > now)

    def remove(self, session_id: str) -> None:
        self.session.execute(delete(m.AdminSessionRow).where(m.AdminSessionRow.id == session_id,
                                                              m.AdminSessionRow.tenant_id == self.tenant_id))

    def remove_for_user(self, user_id: str) -> int:
        result = self.session.execute(delete(m.AdminSessionRow).where(m.AdminSessionRow.user_id == user_id,
                                                                       m.AdminSessionRow.tenant_id == self.tenant_id))
        return int(result.rowcount or 0)

    def remove_expired(self, now: dt.datetime) -> None:
        self.session.execute(delete(m.AdminSessionRow).where(m.AdminSessionRow.expires_at <= now))


class LoginThrottleRepository:
    """Not tenant-scoped: an email may belong to several tenants and an address to nobody."""

    def __init__(self, session: Session):
        self.session = session

    def locked_until(self, keys: list[str], now: dt.datetime) -> dt.datetime | None:
        rows = self.session.scalars(select(m.LoginThrottleRow.locked_until).where(
            m.LoginThrottleRow.key.in_(keys), m.LoginThrottleRow.locked_until > now))
        found = [r for r in rows if r is not None]
        return max(found) if found else None

    def add_failure(self, key: str, now: dt.datetime, forget_before: dt.datetime) -> int:
        """Count one failure atomically (INSERT … ON CONFLICT DO UPDATE); a count whose last failure is older than
        `forget_before` starts again at 1. Returns the new count; the row stays locked by this transaction."""
        t = m.LoginThrottleRow.__table__
        insert = postgresql.insert if self.session.get_bind().dialect.name == "postgresql" else sqlite.insert
        stmt = insert(t).values(key=key, failures=1, last_failure_at=now, locked_until=None)
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={
            "failures": _case_forget(t, forget_before), "last_failure_at": now}).returning(t.c.failures)
        return int(self.session.execute(stmt).scalar_one())

    def lock(self, key: str, until: dt.datetime) -> None:
        self.session.execute(update(m.LoginThrottleRow).where(m.LoginThrottleRow.key == key).values(locked_until=until))

    def clear(self, key: str) -> None:
        self.session.execute(delete(m.LoginThrottleRow).where(m.LoginThrottleRow.key == key))

    def remove_stale(self, before: dt.datetime) -> None:
        self.session.execute(delete(m.LoginThrottleRow).where(m.LoginThrottleRow.last_failure_at < before))


def _case_forget(t, forget_before: dt.datetime):
    from sqlalchemy import case

    return case((t.c.last_failure_at < forget_before, 1), else_=t.c.failures + 1)
