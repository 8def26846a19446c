"""Which receivers a notice goes to, and when an unreadable namespace is a failure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.api.rollout import NotificationSubscription
from rollouts.api.validation import parse_rollout
from rollouts.notifications.config import NotificationsForbidden
from rollouts.notifications.kube import resolver
from rollouts.notifications.sender import Target
from rollouts.notifications.transitions import Notice
from tests.support.rollouts import rollout_doc

NOTICE = Notice(
    "Aborted", "ns", "web", "r1", 1, None, datetime(2026, 12, 2, tzinfo=UTC), "t", "b", "failure"
)


class Config:
    def __init__(self, defaults: Any, receivers: dict[str, str]) -> None:
        self._defaults, self._receivers = defaults, receivers
        self.secret_reads = 0

    def defaults(self, namespace: str) -> list[NotificationSubscription]:
        if isinstance(self._defaults, Exception):
            raise self._defaults
        return list(self._defaults)

    def receivers(self, namespace: str) -> dict[str, str]:
        self.secret_reads += 1
        return self._receivers


def rollout(notifications: dict[str, Any] | None = None) -> Any:
    doc = rollout_doc(steps=[{"setWeight": 50}])
    if notifications is not None:
        doc["spec"]["notifications"] = notifications
    return parse_rollout(doc)


FORBIDDEN = NotificationsForbidden("the controller may not read ConfigMap sluice-notifications")


def test_a_namespace_nobody_configured_sends_nothing_and_reports_nothing() -> None:
    config = Config(FORBIDDEN, {})
    assert resolver(config)(rollout(), NOTICE) == []
    assert config.secret_reads == 0  # no subscription: the Secret is not even read


def test_asking_for_the_defaults_where_they_cannot_be_read_is_a_failure() -> None:
    config = Config(FORBIDDEN, {})
    with pytest.raises(NotificationsForbidden):
        resolver(config)(rollout({"namespaceDefaults": True}), NOTICE)


def test_receivers_come_from_the_secret_and_a_missing_key_is_named() -> None:
    config = Config([NotificationSubscription(receiver="audit")], {"team": "json://h/p"})
    targets = resolver(config)(
        rollout({"subscriptions": [{"receiver": "team"}], "namespaceDefaults": True}), NOTICE
    )
    assert targets[0] == Target("team", "json://h/p")
    assert targets[1].url is None and "has no key audit" in str(targets[1].problem)


def test_events_not_subscribed_to_are_not_sent() -> None:
    config = Config([], {"team": "json://h/p"})
    only_promoted = {"subscriptions": [{"receiver": "team", "events": ["Promoted"]}]}
    assert resolver(config)(rollout(only_promoted), NOTICE) == []
    assert config.secret_reads == 0
