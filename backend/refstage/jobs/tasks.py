"""Background tasks. Each is a thin shell over one service call: retries, locks and scheduling live
here, the logic lives in services."""

from __future__ import annotations

import logging
import random
from typing import Any, Callable

from huey import Huey, crontab
from huey.exceptions import RetryTask, TaskLockedException

from refstage.jobs.locks import connection_lock
from refstage.jobs.queue import backoff_delay
from refstage.services.ports import CrmError

log = logging.getLogger(__name__)
MAX_RETRIES = 8
INTAKE_DRAIN_ROWS = 2000  # per drain job; the lock is held for one drain


def register_tasks(huey: Huey, rt: Any) -> dict[str, Callable[..., Any]]:
    from refstage.services import enrolment, referrals, rewards, sync

    def retrying(fn: Callable[..., Any]) -> Callable[..., Any]:
        """Transient CRM failures retry with backoff and jitter; permanent ones are logged for a person."""

        def run(*args: Any, task: Any = None, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except CrmError as exc:
                if exc.transient and task is not None and task.retries > 0:
                    attempt = MAX_RETRIES - task.retries
                    delay = backoff_delay(attempt)
                    log.warning("%s: transient CRM failure (%s); retry %s in %.0fs", fn.__name__, exc, attempt + 1, delay)
                    raise RetryTask(str(exc), delay=delay) from exc
                log.error("%s: CRM failure, not retried: %s", fn.__name__, exc)
                raise

        run.__name__ = fn.__name__
        return run

    @huey.task(retries=MAX_RETRIES, context=True, name="route_referral")
    @retrying
    def route_referral(tenant_id: str, referral_id: str, attach: bool = False) -> str:
        return referrals.route_referral(rt, tenant_id, referral_id, attach=attach).value

    @huey.task(retries=MAX_RETRIES, context=True, name="link_advocate")
    @retrying
    def link_advocate(tenant_id: str, advocate_id: str) -> str:
        """A self-enrolled (form/API) advocate gets their CRM record: matched by email or created, idempotently."""
        return enrolment.link_advocate_to_crm(rt, tenant_id, advocate_id)

    @huey.task(retries=MAX_RETRIES, context=True, name="enrol_program")
    @retrying
    def enrol_program(tenant_id: str, program_id: str) -> dict[str, int] | None:
        """Enrol new matching CRM records and write their codes and links back (incremental, idempotent)."""
        with rt.uow(tenant_id, readonly=True) as uow:
            program = uow.programs.get(program_id)
        if not program.connection_id or not program.enrolment.crm:
            return None
        try:
            with connection_lock(huey, f"enrol:{program_id}"):
                progress = enrolment.run_enrolment(rt, tenant_id, program_id)
        except TaskLockedException:
            log.info("enrolment of %s already running; skipped", program_id)
            return None
        return {"enrolled": progress.enrolled, "links_written": progress.links_written, "links_failed": progress.links_failed}

    @huey.task(retries=MAX_RETRIES, context=True, name="sync_connection")
    @retrying
    def sync_connection(tenant_id: str, connection_id: str) -> dict[str, Any] | None:
        try:
            with connection_lock(huey, f"sync:{connection_id}"):
                return sync.run_sync(rt, tenant_id, connection_id).as_dict()
        except TaskLockedException:
            log.info("sync of %s already running; skipped", connection_id)
            return None

    @huey.task(retries=MAX_RETRIES, context=True, name="process_events")
    @retrying
    def process_events(tenant_id: str, connection_id: str) -> int:
        """Pushed changes are hints: drain_events re-reads the records from the CRM (outside any transaction)
        and observes only the CRM's answer. Same lock as the sync: one writer per connection at a time."""
        try:
            with connection_lock(huey, f"sync:{connection_id}"):
                processed = sync.drain_events(rt, tenant_id, connection_id)
        except TaskLockedException:
            raise RetryTask("connection busy", delay=1)
        if processed:
            write_back_task(tenant_id, connection_id)
        return processed

    @huey.task(retries=MAX_RETRIES, context=True, name="provision_push")
    @retrying
    def provision_push(tenant_id: str, connection_id: str) -> bool:
        """After a push-secret rotation of a Pipedrive connection: re-create its webhook with the new
        credentials (the old webhook, and with it the old credentials, is removed)."""
        from refstage.domain.connections import CrmKind
        from refstage.services import pipedrive_connect

        with rt.uow(tenant_id, readonly=True) as uow:
            connection = uow.connections.get(connection_id)
        if connection.kind != CrmKind.PIPEDRIVE or not connection.usable:
            return False
        pipedrive_connect.provision(rt, tenant_id, connection_id)
        return True

    @huey.task(retries=MAX_RETRIES, context=True, name="write_back")
    @retrying
    def write_back_task(tenant_id: str, connection_id: str) -> int:
        with rt.uow(tenant_id) as uow:
            connection = uow.connections.get(connection_id)
        if not connection.usable:
            return 0
        return sync.write_back_all(rt, tenant_id, connection)

    @huey.task(retries=MAX_RETRIES, context=True, name="install_push_path")
    @retrying
    def install_push_path(tenant_id: str, connection_id: str) -> str | None:
        """Deploy the Outbound Messages and flows into the org (Metadata API); one deploy per connection at a time."""
        from refstage.services import push_path

        try:
            with connection_lock(huey, f"push_path:{connection_id}", ttl=2400):
                return push_path.run_install(rt, tenant_id, connection_id).get("status")
        except TaskLockedException:
            raise RetryTask("push-path deploy already running", delay=30)

    @huey.task(name="notify")
    def notify(tenant_id: str, event: str, entity_id: str) -> None:
        from refstage.services import notifications

        notifications.dispatch(rt, tenant_id, event, entity_id)

    @huey.task(name="notify_many")
    def notify_many(tenant_id: str, events: list[tuple[str, str]]) -> int:
        """The events of one batch of a sync (one job, not one per qualified referral). Each is handled as
        `notify` would; one that fails is logged and does not stop the others (dispatch is safe to repeat)."""
        from refstage.services import notifications

        done = 0
        for event, entity_id in events:
            try:
                notifications.dispatch(rt, tenant_id, event, entity_id)
                done += 1
            except Exception:  # noqa: BLE001 - the same fate as a failed `notify` job: logged, not retried
                log.exception("event %s for %s failed", event, entity_id)
        return done

    @huey.periodic_task(crontab(minute="*"), name="schedule_syncs")
    def schedule_syncs() -> int:
        """Every minute: queue a sync for each active connection whose interval has passed."""
        import datetime as dt

        now = rt.now()
        queued = 0
        with rt.uow() as uow:
            pairs = uow.directory.active_connections()
        for tenant_id, connection_id in pairs:
            with rt.uow(tenant_id) as uow:
                conn = uow.connections.get(connection_id)
            interval = dt.timedelta(seconds=int(conn.settings.get("sync_interval_seconds", rt.settings.sync_interval_seconds)))
            if conn.last_sync_at is None or now - conn.last_sync_at >= interval:
                sync_connection(tenant_id, connection_id)
                queued += 1
                # New matching CRM records become advocates on the same cadence.
                with rt.uow(tenant_id, readonly=True) as uow:
                    live = [p.id for p in uow.programs.list(connection_id=connection_id)
                            if p.status.value == "live" and p.enrolment.crm]
                for program_id in live:
                    enrol_program(tenant_id, program_id)
        return queued

    @huey.periodic_task(crontab(minute="*"), name="release_holds")
    def release_holds() -> int:
        with rt.uow() as uow:
            tenants = uow.directory.tenants_with_due_holds(rt.now())
        return sum(rewards.release_due_holds(rt, t) for t in tenants)

    @huey.periodic_task(crontab(minute="*/5"), name="sweep_unrouted")
    def sweep_unrouted() -> int:
        """Safety net: a referral whose routing job was lost (crash between commit and enqueue) is routed."""
        queued = 0
        with rt.uow() as uow:
            tenants = uow.directory.tenants_with_pending_work()
        for tenant_id in tenants:
            with rt.uow(tenant_id) as uow:
                stuck = uow.referrals.unrouted(limit=500)
            for referral in stuck:
                route_referral(tenant_id, referral.id)
                queued += 1
        return queued

    @huey.periodic_task(crontab(minute="*/5"), name="sweep_unlinked_advocates")
    def sweep_unlinked_advocates() -> int:
        """Safety net: a self-enrolled advocate of a CRM program whose linking job was lost is linked."""
        queued = 0
        for tenant_id, advocate_id in enrolment.unlinked_advocates(rt):
            link_advocate(tenant_id, advocate_id)
            queued += 1
        return queued

    @huey.task(retries=MAX_RETRIES, context=True, name="capture_intake")
    def capture_intake(task: Any = None) -> dict[str, int] | None:
        """Stored public form submissions become referrals (dedupe, flags, then routing and notifications).
        One drainer at a time; a drain queued while another runs waits its turn instead of skipping, so a
        submission committed after the other one looked is still seen."""
        from refstage.services import intake

        try:
            with connection_lock(huey, "intake-drain", ttl=10 * 60):
                counts = intake.drain(rt, max_rows=INTAKE_DRAIN_ROWS)
        except TaskLockedException:
            raise RetryTask("another intake drain is running", delay=1)
        if sum(counts.values()) >= INTAKE_DRAIN_ROWS:
            capture_intake()  # more may be waiting: the next drain carries on
        return counts

    @huey.periodic_task(crontab(minute="*"), name="sweep_intake")
    def sweep_intake() -> int:
        """Safety net: stored submissions whose drain was lost are drained; old processed ones are pruned."""
        from refstage.services import intake

        waiting = len(intake.pending(rt, limit=1))
        if waiting:
            capture_intake()
        intake.prune(rt)
        return waiting

    @huey.task(retries=MAX_RETRIES, context=True, name="deliver_email")
    def deliver_email(tenant_id: str, outbox_id: str, task: Any = None) -> str:
        from refstage.services import notifications

        status = notifications.deliver_email(rt, tenant_id, outbox_id)
        if status == "retrying" and task is not None and task.retries > 0:
            raise RetryTask(f"email {outbox_id} not delivered yet", delay=backoff_delay(MAX_RETRIES - task.retries))
        return status

    @huey.task(retries=MAX_RETRIES, context=True, name="deliver_webhook")
    def deliver_webhook(tenant_id: str, delivery_id: str, task: Any = None) -> str:
        from refstage.services import webhooks

        outcome = webhooks.deliver(rt, tenant_id, delivery_id)
        if outcome.status == "retrying" and task is not None and task.retries > 0:
            # The service chose the delay (exponential); a little jitter spreads many workers out.
            raise RetryTask(f"webhook {delivery_id} not delivered yet", delay=(outcome.retry_in or 10) * random.uniform(1.0, 1.2))
        return outcome.status

    @huey.periodic_task(crontab(minute="*"), name="sweep_outbound")
    def sweep_outbound() -> int:
        """Safety net: emails and webhook deliveries whose job was lost (crash, restart) are queued again.
        Claims are conditional updates, so a duplicate job never sends twice."""
        from refstage.services import notifications, webhooks

        queued = 0
        for tenant_id, outbox_id in notifications.emails_due_for_retry(rt):
            deliver_email(tenant_id, outbox_id)
            queued += 1
        for tenant_id, delivery_id in webhooks.due_deliveries(rt):
            deliver_webhook(tenant_id, delivery_id)
            queued += 1
        return queued

    return {
        "route_referral": route_referral,
        "link_advocate": link_advocate,
        "sweep_unlinked_advocates": sweep_unlinked_advocates,
        "sync_connection": sync_connection,
        "enrol_program": enrol_program,
        "process_events": process_events,
        "write_back": write_back_task,
        "install_push_path": install_push_path,
        "provision_push": provision_push,
        "notify": notify,
        "notify_many": notify_many,
        "schedule_syncs": schedule_syncs,
        "release_holds": release_holds,
        "sweep_unrouted": sweep_unrouted,
        "deliver_email": deliver_email,
        "deliver_webhook": deliver_webhook,
        "sweep_outbound": sweep_outbound,
        "capture_intake": capture_intake,
        "sweep_intake": sweep_intake,
    }
