"""The shared rate-limit counters, written through the form's precompiled write (`rt.form_write()`): the other
forms' `protection.hit` and the occasional tidy of expired counters."""

import datetime as dt

from sqlalchemy import select

from refstage.adapters.db import models as m
from refstage.services import protection


def _counter_keys(rt) -> list[str]:
    with rt.session_factory() as s:
        return sorted(s.scalars(select(m.RateLimitRow.key)))


def test_the_tidy_drops_only_counters_whose_window_ended(rt):
    now = rt.now()
    with rt.form_write() as tx:
        tx.bump_counters([("k:ended", 1, now - dt.timedelta(seconds=1)), ("k:ends-now", 1, now),
                          ("k:open", 1, now + dt.timedelta(minutes=1))])
    with rt.form_write() as tx:
        tx.drop_expired_counters(now)
    assert _counter_keys(rt) == ["k:ends-now", "k:open"]


def test_hits_count_on_the_shared_counter_and_a_new_window_starts_over(rt, clock, monkeypatch):
    limit = protection.Limit("join_ip", 2, 600)
    decisions = [protection.hit(rt, limit, "203.0.113.9") for _ in range(3)]
    assert [(d.allowed, d.count) for d in decisions] == [(True, 1), (True, 2), (False, 3)]
    assert 1 <= decisions[-1].retry_after <= 600
    [first_window] = _counter_keys(rt)
    assert "203.0.113.9" not in first_window  # the subject is stored hashed

    monkeypatch.setattr(protection.random, "random", lambda: 0.0)  # the 2 % tidy, every time
    clock.advance(seconds=601)  # past the end of the first window
    fresh = protection.hit(rt, limit, "203.0.113.9")
    assert (fresh.allowed, fresh.count) == (True, 1)
    [second_window] = _counter_keys(rt)
    assert second_window != first_window  # the ended window's counter was tidied away
