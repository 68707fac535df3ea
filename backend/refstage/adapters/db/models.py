"""SQLAlchemy tables. Constraints here back the domain's guarantees; the domain never imports this."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both SQLite (which stores naive text) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    # On SQLite, bind_processor and result_processor below replace process_bind_param/process_result_value
    # and the impl's own processors (SQLAlchemy advises TypeDecorators against overriding these; it is done on
    # purpose, for speed). They reproduce DATETIME's default storage format exactly: tests check it against
    # SQLAlchemy's own conversion, so a change of impl or storage format would be caught. process_bind_param
    # still serves SQL rendered with literal values.
    def bind_processor(self, dialect: Any) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        utc = dt.timezone.utc
        # Texts of recent values, by identity: a big sync binds millions of datetimes, most of them one of a few
        # `now`s again. A dict, not a single last value: one processor serves every datetime column of a row.
        recent: dict[int, tuple[dt.datetime, str]] = {}

        def process(value: dt.datetime | None) -> str | None:
            # The text SQLAlchemy's SQLite DATETIME stores ('YYYY-MM-DD HH:MM:SS.ffffff', naive UTC), in one step.
            if value is None:
                return None
            seen = recent.get(id(value))
            if seen is not None and seen[0] is value:
                return seen[1]
            tz = value.tzinfo
            if tz is None:
                raise ValueError("naive datetime given to the database")
            text = (value if tz is utc else value.astimezone(utc)).replace(tzinfo=None).isoformat(" ", "microseconds")
            if len(recent) >= 64:
                recent.clear()
            recent[id(value)] = (value, text)  # the value itself is kept: its id cannot be reused meanwhile
            return text

        return process

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        fallback = super().result_processor(dialect, coltype)
        utc = dt.timezone.utc
        recent: dict[str, dt.datetime] = {}  # as in bind_processor: one processor reads every datetime column

        def process(value: str | None) -> dt.datetime | None:
            # The stored text straight to an aware datetime (batch reads convert hundreds of thousands of them,
            # many the same); anything fromisoformat does not read goes the usual way.
            if value is None:
                return None
            parsed = recent.get(value)
            if parsed is not None:
                return parsed
            try:
                parsed = dt.datetime.fromisoformat(value)
            except (TypeError, ValueError):
                return fallback(value)
            parsed = parsed.replace(tzinfo=utc) if parsed.tzinfo is None else parsed.astimezone(utc)
            if len(recent) >= 64:
                recent.clear()
            recent[value] = parsed
            return parsed

        return process

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


ID = String(36)
Money = Numeric(18, 2)


class TenantRow(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime]
    # Company identity for public pages and emails; locale and time zone for the console (0004_h).
    display_name: Mapped[str | None] = mapped_column(String(200))
    logo_url: Mapped[str | None] = mapped_column(String(500))
    brand_color: Mapped[str | None] = mapped_column(String(7))
    locale: Mapped[str | None] = mapped_column(String(20))
    time_zone: Mapped[str | None] = mapped_column(String(64))


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    salesforce_user_id: Mapped[str | None] = mapped_column(String(18))
    salesforce_org_id: Mapped[str | None] = mapped_column(String(18))
    created_at: Mapped[dt.datetime]


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]


class ConnectionRow(Base):
    __tablename__ = "crm_connections"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "external_org_id"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # salesforce | pipedrive
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(30))  # active | reconnect_required | disconnected
    external_org_id: Mapped[str | None] = mapped_column(String(64))
    instance_url: Mapped[str | None] = mapped_column(String(500))
    login_host: Mapped[str | None] = mapped_column(String(500))
    external_user_id: Mapped[str | None] = mapped_column(String(64))
    external_username: Mapped[str | None] = mapped_column(String(254))
    credentials: Mapped[str | None] = mapped_column(Text)  # encrypted JSON (tokens)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status_message: Mapped[str | None] = mapped_column(Text)
    last_sync_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class ProgramRow(Base):
    __tablename__ = "programs"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64))
    connection_id: Mapped[str | None] = mapped_column(ForeignKey("crm_connections.id"))
    status: Mapped[str] = mapped_column(String(20))
    enrolment: Mapped[dict[str, Any]]
    rule: Mapped[dict[str, Any]]
    reward_rules: Mapped[list[Any]]
    review_policy: Mapped[dict[str, Any]]
    holding_days: Mapped[int] = mapped_column(Integer, default=0)
    owner_name: Mapped[str | None] = mapped_column(String(200))
    owner_email: Mapped[str | None] = mapped_column(String(254))
    routing: Mapped[dict[str, Any]]
    landing: Mapped[dict[str, Any]]
    allow_self_enrolment: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class AdvocateRow(Base):
    __tablename__ = "advocates"
    __table_args__ = (
        Index("uq_advocates_program_crm", "program_id", "crm_object", "crm_id", unique=True,
              sqlite_where=text("crm_id IS NOT NULL"), postgresql_where=text("crm_id IS NOT NULL")),
        Index("uq_advocates_program_email", "program_id", "email", unique=True,
              sqlite_where=text("crm_id IS NULL AND email IS NOT NULL"),
              postgresql_where=text("crm_id IS NULL AND email IS NOT NULL")),
        Index("ix_advocates_pending_link", "program_id", "link_written_at"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    code: Mapped[str] = mapped_column(String(16), unique=True)
    source: Mapped[str] = mapped_column(String(40))
    crm_object: Mapped[str | None] = mapped_column(String(40))
    crm_id: Mapped[str | None] = mapped_column(String(40))
    crm_contact_id: Mapped[str | None] = mapped_column(String(40))
    crm_account_id: Mapped[str | None] = mapped_column(String(40))
    link_written_at: Mapped[dt.datetime | None]
    enrolled_at: Mapped[dt.datetime]
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ReferralRow(Base):
    __tablename__ = "referrals"
    __table_args__ = (
        Index("uq_referrals_lead", "connection_id", "lead_id", unique=True,
              sqlite_where=text("lead_id IS NOT NULL"), postgresql_where=text("lead_id IS NOT NULL")),
        Index("uq_referrals_opportunity", "connection_id", "opportunity_id", unique=True,
              sqlite_where=text("opportunity_id IS NOT NULL"), postgresql_where=text("opportunity_id IS NOT NULL")),
        Index("uq_referrals_deal", "connection_id", "deal_id", unique=True,
              sqlite_where=text("deal_id IS NOT NULL"), postgresql_where=text("deal_id IS NOT NULL")),
        Index("uq_referrals_idempotency", "tenant_id", "idempotency_key", unique=True,
              sqlite_where=text("idempotency_key IS NOT NULL"), postgresql_where=text("idempotency_key IS NOT NULL")),
        Index("ix_referrals_tenant_status", "tenant_id", "status"),
        Index("ix_referrals_advocate_captured", "advocate_id", "captured_at"),
        Index("ix_referrals_contact", "connection_id", "contact_id"),
        Index("ix_referrals_account", "connection_id", "account_id"),
        Index("ix_referrals_person", "connection_id", "person_id"),
        Index("ix_referrals_program_email", "program_id", "friend_canonical_email"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    advocate_id: Mapped[str] = mapped_column(ForeignKey("advocates.id", ondelete="CASCADE"))
    connection_id: Mapped[str | None] = mapped_column(ForeignKey("crm_connections.id"))
    friend_name: Mapped[str] = mapped_column(String(200))
    friend_email: Mapped[str] = mapped_column(String(254))
    friend_canonical_email: Mapped[str] = mapped_column(String(254))
    friend_company: Mapped[str | None] = mapped_column(String(200))
    friend_phone: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(30))
    consent_at: Mapped[dt.datetime]
    consent_version: Mapped[str] = mapped_column(String(40))
    captured_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(20))
    status_reason: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list[Any]] = mapped_column(default=list)
    lead_id: Mapped[str | None] = mapped_column(String(40))
    contact_id: Mapped[str | None] = mapped_column(String(40))
    account_id: Mapped[str | None] = mapped_column(String(40))
    opportunity_id: Mapped[str | None] = mapped_column(String(40))
    person_id: Mapped[str | None] = mapped_column(String(40))
    deal_id: Mapped[str | None] = mapped_column(String(40))
    crm_owner_id: Mapped[str | None] = mapped_column(String(40))
    routed_at: Mapped[dt.datetime | None]
    qualified_at: Mapped[dt.datetime | None]
    rewarded_at: Mapped[dt.datetime | None]
    last_observed_at: Mapped[dt.datetime | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime]
    # Optimistic locking: two workers moving the same referral cannot both win silently.
    __mapper_args__ = {"version_id_col": version}


class RewardRow(Base):
    __tablename__ = "rewards"
    __table_args__ = (
        UniqueConstraint("referral_id", "recipient", "rule_key", name="uq_rewards_identity"),
        Index("ix_rewards_tenant_status", "tenant_id", "status"),
        Index("ix_rewards_advocate_created", "advocate_id", "rule_key", "created_at"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    advocate_id: Mapped[str | None] = mapped_column(ForeignKey("advocates.id"))
    recipient: Mapped[str] = mapped_column(String(20))
    rule_key: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    hold_until: Mapped[dt.datetime | None]
    flags: Mapped[list[Any]] = mapped_column(default=list)
    decided_by: Mapped[str | None] = mapped_column(String(254))
    decision_comment: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[dt.datetime | None]
    issued_at: Mapped[dt.datetime | None]
    payout_reference: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    __mapper_args__ = {"version_id_col": version}


class AuditRow(Base):
    """Append-only: the migration adds triggers that refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_entity", "tenant_id", "entity_type", "entity_id"),
        Index("ix_audit_tenant_at", "tenant_id", "at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    entity_type: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[str] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(60))
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_label: Mapped[str] = mapped_column(String(254), default="")
    at: Mapped[dt.datetime]
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)


class CrmEventRow(Base):
    """Durable inbox for pushed CRM changes (Outbound Messages, webhooks): deduped, then processed."""

    __tablename__ = "crm_events"
    __table_args__ = (
        UniqueConstraint("connection_id", "dedupe_key", name="uq_crm_events_dedupe"),
        Index("ix_crm_events_pending", "processed_at", "received_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("crm_connections.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(40))
    changed_at: Mapped[dt.datetime | None]
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[dt.datetime]
    processed_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class SyncRunRow(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_connection", "connection_id", "started_at"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("crm_connections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))  # sync | enrol | route | writeback
    status: Mapped[str] = mapped_column(String(20))  # running | succeeded | failed | partial
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    api_calls: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class SyncStateRow(Base):
    """Per connection and object: watermark and any in-flight Bulk job, so a restart resumes."""

    __tablename__ = "sync_state"
    connection_id: Mapped[str] = mapped_column(ForeignKey("crm_connections.id", ondelete="CASCADE"), primary_key=True)
    object_name: Mapped[str] = mapped_column(String(60), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    watermark: Mapped[dt.datetime | None]
    last_id: Mapped[str | None] = mapped_column(String(40))
    checkpoint: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[dt.datetime]


class RecordSyncRow(Base):
    """Per-record sync log: what was written to or read from the CRM, and how it ended."""

    __tablename__ = "record_sync_log"
    __table_args__ = (
        Index("ix_record_sync_entity", "tenant_id", "entity_type", "entity_id"),
        Index("ix_record_sync_connection", "connection_id", "at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    connection_id: Mapped[str] = mapped_column(ForeignKey("crm_connections.id", ondelete="CASCADE"))
    entity_type: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[str] = mapped_column(String(36))
    operation: Mapped[str] = mapped_column(String(40))
    crm_object: Mapped[str | None] = mapped_column(String(60))
    crm_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))  # ok | retrying | failed
    message: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime]


class PendingWriteRow(Base):
    """Entities whose CRM mirror is out of date. A write-back job drains it; re-queueing is harmless."""

    __tablename__ = "pending_writes"
    # AUTOINCREMENT (SQLite): the write-back deletes the rows it read by id, so an id must never come back
    # (migration 0005).
    __table_args__ = (UniqueConstraint("connection_id", "entity_type", "entity_id", name="uq_pending_writes_entity"),
                      {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("crm_connections.id", ondelete="CASCADE"))
    entity_type: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[str] = mapped_column(String(36))
    enqueued_at: Mapped[dt.datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class CrmRecordRow(Base):
    """The latest known state of each CRM record linked to a referral: the rule's snapshot, and the
    guard against out-of-order deliveries (an older change never overwrites a newer one)."""

    __tablename__ = "crm_records"
    __table_args__ = (UniqueConstraint("connection_id", "object_name", "crm_id", name="uq_crm_records_identity"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("crm_connections.id", ondelete="CASCADE"))
    object_name: Mapped[str] = mapped_column(String(60))
    crm_id: Mapped[str] = mapped_column(String(40))
    fields: Mapped[dict[str, Any]]
    modified_at: Mapped[dt.datetime | None]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime]


# --- public pages, notifications and outbound webhooks (migration 0002) ---------------------------
class EmailTemplateRow(Base):
    """A program's override of one notification email; the shipped default applies when absent."""

    __tablename__ = "email_templates"
    __table_args__ = (UniqueConstraint("program_id", "event", name="uq_email_templates_program_event"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime]


class OutboxRow(Base):
    """Every email Refstage sends: written first, then delivered over SMTP or kept here (no SMTP).
    `dedupe_key` makes an event's email go out once however often its job runs."""

    __tablename__ = "email_outbox"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_email_outbox_dedupe"),
        Index("ix_email_outbox_tenant_created", "tenant_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str] = mapped_column(String(36))
    program_id: Mapped[str | None] = mapped_column(String(36))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))  # pending | sending | sent | stored | failed
    transport: Mapped[str | None] = mapped_column(String(20))  # smtp | outbox
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]


class WebhookEndpointRow(Base):
    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    secret: Mapped[str] = mapped_column(Text)  # sealed with the vault: needed in clear to sign
    events: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class WebhookDeliveryRow(Base):
    """One event for one endpoint: its payload, attempts and outcome (the delivery log)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event", "entity_id", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_tenant_created", "tenant_id", "created_at"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str] = mapped_column(String(36))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20))  # pending | sending | delivered | retrying | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    delivered_at: Mapped[dt.datetime | None]


class ReferralIntakeRow(Base):
    """Public form submissions, stored with one write before the answer; the worker turns each into a
    referral through capture_referral. The id is a digest of the form token and the friend's address,
    so the same post sent twice is one row."""

    __tablename__ = "referral_intake"
    __table_args__ = (Index("ix_referral_intake_pending", "processed_at", "received_at"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    program_id: Mapped[str] = mapped_column(ID)
    advocate_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(32))
    friend: Mapped[dict[str, Any]]  # validated name, email, company, phone
    consent_version: Mapped[str] = mapped_column(String(40))
    client: Mapped[str | None] = mapped_column(String(64))  # hashed IP
    received_at: Mapped[dt.datetime]
    processed_at: Mapped[dt.datetime | None]
    referral_id: Mapped[str | None] = mapped_column(ID)
    refused_reason: Mapped[str | None] = mapped_column(Text)


class RateLimitRow(Base):
    """Fixed-window counters shared by every web worker: key = scope, subject and window number."""

    __tablename__ = "rate_limits"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class RejectedSubmissionRow(Base):
    """Public form posts refused by the bot checks (honeypot, timing): kept for review, no referral made."""

    __tablename__ = "rejected_submissions"
    __table_args__ = (Index("ix_rejected_submissions_at", "tenant_id", "at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(String(36))
    form: Mapped[str] = mapped_column(String(30))  # referral | join | status
    code: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(30))  # honeypot | too_fast | bad_timestamp
    client: Mapped[str | None] = mapped_column(String(64))  # hashed IP
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[dt.datetime]


class AdminSessionRow(Base):
    """A signed-in console session. The cookie carries a random token; only its hash is stored. Sign-out
    deletes the row, a password change deletes all of the user's: a captured cookie then opens nothing."""

    __tablename__ = "admin_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's token
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


class LoginThrottleRow(Base):
    """Failed console sign-ins per account (keyed hash of the email) and per address (keyed hash of the IP),
    with the lock that exponential backoff sets."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]
