"""Repositories: domain objects in, domain objects out. Every query is scoped to one tenant,
except the few `Directory` look-ups that resolve which tenant a public code, key or hook belongs to."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import and_, bindparam, delete, func, literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from refstage.adapters.db import models as m
from refstage.adapters.db.bulk_insert import execute_many, insert_many
from refstage.domain.audit import Actor, ActorKind, AuditEntry
from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.domain.errors import NotFound
from refstage.domain.inbox import InboxEntry, PushedChange
from refstage.domain.money import Money
from refstage.domain.programs import EnrolmentSource, LandingPage, Owner, Program, ProgramStatus, Routing
from refstage.domain.referrals import Advocate, AdvocateSource, CrmRefs, Referral, ReferralSource, ReferralStatus
from refstage.domain.review import Flag, ReviewPolicy
from refstage.domain.rewards import Recipient, Reward, RewardKind, RewardRule, RewardStatus
from refstage.domain.rules import Rule
from refstage.domain.tenants import Role, Tenant, User
from refstage.services.ports import ConcurrentUpdate, RecordState


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _escape_like(text: str) -> str:
    """A search box's text as a LIKE pattern's literal part (%, _ and the escape itself escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Scoped:
    def __init__(self, session: Session, tenant_id: str):
        self.session = session
        self.tenant_id = tenant_id
        # The session's identity map holds rows weakly; keeping the rows we handed out as domain
        # objects lets save() update them without reading them again.
        self._rows: dict[Any, Any] = {}

    def _keep(self, row: Any) -> Any:
        self._rows[(type(row), row.id)] = row
        return row

    @staticmethod
    def _filtered(q: Any, *pairs: tuple[Any, Any]) -> Any:
        """The list views' optional filters: `column == value` for each pair whose value is given."""
        for column, value in pairs:
            if value:
                q = q.where(column == value)
        return q

    def _one(self, row_type: type, entity_id: str, what: str | None = None) -> Any:
        """The tenant's row with this id; NotFound for a missing id and for another tenant's row alike."""
        row = self._rows.get((row_type, entity_id)) or self.session.get(row_type, entity_id)
        if row is None or row.tenant_id != self.tenant_id:
            raise NotFound(f"{what or row_type.__tablename__[:-1]} {entity_id} not found")
        return self._keep(row)

    def _add_unless_there(self, row: Any) -> bool:
        """Insert in a savepoint; False, and nothing stored, when a unique constraint says it is already there
        (the transaction goes on)."""
        try:
            with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError:
            return False
        return True

    def _newest_first(self, row_type: Any, filters: Sequence[tuple[Any, Any]], limit: int, offset: int) -> Iterable[Any]:
        """A page of the tenant's rows of one kind, newest first, with the list views' optional filters."""
        q = self._filtered(select(row_type).where(row_type.tenant_id == self.tenant_id), *filters)
        return self.session.scalars(q.order_by(row_type.created_at.desc(), row_type.id).limit(limit).offset(offset))


# --- tenants and users --------------------------------------------------------------------------
def _tenant(row: m.TenantRow) -> Tenant:
    return Tenant(row.id, row.name, row.slug, row.display_name, row.logo_url, row.brand_color, row.locale, row.time_zone)


class TenantRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, tenant: Tenant) -> Tenant:
        self.session.add(m.TenantRow(id=tenant.id, name=tenant.name, slug=tenant.slug, created_at=_now()))
        self.session.flush()
        return tenant

    def get(self, tenant_id: str) -> Tenant:
        row = self.session.get(m.TenantRow, tenant_id)
        if row is None:
            raise NotFound(f"tenant {tenant_id} not found")
        return _tenant(row)

    def save_identity(self, tenant: Tenant) -> Tenant:
        row = self.session.get(m.TenantRow, tenant.id)
        if row is None:
            raise NotFound(f"tenant {tenant.id} not found")
        for name in ("display_name", "logo_url", "brand_color", "locale", "time_zone"):
            setattr(row, name, getattr(tenant, name))
        self.session.flush()
        return tenant

    def by_slug(self, slug: str) -> Tenant | None:
        row = self.session.scalar(select(m.TenantRow).where(m.TenantRow.slug == slug))
        return _tenant(row) if row else None

    def list(self) -> list[Tenant]:
        return [_tenant(r) for r in self.session.scalars(select(m.TenantRow).order_by(m.TenantRow.name))]


def _user(row: m.UserRow) -> User:
    return User(row.id, row.tenant_id, row.email, Role(row.role), row.password_hash, row.name, row.salesforce_user_id)


class UserRepository(_Scoped):
    def add(self, user: User, salesforce_org_id: str | None = None) -> User:
        self.session.add(
            m.UserRow(id=user.id, tenant_id=self.tenant_id, email=user.email, name=user.name, role=user.role.value,
                      password_hash=user.password_hash, salesforce_user_id=user.salesforce_user_id,
                      salesforce_org_id=salesforce_org_id, created_at=_now())
        )
        self.session.flush()
        return user

    def get(self, user_id: str) -> User:
        return _user(self._one(m.UserRow, user_id))

    def by_email(self, email: str) -> User | None:
        row = self.session.scalar(select(m.UserRow).where(m.UserRow.tenant_id == self.tenant_id, m.UserRow.email == email.lower()))
        return _user(row) if row else None

    def list(self) -> list[User]:
        rows = self.session.scalars(select(m.UserRow).where(m.UserRow.tenant_id == self.tenant_id).order_by(m.UserRow.email))
        return [_user(r) for r in rows]

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        self._one(m.UserRow, user_id).password_hash = password_hash

    def salesforce_org_ids(self) -> dict[str, str | None]:
        """The Salesforce org each user signs in from, by user id (the users page)."""
        U = m.UserRow
        return dict(self.session.execute(select(U.id, U.salesforce_org_id).where(U.tenant_id == self.tenant_id)).all())


class ApiKeyRepository(_Scoped):
    def add(self, key_id: str, name: str, prefix: str, key_hash: str) -> None:
        self.session.add(m.ApiKeyRow(id=key_id, tenant_id=self.tenant_id, name=name, prefix=prefix, key_hash=key_hash, created_at=_now()))
        self.session.flush()

    def list(self) -> list[dict[str, Any]]:
        rows = self.session.scalars(select(m.ApiKeyRow).where(m.ApiKeyRow.tenant_id == self.tenant_id).order_by(m.ApiKeyRow.created_at))
        return [{"id": r.id, "name": r.name, "prefix": r.prefix, "created_at": r.created_at, "revoked_at": r.revoked_at, "last_used_at": r.last_used_at} for r in rows]

    def revoke(self, key_id: str) -> None:
        row = self._one(m.ApiKeyRow, key_id)
        row.revoked_at = row.revoked_at or _now()


# --- connections ------------------------------------------------------------------------------------
def _connection(row: m.ConnectionRow) -> CrmConnection:
    return CrmConnection(
        id=row.id, tenant_id=row.tenant_id, kind=CrmKind(row.kind), name=row.name, status=ConnectionStatus(row.status),
        external_org_id=row.external_org_id, instance_url=row.instance_url, login_host=row.login_host,
        external_user_id=row.external_user_id, external_username=row.external_username,
        settings=dict(row.settings or {}), status_message=row.status_message, last_sync_at=row.last_sync_at,
    )


class ConnectionRepository(_Scoped):
    def add(self, conn: CrmConnection) -> CrmConnection:
        now = _now()
        self.session.add(m.ConnectionRow(id=conn.id, tenant_id=self.tenant_id, kind=conn.kind.value, name=conn.name,
                                         status=conn.status.value, settings=conn.settings, created_at=now, updated_at=now))
        self.session.flush()
        return self.save(conn)

    def get(self, connection_id: str) -> CrmConnection:
        return _connection(self._one(m.ConnectionRow, connection_id))

    def list(self) -> list[CrmConnection]:
        rows = self.session.scalars(select(m.ConnectionRow).where(m.ConnectionRow.tenant_id == self.tenant_id).order_by(m.ConnectionRow.created_at))
        return [_connection(r) for r in rows]

    def save(self, conn: CrmConnection) -> CrmConnection:
        row = self._one(m.ConnectionRow, conn.id)
        for name in ("name", "external_org_id", "instance_url", "login_host", "external_user_id", "external_username",
                     "status_message", "last_sync_at"):
            setattr(row, name, getattr(conn, name))
        row.status = conn.status.value
        row.settings = dict(conn.settings)
        row.updated_at = _now()
        self.session.flush()
        return conn

    def credentials(self, connection_id: str) -> str | None:
        return self._one(m.ConnectionRow, connection_id).credentials

    def delete_unused(self, connection_id: str) -> bool:
        """Remove a connection nothing refers to (an abandoned or superseded "pending" one): its
        sync runs and state go with it; a connection any program uses is kept. True if removed."""
        row = self._one(m.ConnectionRow, connection_id)
        for referrer in (m.ProgramRow, m.ReferralRow):
            if self.session.scalar(select(func.count()).select_from(referrer).where(
                    referrer.tenant_id == self.tenant_id, referrer.connection_id == connection_id)):
                return False
        for row_type in (m.CrmEventRow, m.SyncRunRow, m.SyncStateRow, m.RecordSyncRow, m.PendingWriteRow, m.CrmRecordRow):
            self.session.execute(delete(row_type).where(row_type.tenant_id == self.tenant_id,
                                                        row_type.connection_id == connection_id))
        self.session.delete(row)
        self._rows.pop((m.ConnectionRow, connection_id), None)
        self.session.flush()
        return True

    def latest_runs(self) -> dict[str, dict[str, Any]]:
        """Each connection's most recent sync run (status, when, error), by connection id."""
        rows = self.session.scalars(select(m.SyncRunRow).where(m.SyncRunRow.tenant_id == self.tenant_id)
                                    .order_by(m.SyncRunRow.started_at.desc()).limit(200))
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            out.setdefault(r.connection_id, {"kind": r.kind, "status": r.status, "started_at": r.started_at,
                                             "error": r.error})
        return out

    def store_credentials(self, connection_id: str, sealed: str | None) -> None:
        row = self._one(m.ConnectionRow, connection_id)
        row.credentials = sealed
        row.updated_at = _now()
        self.session.flush()


# --- programs -----------------------------------------------------------------------------------------
def _program(row: m.ProgramRow) -> Program:
    return Program(
        id=row.id, tenant_id=row.tenant_id, name=row.name, slug=row.slug, connection_id=row.connection_id,
        # Validated when written; read back without re-validating (this is on the landing page's path).
        enrolment=EnrolmentSource.from_stored(row.enrolment), rule=Rule.from_stored(row.rule),
        reward_rules=[RewardRule.from_stored(r) for r in row.reward_rules],
        review_policy=ReviewPolicy.from_dict(row.review_policy), holding_days=row.holding_days,
        owner=Owner(row.owner_name, row.owner_email) if row.owner_name and row.owner_email else None,
        status=ProgramStatus(row.status), routing=Routing.from_dict(row.routing),
        landing=LandingPage(**row.landing), allow_self_enrolment=row.allow_self_enrolment,
    )


class ProgramRepository(_Scoped):
    def add(self, program: Program) -> Program:
        now = _now()
        row = m.ProgramRow(id=program.id, tenant_id=self.tenant_id, created_at=now, updated_at=now)
        self._fill(row, program)
        self.session.add(row)
        self.session.flush()
        return program

    def _fill(self, row: m.ProgramRow, p: Program) -> None:
        row.name, row.slug, row.connection_id, row.status = p.name, p.slug, p.connection_id, p.status.value
        row.enrolment, row.rule = p.enrolment.to_dict(), p.rule.to_json()
        row.reward_rules = [r.to_dict() for r in p.reward_rules]
        row.review_policy = p.review_policy.to_dict()
        row.holding_days = p.holding_days
        row.owner_name, row.owner_email = (p.owner.name, p.owner.email) if p.owner else (None, None)
        row.routing, row.landing = p.routing.to_dict(), p.landing.to_dict()
        row.allow_self_enrolment = p.allow_self_enrolment
        row.updated_at = _now()

    def save(self, program: Program) -> Program:
        self._fill(self._one(m.ProgramRow, program.id), program)
        self.session.flush()
        return program

    def get(self, program_id: str) -> Program:
        return _program(self._one(m.ProgramRow, program_id))

    def by_slug(self, slug: str) -> Program | None:
        row = self.session.scalar(select(m.ProgramRow).where(m.ProgramRow.tenant_id == self.tenant_id, m.ProgramRow.slug == slug))
        return _program(row) if row else None

    def list(self, connection_id: str | None = None, status: ProgramStatus | None = None) -> list[Program]:
        q = select(m.ProgramRow).where(m.ProgramRow.tenant_id == self.tenant_id)
        if connection_id:
            q = q.where(m.ProgramRow.connection_id == connection_id)
        if status:
            q = q.where(m.ProgramRow.status == status.value)
        return [_program(r) for r in self.session.scalars(q.order_by(m.ProgramRow.created_at))]


# --- advocates ----------------------------------------------------------------------------------------
_ADVOCATE_COLUMNS = ("id", "tenant_id", "program_id", "name", "email", "code", "source", "crm_object", "crm_id",
                     "crm_contact_id", "crm_account_id", "link_written_at", "enrolled_at", "active")
_ADVOCATE_VALUES = attrgetter(*_ADVOCATE_COLUMNS)  # an ORM row's values, in that order


def _advocate_from(v: Sequence[Any]) -> Advocate:
    """From the values of _ADVOCATE_COLUMNS, in that order."""
    (id_, tenant_id, program_id, name, email, code, source, crm_object, crm_id, crm_contact_id, crm_account_id,
     link_written_at, enrolled_at, active) = v
    return Advocate(
        id=id_, tenant_id=tenant_id, program_id=program_id, name=name, email=email, code=code,
        source=_enum(AdvocateSource, source), crm_object=crm_object, crm_id=crm_id, crm_contact_id=crm_contact_id,
        crm_account_id=crm_account_id, link_written_at=link_written_at, enrolled_at=enrolled_at, active=active,
    )


def _advocate(row: m.AdvocateRow) -> Advocate:
    return _advocate_from(_ADVOCATE_VALUES(row))


class AdvocateRepository(_Scoped):
    def add(self, a: Advocate) -> Advocate:
        self.session.add(m.AdvocateRow(
            id=a.id, tenant_id=self.tenant_id, program_id=a.program_id, name=a.name, email=a.email, code=a.code,
            source=a.source.value, crm_object=a.crm_object, crm_id=a.crm_id, crm_contact_id=a.crm_contact_id,
            crm_account_id=a.crm_account_id, enrolled_at=a.enrolled_at or _now(), active=a.active))
        self.session.flush()
        return a

    def add_many(self, advocates: Sequence[Advocate]) -> None:
        """Bulk insert for enrolment at scale: one statement per chunk, no per-row flush."""
        now = _now()
        rows = [
            {"id": a.id, "tenant_id": self.tenant_id, "program_id": a.program_id, "name": a.name, "email": a.email,
             "code": a.code, "source": a.source.value, "crm_object": a.crm_object, "crm_id": a.crm_id,
             "crm_contact_id": a.crm_contact_id, "crm_account_id": a.crm_account_id, "enrolled_at": a.enrolled_at or now,
             "active": True, "link_written_at": None}
            for a in advocates
        ]
        insert_many(self.session, m.AdvocateRow.__table__, rows)

    def save(self, a: Advocate) -> Advocate:
        row = self._one(m.AdvocateRow, a.id)
        row.name, row.email, row.active = a.name, a.email, a.active
        row.crm_contact_id, row.crm_account_id, row.link_written_at = a.crm_contact_id, a.crm_account_id, a.link_written_at
        self.session.flush()
        return a

    def get(self, advocate_id: str) -> Advocate:
        return _advocate(self._one(m.AdvocateRow, advocate_id))

    def get_many(self, advocate_ids: Sequence[str]) -> list[Advocate]:
        """Read-only batch load (write-back): one query per 900 ids."""
        return _read_many(self.session, m.AdvocateRow.__table__, _ADVOCATE_COLUMNS, self.tenant_id, advocate_ids, _advocate_from)

    def by_crm_id(self, program_id: str, crm_object: str, crm_id: str) -> Advocate | None:
        row = self.session.scalar(select(m.AdvocateRow).where(
            m.AdvocateRow.tenant_id == self.tenant_id, m.AdvocateRow.program_id == program_id,
            m.AdvocateRow.crm_object == crm_object, m.AdvocateRow.crm_id == crm_id))
        return _advocate(row) if row else None

    def existing_crm_ids(self, program_id: str, crm_object: str, crm_ids: Iterable[str]) -> set[str]:
        ids = list(crm_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 900):
            found.update(self.session.scalars(select(m.AdvocateRow.crm_id).where(
                in_tenant(m.AdvocateRow.tenant_id, self.tenant_id), m.AdvocateRow.program_id == program_id,
                m.AdvocateRow.crm_object == crm_object, m.AdvocateRow.crm_id.in_(ids[start:start + 900]))))
        return found

    def by_email(self, program_id: str, email: str) -> Advocate | None:
        row = self.session.scalar(select(m.AdvocateRow).where(
            m.AdvocateRow.tenant_id == self.tenant_id, m.AdvocateRow.program_id == program_id, m.AdvocateRow.email == email)
            .order_by(m.AdvocateRow.enrolled_at).limit(1))
        return _advocate(row) if row else None

    def by_code(self, code: str) -> Advocate | None:
        row = self.session.scalar(select(m.AdvocateRow).where(m.AdvocateRow.tenant_id == self.tenant_id, m.AdvocateRow.code == code))
        return _advocate(row) if row else None

    def list(self, program_id: str | None = None, limit: int = 100, offset: int = 0) -> list[Advocate]:
        q = select(m.AdvocateRow).where(m.AdvocateRow.tenant_id == self.tenant_id)
        if program_id:
            q = q.where(m.AdvocateRow.program_id == program_id)
        return [_advocate(r) for r in self.session.scalars(q.order_by(m.AdvocateRow.enrolled_at, m.AdvocateRow.id).limit(limit).offset(offset))]

    def search(self, *, text: str | None = None, program_id: str | None = None, source: str | None = None,
               limit: int = 100, offset: int = 0) -> tuple[list[Advocate], int]:
        """The console's advocate list: name, email or code; by program and enrolment source; with the
        total for paging. Newest first."""
        A = m.AdvocateRow
        q = self._filtered(select(A).where(A.tenant_id == self.tenant_id), (A.program_id, program_id), (A.source, source))
        if text and text.strip():
            like = f"%{_escape_like(text.strip().lower())}%"
            q = q.where(func.lower(A.name).like(like, escape="\\") | func.lower(A.email).like(like, escape="\\")
                        | func.lower(A.code).like(like, escape="\\") | (A.crm_id == text.strip()))
        total = int(self.session.scalar(select(func.count()).select_from(q.subquery())) or 0)
        rows = self.session.scalars(q.order_by(A.enrolled_at.desc(), A.id).limit(limit).offset(offset))
        return [_advocate(r) for r in rows], total

    def referral_counts(self, advocate_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per advocate: referrals by status."""
        if not advocate_ids:
            return {}
        R = m.ReferralRow
        out: dict[str, dict[str, int]] = {}
        for aid, status, n in self.session.execute(select(R.advocate_id, R.status, func.count()).where(
                R.tenant_id == self.tenant_id, R.advocate_id.in_(list(advocate_ids))).group_by(R.advocate_id, R.status)):
            out.setdefault(aid, {})[status] = int(n)
        return out

    def count(self, program_id: str | None = None) -> int:
        q = select(func.count()).select_from(m.AdvocateRow).where(m.AdvocateRow.tenant_id == self.tenant_id)
        if program_id:
            q = q.where(m.AdvocateRow.program_id == program_id)
        return int(self.session.scalar(q) or 0)

    def pending_links(self, program_id: str, limit: int) -> list[tuple[str, str, str, str]]:
        """(advocate id, CRM object, CRM id, code) of advocates whose code and link are not yet on their CRM
        record: four columns, no entity (enrolment writes these back by the hundred thousand)."""
        A = m.AdvocateRow.__table__
        return [tuple(r) for r in self.session.execute(select(A.c.id, A.c.crm_object, A.c.crm_id, A.c.code).where(
            A.c.tenant_id == self.tenant_id, A.c.program_id == program_id, A.c.crm_id.is_not(None),
            A.c.link_written_at.is_(None)).order_by(A.c.id).limit(limit))]

    def link_crm(self, advocate_id: str, crm_object: str, crm_id: str, contact_id: str | None, account_id: str | None,
                 link_written_at: dt.datetime | None) -> None:
        """Attach a form/API advocate to its CRM record (self-enrolment). Flushed, so the unique
        (program, CRM object, CRM id) index speaks here rather than at commit."""
        row = self._one(m.AdvocateRow, advocate_id)
        row.crm_object, row.crm_id, row.crm_contact_id, row.crm_account_id = crm_object, crm_id, contact_id, account_id
        row.link_written_at = link_written_at
        self.session.flush()

    def unlinked_in_crm_programs(self, enrolled_before: dt.datetime, limit: int = 500) -> list[str]:
        """Ids of form/API advocates of programs with an active CRM connection still without a CRM record (their
        linking job was lost), leaving out those whose record belongs to another advocate (audited as a conflict)."""
        A, P, L = m.AdvocateRow, m.ProgramRow, m.AuditRow
        conflict = select(L.id).where(L.tenant_id == self.tenant_id, L.entity_type == "advocate", L.entity_id == A.id,
                                      L.action == "crm_link_conflict").exists()
        C = m.ConnectionRow
        return list(self.session.scalars(select(A.id).join(P, P.id == A.program_id).join(C, C.id == P.connection_id).where(
            A.tenant_id == self.tenant_id, A.crm_id.is_(None), A.email.is_not(None), A.active.is_(True),
            A.enrolled_at < enrolled_before, C.status == ConnectionStatus.ACTIVE.value, ~conflict)
            .order_by(A.enrolled_at, A.id).limit(limit)))

    def mark_links_written(self, advocate_ids: Sequence[str], at: dt.datetime) -> None:
        """One compiled UPDATE run for every id (an enrolment marks a hundred thousand at once); an id of another
        tenant, or none, changes nothing."""
        A = m.AdvocateRow.__table__

        def statement():
            return update(A).where(A.c.id == bindparam("b_id", type_=A.c.id.type),
                                   _NotAnIndexKey(A.c.tenant_id) == bindparam("b_tenant", type_=A.c.tenant_id.type)).values(
                link_written_at=bindparam("b_at", type_=A.c.link_written_at.type))

        execute_many(self.session, "advocates.mark_links_written", statement,
                     [{"b_id": advocate_id, "b_tenant": self.tenant_id, "b_at": at} for advocate_id in advocate_ids])


class _NotAnIndexKey(ColumnElement):
    """A column SQLite's planner must not pick an index for. Without ANALYZE statistics it prefers an index on
    tenant_id (every row of one tenant) to the unique index on the ids a batch asks for, and scans the tenant
    once per batch: quadratic on a big sync. SQLite's unary + keeps the filter and drops it from index choice;
    other databases see the plain column."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type


@compiles(_NotAnIndexKey)
def _plain_column(element: _NotAnIndexKey, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(_NotAnIndexKey, "sqlite")
def _sqlite_unindexed(element: _NotAnIndexKey, compiler: Any, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)


def in_tenant(column: Any, tenant_id: str) -> Any:
    """The tenant filter for batch reads by id: always applied, never what the planner searches by."""
    return _NotAnIndexKey(column) == tenant_id


class StaleVersion(ConcurrentUpdate, StaleDataError):
    """A version-checked write found the row changed by another worker. Services catch it as `ConcurrentUpdate`;
    it is also SQLAlchemy's StaleDataError, as the ORM's own version check raises."""


# --- referrals ----------------------------------------------------------------------------------------
_REF_FIELDS = ("lead_id", "contact_id", "account_id", "opportunity_id", "person_id", "deal_id")


_REFERRAL_COLUMNS = ("id", "tenant_id", "program_id", "advocate_id", "friend_name", "friend_email", "friend_company",
                     "friend_phone", "source", "consent_at", "consent_version", "captured_at", "status", *_REF_FIELDS,
                     "crm_owner_id", "flags", "routed_at", "qualified_at", "rewarded_at", "status_reason", "last_observed_at")
_REFERRAL_VALUES = attrgetter(*_REFERRAL_COLUMNS)  # an ORM row's values, in that order
_LINK_COLUMNS = (*_REF_FIELDS, "crm_owner_id")
_links_of = itemgetter(*(_REFERRAL_COLUMNS.index(name) for name in _LINK_COLUMNS))  # a row's CRM links, as a tuple


def _links(crm: CrmRefs) -> tuple:
    """A referral's CRM links in _LINK_COLUMNS' order, as _links_of reads them from a row."""
    return (crm.lead_id, crm.contact_id, crm.account_id, crm.opportunity_id, crm.person_id, crm.deal_id, crm.owner_id)


def _referral_from(v: Sequence[Any]) -> Referral:
    """From the values of _REFERRAL_COLUMNS, in that order (a Core row of them, or an ORM row's attributes)."""
    (id_, tenant_id, program_id, advocate_id, friend_name, friend_email, friend_company, friend_phone, source,
     consent_at, consent_version, captured_at, status, lead_id, contact_id, account_id, opportunity_id, person_id,
     deal_id, owner_id, flags, routed_at, qualified_at, rewarded_at, status_reason, last_observed_at) = v
    return Referral(
        id=id_, tenant_id=tenant_id, program_id=program_id, advocate_id=advocate_id,
        friend_name=friend_name, friend_email=friend_email, friend_company=friend_company,
        friend_phone=friend_phone, source=_enum(ReferralSource, source), consent_at=consent_at,
        consent_version=consent_version, captured_at=captured_at, status=_enum(ReferralStatus, status),
        crm=CrmRefs(lead_id, contact_id, account_id, opportunity_id, person_id, deal_id, owner_id),
        flags=[Flag.from_dict(f) for f in flags] if flags else [], routed_at=routed_at, qualified_at=qualified_at,
        rewarded_at=rewarded_at, status_reason=status_reason, last_observed_at=last_observed_at,
    )


def _referral(row: m.ReferralRow) -> Referral:
    return _referral_from(_REFERRAL_VALUES(row))


class ReferralRepository(_Scoped):
    def add(self, r: Referral, connection_id: str | None, idempotency_key: str | None = None) -> Referral:
        row = m.ReferralRow(id=r.id, tenant_id=self.tenant_id, connection_id=connection_id, idempotency_key=idempotency_key,
                            friend_canonical_email=r.friend_canonical_email)
        self._fill(row, r)
        self.session.add(row)
        self.session.flush()
        return r

    def _fill(self, row: m.ReferralRow, r: Referral) -> None:
        for name in ("program_id", "advocate_id", "friend_name", "friend_email", "friend_company", "friend_phone",
                     "consent_at", "consent_version", "captured_at", "routed_at", "qualified_at", "rewarded_at",
                     "status_reason", "last_observed_at"):
            setattr(row, name, getattr(r, name))
        row.source, row.status = r.source.value, r.status.value
        for name in _REF_FIELDS:
            setattr(row, name, getattr(r.crm, name))
        row.crm_owner_id = r.crm.owner_id
        row.flags = [f.to_dict() for f in r.flags]
        row.updated_at = _now()

    def save(self, r: Referral) -> Referral:
        """Updated in the session; written at the next flush or commit (with the version check)."""
        self._fill(self._one(m.ReferralRow, r.id), r)
        return r

    def get(self, referral_id: str) -> Referral:
        return _referral(self._one(m.ReferralRow, referral_id))

    def get_many(self, referral_ids: Sequence[str]) -> list[Referral]:
        """Batch read for the sync path; pair with save_many (versions and CRM links are remembered)."""
        T = m.ReferralRow.__table__
        out: list[Referral] = []
        self._versions: dict[str, int] = getattr(self, "_versions", {})
        self._links_read: dict[str, tuple] = getattr(self, "_links_read", {})
        columns = _read_columns(T, (*_REFERRAL_COLUMNS, "version"))
        connection = self.session.connection()  # Core rows: the ORM's execution machinery adds nothing here
        versions, links_read = self._versions, self._links_read
        for start in range(0, len(referral_ids), _CHUNK):
            for *values, version in connection.execute(select(*columns).where(
                    in_tenant(T.c.tenant_id, self.tenant_id), T.c.id.in_(referral_ids[start:start + _CHUNK]))).all():
                out.append(_referral_from(values))
                versions[values[0]] = version
                links_read[values[0]] = _links_of(values)
        return out

    def save_many(self, referrals: Sequence[Referral]) -> None:
        """Write referrals read with get_many in one executemany per column set, checking each row's version:
        if another worker changed one meanwhile, StaleVersion (the caller retries). The CRM link columns are
        written only for referrals whose links changed since the read (a conversion): each is in an index, and
        rewriting six unchanged index entries per row cost SQLite several times the rest of the update."""
        if not referrals:
            return
        T = m.ReferralRow.__table__
        now = _now()
        same_links, new_links = [], []
        for r in referrals:
            p = {"b_id": r.id, "b_version": self._versions[r.id]}
            for name in ("status_reason", "routed_at", "qualified_at", "rewarded_at", "last_observed_at"):
                p[name] = getattr(r, name)
            p["status"] = r.status._value_  # the attribute itself: Enum's `value` property costs a call per row
            p["flags"] = [f.to_dict() for f in r.flags]
            p["updated_at"] = now
            links = _links(r.crm)
            if links == self._links_read.get(r.id):
                same_links.append(p)
            else:
                p.update(zip(_LINK_COLUMNS, links))
                new_links.append(p)

        def statement_for(params: list[dict[str, Any]]):
            def statement():
                values = {k: bindparam(k, type_=T.c[k].type) for k in params[0] if not k.startswith("b_")}
                return update(T).where(T.c.id == bindparam("b_id", type_=T.c.id.type),
                                       T.c.version == bindparam("b_version", type_=T.c.version.type)).values(
                    version=T.c.version + literal_column("1"), **values)  # a literal: no parameter to pass
            return statement

        changed = 0
        for key, params in (("referrals.save_many", same_links), ("referrals.save_many.links", new_links)):
            if params:
                changed += execute_many(self.session, key, statement_for(params), params)
        if changed != len(referrals):
            raise StaleVersion(f"{len(referrals) - changed} referral(s) changed by another worker")
        for r in referrals:
            self._versions[r.id] += 1
            self._links_read[r.id] = _links(r.crm)

    def connection_id(self, referral_id: str) -> str | None:
        return self._one(m.ReferralRow, referral_id).connection_id

    def by_idempotency_key(self, key: str) -> Referral | None:
        row = self.session.scalar(select(m.ReferralRow).where(m.ReferralRow.tenant_id == self.tenant_id, m.ReferralRow.idempotency_key == key))
        return _referral(row) if row else None

    def find_open_by_email(self, program_id: str, canonical: str) -> Referral | None:
        row = self.session.scalar(select(m.ReferralRow).where(
            m.ReferralRow.tenant_id == self.tenant_id, m.ReferralRow.program_id == program_id,
            m.ReferralRow.friend_canonical_email == canonical,
            m.ReferralRow.status.not_in(["rejected", "duplicate"])).order_by(m.ReferralRow.captured_at).limit(1))
        return _referral(row) if row else None

    def find_by_crm(self, connection_id: str, **ids: str | None) -> list[Referral]:
        """Referrals linked to any of the given CRM ids (lead_id=..., opportunity_id=..., ...)."""
        conds = [getattr(m.ReferralRow, k) == v for k, v in ids.items() if v and k in _REF_FIELDS]
        if not conds:
            return []
        from sqlalchemy import or_

        rows = self.session.scalars(select(m.ReferralRow).where(
            in_tenant(m.ReferralRow.tenant_id, self.tenant_id), m.ReferralRow.connection_id == connection_id, or_(*conds)))
        return [_referral(r) for r in rows]

    def linked_ids(self, connection_id: str, field: str, values: Sequence[str]) -> dict[str, list[str]]:
        """Map CRM id → referral ids for a batch of CRM ids (the sync's join)."""
        column = getattr(m.ReferralRow, field)
        out: dict[str, list[str]] = {}
        for start in range(0, len(values), 900):
            for ref_id, crm_id in self.session.execute(select(m.ReferralRow.id, column).where(
                    in_tenant(m.ReferralRow.tenant_id, self.tenant_id), m.ReferralRow.connection_id == connection_id,
                    column.in_(values[start:start + 900]))):
                out.setdefault(crm_id, []).append(ref_id)
        return out

    def ledger_names(self, referral_ids: Sequence[str]) -> dict[str, tuple[str, str, str]]:
        """(friend name, friend email, advocate name) by referral id: the names the ledger shows beside a reward."""
        R, A = m.ReferralRow, m.AdvocateRow
        ids = list(referral_ids)
        out: dict[str, tuple[str, str, str]] = {}
        for start in range(0, len(ids), 900):
            for referral_id, friend_name, friend_email, advocate_name in self.session.execute(
                    select(R.id, R.friend_name, R.friend_email, A.name).join(A, A.id == R.advocate_id)
                    .where(R.tenant_id == self.tenant_id, R.id.in_(ids[start:start + 900]))):
                out[referral_id] = (friend_name, friend_email, advocate_name)
        return out

    def recent_capture_times(self, advocate_id: str, since: dt.datetime) -> list[dt.datetime]:
        return list(self.session.scalars(select(m.ReferralRow.captured_at).where(
            m.ReferralRow.tenant_id == self.tenant_id, m.ReferralRow.advocate_id == advocate_id, m.ReferralRow.captured_at >= since)))

    def qualified_count(self, advocate_id: str, exclude: Sequence[str] = ()) -> int:
        q = select(func.count()).select_from(m.ReferralRow).where(
            m.ReferralRow.tenant_id == self.tenant_id, m.ReferralRow.advocate_id == advocate_id,
            m.ReferralRow.qualified_at.is_not(None))
        if exclude:
            q = q.where(m.ReferralRow.id.not_in(list(exclude)))
        return int(self.session.scalar(q) or 0)

    def qualified_counts(self, advocate_ids: Sequence[str], exclude: Sequence[str] = ()) -> dict[str, int]:
        """qualified_count for many advocates at once: {advocate id: qualified referrals, leaving out `exclude`}
        (a sync chunk's own referrals, which it counts in memory). Advocates with none are absent."""
        R = m.ReferralRow.__table__
        ids = list(dict.fromkeys(advocate_ids))
        out: dict[str, int] = {}
        for start in range(0, len(ids), 900):
            q = select(R.c.advocate_id, func.count()).where(
                R.c.tenant_id == self.tenant_id, R.c.advocate_id.in_(ids[start:start + 900]), R.c.qualified_at.is_not(None))
            if exclude:
                q = q.where(R.c.id.not_in(list(exclude)))
            out.update((advocate_id, int(n)) for advocate_id, n in self.session.execute(q.group_by(R.c.advocate_id)))
        return out

    def list(self, *, program_id: str | None = None, status: str | None = None, advocate_id: str | None = None,
             limit: int = 100, offset: int = 0) -> list[Referral]:
        q = self._filtered(select(m.ReferralRow).where(m.ReferralRow.tenant_id == self.tenant_id),
                           (m.ReferralRow.program_id, program_id), (m.ReferralRow.status, status),
                           (m.ReferralRow.advocate_id, advocate_id))
        rows = self.session.scalars(q.order_by(m.ReferralRow.captured_at.desc(), m.ReferralRow.id).limit(limit).offset(offset))
        return [_referral(r) for r in rows]

    def search(self, *, text: str | None = None, program_id: str | None = None, status: str | None = None,
               owner_id: str | None = None, advocate_id: str | None = None, since: dt.datetime | None = None,
               until: dt.datetime | None = None, limit: int = 100, offset: int = 0) -> tuple[list[Referral], int]:
        """The console's referral list: free text (friend's name, email, company; the advocate's name or
        code; a CRM id), filters, newest first; with the total count for paging."""
        R, A = m.ReferralRow, m.AdvocateRow
        q = self._filtered(select(R).where(R.tenant_id == self.tenant_id), (R.program_id, program_id),
                           (R.status, status), (R.crm_owner_id, owner_id), (R.advocate_id, advocate_id))
        if since:
            q = q.where(R.captured_at >= since)
        if until:
            q = q.where(R.captured_at < until)
        if text and text.strip():
            like = f"%{_escape_like(text.strip().lower())}%"
            advocates = select(A.id).where(A.tenant_id == self.tenant_id, func.lower(A.name).like(like, escape="\\")
                                           | func.lower(A.code).like(like, escape="\\"))
            q = q.where(func.lower(R.friend_name).like(like, escape="\\") | R.friend_canonical_email.like(like, escape="\\")
                        | func.lower(R.friend_email).like(like, escape="\\") | func.lower(R.friend_company).like(like, escape="\\")
                        | R.advocate_id.in_(advocates) | (R.id == text.strip()) | (R.lead_id == text.strip())
                        | (R.opportunity_id == text.strip()) | (R.deal_id == text.strip()) | (R.person_id == text.strip()))
        total = int(self.session.scalar(select(func.count()).select_from(q.subquery())) or 0)
        rows = self.session.scalars(q.order_by(R.captured_at.desc(), R.id).limit(limit).offset(offset))
        return [_referral(r) for r in rows], total

    def owners(self) -> list[str]:
        """The CRM owners referrals were routed to (for the owner filter)."""
        R = m.ReferralRow
        return sorted(o for o in self.session.scalars(select(R.crm_owner_id).where(
            R.tenant_id == self.tenant_id, R.crm_owner_id.is_not(None)).distinct()) if o)

    def funnel_counts(self, program_id: str | None = None) -> dict[str, int]:
        """Referrals by status (one grouped count)."""
        R = m.ReferralRow
        q = select(R.status, func.count()).where(R.tenant_id == self.tenant_id)
        if program_id:
            q = q.where(R.program_id == program_id)
        return {status: int(n) for status, n in self.session.execute(q.group_by(R.status))}

    def unrouted(self, limit: int = 100) -> list[Referral]:
        rows = self.session.scalars(select(m.ReferralRow).where(
            m.ReferralRow.tenant_id == self.tenant_id, m.ReferralRow.status == "captured").order_by(m.ReferralRow.captured_at).limit(limit))
        return [_referral(r) for r in rows]


def _enum(kind: Any, value: str) -> Any:
    """kind(value), from a dict: batch reads convert hundreds of thousands of stored values."""
    member = _ENUM_VALUES[kind].get(value)
    return kind(value) if member is None else member  # an unknown value fails as kind(value) does


_ENUM_VALUES: dict[Any, dict[str, Any]] = {
    kind: {member.value: member for member in kind}
    for kind in (AdvocateSource, ReferralSource, ReferralStatus, Recipient, RewardKind, RewardStatus)
}


def _read_columns(table: Any, names: Sequence[str]) -> list[Any]:
    """The columns to select for a batch read (JSON ones are decoded by the engine's codec, which answers the
    common empty texts without a parse: adapters/db/json_codec.py)."""
    return [table.c[n] for n in names]


# Ids per IN (...): SQLite before 3.32 allowed 999 variables per statement; psycopg allows 65,535.
_CHUNK = 900


def _read_many(session: Session, table: Any, names: Sequence[str], tenant_id: str, ids: Sequence[str],
               convert: Callable[[Sequence[Any]], Any]) -> list[Any]:
    """Read-only batch load by id (Core rows of `names`, id first; no identity map): in the order asked; NotFound
    if one is missing. UTCDateTime columns come back aware from Core rows as from the ORM."""
    found: dict[str, Any] = {}
    unique = list(dict.fromkeys(ids))
    columns = _read_columns(table, names)
    # The session's connection: Core rows need none of the ORM's execution machinery.
    connection = session.connection()
    for start in range(0, len(unique), _CHUNK):
        for row in connection.execute(select(*columns).where(in_tenant(table.c.tenant_id, tenant_id),
                                                             table.c.id.in_(unique[start:start + _CHUNK]))).all():
            found[row[0]] = convert(row)
    missing = [i for i in unique if i not in found]
    if missing:
        raise NotFound(f"{table.name[:-1]} {missing[0]} not found")
    return [found[i] for i in ids]


# --- rewards ------------------------------------------------------------------------------------------
_REWARD_COLUMNS = ("id", "tenant_id", "program_id", "referral_id", "recipient", "rule_key", "kind", "amount", "currency",
                   "status", "created_at", "advocate_id", "hold_until", "flags", "decided_by", "decision_comment",
                   "decided_at", "issued_at", "payout_reference")
_REWARD_VALUES = attrgetter(*_REWARD_COLUMNS)  # an ORM row's values, in that order


def _reward_from(v: Sequence[Any], money: dict[tuple[Any, str], Money] | None = None) -> Reward:
    """From the values of _REWARD_COLUMNS, in that order. `money`: Money already made, by (stored amount,
    currency); a batch read's rewards mostly share a few amounts, and Money is immutable."""
    (id_, tenant_id, program_id, referral_id, recipient, rule_key, kind, amount, currency, status, created_at,
     advocate_id, hold_until, flags, decided_by, decision_comment, decided_at, issued_at, payout_reference) = v
    if money is None:
        value = Money(Decimal(amount), currency)
    else:
        value = money.get((amount, currency))
        if value is None:
            value = money[(amount, currency)] = Money(Decimal(amount), currency)
    return Reward(
        id=id_, tenant_id=tenant_id, program_id=program_id, referral_id=referral_id,
        recipient=_enum(Recipient, recipient), rule_key=rule_key, kind=_enum(RewardKind, kind),
        amount=value, status=_enum(RewardStatus, status), created_at=created_at,
        advocate_id=advocate_id, hold_until=hold_until, flags=[Flag.from_dict(f) for f in flags] if flags else [],
        decided_by=decided_by, decision_comment=decision_comment, decided_at=decided_at,
        issued_at=issued_at, payout_reference=payout_reference,
    )


def _reward(row: m.RewardRow) -> Reward:
    return _reward_from(_REWARD_VALUES(row))


class RewardRepository(_Scoped):
    def add(self, reward: Reward) -> bool:
        """Insert unless a reward with the same identity exists. Returns whether it was inserted.

        The unique constraint on (referral, recipient, rule) is the last word: a concurrent worker that
        observed the same qualification gets False here, never a second reward."""
        row = m.RewardRow(id=reward.id, tenant_id=self.tenant_id, created_at=reward.created_at, program_id=reward.program_id,
                          referral_id=reward.referral_id, recipient=reward.recipient.value, rule_key=reward.rule_key,
                          kind=reward.kind.value)
        self._fill(row, reward)
        return self._add_unless_there(row)

    def _fill(self, row: m.RewardRow, r: Reward) -> None:
        row.advocate_id, row.amount, row.currency, row.status = r.advocate_id, r.amount.amount, r.amount.currency, r.status.value
        row.hold_until, row.flags = r.hold_until, [f.to_dict() for f in r.flags]
        row.decided_by, row.decision_comment, row.decided_at = r.decided_by, r.decision_comment, r.decided_at
        row.issued_at, row.payout_reference, row.updated_at = r.issued_at, r.payout_reference, _now()

    def save(self, reward: Reward) -> Reward:
        self._fill(self._one(m.RewardRow, reward.id), reward)
        self.session.flush()
        return reward

    def get(self, reward_id: str) -> Reward:
        return _reward(self._one(m.RewardRow, reward_id))

    def get_many(self, reward_ids: Sequence[str]) -> list[Reward]:
        """Read-only batch load (write-back): one query per 900 ids."""
        money: dict[tuple[Any, str], Money] = {}
        return _read_many(self.session, m.RewardRow.__table__, _REWARD_COLUMNS, self.tenant_id, reward_ids,
                          lambda v: _reward_from(v, money))

    def for_referral(self, referral_id: str) -> list[Reward]:
        rows = self.session.scalars(select(m.RewardRow).where(m.RewardRow.tenant_id == self.tenant_id, m.RewardRow.referral_id == referral_id))
        return [_reward(r) for r in rows]

    def for_referrals(self, referral_ids: Sequence[str]) -> dict[str, list[Reward]]:
        out: dict[str, list[Reward]] = {}
        for start in range(0, len(referral_ids), 900):
            for row in self.session.scalars(select(m.RewardRow).where(
                    in_tenant(m.RewardRow.tenant_id, self.tenant_id), m.RewardRow.referral_id.in_(referral_ids[start:start + 900]))):
                out.setdefault(row.referral_id, []).append(_reward(self._keep(row)))
        return out

    def add_many(self, rewards: Sequence[Reward]) -> list[Reward]:
        """Insert many; returns those inserted. One statement in the common case; if another worker
        raced us to any identity, fall back to one savepoint per reward so the others still land."""
        if not rewards:
            return []
        rows = []
        now = _now()  # one time for the statement: the datetime's text is then converted once, not per row
        for reward in rewards:
            row = {"id": reward.id, "version": 1, "tenant_id": self.tenant_id, "created_at": reward.created_at,
                   "program_id": reward.program_id, "referral_id": reward.referral_id, "recipient": reward.recipient._value_,
                   "rule_key": reward.rule_key, "kind": reward.kind._value_, "advocate_id": reward.advocate_id,
                   "amount": reward.amount.amount, "currency": reward.amount.currency, "status": reward.status._value_,
                   "hold_until": reward.hold_until, "flags": [f.to_dict() for f in reward.flags], "decided_by": reward.decided_by,
                   "decision_comment": reward.decision_comment, "decided_at": reward.decided_at, "issued_at": reward.issued_at,
                   "payout_reference": reward.payout_reference, "updated_at": now}
            rows.append(row)
        try:
            with self.session.begin_nested():
                insert_many(self.session, m.RewardRow.__table__, rows)
            return list(rewards)
        except IntegrityError:
            return [r for r in rewards if self.add(r)]

    def period_totals(self, advocate_id: str, rule_key: str, since: dt.datetime) -> tuple[dict[str, Decimal], int]:
        rows = self.session.execute(select(m.RewardRow.currency, func.sum(m.RewardRow.amount), func.count()).where(
            m.RewardRow.tenant_id == self.tenant_id, m.RewardRow.advocate_id == advocate_id, m.RewardRow.rule_key == rule_key,
            m.RewardRow.created_at >= since, m.RewardRow.status.not_in(["rejected", "cancelled"])).group_by(m.RewardRow.currency))
        totals, count = {}, 0
        for currency, total, n in rows:
            totals[currency] = Decimal(total or 0)
            count += int(n)
        return totals, count

    def period_totals_many(self, advocate_ids: Sequence[str], rule_key: str,
                           since: dt.datetime) -> dict[str, tuple[dict[str, Decimal], int]]:
        """period_totals for many advocates at once: {advocate id: ({currency: total}, count)}; advocates with no
        such reward are absent."""
        T = m.RewardRow.__table__
        ids = list(dict.fromkeys(advocate_ids))
        out: dict[str, tuple[dict[str, Decimal], int]] = {}
        for start in range(0, len(ids), 900):
            rows = self.session.execute(select(T.c.advocate_id, T.c.currency, func.sum(T.c.amount), func.count()).where(
                T.c.tenant_id == self.tenant_id, T.c.advocate_id.in_(ids[start:start + 900]), T.c.rule_key == rule_key,
                T.c.created_at >= since, T.c.status.not_in(["rejected", "cancelled"])).group_by(T.c.advocate_id, T.c.currency))
            for advocate_id, currency, total, n in rows:
                totals, count = out.get(advocate_id, ({}, 0))
                totals[currency] = Decimal(total or 0)
                out[advocate_id] = (totals, count + int(n))
        return out

    def list(self, *, status: str | None = None, program_id: str | None = None, referral_id: str | None = None,
             limit: int = 100, offset: int = 0) -> list[Reward]:
        q = self._filtered(select(m.RewardRow).where(m.RewardRow.tenant_id == self.tenant_id),
                           (m.RewardRow.status, status), (m.RewardRow.program_id, program_id),
                           (m.RewardRow.referral_id, referral_id))
        rows = self.session.scalars(q.order_by(m.RewardRow.created_at.desc(), m.RewardRow.id).limit(limit).offset(offset))
        return [_reward(r) for r in rows]

    def due_holds(self, now: dt.datetime, limit: int = 500) -> list[Reward]:
        rows = self.session.scalars(select(m.RewardRow).where(
            m.RewardRow.tenant_id == self.tenant_id, m.RewardRow.status == "pending_hold", m.RewardRow.hold_until <= now)
            .order_by(m.RewardRow.hold_until).limit(limit))
        return [_reward(r) for r in rows]


# --- audit --------------------------------------------------------------------------------------------
class AuditRepository(_Scoped):
    def append(self, entries: Iterable[AuditEntry]) -> None:
        self.append_rows([
            {"tenant_id": self.tenant_id, "entity_type": e.entity_type, "entity_id": e.entity_id, "action": e.action,
             "actor_kind": e.actor.kind.value, "actor_id": e.actor.id, "actor_label": e.actor.label, "at": e.at,
             "before": e.before, "after": e.after, "reason": e.reason}
            for e in entries
        ])

    def append_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Entries already as the table's rows (the unit of work builds them as changes are recorded): tenant_id,
        entity_type, entity_id, action, actor_kind, actor_id, actor_label, at, before, after, reason."""
        insert_many(self.session, m.AuditRow.__table__, rows)

    def list(self, *, entity_type: str | None = None, entity_id: str | None = None, actor_kind: str | None = None,
             since: dt.datetime | None = None, until: dt.datetime | None = None, limit: int = 200, offset: int = 0) -> list[AuditEntry]:
        q = select(m.AuditRow).where(m.AuditRow.tenant_id == self.tenant_id)
        if entity_type:
            q = q.where(m.AuditRow.entity_type == entity_type)
        if entity_id:
            q = q.where(m.AuditRow.entity_id == entity_id)
        if actor_kind:
            q = q.where(m.AuditRow.actor_kind == actor_kind)
        if since:
            q = q.where(m.AuditRow.at >= since)
        if until:
            q = q.where(m.AuditRow.at < until)
        rows = self.session.scalars(q.order_by(m.AuditRow.id.desc()).limit(limit).offset(offset))
        return [_audit_entry(r) for r in rows]

    def latest(self, entity_type: str, entity_id: str, action: str) -> AuditEntry | None:
        """The newest entry of one action on one entity (what routing found when it marked a duplicate)."""
        A = m.AuditRow
        row = self.session.scalar(select(A).where(A.tenant_id == self.tenant_id, A.entity_type == entity_type,
                                                  A.entity_id == entity_id, A.action == action).order_by(A.id.desc()).limit(1))
        return _audit_entry(row) if row is not None else None

    def entity_types(self) -> list[str]:
        """The kinds of entity the log holds (the log page's filter)."""
        return sorted(self.session.scalars(select(m.AuditRow.entity_type).where(m.AuditRow.tenant_id == self.tenant_id).distinct()))


def _audit_entry(r: m.AuditRow) -> AuditEntry:
    return AuditEntry(r.tenant_id, r.entity_type, r.entity_id, r.action, Actor(ActorKind(r.actor_kind), r.actor_id, r.actor_label),
                      r.at, r.before, r.after, r.reason, r.id)


# --- CRM record states -----------------------------------------------------------------------------
class CrmRecordRepository(_Scoped):
    """Newest known state of CRM records, read and written in batches (Core statements, no ORM rows)."""

    def load(self, connection_id: str, wanted: dict[str, Iterable[str]]) -> dict[tuple[str, str], RecordState]:
        T = m.CrmRecordRow.__table__
        out: dict[tuple[str, str], RecordState] = {}
        for obj, ids in wanted.items():
            ids = list(ids)
            for start in range(0, len(ids), 900):
                rows = self.session.execute(select(T.c.id, T.c.crm_id, T.c.fields, T.c.modified_at, T.c.deleted).where(
                    in_tenant(T.c.tenant_id, self.tenant_id), T.c.connection_id == connection_id, T.c.object_name == obj,
                    T.c.crm_id.in_(ids[start:start + 900])))
                for pk, crm_id, fields, modified_at, deleted in rows:
                    if modified_at is not None and modified_at.tzinfo is None:
                        modified_at = modified_at.replace(tzinfo=dt.timezone.utc)
                    out[(obj, crm_id)] = RecordState(pk, obj, crm_id, dict(fields or {}), modified_at, bool(deleted))
        return out

    def live_fields(self, connection_id: str, wanted: dict[str, Iterable[str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """{(object, id): fields} of the wanted records known and not deleted: load()'s answer as the write-back
        uses it, without the record states around it. Read-only: the dicts are not copied."""
        T = m.CrmRecordRow.__table__
        out: dict[tuple[str, str], dict[str, Any]] = {}
        connection = self.session.connection()
        columns = _read_columns(T, ("crm_id", "fields"))
        for obj, ids in wanted.items():
            ids = list(ids)
            for start in range(0, len(ids), _CHUNK):
                rows = connection.execute(select(*columns).where(
                    in_tenant(T.c.tenant_id, self.tenant_id), T.c.connection_id == connection_id, T.c.object_name == obj,
                    T.c.crm_id.in_(ids[start:start + _CHUNK]), T.c.deleted.is_(False))).all()
                for crm_id, fields in rows:
                    out[(obj, crm_id)] = fields if fields.__class__ is dict else dict(fields or {})
        return out

    def write(self, connection_id: str, states: Iterable[RecordState], now: dt.datetime) -> None:
        new = [s for s in states if s.pk is None]
        changed = [s for s in states if s.pk is not None and s.dirty]
        T = m.CrmRecordRow.__table__
        if new:
            insert_many(self.session, m.CrmRecordRow.__table__, [
                {"tenant_id": self.tenant_id, "connection_id": connection_id, "object_name": s.object, "crm_id": s.crm_id,
                 "fields": s.fields, "modified_at": s.modified_at, "deleted": s.deleted, "updated_at": now} for s in new])
        if changed:
            def statement():
                return update(T).where(T.c.id == bindparam("b_pk", type_=T.c.id.type)).values(
                    fields=bindparam("b_fields", type_=T.c.fields.type), modified_at=bindparam("b_mod", type_=T.c.modified_at.type),
                    deleted=bindparam("b_del", type_=T.c.deleted.type), updated_at=bindparam("b_now", type_=T.c.updated_at.type))

            execute_many(self.session, "crm_records.write", statement, [
                {"b_pk": s.pk, "b_fields": s.fields, "b_mod": s.modified_at, "b_del": s.deleted, "b_now": now} for s in changed])


# --- inbox of CRM pushes ------------------------------------------------------------------------------
class InboxRepository(_Scoped):
    """Pushed CRM changes (Outbound Messages, webhooks), stored once per (connection, delivery id)."""

    def add_new(self, connection_id: str, source: str, changes: Sequence[PushedChange], now: dt.datetime) -> int:
        """Store the changes not seen before; returns how many were new. A delivery arriving twice at once
        (two web workers) loses the race on the unique constraint and counts as seen."""
        E = m.CrmEventRow
        keys = list(dict.fromkeys(c.delivery_id[:200] for c in changes))
        seen: set[str] = set()
        for start in range(0, len(keys), 900):
            seen.update(self.session.scalars(select(E.dedupe_key).where(
                E.tenant_id == self.tenant_id, E.connection_id == connection_id, E.dedupe_key.in_(keys[start:start + 900]))))
        stored = 0
        for change in changes:
            key = change.delivery_id[:200]
            if key in seen:
                continue
            seen.add(key)
            stored += self._add_unless_there(E(
                tenant_id=self.tenant_id, connection_id=connection_id, source=source, dedupe_key=key,
                object_type=change.object[:40], object_id=change.id[:40], changed_at=change.changed_at,
                payload=change.payload, received_at=now, attempts=0))
        return stored

    def pending(self, connection_id: str, limit: int) -> list[InboxEntry]:
        E = m.CrmEventRow
        rows = self.session.execute(select(E.id, E.object_type, E.object_id, E.source).where(
            E.tenant_id == self.tenant_id, E.connection_id == connection_id, E.processed_at.is_(None))
            .order_by(E.id).limit(limit))
        return [InboxEntry(pk, obj, crm_id, source) for pk, obj, crm_id, source in rows]

    def mark_processed(self, pks: Sequence[int], at: dt.datetime) -> None:
        E = m.CrmEventRow
        for start in range(0, len(pks), 900):
            self.session.execute(update(E).where(E.tenant_id == self.tenant_id, E.id.in_(list(pks[start:start + 900])))
                                 .values(processed_at=at))

    def count(self, connection_id: str | None = None) -> int:
        E = m.CrmEventRow
        q = select(func.count()).select_from(E).where(E.tenant_id == self.tenant_id)
        if connection_id:
            q = q.where(E.connection_id == connection_id)
        return int(self.session.scalar(q) or 0)


# --- emails: templates and the outbox ------------------------------------------------------------------
class EmailTemplateRepository(_Scoped):
    """A program's overrides of the shipped notification emails."""

    def _row(self, program_id: str, event: str) -> m.EmailTemplateRow | None:
        T = m.EmailTemplateRow
        return self.session.scalar(select(T).where(T.tenant_id == self.tenant_id, T.program_id == program_id, T.event == event))

    def for_program(self, program_id: str) -> dict[str, tuple[str, str, dt.datetime]]:
        """{event: (subject, body, updated_at)} of the program's overrides."""
        T = m.EmailTemplateRow
        return {r.event: (r.subject, r.body, r.updated_at) for r in self.session.scalars(
            select(T).where(T.tenant_id == self.tenant_id, T.program_id == program_id))}

    def get(self, program_id: str, event: str) -> tuple[str, str] | None:
        row = self._row(program_id, event)
        return (row.subject, row.body) if row else None

    def put(self, template_id: str, program_id: str, event: str, subject: str, body: str, now: dt.datetime) -> None:
        """Create or replace the override (`template_id` is used when it is new)."""
        row = self._row(program_id, event)
        if row is None:
            row = m.EmailTemplateRow(id=template_id, tenant_id=self.tenant_id, program_id=program_id, event=event)
            self.session.add(row)
        row.subject, row.body, row.updated_at = subject, body, now

    def remove(self, program_id: str, event: str) -> None:
        row = self._row(program_id, event)
        if row is not None:
            self.session.delete(row)


def _outbox_dict(r: m.OutboxRow) -> dict[str, Any]:
    return {"id": r.id, "event": r.event, "entity_id": r.entity_id, "program_id": r.program_id, "to": r.to_address,
            "subject": r.subject, "body": r.body, "status": r.status, "transport": r.transport, "attempts": r.attempts,
            "error": r.error, "created_at": r.created_at, "sent_at": r.sent_at}


class OutboxRepository(_Scoped):
    """Every email of the tenant, stored before it is sent; `dedupe_key` makes each go out once."""

    def add_once(self, email_id: str, dedupe_key: str, *, event: str, entity_id: str, program_id: str | None,
                 to: str, subject: str, body: str, now: dt.datetime) -> str | None:
        """Store the email unless its dedupe key exists. Returns the id of a row that still needs delivering
        (new, or an earlier attempt waiting for a retry), else None."""
        existing = self.session.scalar(select(m.OutboxRow).where(m.OutboxRow.dedupe_key == dedupe_key))
        if existing is not None:
            if existing.tenant_id != self.tenant_id:
                return None
            return existing.id if existing.status in ("pending", "retrying") else None
        row = m.OutboxRow(id=email_id, tenant_id=self.tenant_id, dedupe_key=dedupe_key, event=event, entity_id=entity_id,
                          program_id=program_id, to_address=to, subject=subject, body=body, status="pending", attempts=0,
                          created_at=now)
        # Not stored: a concurrent job stored it first; that job delivers it.
        return row.id if self._add_unless_there(row) else None

    def claim(self, email_id: str) -> bool:
        """Mark a pending or retrying email as being sent (one attempt more); False if it is in no such state."""
        O = m.OutboxRow
        return bool(self.session.execute(update(O).where(
            O.id == email_id, O.tenant_id == self.tenant_id, O.status.in_(["pending", "retrying"]))
            .values(status="sending", attempts=O.attempts + 1)).rowcount)

    def get(self, email_id: str) -> dict[str, Any]:
        return _outbox_dict(self._one(m.OutboxRow, email_id, "email"))

    def finish(self, email_id: str, status: str, error: str | None, transport: str, sent_at: dt.datetime | None) -> None:
        O = m.OutboxRow
        self.session.execute(update(O).where(O.id == email_id, O.tenant_id == self.tenant_id).values(
            status=status, error=error, transport=transport, sent_at=sent_at))

    def list(self, *, event: str | None = None, status: str | None = None, limit: int = 100,
             offset: int = 0) -> list[dict[str, Any]]:
        O = m.OutboxRow
        return [_outbox_dict(r) for r in self._newest_first(O, [(O.event, event), (O.status, status)], limit, offset)]


# --- sync state, runs and the write-back queue ----------------------------------------------------------
class SyncStateRepository(_Scoped):
    """Per connection and key: a watermark (enrolment) or a checkpoint (the change cursor), so a restart resumes."""

    def _row(self, connection_id: str, key: str) -> m.SyncStateRow | None:
        row = self.session.get(m.SyncStateRow, (connection_id, key))
        return row if row is not None and row.tenant_id == self.tenant_id else None

    def _row_for_write(self, connection_id: str, key: str, now: dt.datetime) -> m.SyncStateRow:
        row = self._row(connection_id, key)
        if row is None:
            row = m.SyncStateRow(connection_id=connection_id, object_name=key, tenant_id=self.tenant_id, checkpoint={},
                                 updated_at=now)
            self.session.add(row)
        return row

    def watermark(self, connection_id: str, key: str) -> dt.datetime | None:
        row = self._row(connection_id, key)
        return row.watermark if row else None

    def set_watermark(self, connection_id: str, key: str, value: dt.datetime) -> None:
        row = self._row_for_write(connection_id, key, value)
        row.watermark = value
        row.updated_at = value

    def checkpoint(self, connection_id: str, key: str) -> dict[str, Any]:
        row = self._row(connection_id, key)
        return dict(row.checkpoint or {}) if row else {}

    def set_checkpoint(self, connection_id: str, key: str, checkpoint: dict[str, Any], now: dt.datetime) -> None:
        row = self._row_for_write(connection_id, key, now)
        row.checkpoint = checkpoint
        row.updated_at = now


class SyncRunRepository(_Scoped):
    """One row per sync run: started, then finished with its status and figures."""

    def start(self, run_id: str, connection_id: str, kind: str, started_at: dt.datetime) -> None:
        self.session.add(m.SyncRunRow(id=run_id, tenant_id=self.tenant_id, connection_id=connection_id, kind=kind,
                                      status="running", started_at=started_at, stats={}))

    def finish(self, run_id: str, *, status: str, finished_at: dt.datetime, stats: dict[str, Any], api_calls: int,
               error: str | None) -> None:
        self.session.execute(update(m.SyncRunRow).where(m.SyncRunRow.id == run_id, m.SyncRunRow.tenant_id == self.tenant_id)
                             .values(status=status, finished_at=finished_at, stats=stats, api_calls=api_calls, error=error))

    def recent(self, connection_id: str, limit: int) -> list[dict[str, Any]]:
        """A connection's latest runs, newest first (the sync log)."""
        S = m.SyncRunRow
        rows = self.session.scalars(select(S).where(S.tenant_id == self.tenant_id, S.connection_id == connection_id)
                                    .order_by(S.started_at.desc(), S.id).limit(limit))
        return [{"id": r.id, "kind": r.kind, "status": r.status, "started_at": r.started_at, "finished_at": r.finished_at,
                 "stats": dict(r.stats or {}), "api_calls": r.api_calls, "error": r.error} for r in rows]


class PendingWriteRepository(_Scoped):
    """The write-back queue (filled by UnitOfWork.mark_stale) and the per-record log of failed writes."""

    def queued(self, connection_id: str, limit: int) -> Iterable[tuple[int, str, str]]:
        """(row id, entity type, entity id) in queue order, streamed."""
        P = m.PendingWriteRow
        return self.session.execute(select(P.id, P.entity_type, P.entity_id).where(
            P.tenant_id == self.tenant_id, P.connection_id == connection_id).order_by(P.id).limit(limit))

    def queued_with_parents(self, connection_id: str, limit: int) -> Iterable[tuple[int, str, str, str | None]]:
        """queued()'s rows, each with its reward's referral id (None for a referral, or a reward no longer stored):
        one join instead of asking for the rewards by id. Streamed."""
        P, R = m.PendingWriteRow.__table__, m.RewardRow.__table__
        reward = and_(P.c.entity_type == "reward", R.c.id == P.c.entity_id, in_tenant(R.c.tenant_id, self.tenant_id))
        result = self.session.connection().execute(
            select(P.c.id, P.c.entity_type, P.c.entity_id, R.c.referral_id).select_from(P.outerjoin(R, reward))
            .where(P.c.tenant_id == self.tenant_id, P.c.connection_id == connection_id).order_by(P.c.id).limit(limit))
        return chain.from_iterable(result.partitions(5_000))

    def remove(self, row_ids: Sequence[int]) -> None:
        """By row id: an entity re-queued meanwhile has a new row, which stays. Runs of consecutive ids go by range
        (every id of such a run is one asked for, so the range holds no other row); the rest by IN (...)."""
        P = m.PendingWriteRow
        ids = sorted(row_ids)
        single: list[int] = []
        start = 0
        while start < len(ids):
            end = start
            while end + 1 < len(ids) and ids[end + 1] == ids[end] + 1:
                end += 1
            if end - start >= 8:
                # >= and <= rather than BETWEEN: the session can apply them to loaded rows without a RETURNING fetch.
                self.session.execute(delete(P).where(P.tenant_id == self.tenant_id, P.id >= ids[start], P.id <= ids[end]))
            else:
                single.extend(ids[start:end + 1])
            start = end + 1
        for start in range(0, len(single), _CHUNK):
            self.session.execute(delete(P).where(P.tenant_id == self.tenant_id, P.id.in_(single[start:start + _CHUNK])))

    def record_failure(self, row_id: int, connection_id: str, entity_type: str, entity_id: str, message: str,
                       at: dt.datetime) -> None:
        P = m.PendingWriteRow
        self.session.execute(update(P).where(P.id == row_id, P.tenant_id == self.tenant_id).values(
            attempts=P.attempts + 1, last_error=message[:2000]))
        self.session.add(m.RecordSyncRow(tenant_id=self.tenant_id, connection_id=connection_id, entity_type=entity_type,
                                         entity_id=entity_id, operation="mirror", status="failed",
                                         message=message[:2000], at=at))

    def counts(self, connection_id: str) -> tuple[int, int]:
        """(queued, of which failed at least once) for one connection."""
        P = m.PendingWriteRow
        queued = self.session.scalar(select(func.count()).select_from(P).where(
            P.tenant_id == self.tenant_id, P.connection_id == connection_id)) or 0
        failed = self.session.scalar(select(func.count()).select_from(P).where(
            P.tenant_id == self.tenant_id, P.connection_id == connection_id, P.attempts > 0)) or 0
        return int(queued), int(failed)

    def most_retried(self, connection_id: str, limit: int) -> list[dict[str, Any]]:
        """The queue as the sync log shows it: the writes that failed most often first."""
        P = m.PendingWriteRow
        rows = self.session.scalars(select(P).where(P.tenant_id == self.tenant_id, P.connection_id == connection_id)
                                    .order_by(P.attempts.desc(), P.id).limit(limit))
        return [{"id": r.id, "entity_type": r.entity_type, "entity_id": r.entity_id, "enqueued_at": r.enqueued_at,
                 "attempts": r.attempts, "last_error": r.last_error} for r in rows]

    def write_log(self, connection_id: str, limit: int) -> list[dict[str, Any]]:
        """The per-record log of writes to the CRM, newest first."""
        L = m.RecordSyncRow
        rows = self.session.scalars(select(L).where(L.tenant_id == self.tenant_id, L.connection_id == connection_id)
                                    .order_by(L.at.desc(), L.id.desc()).limit(limit))
        return [{"id": r.id, "entity_type": r.entity_type, "entity_id": r.entity_id, "operation": r.operation,
                 "crm_object": r.crm_object, "crm_id": r.crm_id, "status": r.status, "message": r.message, "at": r.at}
                for r in rows]

    def requeue_failed(self, connection_id: str, now: dt.datetime, row_ids: Sequence[int] | None = None) -> int:
        """Put failed writes (all, or the given rows) back at the end of the queue with no attempts; how many.

        Each is replaced by a fresh row, as UnitOfWork.mark_stale does, so a write-back already in flight
        deletes only the row it read."""
        P = m.PendingWriteRow
        q = select(P.id, P.entity_type, P.entity_id).where(P.tenant_id == self.tenant_id, P.connection_id == connection_id,
                                                           P.attempts > 0)
        if row_ids is not None:
            q = q.where(P.id.in_(list(row_ids)))
        failed = self.session.execute(q).all()
        for row_id, entity_type, entity_id in failed:
            self.session.execute(delete(P).where(P.id == row_id))
            self.session.add(P(tenant_id=self.tenant_id, connection_id=connection_id, entity_type=entity_type,
                               entity_id=entity_id, enqueued_at=now, attempts=0))
        return len(failed)


# --- operator tasks -------------------------------------------------------------------------------------
class SealedSecrets:
    """Every encrypted secret of every tenant, for the operator's key rotation (deliberately cross-tenant)."""

    def __init__(self, session: Session):
        self.session = session

    def reseal(self, reseal: Callable[[str], str], setting_keys: Sequence[str]) -> int:
        """Re-encrypt CRM credentials, the named connection settings and webhook signing secrets with `reseal`;
        returns how many were rewritten."""
        count = 0
        for row in self.session.scalars(select(m.ConnectionRow)):
            if row.credentials:
                row.credentials = reseal(row.credentials)
                count += 1
            for key in setting_keys:
                if (row.settings or {}).get(key):
                    row.settings = {**row.settings, key: reseal(row.settings[key])}
                    count += 1
        for endpoint in self.session.scalars(select(m.WebhookEndpointRow)):
            endpoint.secret = reseal(endpoint.secret)
            count += 1
        return count


# --- the public form's submissions -------------------------------------------------------------------------
class IntakeRepository(_Scoped):
    """Stored form posts of one tenant (written by the form's hot path, adapters/db/hot.py)."""

    def mark_processed(self, intake_id: str, at: dt.datetime, referral_id: str | None, refused_reason: str | None) -> None:
        """Record how a waiting submission ended; one already processed is left as it is."""
        I = m.ReferralIntakeRow
        self.session.execute(update(I).where(I.id == intake_id, I.tenant_id == self.tenant_id, I.processed_at.is_(None))
                             .values(processed_at=at, referral_id=referral_id, refused_reason=refused_reason))


class IntakeBacklog:
    """Form posts of every tenant, for the worker that drains them (deliberately cross-tenant: each row names its
    tenant, and the capture that follows runs scoped to it)."""

    def __init__(self, session: Session):
        self.session = session

    def waiting(self, received_before: dt.datetime, limit: int) -> list[tuple[str, str]]:
        """(tenant id, intake id) of unprocessed posts received before the given time, oldest first."""
        I = m.ReferralIntakeRow
        rows = self.session.execute(select(I.tenant_id, I.id).where(I.processed_at.is_(None), I.received_at <= received_before)
                                    .order_by(I.received_at).limit(limit))
        return [(t, i) for t, i in rows]

    def prune(self, processed_before: dt.datetime) -> int:
        I = m.ReferralIntakeRow
        deleted = self.session.execute(delete(I).where(I.processed_at.is_not(None), I.processed_at < processed_before)).rowcount
        return int(deleted or 0)

    def get(self, intake_id: str) -> dict[str, Any] | None:
        row = self.session.get(m.ReferralIntakeRow, intake_id)
        if row is None:
            return None
        return {"id": row.id, "tenant_id": row.tenant_id, "code": row.code, "friend": row.friend,
                "consent_version": row.consent_version, "received_at": row.received_at,
                "processed_at": row.processed_at, "referral_id": row.referral_id, "refused_reason": row.refused_reason}


class RejectedSubmissionLog:
    """Public form posts the bot checks refused, of every tenant (deliberately cross-tenant: a refused post may
    name no tenant, or a code that does not exist)."""

    def __init__(self, session: Session):
        self.session = session

    def add(self, *, tenant_id: str | None, form: str, code: str | None, reason: str, client: str | None,
            detail: dict[str, Any], at: dt.datetime) -> None:
        self.session.add(m.RejectedSubmissionRow(tenant_id=tenant_id, form=form, code=code, reason=reason, client=client,
                                                 detail=detail, at=at))

    def recent(self, tenant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; only one tenant's when `tenant_id` is given."""
        S = m.RejectedSubmissionRow
        q = select(S)
        if tenant_id is not None:
            q = q.where(S.tenant_id == tenant_id)
        rows = self.session.scalars(q.order_by(S.id.desc()).limit(limit))
        return [{"id": r.id, "tenant_id": r.tenant_id, "form": r.form, "code": r.code, "reason": r.reason,
                 "detail": r.detail, "at": r.at} for r in rows]


# --- cross-tenant resolution ----------------------------------------------------------------------------
class Directory:
    """The only look-ups that do not start from a tenant: they find which tenant a public input belongs to."""

    def __init__(self, session: Session):
        self.session = session

    def tenant_for_code(self, code: str) -> str | None:
        return self.session.scalar(select(m.AdvocateRow.tenant_id).where(m.AdvocateRow.code == code))

    def codes_taken(self, codes: Sequence[str]) -> set[str]:
        taken: set[str] = set()
        for start in range(0, len(codes), 900):
            taken.update(self.session.scalars(select(m.AdvocateRow.code).where(m.AdvocateRow.code.in_(codes[start:start + 900]))))
        return taken

    def code_taken(self, code: str) -> bool:
        return self.session.scalar(select(m.AdvocateRow.id).where(m.AdvocateRow.code == code)) is not None

    def api_key(self, prefix: str) -> tuple[str, str, str] | None:
        """(tenant_id, key_id, key_hash) of an unrevoked key."""
        row = self.session.scalar(select(m.ApiKeyRow).where(m.ApiKeyRow.prefix == prefix, m.ApiKeyRow.revoked_at.is_(None)))
        return (row.tenant_id, row.id, row.key_hash) if row else None

    def touch_api_key(self, key_id: str, at: dt.datetime) -> None:
        self.session.execute(update(m.ApiKeyRow).where(m.ApiKeyRow.id == key_id).values(last_used_at=at))

    def tenant_for_connection(self, connection_id: str) -> str | None:
        return self.session.scalar(select(m.ConnectionRow.tenant_id).where(m.ConnectionRow.id == connection_id))

    def active_connections(self) -> list[tuple[str, str]]:
        """(tenant_id, connection_id) of every active connection, for the scheduler."""
        return [tuple(row) for row in self.session.execute(select(m.ConnectionRow.tenant_id, m.ConnectionRow.id).where(m.ConnectionRow.status == "active"))]

    def tenants_with_due_holds(self, now: dt.datetime) -> list[str]:
        return list(self.session.scalars(select(m.RewardRow.tenant_id).where(
            m.RewardRow.status == "pending_hold", m.RewardRow.hold_until <= now).distinct()))

    def tenant_for_user_email(self, email: str) -> list[tuple[str, str]]:
        return [tuple(row) for row in self.session.execute(select(m.UserRow.tenant_id, m.UserRow.id).where(m.UserRow.email == email.lower()))]

    def users_for_salesforce_identity(self, org_id: str, user_id: str) -> list[tuple[str, str]]:
        return [tuple(row) for row in self.session.execute(select(m.UserRow.tenant_id, m.UserRow.id).where(
            m.UserRow.salesforce_org_id == org_id, m.UserRow.salesforce_user_id == user_id))]

    def tenants_with_unlinked_advocates(self) -> list[str]:
        """Tenants with form/API advocates of CRM-connected programs not yet matched to a CRM record."""
        A, P, C = m.AdvocateRow, m.ProgramRow, m.ConnectionRow
        return list(self.session.scalars(select(A.tenant_id).join(P, P.id == A.program_id).join(C, C.id == P.connection_id).where(
            A.crm_id.is_(None), A.email.is_not(None), C.status == ConnectionStatus.ACTIVE.value).distinct()))

    def active_advocates_by_email(self, email: str, limit: int = 20) -> list[tuple[str, str]]:
        """(tenant_id, advocate_id) of the active enrolments of an address (the status-link request form)."""
        A = m.AdvocateRow
        return [tuple(row) for row in self.session.execute(select(A.tenant_id, A.id).where(
            A.email == email, A.active.is_(True)).limit(limit))]

    def emails_due(self, created_before: dt.datetime, limit: int) -> list[tuple[str, str]]:
        """(tenant_id, outbox id) of emails still pending or retrying, oldest first (the sweep re-queues them)."""
        O = m.OutboxRow
        return [tuple(row) for row in self.session.execute(select(O.tenant_id, O.id).where(
            O.status.in_(["pending", "retrying"]), O.created_at <= created_before).order_by(O.created_at).limit(limit))]

    def webhooks_due(self, due_before: dt.datetime, limit: int) -> list[tuple[str, str]]:
        """(tenant_id, delivery id) of webhook deliveries not finished whose next attempt was due before then,
        soonest first (the sweep re-queues them)."""
        W = m.WebhookDeliveryRow
        return [tuple(row) for row in self.session.execute(select(W.tenant_id, W.id).where(
            W.status.in_(["pending", "retrying", "sending"]), W.next_attempt_at <= due_before)
            .order_by(W.next_attempt_at).limit(limit))]

    def tenants_with_pending_work(self) -> list[str]:
        q1 = select(m.ReferralRow.tenant_id).where(m.ReferralRow.status == "captured").distinct()
        return list(self.session.scalars(q1))


def _narrowed(q: Any, conditions: Sequence[tuple[Any, Any]], when: Any, since: dt.datetime | None,
              until: dt.datetime | None) -> Any:
    """`q` with each (condition, value) applied when its value was given, and `when` within [since, until)."""
    for condition, value in conditions:
        if value:
            q = q.where(condition)
    if since:
        q = q.where(when >= since)
    if until:
        q = q.where(when < until)
    return q


class ReportRepository(_Scoped):
    """The facts the reports group and count, as plain rows streamed to the caller; optional filters narrow
    each to a program, a CRM owner and a time range [since, until)."""

    def enrolments(self, *, program_id: str | None = None, since: dt.datetime | None = None,
                   until: dt.datetime | None = None) -> Iterable[tuple[str, str, dt.datetime]]:
        """(program id, advocate id, enrolled at) per advocate enrolled in the range."""
        A = m.AdvocateRow
        q = select(A.program_id, A.id, A.enrolled_at).where(A.tenant_id == self.tenant_id)
        return self.session.execute(_narrowed(q, [(A.program_id == program_id, program_id)], A.enrolled_at, since, until))

    def referrals(self, *, program_id: str | None = None, owner_id: str | None = None, since: dt.datetime | None = None,
                  until: dt.datetime | None = None) -> Iterable[tuple[Any, ...]]:
        """(program id, advocate id, CRM owner id, captured, routed, qualified at, status) per referral captured
        in the range."""
        R = m.ReferralRow
        q = select(R.program_id, R.advocate_id, R.crm_owner_id, R.captured_at, R.routed_at, R.qualified_at, R.status).where(
            R.tenant_id == self.tenant_id)
        return self.session.execute(_narrowed(
            q, [(R.program_id == program_id, program_id), (R.crm_owner_id == owner_id, owner_id)], R.captured_at, since, until))

    def issued_rewards(self, *, program_id: str | None = None, owner_id: str | None = None,
                       since: dt.datetime | None = None, until: dt.datetime | None = None) -> Iterable[tuple[Any, ...]]:
        """(program id, advocate id, referral id, issued at, amount, currency) per reward issued in the range;
        with `owner_id`, only rewards of referrals that owner holds."""
        R, W = m.ReferralRow, m.RewardRow
        q = select(W.program_id, W.advocate_id, W.referral_id, W.issued_at, W.amount, W.currency).where(
            W.tenant_id == self.tenant_id, W.status == "issued")
        held_by_owner = W.referral_id.in_(select(R.id).where(R.tenant_id == self.tenant_id, R.crm_owner_id == owner_id))
        return self.session.execute(_narrowed(
            q, [(W.program_id == program_id, program_id), (held_by_owner, owner_id)], W.issued_at, since, until))

    def referral_owners(self) -> dict[str, str | None]:
        """The CRM owner of every referral, by referral id (rewards grouped by owner)."""
        R = m.ReferralRow
        return dict(self.session.execute(select(R.id, R.crm_owner_id).where(R.tenant_id == self.tenant_id)).all())


class AttentionRepository(_Scoped):
    """Counts behind the dashboard's "needs attention" list (grouped counts, no rows)."""

    def pending_review(self) -> int:
        rewards = self.session.scalar(select(func.count()).select_from(m.RewardRow).where(
            m.RewardRow.tenant_id == self.tenant_id, m.RewardRow.status == "pending_review")) or 0
        duplicates = self.session.scalar(select(func.count()).select_from(m.ReferralRow).where(
            m.ReferralRow.tenant_id == self.tenant_id, m.ReferralRow.status == "duplicate")) or 0
        return int(rewards) + int(duplicates)

    def failed_webhook_deliveries(self, since: dt.datetime) -> int:
        W = m.WebhookDeliveryRow
        return int(self.session.scalar(select(func.count()).select_from(W).where(
            W.tenant_id == self.tenant_id, W.status == "failed", W.created_at >= since)) or 0)

    def failed_crm_writes(self) -> int:
        P = m.PendingWriteRow
        return int(self.session.scalar(select(func.count()).select_from(P).where(
            P.tenant_id == self.tenant_id, P.attempts > 0)) or 0)

    def approved_not_issued(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(m.RewardRow).where(
            m.RewardRow.tenant_id == self.tenant_id, m.RewardRow.status == "approved")) or 0)
