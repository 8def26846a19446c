"""The port the reconcile hands notices to: it must return at once, whatever the receivers do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rollouts.api.rollout import Rollout
from rollouts.notifications.transitions import Notice


class Notifier(Protocol):
    def submit(self, rollout: Rollout, notices: Sequence[Notice]) -> None:
        """Queue ``notices`` for delivery and return without waiting (never raises on delivery)."""


class RecordingNotifier:
    """Keeps what it is given: the simulator prints it, tests read it."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def submit(self, rollout: Rollout, notices: Sequence[Notice]) -> None:
        self.notices.extend(notices)
