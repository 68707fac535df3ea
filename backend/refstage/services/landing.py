"""What a referral landing page needs, per code, cached in-process for a few seconds: a page view does
no database work on a hit. A paused program or a deactivated advocate stops showing within the TTL
(every web process refreshes on its own); the worker re-checks both before a submission becomes a
referral, so the TTL only decides what the page shows, never what is accepted."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from refstage.domain.codes import is_well_formed, normalise_code
from refstage.domain.programs import Program
from refstage.domain.referrals import Advocate
from refstage.services import enrolment
from refstage.services.runtime import Runtime

DEFAULT_TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000


@dataclass
class ReferralPage:
    """A snapshot of one code's advocate and program. Shared by threads: read it, never change it."""

    code: str
    advocate: Advocate
    program: Program
    loaded_at: float
    memo: dict[str, Any] = field(default_factory=dict)  # derived data (the rendered page), dropped with the entry

    @property
    def open(self) -> bool:
        return self.advocate.active and self.program.accepts_referrals


class LandingCache:
    """Code → ReferralPage, loaded through `enrolment.get_advocate_by_code`. Unknown codes are not
    cached (a code enrolled a moment ago must work at once); the time is the runtime's clock."""

    def __init__(self, rt: Runtime, ttl_seconds: float = DEFAULT_TTL_SECONDS, max_entries: int = MAX_ENTRIES):
        self.rt = rt
        self.ttl = float(ttl_seconds)
        self.max_entries = max_entries
        self._entries: dict[str, ReferralPage] = {}
        self._lock = threading.Lock()

    def get(self, code: str) -> ReferralPage | None:
        if not is_well_formed(code):
            return None
        code = normalise_code(code)
        now = self.rt.now().timestamp()
        entry = self._entries.get(code)
        if entry is not None and 0 <= now - entry.loaded_at < self.ttl:
            return entry
        found = enrolment.get_advocate_by_code(self.rt, code)
        with self._lock:
            if found is None:
                self._entries.pop(code, None)
                return None
            entry = ReferralPage(code, found[0], found[1], now)
            self._entries.pop(code, None)
            while len(self._entries) >= self.max_entries:  # oldest loaded first: dicts keep insertion order
                self._entries.pop(next(iter(self._entries)))
            self._entries[code] = entry
        return entry

    def forget(self, code: str | None = None) -> None:
        """Drop one code (or everything): the next view reads the database."""
        with self._lock:
            if code is None:
                self._entries.clear()
            else:
                self._entries.pop(normalise_code(code), None)
