"""Unit of work: one transaction, the tenant's repositories, and work to run after commit."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from refstage.adapters.db import hot
from refstage.adapters.db import models as m
from refstage.adapters.db import auth_repositories as auth_r
from refstage.adapters.db import repositories as r
from refstage.adapters.db import webhook_repositories as webhook_r
from refstage.adapters.db.bulk_insert import insert_many
from refstage.domain.audit import Actor, Change
from refstage.services.ports import StorageConflict

log = logging.getLogger(__name__)


class Conflict(StorageConflict, IntegrityError):
    """A commit broke a unique constraint. Services catch it as `StorageConflict`; code that predates the
    protocol still catches `IntegrityError`."""

    def __init__(self, error: IntegrityError):
        IntegrityError.__init__(self, error.statement, error.params, error.orig)
        self.detail = str(error.orig)


def _as_storage_conflict(exc: BaseException | None) -> Exception | None:
    """SQLAlchemy's uniqueness and version-check errors as the ports' exceptions (still instances of SQLAlchemy's,
    for code that catches those); None for anything else, and for errors already translated."""
    if isinstance(exc, StorageConflict) or exc is None:
        return None
    if isinstance(exc, IntegrityError):
        return Conflict(exc)
    if isinstance(exc, StaleDataError):
        return r.StaleVersion(str(exc))
    return None


class UnitOfWork:
    """The concrete unit of work over SQLAlchemy; services see it through `services.ports.UnitOfWork`."""

    # The public form's one write (rate-limit counters + intake rows), precompiled on a raw connection: the
    # hottest path of the app skips the ORM session (see hot.py).
    form_write = staticmethod(hot.transaction)

    def __init__(self, session_factory: sessionmaker[Session], tenant_id: str | None = None, readonly: bool = False):
        self._factory = session_factory
        self.tenant_id = tenant_id
        self.readonly = readonly
        self._after_commit: list[Callable[[], None]] = []
        self._audit_rows: list[dict] = []
        self._stale: dict[tuple[str, str, str], dt.datetime] = {}
        self._stale_created: set[tuple[str, str, str]] = set()
        self.pending_rewards: list = []
        self._inserted_rewards: list = []
        self._track_queue_rows = False
        self.queued_rows: dict[tuple[str, str, str], int] = {}

    def __enter__(self) -> "UnitOfWork":
        self.session = self._factory()
        if self.readonly:
            # On SQLite: a plain BEGIN (shared lock) instead of BEGIN IMMEDIATE; commit() is refused.
            self.session.connection(execution_options={"refstage_readonly": True})
        self.tenants = r.TenantRepository(self.session)
        self.directory = r.Directory(self.session)
        self.sealed_secrets = r.SealedSecrets(self.session)
        self.intake_backlog = r.IntakeBacklog(self.session)
        self.rejected_submissions = r.RejectedSubmissionLog(self.session)
        self.login_throttle = auth_r.LoginThrottleRepository(self.session)
        if self.tenant_id:
            self._scope(self.tenant_id)
        return self

    def _scope(self, tenant_id: str) -> None:
        s = self.session
        self.tenant_id = tenant_id
        self.users = r.UserRepository(s, tenant_id)
        self.api_keys = r.ApiKeyRepository(s, tenant_id)
        self.connections = r.ConnectionRepository(s, tenant_id)
        self.programs = r.ProgramRepository(s, tenant_id)
        self.advocates = r.AdvocateRepository(s, tenant_id)
        self.referrals = r.ReferralRepository(s, tenant_id)
        self.rewards = r.RewardRepository(s, tenant_id)
        self.audit = r.AuditRepository(s, tenant_id)
        self.crm_records = r.CrmRecordRepository(s, tenant_id)
        self.admin_sessions = auth_r.AdminSessionRepository(s, tenant_id)
        self.attention = r.AttentionRepository(s, tenant_id)
        self.reports = r.ReportRepository(s, tenant_id)
        self.inbox = r.InboxRepository(s, tenant_id)
        self.sync_state = r.SyncStateRepository(s, tenant_id)
        self.sync_runs = r.SyncRunRepository(s, tenant_id)
        self.pending_writes = r.PendingWriteRepository(s, tenant_id)
        self.intake = r.IntakeRepository(s, tenant_id)
        self.email_templates = r.EmailTemplateRepository(s, tenant_id)
        self.outbox = r.OutboxRepository(s, tenant_id)
        self.webhook_endpoints = webhook_r.WebhookEndpointRepository(s, tenant_id)
        self.webhook_deliveries = webhook_r.WebhookDeliveryRepository(s, tenant_id)

    def scope(self, tenant_id: str) -> "UnitOfWork":
        """Bind the tenant once it is known (after a Directory look-up)."""
        self._scope(tenant_id)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.session.in_transaction():
                self.session.rollback()
        finally:
            self.session.close()
        storage_error = _as_storage_conflict(exc)
        if storage_error is not None:
            raise storage_error from exc

    def record(self, changes: list[Change], actor: Actor, default_id: str | None = None) -> None:
        """Stamp entity changes with the actor; they are appended to the audit log with the commit."""
        if not changes:
            return
        # Straight to the audit table's rows: a big sync records hundreds of thousands of changes.
        kind, actor_id, label = actor.kind.value, actor.id, actor.label
        self._audit_rows.extend(
            {"tenant_id": self.tenant_id, "entity_type": c.entity_type, "entity_id": c.entity_id or default_id or "",
             "action": c.action, "actor_kind": kind, "actor_id": actor_id, "actor_label": label, "at": c.at,
             "before": c.before, "after": c.after, "reason": c.reason}
            for c in changes
        )
        changes.clear()

    def mark_stale(self, connection_id: str, entity_type: str, entity_id: str, at: dt.datetime,
                   created_here: bool = False) -> None:
        """The entity's CRM mirror is out of date; the write-back job drains these at its pace.

        Re-marking replaces the queue row (new id), so a write-back that read the old row and finishes
        later deletes only what it wrote, never a newer change. `created_here`: the entity was inserted in
        this transaction, so no queue row can exist yet and none is looked for (a big sync creates 200,000)."""
        key = (connection_id, entity_type, entity_id)
        self._stale[key] = at
        if created_here:
            self._stale_created.add(key)
        else:
            self._stale_created.discard(key)

    def track_queue_rows(self) -> None:
        """At commit, fill `queued_rows` ({(connection id, entity type, entity id): queue row id}) with the rows
        this unit of work queued, so the caller can remove exactly those once it has written the entities."""
        self._track_queue_rows = True

    def flush_pending_rewards(self) -> None:
        """Insert the rewards gathered so far, at most once per identity (see RewardRepository.add_many)."""
        if self.pending_rewards:
            self.session.flush()
            self._inserted_rewards.extend(self.rewards.add_many(self.pending_rewards))
            self.pending_rewards = []

    def take_inserted_rewards(self) -> list:
        self.flush_pending_rewards()
        inserted, self._inserted_rewards = self._inserted_rewards, []
        return inserted

    def _flush_buffers(self) -> None:
        if self._audit_rows:
            self.audit.append_rows(self._audit_rows)
            self._audit_rows = []
        if self._stale:
            # Grouped so each DELETE is equality + `entity_id IN`, which both databases answer from the unique
            # index (SQLite scans the whole queue for a row-value IN list: quadratic on a big sync).
            groups: dict[tuple[str, str], list[str]] = {}
            for c, t, e in self._stale:
                if (c, t, e) not in self._stale_created:
                    groups.setdefault((c, t), []).append(e)
            P = m.PendingWriteRow.__table__
            for (c, t), ids in groups.items():
                for start in range(0, len(ids), 900):
                    self.session.execute(delete(P).where(P.c.connection_id == c, P.c.entity_type == t,
                                                         P.c.entity_id.in_(ids[start:start + 900])))
            # The unique key allows one row per entity, and in this transaction that row is the one just inserted.
            # Ids only grow (AUTOINCREMENT on SQLite, a sequence on PostgreSQL), so only rows above the largest id
            # before the insert need looking at.
            before = self.session.execute(select(func.max(P.c.id))).scalar() if self._track_queue_rows else None
            insert_many(self.session, m.PendingWriteRow.__table__, [
                {"tenant_id": self.tenant_id, "connection_id": c, "entity_type": t, "entity_id": e, "enqueued_at": at, "attempts": 0}
                for (c, t, e), at in self._stale.items()
            ])
            if self._track_queue_rows:
                connection = self.session.connection()
                for row_id, c, t, e in connection.execute(select(P.c.id, P.c.connection_id, P.c.entity_type, P.c.entity_id).where(
                        P.c.id > (before or 0), P.c.tenant_id == self.tenant_id)):
                    if (c, t, e) in self._stale:
                        self.queued_rows[(c, t, e)] = row_id
            self._stale = {}
            self._stale_created = set()

    def ping(self) -> None:
        self.session.execute(text("SELECT 1"))

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after_commit.append(fn)

    def commit(self) -> None:
        if self.readonly:
            raise RuntimeError("a read-only unit of work cannot commit")
        try:
            self._flush_buffers()
            self.session.commit()
        except (IntegrityError, StaleDataError) as exc:
            storage_error = _as_storage_conflict(exc)
            if storage_error is None:
                raise
            raise storage_error from exc
        pending, self._after_commit = self._after_commit, []
        for fn in pending:
            # Enqueueing follow-up work must not undo a commit; anything dropped here is picked
            # up by the periodic sweeps (unrouted referrals, pending writes, due holds).
            try:
                fn()
            except Exception:  # noqa: BLE001
                log.exception("after-commit hook failed; the periodic sweep will retry")

    def rollback(self) -> None:
        self.session.rollback()
        self._after_commit.clear()
        self._audit_rows = []
        self._stale = {}
        self._stale_created = set()
        self.pending_rewards = []
        self._inserted_rewards = []
        self.queued_rows = {}
