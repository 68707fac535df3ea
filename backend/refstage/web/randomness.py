"""Unpredictable per-view values (the CSP nonce, the public forms' token nonces) without a getrandom()
system call for each: the OS's random bytes are fetched 4 KiB at a time per thread and handed out in
slices that are never reused — the same source and strength, a fraction of the cost on a busy page.
Only for per-view nonces; secrets that live on (sessions, keys, OAuth state) use `secrets` directly."""

from __future__ import annotations

import base64
import os
import threading

POOL_BYTES = 4096
_local = threading.local()


def random_bytes(n: int) -> bytes:
    pid = os.getpid()
    buf, pos = getattr(_local, "buf", b""), getattr(_local, "pos", 0)
    if getattr(_local, "pid", None) != pid or pos + n > len(buf):
        # A forked worker must not hand out what its parent's pool would (gunicorn --preload forks).
        buf, pos = os.urandom(max(POOL_BYTES, n)), 0
        _local.buf, _local.pid = buf, pid
    _local.pos = pos + n
    return buf[pos:pos + n]


def token_urlsafe(n: int) -> str:
    return base64.urlsafe_b64encode(random_bytes(n)).rstrip(b"=").decode("ascii")
