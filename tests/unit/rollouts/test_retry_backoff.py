"""The growing wait between retries of a Rollout whose traffic router fails."""

from __future__ import annotations

import pytest

from rollouts.retry_backoff import RetryBackoff, backoff_delay


def test_delay_doubles_from_first_and_stops_at_the_cap() -> None:
    assert [backoff_delay(n, 1.0, 30.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(10_000, 0.2, 300.0) == 300.0  # no overflow after days of failures
    with pytest.raises(ValueError, match="failures must be >= 1"):
        backoff_delay(0, 1.0, 2.0)


def test_failures_count_per_key_and_a_success_starts_over() -> None:
    b = RetryBackoff(first=0.5, cap=3.0)
    web, api = ("ns", "web"), ("ns", "api")
    assert [b.next_delay(web, True) for _ in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert b.next_delay(api, True) == 0.5  # another Rollout's count is its own
    assert b.next_delay(web, False) is None
    assert b.next_delay(web, True) == 0.5
    b.forget(api)
    assert b.next_delay(api, True) == 0.5


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="first <= cap"):
        RetryBackoff(first=5.0, cap=1.0)
    with pytest.raises(ValueError, match="0 < first"):
        RetryBackoff(first=0.0, cap=1.0)
