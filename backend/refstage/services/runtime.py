"""The dependencies every service receives: one object, built by `refstage.bootstrap`."""

from __future__ import annotations

import datetime as dt
import gc
import os
import threading
import time
from dataclasses import dataclass, field
from contextlib import contextmanager
from typing import Any, Callable, ContextManager, Iterator, Protocol

from refstage.config import Settings
from refstage.domain.connections import CrmConnection
from refstage.services.ports import (
    CrmGateway, FormWrite, Milestone, OutboundSender, PipedriveConnector, SalesforceConnector, UnitOfWork,
    UnitOfWorkFactory, Vault,
)


class JobQueue(Protocol):
    def enqueue(self, name: str, /, **kwargs: Any) -> None: ...

    def schedule(self, name: str, delay: float, /, **kwargs: Any) -> None: ...


class RecordingQueue:
    """A queue that only records: for services run where no worker should act (tests, one-off CLI)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, dict[str, Any]]] = []

    def enqueue(self, name: str, /, **kwargs: Any) -> None:
        self.jobs.append((name, kwargs))

    def schedule(self, name: str, delay: float, /, **kwargs: Any) -> None:
        self.jobs.append((name, kwargs))  # the delay does not matter where nothing runs


class MilestoneCache:
    """The CRM's stages and statuses per (tenant, connection) with when they were read (a timestamp on the
    runtime's clock), for the program editor's picker. One per runtime, so one per process; the reader
    decides what is fresh (services.admin_queries.milestones)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[float, list[Milestone]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[float, list[Milestone]] | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: tuple[str, str], read_at: float, milestones: list[Milestone]) -> None:
        with self._lock:
            self._entries[key] = (read_at, milestones)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# The variant nibble of an RFC 9562 UUID (binary 10xx) for each random hex digit.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


# While bulk work runs: collect the youngest generation after this many new container objects, not 700.
BULK_GC_THRESHOLD = 50_000
_bulk_lock = threading.Lock()
_bulk_depth = 0
_saved_thresholds: tuple[int, ...] = ()


@contextmanager
def bulk_work() -> Iterator[None]:
    """Fewer, cheaper garbage collections while a big sync runs (process-wide, restored when the last one ends).

    A sync keeps a chunk's rows, referrals and rewards alive while it works on them, so they survive the young
    collections, reach the oldest generation and make CPython run dozens of full collections, each walking the
    whole heap: 10-12 s of a 40 s sync at 1,000,000 opportunities (bench/timeline.py). Here the objects that exist
    when the work starts (modules, the engine, caches) are frozen out of the collector's walk (gc.freeze, as for
    pre-fork servers), and young collections run less often, so fewer objects are promoted. Cycles are still
    collected, later: the young generation holds at most BULK_GC_THRESHOLD new containers."""
    global _bulk_depth, _saved_thresholds
    with _bulk_lock:
        _bulk_depth += 1
        if _bulk_depth == 1:
            _saved_thresholds = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(BULK_GC_THRESHOLD, _saved_thresholds[0]), *_saved_thresholds[1:])
    try:
        yield
    finally:
        with _bulk_lock:
            _bulk_depth -= 1
            if _bulk_depth == 0:
                gc.set_threshold(*_saved_thresholds)
                gc.unfreeze()


def new_id() -> str:
    """A version-7 UUID (RFC 9562: 48 bits of Unix time in milliseconds, then 74 random bits) in the usual text form.

    Time-ordered on purpose: rows created together sit together in every index keyed by their id. With random
    (version-4) ids, a sync that creates 200,000 rewards dirtied a different index page for almost every row and
    read them back one page each; docs/decisions/2026-12-02-time-ordered-ids.md has the figures. Ids are not secrets
    anywhere in the app (every route that takes one is signed-in and tenant-scoped), so 74 random bits are plenty
    to keep them unique."""
    r = os.urandom(10).hex()
    t = f"{time.time_ns() // 1_000_000:012x}"
    return f"{t[:8]}-{t[8:]}-7{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:19]}"


GatewayFactory = Callable[["Runtime", CrmConnection], CrmGateway]


@dataclass
class Runtime:
    """The services' dependencies. The adapters behind the ports are wired in by `refstage.bootstrap`, the
    only place that builds a Runtime; services never import `refstage.adapters`."""

    settings: Settings
    # The storage adapter's session factory: opaque here; only adapters (the unit of work, the form's hot path)
    # open sessions with it.
    session_factory: Any
    vault: Vault
    # Builds the concrete unit of work (and the form's write); set by bootstrap.
    unit_of_work: UnitOfWorkFactory | None = None
    jobs: JobQueue = field(default_factory=RecordingQueue)
    clock: Callable[[], dt.datetime] = utcnow
    new_id: Callable[[], str] = new_id
    # Which CRM adapter serves a connection (set by bootstrap); `gateway_factory`, when set, replaces it
    # (tests put a fake CRM there, and None back for the real one).
    crm_gateways: GatewayFactory | None = None
    gateway_factory: GatewayFactory | None = None
    salesforce: SalesforceConnector | None = None
    pipedrive: PipedriveConnector | None = None
    outbound: OutboundSender | None = None
    milestone_cache: MilestoneCache = field(default_factory=MilestoneCache)

    def uow(self, tenant_id: str | None = None, *, readonly: bool = False) -> UnitOfWork:
        return self._storage()(self.session_factory, tenant_id, readonly)

    def form_write(self) -> ContextManager[FormWrite]:
        """The public form's one write transaction (precompiled, outside the ORM; see services.intake)."""
        return self._storage().form_write(self.session_factory)

    def _storage(self) -> UnitOfWorkFactory:
        if self.unit_of_work is None:
            raise RuntimeError("this runtime has no storage: build it with refstage.bootstrap.build_runtime")
        return self.unit_of_work

    def now(self) -> dt.datetime:
        return self.clock()

    def gateway(self, connection: CrmConnection) -> CrmGateway:
        factory = self.gateway_factory or self.crm_gateways
        if factory is None:
            raise RuntimeError("this runtime has no CRM adapters: build it with refstage.bootstrap.build_runtime")
        return factory(self, connection)
