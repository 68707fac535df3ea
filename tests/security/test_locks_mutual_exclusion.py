"""The per-connection lock could be held by two workers at once when it expired: each peeked, saw it
expired, deleted it unconditionally (possibly the other's fresh lock) and put its own. Many threads race
here around expiry (holders that "crash" leave their lock to expire, everyone tries to take it over) on
Redis and on the SQLite queue, and at no moment may two be inside the critical section."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid

import pytest
import redis as redis_lib
from huey.exceptions import TaskLockedException

from refstage.jobs import locks
from refstage.jobs.queue import make_huey
from tests.integration.test_queue import REDIS_URL, _redis_available


@pytest.fixture(params=["sqlite", "redis"])
def huey(request, settings):
    if request.param == "redis":
        if not _redis_available():
            pytest.skip("no Redis at " + REDIS_URL)
        s = dataclasses.replace(settings, redis_url=REDIS_URL, queue_name=f"locktest-{uuid.uuid4().hex[:8]}")
    else:
        s = settings
    h = make_huey(s)
    yield h
    if request.param == "redis":
        with redis_lib.Redis.from_url(REDIS_URL) as client:
            for key in client.scan_iter(f"refstage.lock.{h.storage.name}.*"):
                client.delete(key)
    h.storage.flush_all()


def race(huey, *, threads: int, seconds: float, ttl: float, crash_share: float, renew: bool) -> dict:
    # A worker may be paused between reading the lock and writing it (preemption, a GC pause): widen that
    # window so the race is met in a short run rather than once a month in production.
    peek = huey.storage.peek_data

    def slow_peek(key):
        found = peek(key)
        time.sleep(ttl / 10)
        return found

    huey.storage.peek_data = slow_peek
    inside = [0]
    state = {"overlaps": 0, "entries": 0, "takeovers_after_crash": 0}
    guard = threading.Lock()
    abandoned: list = []
    stop = time.monotonic() + seconds

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        while time.monotonic() < stop:
            crash = rnd.random() < crash_share
            try:
                lock = locks.connection_lock(huey, "sync:race", ttl=ttl, renew=renew)
                lock.__enter__()
            except TaskLockedException:
                time.sleep(rnd.uniform(0, ttl / 20))
                continue
            with guard:
                inside[0] += 1
                state["entries"] += 1
                if inside[0] > 1:
                    state["overlaps"] += 1
            time.sleep(rnd.uniform(0, ttl / 10))
            with guard:
                inside[0] -= 1
            if crash:
                # Killed without its finally: the lock stays until it expires (kept referenced, so no
                # garbage collection runs the release either).
                abandoned.append(lock)
                continue
            lock.__exit__(None, None, None)
        if hasattr(huey.storage, "close"):
            huey.storage.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    state["takeovers_after_crash"] = len(abandoned)
    return state


def test_no_two_holders_while_locks_expire_and_are_taken_over(huey):
    state = race(huey, threads=8, seconds=2.5, ttl=0.15, crash_share=0.5, renew=False)
    assert state["entries"] >= 10 and state["takeovers_after_crash"] >= 3  # crashed locks expired and were taken over
    assert state["overlaps"] == 0


def test_a_renewed_lock_outlives_its_ttl_and_keeps_others_out(huey):
    ttl = 1.0  # renewed every third of it: a busy machine must stall the heartbeat for 2/3 s to break this
    with locks.connection_lock(huey, "sync:long", ttl=ttl):
        deadline = time.monotonic() + 2.5 * ttl  # a "sync" longer than its TTL
        refused = 0
        while time.monotonic() < deadline:
            with pytest.raises(TaskLockedException):
                with locks.connection_lock(huey, "sync:long", ttl=ttl):
                    pass
            refused += 1
            time.sleep(ttl / 5)
        assert refused >= 10
    with locks.connection_lock(huey, "sync:long", ttl=ttl):  # released at the end: free again
        pass


def test_release_never_deletes_a_lock_someone_else_took_over(huey):
    ttl = 0.2
    first = locks.connection_lock(huey, "sync:overrun", ttl=ttl, renew=False)
    first.__enter__()
    time.sleep(ttl * 2)  # the first holder overran its TTL without renewing
    second = locks.connection_lock(huey, "sync:overrun", ttl=5, renew=False)
    second.__enter__()
    first.__exit__(None, None, None)  # the late release must leave the second holder's lock alone
    with pytest.raises(TaskLockedException):
        with locks.connection_lock(huey, "sync:overrun", ttl=5):
            pass
    second.__exit__(None, None, None)
    with locks.connection_lock(huey, "sync:overrun", ttl=5):
        pass


def test_a_dead_local_holder_is_taken_over_at_once(huey):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    locks.plant(huey, "sync:dead", owner="dead", expires_in=600, pid=int(dead.stdout))
    with locks.connection_lock(huey, "sync:dead", ttl=5):
        pass
    locks.plant(huey, "sync:alive", owner="alive", expires_in=600, pid=None)
    with pytest.raises(TaskLockedException):
        with locks.connection_lock(huey, "sync:alive", ttl=5):
            pass
