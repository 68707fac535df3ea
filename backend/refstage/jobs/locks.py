"""A per-connection lock with an expiry, kept in the queue's own storage (Redis or the SQLite queue file).

Huey's lock_task has no expiry: a worker killed with SIGKILL mid-sync would leave its connection locked
for good. Here every lock carries an owner token and an expiry, and every change to it is a
compare-and-set on that token, so two workers can never both hold it:

- Redis: `SET key token NX PX ttl` to take it (an expired lock has vanished), and Lua scripts that
  replace or delete the key only while it still holds our token (the pattern of redis-py's Lock).
- SQLite queue: the kv table of Huey's storage, read and written inside one `BEGIN EXCLUSIVE`
  transaction, so "expired? then take it" is a single step; release deletes only our own token.

The holder renews the lock every third of its TTL from a heartbeat thread, so a sync longer than the TTL
keeps it; a holder that died stops renewing and loses it after at most one TTL. A holder that is a dead
process on this machine is taken over at once (compare-and-set on the dead holder's exact token)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Iterator, Protocol

from huey import Huey
from huey.constants import EmptyData
from huey.exceptions import TaskLockedException
from huey.storage import RedisStorage, SqliteStorage

log = logging.getLogger(__name__)

DEFAULT_TTL = 10 * 60  # renewed every TTL/3 while held; a crashed holder blocks others for at most this long


class _Backend(Protocol):
    def acquire(self, key: str, value: bytes, ttl: float) -> bool: ...
    def current(self, key: str) -> bytes | None: ...
    def replace(self, key: str, expected: bytes, value: bytes, ttl: float) -> bool: ...
    def release(self, key: str, value: bytes) -> bool: ...


_REPLACE = """if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
return 0"""
_RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0"""


class _RedisBackend:
    def __init__(self, storage: RedisStorage):
        self.conn = storage.conn
        self.prefix = f"refstage.lock.{storage.name}."
        self._replace = self.conn.register_script(_REPLACE)
        self._release = self.conn.register_script(_RELEASE)

    def acquire(self, key: str, value: bytes, ttl: float) -> bool:
        return bool(self.conn.set(self.prefix + key, value, nx=True, px=max(1, int(ttl * 1000))))

    def current(self, key: str) -> bytes | None:
        return self.conn.get(self.prefix + key)

    def replace(self, key: str, expected: bytes, value: bytes, ttl: float) -> bool:
        return bool(self._replace(keys=[self.prefix + key], args=[expected, value, max(1, int(ttl * 1000))]))

    def release(self, key: str, value: bytes) -> bool:
        return bool(self._release(keys=[self.prefix + key], args=[value]))


class _SqliteBackend:
    """Each operation is one exclusive transaction on the queue file (Huey's `db(commit=True)`)."""

    def __init__(self, storage: SqliteStorage):
        self.storage = storage

    def acquire(self, key: str, value: bytes, ttl: float) -> bool:
        with self.storage.db(commit=True) as curs:
            curs.execute("select value from kv where queue = ? and key = ?", (self.storage.name, key))
            row = curs.fetchone()
            if row is None:
                curs.execute("insert into kv (queue, key, value) values (?, ?, ?)", (self.storage.name, key, value))
                return True
            holder = _holder(bytes(row[0]))
            if holder is not None and holder["expires"] >= time.time():
                return False
            curs.execute("update kv set value = ? where queue = ? and key = ?", (value, self.storage.name, key))
            return True

    def current(self, key: str) -> bytes | None:
        found = self.storage.peek_data(key)
        return None if found is EmptyData else bytes(found)

    def replace(self, key: str, expected: bytes, value: bytes, ttl: float) -> bool:
        with self.storage.db(commit=True) as curs:
            curs.execute("update kv set value = ? where queue = ? and key = ? and value = ?",
                         (value, self.storage.name, key, expected))
            return curs.rowcount == 1

    def release(self, key: str, value: bytes) -> bool:
        with self.storage.db(commit=True) as curs:
            curs.execute("delete from kv where queue = ? and key = ? and value = ?", (self.storage.name, key, value))
            return curs.rowcount == 1

    def close(self) -> None:
        self.storage.close()  # this thread's connection (Huey keeps one per thread)


class _InProcessBackend:
    """Other Huey storages (memory, for immediate mode) live in one process: a process lock makes each
    compare-and-set atomic there."""

    _guard = threading.Lock()

    def __init__(self, storage):
        self.storage = storage

    def current(self, key: str) -> bytes | None:
        found = self.storage.peek_data(key)
        return None if found is EmptyData else bytes(found)

    def acquire(self, key: str, value: bytes, ttl: float) -> bool:
        with self._guard:
            held = self.current(key)
            holder = _holder(held) if held is not None else None
            if held is not None and holder is not None and holder["expires"] >= time.time():
                return False
            self.storage.put_data(key, value)
            return True

    def replace(self, key: str, expected: bytes, value: bytes, ttl: float) -> bool:
        with self._guard:
            if self.current(key) != expected:
                return False
            self.storage.put_data(key, value)
            return True

    def release(self, key: str, value: bytes) -> bool:
        with self._guard:
            if self.current(key) != value:
                return False
            self.storage.delete_data(key)
            return True


def _backend(huey: Huey) -> _Backend:
    storage = huey.storage
    if isinstance(storage, RedisStorage):
        return _RedisBackend(storage)
    if isinstance(storage, SqliteStorage):
        return _SqliteBackend(storage)
    return _InProcessBackend(storage)


def _token(owner: str, ttl: float) -> bytes:
    return json.dumps({"owner": owner, "host": socket.gethostname(), "pid": os.getpid(),
                       "expires": time.time() + ttl}).encode()


def _holder(value: bytes) -> dict | None:
    """The holder a stored value names, or None when it cannot be read (nobody can be holding it)."""
    try:
        holder = json.loads(value)
        float(holder["expires"])
        return holder
    except (ValueError, KeyError, TypeError):
        return None


def _dead_here(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    if holder["pid"] == os.getpid():
        return False  # a live thread of this process holds it
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class _Heartbeat(threading.Thread):
    """Renews the lock every ttl/3 by compare-and-set on the current token; stops when told or when the lock
    was lost (logged: the holder then runs without it until its work ends)."""

    def __init__(self, backend: _Backend, key: str, value: bytes, owner: str, ttl: float):
        super().__init__(name=f"lock-heartbeat:{key}", daemon=True)
        self.backend, self.key, self.value, self.owner, self.ttl = backend, key, value, owner, ttl
        self.stopping = threading.Event()
        self.lost = False

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.ttl / 3):
                renewed = _token(self.owner, self.ttl)
                if not self.backend.replace(self.key, self.value, renewed, self.ttl):
                    self.lost = True
                    log.error("lock %s was lost (expired and taken over) while held", self.key)
                    return
                self.value = renewed
        except Exception:  # noqa: BLE001 - storage unreachable: the lock expires on its own
            log.exception("could not renew lock %s", self.key)
        finally:
            closer = getattr(self.backend, "close", None)
            if closer:
                closer()

    def stop(self) -> bytes:
        self.stopping.set()
        self.join()
        return self.value


@contextlib.contextmanager
def connection_lock(huey: Huey, name: str, ttl: float = DEFAULT_TTL, renew: bool = True) -> Iterator[None]:
    """Hold `name` for the block, or raise TaskLockedException at once when someone else holds it."""
    key = f"refstage-lock:{name}"
    backend = _backend(huey)
    owner = uuid.uuid4().hex
    value = _token(owner, ttl)
    if not backend.acquire(key, value, ttl):
        held = backend.current(key)
        holder = _holder(held) if held is not None else None
        # Unreadable, or a holder whose process is gone: take it over, but only from that exact value.
        takeover = held is not None and (holder is None or _dead_here(holder))
        if not (takeover and backend.replace(key, held, value, ttl)):
            raise TaskLockedException(f"{name} is locked")
    heartbeat = _Heartbeat(_backend(huey), key, value, owner, ttl) if renew else None
    if heartbeat:
        heartbeat.start()
    try:
        yield
    finally:
        if heartbeat:
            value = heartbeat.stop()
        backend.release(key, value)  # deletes only our own token: never a lock taken over after expiry


def plant(huey: Huey, name: str, *, owner: str, expires_in: float, pid: int | None = None) -> None:
    """Write a lock as another holder would have left it (tests and operators: simulate a crashed worker)."""
    key = f"refstage-lock:{name}"
    backend = _backend(huey)
    value = json.dumps({"owner": owner, "host": socket.gethostname(), "pid": pid,
                        "expires": time.time() + expires_in}).encode()
    if isinstance(backend, _RedisBackend):
        if expires_in > 0:
            backend.conn.set(backend.prefix + key, value, px=int(expires_in * 1000))
        else:
            backend.conn.delete(backend.prefix + key)  # Redis drops an expired key by itself
    else:
        huey.storage.put_data(key, value)
