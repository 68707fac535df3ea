"""A per-connection lock with an expiry, kept in the queue's own storage (SQLite or Redis).

Huey's lock_task has no expiry: a worker killed with SIGKILL mid-sync would leave its connection
locked for good. Here a lock is taken over when its holder is a dead process on this machine, or,
from another machine, once it is older than its TTL: a crash costs nothing locally, at most one TTL
across machines."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from typing import Iterator

from huey import Huey
from huey.constants import EmptyData
from huey.exceptions import TaskLockedException

DEFAULT_TTL = 30 * 60  # longer than any healthy sync; a sync checkpoints after every batch anyway


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


@contextlib.contextmanager
def connection_lock(huey: Huey, name: str, ttl: float = DEFAULT_TTL) -> Iterator[None]:
    key = f"refstage-lock:{name}"
    token = json.dumps({"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                        "expires": time.time() + ttl}).encode()
    storage = huey.storage
    if not storage.put_if_empty(key, token):
        current = storage.peek_data(key)
        try:
            holder = json.loads(current)
            expired = holder["expires"] < time.time() or _dead_here(holder)
        except (ValueError, KeyError, TypeError):
            expired = True  # missing or unreadable: nobody can be holding it
        if not expired:
            raise TaskLockedException(f"{name} is locked")
        storage.delete_data(key)  # a dead holder's lock: take it over
        if not storage.put_if_empty(key, token):
            raise TaskLockedException(f"{name} is locked")
    try:
        yield
    finally:
        held = storage.peek_data(key)
        if held is not EmptyData and bytes(held) == token:  # still ours (not taken over after expiry): release
            storage.delete_data(key)
