"""Ports the services need from the outside world, in domain terms.

The CRM port is implemented by `adapters.crm.salesforce` and `adapters.crm.pipedrive`; the domain
never sees a SOQL string or a Pipedrive field hash. Services reach every adapter through these ports, handed to
them on the runtime by the composition root (`refstage.bootstrap`), never by importing `refstage.adapters`.
"""

from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterable, Iterator, Mapping, Protocol, Sequence

from refstage.domain.audit import Actor, Change
from refstage.domain.programs import EnrolmentSource, Program
from refstage.domain.referrals import Advocate, CrmRefs, Referral
from refstage.domain.rewards import Reward
from refstage.domain.rules import FieldSpec, Rule


class StorageConflict(Exception):
    """A commit broke a uniqueness rule (a concurrent request stored the same thing first). `detail` says which."""

    detail: str = ""


class ConcurrentUpdate(StorageConflict):
    """A row read in this unit of work was changed by another worker before ours was written (optimistic locking:
    its version moved). Nothing was written; read again and redo the work."""


class CredentialsUnreadable(RuntimeError):
    """Stored credentials cannot be decrypted with any configured key (raised by the runtime's vault)."""


class MalformedPush(ValueError):
    """A CRM's push (an Outbound Message, a webhook delivery) is not in the shape its format requires."""


class TargetRefused(ValueError):
    """A webhook URL we will not contact; `reason` is short and safe to show to the endpoint's owner."""

    def __init__(self, reason: str, *, permanent: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class RecordState:
    """The newest known state of one CRM record (kept for the records referrals link to)."""

    __slots__ = ("pk", "object", "crm_id", "fields", "modified_at", "deleted", "dirty")

    def __init__(self, pk, obj, crm_id, fields, modified_at, deleted):
        self.pk, self.object, self.crm_id = pk, obj, crm_id
        self.fields, self.modified_at, self.deleted, self.dirty = fields, modified_at, deleted, False


class UnitOfWork(Protocol):
    """One transaction over the tenant's repositories, as the services use it (implemented in `adapters.db`).

    Opened with `rt.uow(tenant_id)`; nothing is stored until `commit()`, and work registered with
    `after_commit` (enqueueing jobs) runs only once the commit succeeded. The repositories are scoped to
    `tenant_id`; `directory` (public code, API key, connection -> tenant), `sealed_secrets` (the operator's
    key rotation), `intake_backlog` (the form posts the drain captures), `login_throttle` and
    `rejected_submissions` (form posts the bot checks refused) are the only cross-tenant ones. A uniqueness race
    raises `StorageConflict`, a version-checked write that finds its row changed `ConcurrentUpdate`: from
    `commit()` or, for a repository's batch write, as the `with` block is left."""

    tenant_id: str | None
    readonly: bool
    pending_rewards: list
    # Cross-tenant, explicit and named.
    tenants: Any
    directory: Any
    sealed_secrets: Any
    intake_backlog: Any
    login_throttle: Any
    rejected_submissions: Any
    # Scoped to tenant_id (present once it is bound).
    users: Any
    api_keys: Any
    connections: Any
    programs: Any
    advocates: Any
    referrals: Any
    rewards: Any
    audit: Any
    crm_records: Any
    admin_sessions: Any
    attention: Any
    reports: Any
    inbox: Any
    sync_state: Any
    sync_runs: Any
    pending_writes: Any
    intake: Any
    email_templates: Any
    outbox: Any
    webhook_endpoints: Any
    webhook_deliveries: Any

    def __enter__(self) -> "UnitOfWork": ...

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...

    def scope(self, tenant_id: str) -> "UnitOfWork":
        """Bind the tenant once it is known (after a Directory look-up)."""

    def record(self, changes: list[Change], actor: Actor, default_id: str | None = None) -> None: ...

    def mark_stale(self, connection_id: str, entity_type: str, entity_id: str, at: dt.datetime) -> None: ...

    # {(connection id, entity type, entity id): queue row id} of the rows this unit of work queued, filled at
    # commit once track_queue_rows() was called.
    queued_rows: dict[tuple[str, str, str], int]

    def track_queue_rows(self) -> None: ...

    def flush_pending_rewards(self) -> None: ...

    def take_inserted_rewards(self) -> list: ...

    def ping(self) -> None:
        """Ask the database for a trivial answer (the health check); raises when it cannot."""

    def after_commit(self, fn: Callable[[], None]) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class FormWrite(Protocol):
    """The public form's one transaction: count rate limits and store accepted posts (see services.intake); the
    other forms' shared counters and their occasional tidy use it too (services.protection)."""

    def bump_counters(self, counters: list[tuple[str, int, dt.datetime]]) -> dict[str, int]: ...

    def insert_intake(self, rows: list[dict[str, Any]]) -> None: ...

    def drop_expired_counters(self, now: dt.datetime) -> None: ...


class UnitOfWorkFactory(Protocol):
    """What the composition root hands the runtime: opens units of work, and the form's precompiled write."""

    def __call__(self, session_factory: Any, tenant_id: str | None = None, readonly: bool = False) -> UnitOfWork: ...

    def form_write(self, session_factory: Any) -> ContextManager[FormWrite]: ...


class CrmError(Exception):
    """A CRM call failed. `transient` says whether retrying later can help."""

    def __init__(self, message: str, *, transient: bool, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.code = code
        self.status = status


class ReconnectRequired(CrmError):
    """The CRM refused our refresh token: a person must connect again."""

    def __init__(self, message: str = "the CRM refused the stored credentials; reconnect required"):
        super().__init__(message, transient=False, code="invalid_grant")


class BudgetExhausted(CrmError):
    """The API allowance we may spend is spent: stop, checkpoint, resume later."""

    def __init__(self, message: str):
        super().__init__(message, transient=True, code="REQUEST_LIMIT_EXCEEDED")


@dataclass(frozen=True)
class Milestone:
    object: str  # Opportunity, Lead, Deal
    field: str  # StageName, Status, stage_id
    value: Any
    label: str
    is_won: bool = False
    is_closed: bool = False
    group: str | None = None  # e.g. Pipedrive pipeline name


@dataclass(frozen=True)
class Candidate:
    """A CRM record that matches an enrolment source."""

    crm_object: str
    crm_id: str
    name: str
    email: str | None
    contact_id: str | None = None
    account_id: str | None = None
    modified_at: dt.datetime | None = None  # CRM time; the enrolment watermark follows it, not our clock


@dataclass(frozen=True)
class AdvocateLink:
    crm_object: str
    crm_id: str
    code: str
    link: str
    advocate_id: str


@dataclass(frozen=True)
class WriteResult:
    ok: list[str] = field(default_factory=list)  # our ids written
    failed: dict[str, str] = field(default_factory=dict)  # our id -> CRM's own error text
    api_calls: int = 0
    # True: every entity handed over was written but those in `failed`, and `ok` is left empty (a backlog of
    # hundreds of thousands need not be listed back).
    all_but_failed: bool = False


class DeferredRewards(Sequence):
    """A batch's rewards, read from the database on first use and dropped by release(). A bulk writer can
    send the batches' referrals first and read their rewards while the CRM processes that job."""

    def __init__(self, load: Callable[[], Sequence[Reward]]):
        self._load: Callable[[], Sequence[Reward]] | None = load
        self._items: Sequence[Reward] | None = None

    def _loaded(self) -> Sequence[Reward]:
        if self._items is None:
            if self._load is None:
                raise RuntimeError("these rewards were released")
            self._items = list(self._load())
        return self._items

    def __getitem__(self, index):  # type: ignore[override]
        return self._loaded()[index]

    def __len__(self) -> int:
        return len(self._loaded())

    def __iter__(self) -> Iterator[Reward]:  # the list's own iterator, not one __getitem__ per reward
        return iter(self._loaded())

    def release(self) -> None:
        self._items, self._load = None, None


@dataclass(frozen=True)
class MirrorBatch:
    """Part of a write-back: referrals (with advocate and program), rewards whose referral is in this batch or
    an earlier one (possibly a DeferredRewards), and the last known state of the records the referrals point at."""
    referrals: Sequence[tuple[Referral, Advocate, Program]]
    rewards: Sequence[Reward]
    record_states: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ExistingRecord:
    object: str
    id: str
    email: str
    account_id: str | None = None
    is_customer: bool = False


@dataclass(frozen=True)
class AdvocateRecord:
    """The CRM record that stands for a form- or API-enrolled advocate: matched by email or created."""

    crm_object: str  # Contact, Lead, Person
    crm_id: str
    contact_id: str | None = None
    account_id: str | None = None
    created: bool = False  # False: an existing record was matched (or an earlier attempt's was found)


@dataclass(frozen=True)
class RouteResult:
    refs: CrmRefs | None = None  # created or attached
    existing: ExistingRecord | None = None  # found before creating
    attached: bool = False


@dataclass(frozen=True)
class ChangedRecord:
    object: str
    id: str
    fields: dict[str, Any]
    modified_at: dt.datetime | None
    deleted: bool = False


@dataclass
class ChangeBatch:
    records: list[ChangedRecord]
    cursor: dict[str, Any]
    api_calls: int = 0
    done: bool = True


class CrmGateway(abc.ABC):
    """One connected CRM org or company."""

    kind: str

    @abc.abstractmethod
    def describe_milestones(self) -> list[Milestone]: ...

    @abc.abstractmethod
    def iter_enrolment_candidates(self, source: EnrolmentSource, since: dt.datetime | None) -> Iterator[Candidate]: ...

    @abc.abstractmethod
    def write_advocate_links(self, links: Sequence[AdvocateLink]) -> WriteResult: ...

    @abc.abstractmethod
    def find_existing(self, email: str) -> ExistingRecord | None: ...

    def find_routed(self, referral: Referral) -> CrmRefs | None:
        """The record an earlier attempt to route this referral created, if that attempt reached the CRM but not
        our database. Routing then just records it: the dedupe must not mistake our own lead (or what a rep
        converted it into meanwhile) for someone else's. None if the adapter's routing needs no such check."""
        return None

    @abc.abstractmethod
    def route_referral(self, referral: Referral, advocate: Advocate, program: Program,
                       attach_to: ExistingRecord | None) -> RouteResult: ...

    @abc.abstractmethod
    def link_advocate(self, advocate: Advocate, program: Program, link: str) -> AdvocateRecord:
        """Match the advocate's CRM record by exact email, or create one, idempotently on our advocate id
        (a retried job finds what an earlier attempt created); then write the code and link onto it."""

    @abc.abstractmethod
    def iter_changes(self, fields: dict[str, set[str]], cursor: dict[str, Any]) -> Iterator[ChangeBatch]: ...

    @abc.abstractmethod
    def mirror(self, referrals: Sequence[tuple[Referral, Advocate, Program]], rewards: Sequence[Reward],
               record_states: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> WriteResult:
        """Write referrals and rewards to the CRM. `record_states` is the last known state of the records the
        referrals point at ({(object, id): fields}), so the adapter can skip what the CRM already has."""

    def mirror_all(self, batches: Iterable[MirrorBatch], size: int | None) -> WriteResult:
        """Write a large backlog (`size` entities in all; None when the batches are made as they are asked for, as
        a sync observes), holding one batch in memory at a time. By default one mirror() per batch; an adapter
        with a bulk path writes them all in as few jobs as it can."""
        ok: list[str] = []
        failed: dict[str, str] = {}
        calls = 0
        for batch in batches:
            result = self.mirror(batch.referrals, list(batch.rewards), batch.record_states)
            ok.extend(result.ok)
            failed.update(result.failed)
            calls += result.api_calls
        return WriteResult(ok=ok, failed=failed, api_calls=calls)

    def fetch_records(self, fields: dict[str, set[str]], ids: dict[str, set[str]]) -> ChangeBatch:
        """The current state of named records ({object: ids}) with the fields the rules need. For records a
        referral has just been linked to (a lead's conversion) that the change read may not include; an
        adapter whose change read returns every change needs nothing here."""
        return ChangeBatch([], {}, api_calls=0, done=True)

    def read_current(self, fields: dict[str, set[str]], ids: dict[str, set[str]]) -> ChangeBatch:
        """The current state of the named records ({object: ids}), read from the CRM over our own
        authenticated API, with the fields the rules need and the CRM's own modification time. This is how a
        pushed change is confirmed before anything is decided: a push only says which records to look at.
        Records the CRM does not return (made up, or deleted and gone) are left out."""
        raise CrmError(f"this {self.kind} adapter cannot confirm pushed changes", transient=False)

    def count_matching(self, rule: Rule) -> int | None:
        """How many open records satisfy the rule today (program editor preview); None if unknown."""
        return None

    def describe_fields(self, object_name: str) -> dict[str, FieldSpec] | None:
        """The object's fields as the CRM describes them, by lower-cased API name (rules are checked
        against it on save and go-live); None when this CRM cannot say, or has no such object."""
        return None


class Vault(Protocol):
    """Seals and opens the secrets stored with connections; `open` raises CredentialsUnreadable."""

    def seal(self, data: dict[str, Any]) -> str: ...

    def open(self, token: str) -> dict[str, Any]: ...

    def rotate(self, token: str) -> str: ...


class SalesforceConnector(Protocol):
    """What the services use of Salesforce beyond the gateway (implemented by `adapters.crm.salesforce.connector`):
    the connected app and its OAuth flow, the Outbound Message format, the push-path installer, the ECA bundle."""

    OAuthApp: Any  # `.from_settings(settings)`; a CrmError when the app is not configured
    LOGIN_HOSTS: Mapping[str, str]
    MAX_MESSAGE_BODY: int

    def login_host_url(self, value: str | None, hosts: Any = None) -> str:
        """The origin to sign in at; ValueError when the host is not allowed."""

    def pkce_pair(self) -> tuple[str, str]: ...

    def authorize_url(self, app: Any, login_host: str, state: str, code_verifier: str) -> str: ...

    def exchange_code(self, app: Any, login_host: str, code: str, code_verifier: str) -> dict[str, Any]: ...

    def identity(self, token: dict[str, Any], app: Any = None) -> dict[str, Any]: ...

    def org_and_user(self, identity_url: str) -> tuple[str, str]: ...

    def revoke(self, app: Any, login_host: str, token: str) -> bool: ...

    def parse_outbound_message(self, xml: bytes) -> Any:
        """The message's organization id and notifications; MalformedPush when it is not one."""

    def parse_time(self, value: Any) -> dt.datetime | None: ...

    def push_path_installer(self, rt: Any, connection: Any) -> Any: ...

    def write_bundle(self, output: Any, **kwargs: str) -> list[Any]:
        """The External Client App bundle written into an empty folder; ValueError names bad input."""


class PipedriveConnector(Protocol):
    """What the services use of Pipedrive beyond the CRM port (implemented by `adapters.crm.pipedrive.connector`):
    OAuth and API tokens, the API client, and the deal webhook with its HTTP Basic credentials."""

    OAuthApp: Any  # `.from_settings(settings)`; a CrmError when the app is not configured
    ApiTokenCredentials: Any
    StaticOAuthCredentials: Any
    PipedriveClient: Any

    def tls_verify(self, settings: Any) -> bool | str: ...

    def checked_api_domain(self, settings: Any, api_domain: str) -> str: ...

    def authorize_url(self, app: Any, state: str) -> str: ...

    def exchange_code(self, app: Any, code: str) -> dict[str, Any]: ...

    def credentials_for(self, rt: Any, connection: Any, app: Any = None) -> Any: ...

    def revoke(self, app: Any, token: str) -> bool: ...

    def gateway(self, rt: Any, connection: Any) -> Any:
        """The connection's PipedriveGateway (`prepare()`, `client`, `connection`)."""

    def new_basic_credentials(self) -> dict[str, str]: ...

    def check_basic(self, expected: Mapping[str, str] | None, user: str | None, password: str | None) -> bool: ...

    def parse_delivery(self, body: Any, custom_names: Mapping[str, Mapping[str, str]]) -> Any:
        """The delivery's event, entity and record; MalformedPush when it is not a webhook payload."""

    def existing_webhooks(self, client: Any, url: str) -> list[int]: ...

    def register_webhook(self, client: Any, url: str, basic: Mapping[str, str]) -> int: ...

    def unregister_webhook(self, client: Any, webhook_id: int) -> None: ...


class OutboundSender(Protocol):
    """Mail and webhook POSTs to the outside world (implemented by `adapters.outbound`)."""

    HttpResult: Any  # (status_code, error): what one POST did

    def send_email(self, smtp_url: str, mail_from: str, to: str, subject: str, body: str) -> Any: ...

    def check_webhook_url(self, url: str, *, allow_private: bool = False) -> None:
        """TargetRefused when the URL is one we will not contact."""

    def post_json(self, url: str, body: bytes, headers: dict[str, str], *, allow_private: bool = False) -> Any: ...

    def sanitise_reason(self, text: str, limit: int = 200) -> str: ...
