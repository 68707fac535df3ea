"""The public referral form under load-friendly rules: the landing page cache (TTL), the intake (one
durable write, answered 303, idempotent), its group commit, and the worker turning intake into referrals."""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
from sqlalchemy import func, select, update

from refstage.adapters.db import models as m
from refstage.services import enrolment, intake, landing, programs, protection
from tests.web.conftest import ADMIN, fill, hidden, run_capture_jobs

TTL = landing.DEFAULT_TTL_SECONDS


def _count(rt, model) -> int:
    with rt.session_factory() as s:
        return s.scalar(select(func.count()).select_from(model))


def _referrals(rt, tenant_id):
    with rt.uow(tenant_id) as uow:
        return uow.referrals.list(limit=50, offset=0)


def _form(html: str, **data) -> dict:
    return {"csrf_token": hidden(html, "csrf_token"), "form_ts": hidden(html, "form_ts"), "website": "", "consent": "yes", **data}


# --- landing page cache -------------------------------------------------------------------------------------
def test_landing_is_served_from_the_cache_with_fresh_tokens_per_view(client, site, clock, monkeypatch):
    first = client.get(f"/r/{site.code}").get_data(as_text=True)
    clock.advance(seconds=1)  # the timing stamp says when the form was shown

    def no_db(*_a, **_k):
        raise AssertionError("a cached landing page must not read the database")

    monkeypatch.setattr(enrolment, "get_advocate_by_code", no_db)
    second = client.get(f"/r/{site.code}")
    assert second.status_code == 200
    html = second.get_data(as_text=True)
    for name in ("csrf_token", "form_ts"):
        assert hidden(first, name) != hidden(html, name)  # per view, not cached
    nonce = re.search(r'<style nonce="([^"]+)"', html).group(1)
    assert f"'nonce-{nonce}'" in second.headers["Content-Security-Policy"]
    assert re.search(r'<style nonce="([^"]+)"', first).group(1) != nonce
    strip = lambda s: re.sub(r'(nonce|value)="[^"]*"', "", s)  # noqa: E731
    assert strip(first) == strip(html)  # the rest is the same page
    assert "Set-Cookie" not in second.headers  # no session for an anonymous page


def test_paused_program_and_deactivated_advocate_stop_showing_within_the_ttl(client, site, clock, rt):
    assert client.get(f"/r/{site.code}").status_code == 200
    programs.set_program_status(rt, site.tenant.id, site.program.id, "paused", ADMIN)
    clock.advance(seconds=TTL - 1)
    assert client.get(f"/r/{site.code}").status_code == 200  # still cached: the documented TTL
    clock.advance(seconds=1)
    assert client.get(f"/r/{site.code}").status_code == 410
    programs.set_program_status(rt, site.tenant.id, site.program.id, "live", ADMIN)
    clock.advance(seconds=TTL)
    assert client.get(f"/r/{site.code}").status_code == 200
    with rt.session_factory() as s:
        s.execute(update(m.AdvocateRow).where(m.AdvocateRow.id == site.advocate.id).values(active=False))
        s.commit()
    clock.advance(seconds=TTL)
    assert client.get(f"/r/{site.code}").status_code == 410


def test_landing_text_changes_show_after_the_ttl_and_new_codes_at_once(client, site, clock, rt):
    assert "Riley sent you" in client.get(f"/r/{site.code}").get_data(as_text=True)
    programs.update_program(rt, site.tenant.id, site.program.id, {"landing": {"headline": "New words"}}, ADMIN)
    clock.advance(seconds=TTL)
    assert "New words" in client.get(f"/r/{site.code}").get_data(as_text=True)
    # Unknown codes are not cached: an advocate enrolled a moment after a miss is served at once.
    assert client.get("/r/ZZZZZZZZZ").status_code == 404
    adv, _ = enrolment.enrol_advocate(rt, site.tenant.id, site.program.id, name="Late", email="late@adv.test",
                                      source=enrolment.AdvocateSource.API, actor=ADMIN)
    assert client.get(f"/r/{adv.code}").status_code == 200


def test_cache_is_bounded_and_can_forget(rt, site, clock):
    cache = landing.LandingCache(rt, ttl_seconds=60, max_entries=1)
    assert cache.get(site.code.lower()).code == site.code
    other, _ = enrolment.enrol_advocate(rt, site.tenant.id, site.program.id, name="O", email="o@adv.test",
                                        source=enrolment.AdvocateSource.API, actor=ADMIN)
    assert cache.get(other.code) is not None and list(cache._entries) == [other.code]
    cache.forget(other.code)
    assert cache._entries == {}
    assert cache.get("not a code") is None


# --- intake: one durable write, answered 303 -----------------------------------------------------------------
def test_a_post_answered_303_is_committed_before_any_worker_runs(client, site, clock, rt, settings):
    resp = fill(client, clock, f"/r/{site.code}", {"name": "Alex", "email": "alex@prospect.test", "consent": "yes"})
    assert resp.status_code == 303
    assert _count(rt, m.ReferralRow) == 0  # the worker has not run
    # A fresh engine (as after a crash and restart) sees the stored submission.
    from refstage.adapters.db.database import make_engine

    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(select(m.ReferralIntakeRow)).one()
    finally:
        engine.dispose()
    assert row.code == site.code and row.friend["email"] == "alex@prospect.test" and row.processed_at is None
    assert row.client and "127.0.0.1" not in row.client and row.received_at == clock.now
    assert [name for name, _ in rt.jobs.jobs if name == "capture_intake"] == ["capture_intake"]


def test_the_worker_turns_intake_into_a_referral_once(client, site, clock, rt):
    shown = clock.now
    page = client.get(f"/r/{site.code}").get_data(as_text=True)
    clock.advance(seconds=5)
    sent_at = clock.now
    form = _form(page, name="Alex Friend", email="Alex@Prospect.test", company="Prospect")
    assert client.post(f"/r/{site.code}", data=form).status_code == 303
    assert client.post(f"/r/{site.code}", data=form).status_code == 303  # a double click, or a re-sent POST
    assert _count(rt, m.ReferralIntakeRow) == 1
    clock.advance(minutes=3)
    assert intake.drain(rt) == {"captured": 1}
    assert intake.drain(rt) == {}
    [ref] = _referrals(rt, site.tenant.id)
    assert ref.friend_email == "alex@prospect.test" and ref.captured_at == sent_at != shown
    assert ref.consent_at == sent_at and ref.consent_version == "2026-11"
    [row] = _intake_rows(rt)
    assert intake.status(rt, row.id)["state"] == "captured" and row.referral_id == ref.id
    assert intake.process(rt, site.tenant.id, row.id) == "captured"  # a repeat changes nothing
    assert len(_referrals(rt, site.tenant.id)) == 1
    assert ("route_referral", {"tenant_id": site.tenant.id, "referral_id": ref.id}) in rt.jobs.jobs
    assert ("notify", {"tenant_id": site.tenant.id, "event": "referral.captured", "entity_id": ref.id}) in rt.jobs.jobs


def _intake_rows(rt):
    with rt.session_factory() as s:
        return list(s.scalars(select(m.ReferralIntakeRow)))


def test_a_second_form_from_the_same_friend_is_the_same_referral(client, site, clock, rt):
    thanks = []
    for email in ("alex@prospect.test", "Alex@Prospect.test"):
        resp = fill(client, clock, f"/r/{site.code}", {"name": "Alex", "email": email, "consent": "yes"})
        assert resp.status_code == 303
        thanks.append(client.get(resp.headers["Location"]).get_data(as_text=True))
    run_capture_jobs(rt)
    statuses = sorted(r.status.value for r in _referrals(rt, site.tenant.id))
    assert statuses == ["captured"]  # one referral, nothing for the review queue
    assert "We have your details" in thanks[0] and "We have your details" in thanks[1]  # the same thanks
    with rt.uow(site.tenant.id) as uow:
        ref = uow.referrals.list()[0]
        actions = [e.action for e in uow.audit.list(entity_type="referral", entity_id=ref.id)]
    assert "repeat_submission" in actions  # the attempt is kept


def test_invalid_input_is_shown_and_nothing_is_stored(client, site, clock, rt):
    resp = fill(client, clock, f"/r/{site.code}", {"name": "", "email": "nope", "company": "Kept"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert 'id="f-email-error"' in html and 'id="f-consent-error"' in html and 'value="Kept"' in html
    assert _count(rt, m.ReferralIntakeRow) == 0 and not any(name == "capture_intake" for name, _ in rt.jobs.jobs)


def test_a_post_accepted_just_before_a_pause_is_refused_by_the_worker(client, site, clock, rt):
    page = client.get(f"/r/{site.code}").get_data(as_text=True)
    programs.set_program_status(rt, site.tenant.id, site.program.id, "paused", ADMIN)
    clock.advance(seconds=TTL - 1)  # the page cache still says live
    assert client.post(f"/r/{site.code}", data=_form(page, name="Late", email="late@prospect.test")).status_code == 303
    assert intake.drain(rt) == {"refused": 1}
    [row] = _intake_rows(rt)
    assert row.referral_id is None and "not taking referrals" in row.refused_reason
    assert _count(rt, m.ReferralRow) == 0


def test_old_processed_submissions_are_pruned(client, site, clock, rt):
    fill(client, clock, f"/r/{site.code}", {"name": "Alex", "email": "alex@prospect.test", "consent": "yes"})
    run_capture_jobs(rt)
    assert intake.prune(rt) == 0
    clock.advance(days=8)
    assert intake.prune(rt) == 1 and _count(rt, m.ReferralIntakeRow) == 0 and _count(rt, m.ReferralRow) == 1


def test_pending_lists_only_submissions_waiting_past_the_sweep_delay(client, site, clock, rt):
    fill(client, clock, f"/r/{site.code}", {"name": "Alex", "email": "alex@prospect.test", "consent": "yes"})
    assert intake.pending(rt) == []
    clock.advance(seconds=61)
    [(tenant_id, _)] = intake.pending(rt)
    assert tenant_id == site.tenant.id


# --- rate limits counted in the same transaction --------------------------------------------------------------
def test_counting_a_batch_gives_each_hit_its_place_in_line(rt):
    limit = protection.Limit("referral_ip", 2, 600)
    now = rt.now()
    hits = [(limit, "1.2.3.4"), (limit, "1.2.3.4"), (limit, "5.6.7.8"), (limit, "1.2.3.4")]
    keys = protection.counters(rt, hits, now)
    assert protection.to_add(keys) == [(keys[0][0], 3, keys[0][1]), (keys[2][0], 1, keys[2][1])]
    decisions = protection.decide(hits, keys, {keys[0][0]: 3, keys[2][0]: 1}, now)
    assert [d.allowed for d in decisions] == [True, True, True, False] and [d.count for d in decisions] == [1, 2, 1, 3]


def test_concurrent_posts_share_commits_and_keep_exact_limits(app, rt, site):
    """Posts from many threads at once (as a gunicorn worker's threads would send them): every allowed one
    is stored exactly once, and exactly `limit` pass a shared counter."""
    writer = intake.IntakeWriter(rt)
    limit = protection.Limit("referral_code", 15, 3600)
    calls, results = [], []
    real_store = intake._store

    def store(rt_, slots):
        calls.append(len(slots))
        return real_store(rt_, slots)

    barrier = threading.Barrier(20)

    def post(i: int) -> None:
        sub = intake.Submission(tenant_id=site.tenant.id, program_id=site.program.id, advocate_id=site.advocate.id, code=site.code,
                                friend={"name": f"F{i}", "email": f"f{i}@x.test", "company": None, "phone": None},
                                consent_version="2026-11", token=f"token-{i}", client="10.0.0.1")
        barrier.wait()
        results.append(writer.submit(sub, [(limit, site.code)]))

    intake._store = store
    try:
        threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        intake._store = real_store
    assert len(results) == 20 and sum(r is None for r in results) == 15
    assert all(r.retry_after > 0 for r in results if r is not None)
    assert _count(rt, m.ReferralIntakeRow) == 15 and sum(calls) == 20
    assert not writer._writing and writer._waiting == []


def test_a_failed_write_is_an_error_page_and_the_next_post_goes_through(app, client, site, clock, rt, monkeypatch):
    real_store = intake._store

    def broken(*_a, **_k):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(intake, "_store", broken)
    resp = fill(client, clock, f"/r/{site.code}", {"name": "Alex", "email": "alex@prospect.test", "consent": "yes"})
    assert resp.status_code == 500 and "Something went wrong" in resp.get_data(as_text=True)
    assert _count(rt, m.ReferralIntakeRow) == 0
    monkeypatch.setattr(intake, "_store", real_store)
    assert fill(client, clock, f"/r/{site.code}", {"name": "Alex", "email": "alex@prospect.test", "consent": "yes"}).status_code == 303
    assert _count(rt, m.ReferralIntakeRow) == 1


def test_the_drain_is_scheduled_once_per_burst(rt, site):
    writer = intake.IntakeWriter(rt, kick_delay=60)
    for i in range(3):
        sub = intake.Submission(tenant_id=site.tenant.id, program_id=site.program.id, advocate_id=site.advocate.id, code=site.code,
                                friend={"name": "F", "email": f"f{i}@x.test", "company": None, "phone": None},
                                consent_version="2026-11", token=f"t{i}", client=None)
        assert writer.submit(sub, []) is None
    # The first post scheduled a drain a minute out; it will see the later ones, so none is added.
    assert [name for name, _ in rt.jobs.jobs] == ["capture_intake"]
    assert _count(rt, m.ReferralIntakeRow) == 3


def test_hot_writes_store_what_the_orm_reads(rt, site, clock):
    """The hot path runs compiled Core statements on the DBAPI cursor: types must round-trip as the ORM's do."""
    from refstage.adapters.db import hot

    at = dt.datetime(2026, 11, 2, 10, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with hot.transaction(rt.session_factory) as tx:
        totals = tx.bump_counters([("k:a", 2, at), ("k:b", 1, at)])
        tx.insert_intake([{"id": "x" * 32, "tenant_id": site.tenant.id, "program_id": site.program.id,
                           "advocate_id": site.advocate.id, "code": site.code, "friend": {"name": "Zoë", "email": "z@x.test"},
                           "consent_version": "v", "client": None, "received_at": at}])
    assert totals == {"k:a": 2, "k:b": 1}
    with hot.transaction(rt.session_factory) as tx:
        assert tx.bump_counters([("k:a", 3, at)]) == {"k:a": 5}
    with rt.session_factory() as s:
        row = s.get(m.ReferralIntakeRow, "x" * 32)
        assert row.received_at == at and row.received_at.tzinfo is not None and row.friend == {"name": "Zoë", "email": "z@x.test"}
        assert s.get(m.RateLimitRow, "k:a").expires_at == at
        # Range queries written with the ORM see the hot rows (same stored format on SQLite).
        assert s.scalar(select(func.count()).select_from(m.ReferralIntakeRow).where(m.ReferralIntakeRow.received_at <= at)) == 1
    with pytest.raises(RuntimeError):
        with hot.transaction(rt.session_factory) as tx:
            tx.bump_counters([("k:c", 1, at)])
            raise RuntimeError("rolled back")
    with rt.session_factory() as s:
        assert s.get(m.RateLimitRow, "k:c") is None


def test_hot_statements_compile_for_postgresql():
    from sqlalchemy.dialects import postgresql

    from refstage.adapters.db import hot

    dialect = postgresql.psycopg.dialect()
    counter, row = hot._prepared(dialect, "counter"), hot._prepared(dialect, "intake")
    assert "ON CONFLICT (key) DO UPDATE" in counter.sql and "RETURNING" in counter.sql and not counter.positional
    assert "ON CONFLICT (id) DO NOTHING" in row.sql and "::JSON" in row.sql
    args = row.args({"id": "i", "friend": {"a": 1}, "received_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)})
    assert args["id"] == "i" and args["processed_at"] is None



def test_hot_writes_wait_for_another_writer_without_long_sleeps(rt, site):
    """SQLite: while another connection holds the write lock, a hot transaction retries BEGIN IMMEDIATE every
    millisecond or less (not SQLite's growing sleeps), goes through as soon as the lock is free, gives up with
    "database is locked" at its deadline, and leaves the connection's normal busy timeout in place."""
    import sqlite3
    import time

    from refstage.adapters.db import hot
    from refstage.adapters.db.database import BUSY_TIMEOUT_MS

    engine = rt.session_factory.kw["bind"]
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        with hot.transaction(rt.session_factory) as tx:
            assert tx.bump_counters([("k:pg", 1, rt.now())]) == {"k:pg": 1}
        return
    other = sqlite3.connect(engine.url.database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer, in effect
    try:
        raw = engine.raw_connection()
        try:
            started = time.monotonic()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                hot._begin_immediate(raw.cursor(), timeout=0.05)
            assert 0.05 <= time.monotonic() - started < 1
            assert raw.cursor().execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
        finally:
            raw.close()
        threading.Timer(0.1, other.rollback).start()  # the other writer finishes meanwhile
        started = time.monotonic()
        with hot.transaction(rt.session_factory) as tx:
            tx.bump_counters([("k:turn", 1, rt.now())])
        assert time.monotonic() - started < 0.5
    finally:
        other.close()
    with rt.session_factory() as s:
        assert s.get(m.RateLimitRow, "k:turn").count == 1
