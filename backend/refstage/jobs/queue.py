"""The task queue: Huey, on SQLite by default (embedded, nothing to install), on Redis when REDIS_URL
is set (many workers on many machines). Tasks are registered on an instance, never at import."""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey

from refstage.adapters.db.database import private_file
from refstage.config import Settings

log = logging.getLogger(__name__)


def make_huey(settings: Settings, *, immediate: bool = False, name: str | None = None) -> Huey:
    name = name or settings.queue_name
    if settings.redis_url:
        huey: Huey = RedisHuey(name, url=settings.redis_url, immediate=immediate, utc=True)
    else:
        private_file(settings.queue_path)  # 0600: task arguments name tenants and records
        for attempt in range(6):
            try:
                huey = SqliteHuey(name, filename=str(settings.queue_path), immediate=immediate, utc=True, timeout=30)
                break
            except sqlite3.OperationalError as exc:
                # Processes starting together (gunicorn's workers) race to switch a new queue file to WAL, and
                # SQLite answers that pragma "database is locked" at once instead of waiting: try again.
                if "locked" not in str(exc) or attempt == 5:
                    raise
                time.sleep(0.1 * (attempt + 1))
    return huey


def backoff_delay(attempt: int, base: float = 5.0, cap: float = 900.0) -> float:
    """Exponential backoff with full jitter: retries of many workers spread out instead of stampeding."""
    return random.uniform(base / 2, min(cap, base * (2 ** attempt)))


class HueyQueue:
    """The services' JobQueue port, on Huey. Enqueue by task name; the task table is built once."""

    def __init__(self, huey: Huey, runtime: Any):
        from refstage.jobs.tasks import register_tasks

        self.huey = huey
        self.tasks = register_tasks(huey, runtime)

    def _task(self, name: str) -> Any:
        task = self.tasks.get(name)
        if task is None:
            raise KeyError(f"no task named {name!r}")
        return task

    def enqueue(self, name: str, /, **kwargs: Any) -> None:
        self._task(name)(**kwargs)

    def schedule(self, name: str, delay: float, /, **kwargs: Any) -> None:
        """Run `delay` seconds from now (the consumer's scheduler picks it up within a second of that)."""
        self._task(name).schedule(kwargs=kwargs, delay=delay)
