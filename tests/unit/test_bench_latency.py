"""The pure parts of the latency benchmarks (bench/latency.py, bench/push_latency.py): percentiles, the timing
loop's order of calls, and when a Pipedrive deal's reward-status field counts as showing the rewards."""

from __future__ import annotations

import random

import pytest

from bench.latency import percentile, summary, time_until_visible
from bench.push_latency import names_every_reward


def test_summary_takes_nearest_rank_percentiles_of_unsorted_latencies():
    latencies = [float(n) for n in range(20, 0, -1)]  # 20 .. 1, unsorted
    got = summary(latencies)
    assert got == {"samples": 20, "p50_s": 10.5, "p95_s": 19.0, "max_s": 20.0, "min_s": 1.0}
    assert percentile([3.0], 0.95) == 3.0
    with pytest.raises(ValueError):
        summary([])


def test_the_loop_reads_before_the_change_and_polls_until_visible():
    calls: list[tuple[str, str]] = []
    polls = {"a": 0, "b": 0}

    def before(item: str) -> int:
        calls.append(("before", item))
        return 7

    def change(item: str) -> None:
        calls.append(("change", item))

    def visible(item: str, state: int) -> bool:
        assert state == 7
        polls[item] += 1
        return polls[item] >= 3  # visible on the third look

    latencies = time_until_visible(["a", "b"], before=before, change=change, visible=visible,
                                   pauses=random.Random(1), max_idle_s=0.0, poll_s=0.0)
    assert calls == [("before", "a"), ("change", "a"), ("before", "b"), ("change", "b")]
    assert polls == {"a": 3, "b": 3} and len(latencies) == 2 and all(s >= 0 for s in latencies)


def test_the_loop_gives_up_when_the_change_never_shows():
    with pytest.raises(RuntimeError, match="not visible"):
        time_until_visible(["a"], change=lambda item: None, visible=lambda item, state: False,
                           pauses=random.Random(1), max_idle_s=0.0, give_up_s=0.05, poll_s=0.01)


def test_a_deal_shows_the_rewards_only_when_every_rule_has_one():
    keys = ["adv", "friend"]
    assert names_every_reward("adv (advocate): approved 100 EUR; friend (friend): approved 50 EUR", keys)
    assert not names_every_reward("adv (advocate): approved 100 EUR", keys)
    assert not names_every_reward(None, keys)
    assert not names_every_reward("", keys)
    # A key that is only a prefix of another rule's key does not count.
    assert not names_every_reward("adverse (advocate): approved 1 EUR; friend (friend): approved 50 EUR", keys)
