"""A per-connection lock with an expiry, kept in the queue's own storage (SQLite or Redis).

Huey's lock_task has no expiry: a worker killed with SIGKILL mid-sync would leave its connection
locked for good. Here a lock older than its TTL is taken over, so a crash costs at most one TTL."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Iterator

from huey import Huey
from huey.constants import EmptyData
from huey.exceptions import TaskLockedException

DEFAULT_TTL = 30 * 60  # longer than any healthy sync; a sync checkpoints after every batch anyway


@contextlib.contextmanager
def connection_lock(huey: Huey, name: str, ttl: float = DEFAULT_TTL) -> Iterator[None]:
    key = f"refstage-lock:{name}"
    token = json.dumps({"owner": uuid.uuid4().hex, "expires": time.time() + ttl}).encode()
    storage = huey.storage
    if not storage.put_if_empty(key, token):
        current = storage.peek_data(key)
        try:
            expired = current is EmptyData or json.loads(current)["expires"] < time.time()
        except (ValueError, KeyError, TypeError):
            expired = True
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
