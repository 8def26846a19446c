"""The one retry policy: jittered doubling within bounds, a give-up, and Retry-After honoured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from analysis.retry_policy import RetryPolicy, parse_retry_after


def test_delays_double_within_their_jitter_band_then_give_up() -> None:
    policy = RetryPolicy(attempts=4, first=0.2, cap=0.5)
    for failures, step in ((1, 0.2), (2, 0.4), (3, 0.5)):
        low = policy.delay(failures, rand=lambda: 0.0)
        high = policy.delay(failures, rand=lambda: 1.0)
        assert low == pytest.approx(step / 2) and high == pytest.approx(step)
    assert policy.delay(4) is None, "the fourth failure is the last attempt"


def test_retry_after_is_a_floor_and_too_long_a_wait_gives_up() -> None:
    policy = RetryPolicy(attempts=3, first=0.2, cap=5.0)
    assert policy.delay(1, retry_after=2.0, rand=lambda: 1.0) == 2.0
    assert policy.delay(1, retry_after=0.0, rand=lambda: 1.0) == pytest.approx(0.2)
    assert policy.delay(1, retry_after=60.0) is None, "a minute is the Rollout's backoff's to wait"


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7)), now) == 7.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7)), now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"first": 2.0, "cap": 1.0}])
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
