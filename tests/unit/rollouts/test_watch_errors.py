"""``rollouts.watch_errors`` on kopf's real watcher module: what ends a watch (and is retried)
and what still stops the controller. The operator-level test is
``tests/integration/operator/test_bounded_calls.py``; this one covers the list and watch requests
kopf gives up on after its own retries, which an API brownout longer than them causes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.clients import errors, watching

from rollouts import watch_errors

BROWNOUT = {"kind": "Status", "code": 503, "message": "brownout"}


def wrapped(monkeypatch: pytest.MonkeyPatch, failure: BaseException) -> list[float]:
    """kopf's ``continuous_watch`` replaced by a stream that fails with ``failure`` (the first
    time after one event), wrapped as the operator wraps it; returns the waits taken."""
    started: list[int] = []

    async def stream(**_: Any) -> AsyncIterator[Any]:
        started.append(1)
        if len(started) == 1:
            yield {"type": "MODIFIED", "object": {}}
        raise failure

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(watching, "continuous_watch", stream)
    watch_errors.restart_watches_on_errors(sleep=sleep)
    assert watching.continuous_watch is not stream
    return waits


async def drain(**kwargs: Any) -> list[Any]:
    return [e async for e in watching.continuous_watch(**kwargs)]


@pytest.mark.parametrize(
    "failure",
    [
        errors.APIServerError(BROWNOUT, status=503, headers={}),  # a list kopf gave up on
        errors.APITooManyRequestsError("throttled", status=429, headers={}),
        watching.WatchingError("Error in the watch-stream: {'code': 500}"),
    ],
)
def test_a_failure_the_server_may_mend_ends_the_stream_for_a_restart(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failure: Exception
) -> None:
    waits = wrapped(monkeypatch, failure)
    with caplog.at_level(logging.WARNING, logger="sluice.watch"):
        first = asyncio.run(drain(resource="trafficsplits", namespace=None))
        assert first == [{"type": "MODIFIED", "object": {}}]
        for _ in range(2):  # in a row, no event between: each restart waits longer
            assert asyncio.run(drain(resource="trafficsplits", namespace=None)) == []
    assert waits == [0.5, 1.0, 2.0]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and all("restarting in" in line for line in lines)
    assert all("\n" not in line and len(line) < 400 for line in lines)
    if isinstance(failure, errors.APIServerError):
        assert "the API server answered 503: brownout" in lines[0]


def test_a_refusal_no_wait_mends_still_stops_the_controller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forbidden = errors.APIForbiddenError("rollouts is forbidden", status=403, headers={})
    waits = wrapped(monkeypatch, forbidden)
    with pytest.raises(errors.APIForbiddenError):
        asyncio.run(drain(resource="rollouts", namespace=None))
    assert waits == []
