"""Bulk API 2.0 (placeholder while the module is being written)."""

from __future__ import annotations

from typing import Any


class Bulk2:
    def __init__(self, org: Any, delay: float = 0.0) -> None:
        self.org = org

    def stop(self) -> None:
        pass

    def clear(self) -> None:
        pass


def routes() -> list:
    return []
