"""One sync cycle for one connection: pull changes (only the fields live rules need), observe them,
write back what changed. Also drains pushed events and pending write-backs, and takes the console's
"sync now" and "retry failed writes". CRM-agnostic: the gateway does the talking."""

from __future__ import annotations

import datetime as dt
import logging
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from refstage.domain.audit import Actor, AuditEntry
from refstage.domain.connections import CrmConnection
from refstage.domain.errors import InvalidInput
from refstage.domain.programs import ProgramStatus
from refstage.services.ports import (BudgetExhausted, CrmError, DeferredRewards, MirrorBatch, ReconnectRequired,
                                     UnitOfWork, WriteResult)
from refstage.services.qualification import (LINK_FIELD, MirrorFeed, ObserveStats, QueuedMirror, linked_records,
                                              observe_crm_changes, referrals_needing_fields)
from refstage.services.referrals import mark_reconnect_required
from refstage.services.runtime import Runtime, bulk_work

log = logging.getLogger(__name__)
CURSOR_KEY = "changes"


@dataclass
class SyncReport:
    connection_id: str
    status: str = "succeeded"
    pulled: int = 0
    api_calls: int = 0
    written: int = 0
    write_failures: int = 0
    observe: ObserveStats = field(default_factory=ObserveStats)
    error: str | None = None
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pulled": self.pulled, "api_calls": self.api_calls, "written": self.written,
            "write_failures": self.write_failures, "qualified": self.observe.qualified,
            "disqualified": self.observe.disqualified, "rewards_created": self.observe.rewards_created,
            "rewards_changed": self.observe.rewards_changed, "stale": self.observe.stale,
            "referrals_touched": self.observe.referrals_touched,
        }


def _load_cursor(uow: UnitOfWork, connection_id: str) -> dict[str, Any]:
    return uow.sync_state.checkpoint(connection_id, CURSOR_KEY)


def _save_cursor(uow: UnitOfWork, connection_id: str, cursor: dict[str, Any], now: dt.datetime) -> None:
    uow.sync_state.set_checkpoint(connection_id, CURSOR_KEY, cursor, now)


def request_sync(rt: Runtime, tenant_id: str, connection_id: str, actor: Actor) -> None:
    """"Sync now": the worker runs `sync_connection` under the per-connection lock."""
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        if not conn.usable:
            raise InvalidInput({"connection": f"this connection is {conn.status.value.replace('_', ' ')}; connect it first"})
        uow.audit.append([AuditEntry(tenant_id, "connection", connection_id, "sync_requested", actor, rt.now())])
        uow.commit()
    rt.jobs.enqueue("sync_connection", tenant_id=tenant_id, connection_id=connection_id)


def run_sync(rt: Runtime, tenant_id: str, connection_id: str,
             on_progress: Callable[[SyncReport], None] | None = None) -> SyncReport:
    with bulk_work():
        return _run_sync(rt, tenant_id, connection_id, on_progress)


def _run_sync(rt: Runtime, tenant_id: str, connection_id: str,
              on_progress: Callable[[SyncReport], None] | None) -> SyncReport:
    report = SyncReport(connection_id)
    started = rt.now()
    run_id = rt.new_id()
    with rt.uow(tenant_id) as uow:
        connection = uow.connections.get(connection_id)
        programs = [p for p in uow.programs.list(connection_id=connection_id) if p.status != ProgramStatus.DRAFT]
        cursor = _load_cursor(uow, connection_id)
        uow.sync_runs.start(run_id, connection_id, "sync", started)
        uow.commit()
    try:
        if not connection.usable:
            raise CrmError(f"connection is {connection.status.value}", transient=False)
        gateway = rt.gateway(connection)
        fields = referrals_needing_fields(programs)
        if fields:
            feed = MirrorFeed()

            def observed() -> Iterator[QueuedMirror]:
                for batch in gateway.iter_changes(fields, cursor):
                    report.api_calls += batch.api_calls
                    report.pulled += len(batch.records)
                    if batch.records:
                        report.observe.add(observe_crm_changes(rt, tenant_id, connection_id, batch.records, feed=feed))
                    with rt.uow(tenant_id) as uow:
                        _save_cursor(uow, connection_id, batch.cursor, rt.now())  # checkpoint after each batch
                        uow.commit()
                    if on_progress:
                        on_progress(report)
                    yield from feed.take()

            # What the changes queue for write-back is mirrored as it is observed, from memory: the write-back
            # below then reads only what was queued before this sync, or by others meanwhile.
            _mirror_observed(rt, tenant_id, connection, gateway, observed(), report)
            _fetch_unseen(rt, tenant_id, connection_id, gateway, fields, report)
        drain_events(rt, tenant_id, connection_id, report, gateway=gateway)
        write_back_all(rt, tenant_id, connection, report, gateway)
    except ReconnectRequired as exc:
        mark_reconnect_required(rt, tenant_id, connection_id, "syncing")
        report.status, report.error = "failed", str(exc)
    except BudgetExhausted as exc:
        report.status, report.error = "partial", str(exc)
    except CrmError as exc:
        report.status, report.error = "failed", str(exc)
        if exc.transient:
            _finish(rt, tenant_id, run_id, report, started, connection)
            raise
    _finish(rt, tenant_id, run_id, report, started, connection)
    return report


def _fetch_unseen(rt: Runtime, tenant_id: str, connection_id: str, gateway, fields: dict[str, set[str]],
                  report: SyncReport) -> None:
    """Records referrals were linked to during this sync (a converted lead's deal) that the change read did
    not bring (it may read linked records only): fetch them now, so conversion and qualification can land in
    the same sync rather than the next."""
    unseen = {obj: ids for obj, ids in report.observe.unseen.items() if obj in fields and ids}
    if not unseen:
        return
    with rt.uow(tenant_id, readonly=True) as uow:
        known = uow.crm_records.load(connection_id, unseen)
    missing = {obj: {i for i in ids if (obj, i) not in known} for obj, ids in unseen.items()}
    missing = {obj: ids for obj, ids in missing.items() if ids}
    if not missing:
        return
    batch = gateway.fetch_records(fields, missing)
    report.api_calls += batch.api_calls
    report.pulled += len(batch.records)
    if batch.records:
        report.observe.add(observe_crm_changes(rt, tenant_id, connection_id, batch.records))


def _finish(rt: Runtime, tenant_id: str, run_id: str, report: SyncReport, started: dt.datetime, connection: CrmConnection) -> None:
    finished = rt.now()
    report.duration_s = (finished - started).total_seconds()
    with rt.uow(tenant_id) as uow:
        uow.sync_runs.finish(run_id, status=report.status, finished_at=finished, stats=report.as_dict(),
                             api_calls=report.api_calls, error=report.error)
        if report.status == "succeeded":
            conn = uow.connections.get(connection.id)
            conn.last_sync_at = finished
            if conn.status_message and conn.usable:
                conn.status_message = None
            uow.connections.save(conn)
        uow.commit()


def drain_events(rt: Runtime, tenant_id: str, connection_id: str, report: SyncReport | None = None, limit: int = 5000,
                 gateway=None) -> int:
    """Act on pushed changes from the inbox. A push is a hint, never the truth: the records it names are
    re-read from the CRM (gateway.read_current: the CRM's values and its own modification time) and only that
    answer is observed. What a push carried — values, timestamps — decides nothing, so a forged, replayed or
    future-dated push cannot create, move or cancel a reward, nor make the real state look older later.
    The CRM is called between units of work; a failure leaves the hints pending for the next drain."""
    with rt.uow(tenant_id, readonly=True) as uow:
        hints = uow.inbox.pending(connection_id, limit)
        if not hints:
            return 0
        connection = uow.connections.get(connection_id)
        programs = [p for p in uow.programs.list(connection_id=connection_id) if p.status != ProgramStatus.DRAFT]
    fields = referrals_needing_fields(programs)
    named: dict[str, set[str]] = {}
    for hint in hints:
        named.setdefault(hint.object, set()).add(hint.id)
    wanted: dict[str, set[str]] = {}
    if programs:
        # Only records a referral points at can matter (a conversion's new links are followed after the
        # read), so a push naming anything else costs no CRM call at all.
        with rt.uow(tenant_id, readonly=True) as uow:
            for obj, ids in named.items():
                column = LINK_FIELD.get(obj)
                linked = uow.referrals.linked_ids(connection_id, column, sorted(ids)) if column else {}
                if linked:
                    wanted[obj] = set(linked)
    if wanted:
        if not connection.usable:
            raise CrmError(f"connection is {connection.status.value}; pushed changes wait", transient=False)
        gateway = gateway or rt.gateway(connection)
        stats, calls = _observe_confirmed(rt, tenant_id, connection_id, gateway, fields, wanted)
        if report is not None:
            report.observe.add(stats)
            report.api_calls += calls
            report.pulled += stats.records
    with rt.uow(tenant_id) as uow:
        uow.inbox.mark_processed([h.pk for h in hints], rt.now())
        uow.commit()
    return len(hints)


def _observe_confirmed(rt: Runtime, tenant_id: str, connection_id: str, gateway, fields: dict[str, set[str]],
                       wanted: dict[str, set[str]]) -> tuple[ObserveStats, int]:
    """Read the named records from the CRM and observe that; then once more for records referrals were just
    linked to (a converted lead's opportunity) that the inbox did not name, so a conversion pushed on its own
    still qualifies in this drain. Returns the stats and the CRM calls spent."""
    stats = ObserveStats()
    batch = gateway.read_current(fields, wanted)
    calls = batch.api_calls
    if batch.records:
        stats.add(observe_crm_changes(rt, tenant_id, connection_id, batch.records, Actor.sync(connection_id)))
    unseen = {obj: ids - wanted.get(obj, set()) for obj, ids in stats.unseen.items() if obj in fields}
    unseen = {obj: ids for obj, ids in unseen.items() if ids}
    if unseen:
        with rt.uow(tenant_id, readonly=True) as uow:
            known = uow.crm_records.load(connection_id, unseen)
        unseen = {obj: {i for i in ids if (obj, i) not in known} for obj, ids in unseen.items()}
        unseen = {obj: ids for obj, ids in unseen.items() if ids}
    if unseen:
        more = gateway.read_current(fields, unseen)
        calls += more.api_calls
        if more.records:
            stats.add(observe_crm_changes(rt, tenant_id, connection_id, more.records, Actor.sync(connection_id)))
    return stats, calls


def _referrals(uow, referral_ids: list[str]):
    """Batch read, in the order asked; a missing one is NotFound as with get()."""
    from refstage.domain.errors import NotFound

    found = {r.id: r for r in uow.referrals.get_many(referral_ids)}
    missing = [i for i in referral_ids if i not in found]
    if missing:
        raise NotFound(f"referral {missing[0]} not found")
    return [found[i] for i in referral_ids]


def retry_failed_writes(rt: Runtime, tenant_id: str, connection_id: str, actor: Actor,
                        pending_ids: Sequence[int] | None = None) -> int:
    """Re-queue failed record writes (all, or the chosen ones) and ask the worker to write back now.

    Re-queueing replaces the row with a fresh one (attempts 0), as `mark_stale` does, so a write-back
    already in flight deletes only the row it read."""
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
        now = rt.now()
        count = uow.pending_writes.requeue_failed(connection_id, now, pending_ids)
        if count:
            uow.audit.append([AuditEntry(tenant_id, "connection", connection_id, "writes_requeued", actor, now, None,
                                         {"count": count})])
        uow.commit()
    if count and conn.usable:
        rt.jobs.enqueue("write_back", tenant_id=tenant_id, connection_id=connection_id)
    return count


def _mirror_observed(rt: Runtime, tenant_id: str, connection: CrmConnection, gateway, observed: Iterable[QueuedMirror],
                     report: SyncReport) -> None:
    """Mirror what the observation queued, batch by batch as it is observed, then settle exactly those queue rows
    as write_back does. If the observation stops part-way, nothing is settled: the rows stay queued."""
    # The rows compactly, as write_back keeps them: a big sync settles hundreds of thousands.
    row_ids, entity_ids, is_reward = array("q"), [], bytearray()

    def batches():
        for queued in observed:
            for (entity_type, entity_id), row_id in queued.rows.items():
                row_ids.append(row_id)
                entity_ids.append(entity_id)
                is_reward.append(entity_type == "reward")
            batch, queued = queued.batch, None
            yield batch
            batch = None  # not kept while the next chunk is observed

    result = gateway.mirror_all(batches(), None)
    if not row_ids:
        report.api_calls += result.api_calls
        return
    _settle(rt, tenant_id, connection, result, row_ids, entity_ids, is_reward, report)


def write_back_all(rt: Runtime, tenant_id: str, connection: CrmConnection, report: SyncReport | None = None,
                   gateway=None, limit: int = 500_000) -> int:
    """Drain the write-back queue in rounds of at most `limit` rows, until it is empty or a round writes
    nothing (what is left failed and waits for a person or the next cycle)."""
    total = 0
    while True:
        written = write_back(rt, tenant_id, connection, report, gateway, limit)
        if written == 0:
            return total
        total += written


def write_back(rt: Runtime, tenant_id: str, connection: CrmConnection, report: SyncReport | None = None,
               gateway=None, limit: int = 500_000, batch_size: int = 2_000) -> int:
    """Mirror stale referrals and rewards into the CRM. Rows leave the queue only once written. Entities are
    loaded batch by batch as the gateway asks for them, so memory does not grow with the backlog."""
    # The queue rows, compactly: a backlog of hundreds of thousands must not cost hundreds of megabytes.
    row_ids, entity_ids, is_reward = array("q"), [], bytearray()
    parents: dict[str, str] = {}  # {reward id: referral id} of the queued rewards still stored
    with rt.uow(tenant_id, readonly=True) as uow:
        for pid, entity_type, entity_id, referral_id in uow.pending_writes.queued_with_parents(connection.id, limit):
            row_ids.append(pid)
            entity_ids.append(entity_id)
            is_reward.append(entity_type == "reward")
            if referral_id is not None:
                parents[entity_id] = referral_id
        if not row_ids:
            return 0
    # A reward's mirror needs its referral's mirror to exist first (master-detail): they travel together.
    referral_ids = sorted({e for e, r in zip(entity_ids, is_reward) if not r} | set(parents.values()))
    rewards_of: dict[str, list[str]] = {}
    for reward_id, referral_id in sorted(parents.items()):  # each referral's rewards in id order
        rewards_of.setdefault(referral_id, []).append(reward_id)
    reward_count = len(parents)
    del parents
    programs: dict[str, Any] = {}

    def load_rewards(reward_ids: list[str]):
        def load():
            with rt.uow(tenant_id, readonly=True) as uow:
                return uow.rewards.get_many(reward_ids)
        return load

    def batches():
        for start in range(0, len(referral_ids), batch_size):
            chunk = referral_ids[start:start + batch_size]
            with rt.uow(tenant_id, readonly=True) as uow:
                referrals = _referrals(uow, chunk)
                advocates = {a.id: a for a in uow.advocates.get_many(sorted({r.advocate_id for r in referrals}))}
                for program_id in {r.program_id for r in referrals} - set(programs):
                    programs[program_id] = uow.programs.get(program_id)
                states = uow.crm_records.live_fields(connection.id, linked_records(referrals))
            # Rewards are read when the gateway asks: a bulk writer sends the referrals' job first.
            rewards = DeferredRewards(load_rewards([w for ref in chunk for w in rewards_of.get(ref, [])]))
            yield MirrorBatch([(r, advocates[r.advocate_id], programs[r.program_id]) for r in referrals], rewards, states)

    gateway = gateway or rt.gateway(connection)
    result = gateway.mirror_all(batches(), len(referral_ids) + reward_count)
    return _settle(rt, tenant_id, connection, result, row_ids, entity_ids, is_reward, report)


def _settle(rt: Runtime, tenant_id: str, connection: CrmConnection, result: WriteResult, row_ids: array,
            entity_ids: list[str], is_reward: bytearray, report: SyncReport | None) -> int:
    """After a mirror: remove the queue rows of what was written (by row id: an entity queued again meanwhile has
    a new row, which stays) and record the failures on their rows. Returns how many rows were written."""
    if result.all_but_failed:
        written = None
    else:
        written = set(result.ok)
        del result.ok[:]
    now = rt.now()
    with rt.uow(tenant_id) as uow:
        done = [pid for pid, entity_id in zip(row_ids, entity_ids)
                if (entity_id not in result.failed if written is None else entity_id in written)]
        uow.pending_writes.remove(done)
        failed = [(pid, "reward" if r else "referral", entity_id)
                  for pid, entity_id, r in zip(row_ids, entity_ids, is_reward) if entity_id in result.failed]
        for pid, entity_type, entity_id in failed:
            uow.pending_writes.record_failure(pid, connection.id, entity_type, entity_id, result.failed[entity_id], now)
        uow.commit()
    if report is not None:
        report.written += len(done)
        report.write_failures += len(failed)
        report.api_calls += result.api_calls
    return len(done)
