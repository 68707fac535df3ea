"""The pooled per-view nonces: unique, the requested size, and never shared with a forked child."""

from __future__ import annotations

import os

from refstage.web import randomness


def test_slices_are_fresh_and_sized():
    seen = [randomness.random_bytes(16) for _ in range(2000)]  # spans several 4 KiB refills
    assert all(len(b) == 16 for b in seen)
    assert len(set(seen)) == len(seen)
    assert len(randomness.random_bytes(5000)) == 5000  # larger than the pool


def test_a_forked_child_does_not_repeat_the_parents_next_values():
    randomness.random_bytes(1)  # the parent has a pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, randomness.random_bytes(32))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 32)
    assert child != randomness.random_bytes(32)


def test_token_is_url_safe():
    token = randomness.token_urlsafe(16)
    assert len(token) == 22 and all(c.isalnum() or c in "-_" for c in token)
