"""A full queue under a fleet-wide burst logs one line per interval, not one per notice."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pytest

from rollouts.api.rollout import Rollout
from rollouts.api.validation import parse_rollout
from rollouts.notifications.sender import DROP_LOG_SECONDS, NotificationSender, Target
from rollouts.notifications.transitions import Notice
from tests.support.rollouts import rollout_doc

ROLLOUT = parse_rollout(rollout_doc(steps=[{"setWeight": 50}]))


def notice(n: int) -> Notice:
    return Notice(
        "Aborted",
        "ns",
        "web",
        f"rev{n}",
        1,
        None,
        datetime(2026, 12, 2, tzinfo=UTC),
        f"web: aborted {n}",
        "",
        "failure",
    )


def test_drops_are_counted_each_and_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    now = [0.0]
    counts: dict[str, int] = {}

    def resolve(rollout: Rollout, n: Notice) -> list[Target]:
        release.wait(10)  # the one sender holds a notice: the queue stays full
        return []

    def count(result: str) -> None:
        counts[result] = counts.get(result, 0) + 1

    sender = NotificationSender(
        resolve,
        lambda url, n: None,
        count,
        lambda rollout, message: None,
        queue_size=3,
        workers=1,
        clock=lambda: now[0],
    )
    try:
        with caplog.at_level(logging.WARNING, logger="sluice.notifications"):
            for i in range(100):
                sender.submit(ROLLOUT, [notice(i)])
            now[0] += DROP_LOG_SECONDS
            sender.submit(ROLLOUT, [notice(100)])
        lines = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
        dropped = counts["dropped"]
        assert 101 - 4 <= dropped <= 101 - 3  # 101 sent; one may be in the sender's hands, 3 queued
        assert len(lines) == 2
        # the first line names the first drop; the second every drop since
        first = int(lines[0].split("dropped the ")[1].split()[0])
        second = int(lines[1].split("dropped the ")[1].split()[0])
        assert first == 1 and first + second == dropped
    finally:
        release.set()
        sender.stop()
