"""Subscriptions: the Rollout's own, the namespace's defaults, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.api.validation import InvalidSpec, parse_rollout
from rollouts.notifications.config import (
    NotificationConfigError,
    parse_defaults,
    subscriptions_for,
)
from tests.support.rollouts import rollout_doc


def rollout(notifications: dict[str, Any] | None) -> Any:
    doc = rollout_doc(steps=[{"setWeight": 50}])
    if notifications is not None:
        doc["spec"]["notifications"] = notifications
    return parse_rollout(doc)


DEFAULTS = parse_defaults(
    {"subscriptions": "- receiver: team\n  events: [Aborted]\n- receiver: audit\n"}
)


def names(subs: list[Any]) -> list[tuple[str, Any]]:
    return [(s.receiver, s.events) for s in subs]


def test_without_spec_notifications_the_namespace_defaults_apply() -> None:
    assert names(subscriptions_for(rollout(None), lambda: DEFAULTS)) == [
        ("team", ["Aborted"]),
        ("audit", None),
    ]


def test_own_subscriptions_replace_the_defaults_unless_asked_for() -> None:
    def never() -> list[Any]:
        raise AssertionError("the ConfigMap need not be read")

    own = {"subscriptions": [{"receiver": "team", "events": ["Promoted"]}]}
    assert names(subscriptions_for(rollout(own), never)) == [("team", ["Promoted"])]
    both = {**own, "namespaceDefaults": True}
    # the Rollout's entry for a receiver wins over the default one
    assert names(subscriptions_for(rollout(both), lambda: DEFAULTS)) == [
        ("team", ["Promoted"]),
        ("audit", None),
    ]
    assert subscriptions_for(rollout({"subscriptions": []}), never) == []


@pytest.mark.parametrize(
    ("notifications", "problem"),
    [
        (
            {"subscriptions": [{"receiver": "team", "events": ["Exploded"]}]},
            "spec.notifications.subscriptions[0].events[0]",
        ),
        (
            {"subscriptions": [{"receiver": "a", "events": ["Aborted", "Aborted"]}]},
            "spec.notifications.subscriptions[0].events[1]: Aborted is listed twice",
        ),
        (
            {"subscriptions": [{"receiver": "a"}, {"receiver": "a"}]},
            "spec.notifications.subscriptions[1].receiver: receiver a is listed twice",
        ),
        (
            {"subscriptions": [{"receiver": "https://hooks.slack.com/x"}]},
            "spec.notifications.subscriptions[0].receiver",
        ),
        ({"subscriptions": [{"receiver": "a", "url": "x"}]}, "subscriptions[0].url"),
    ],
)
def test_bad_subscriptions_name_the_field(notifications: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidSpec) as e:
        rollout(notifications)
    assert any(problem in p for p in e.value.problems), e.value.problems


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"subscription": "[]"}, "data.subscription: unknown key"),
        ({"subscriptions": "receiver: a"}, "data.subscriptions: must be a list"),
        ({"subscriptions": "- [unclosed"}, "data.subscriptions: not YAML"),
        (
            {"subscriptions": "- receiver: a\n  events: [Nope]"},
            "data.subscriptions[0].events[0]",
        ),
        (
            {"subscriptions": "- receiver: a\n- receiver: a"},
            "data.subscriptions[1].receiver: receiver a is listed twice",
        ),
    ],
)
def test_bad_defaults_name_the_configmap_field(data: dict[str, str], problem: str) -> None:
    with pytest.raises(NotificationConfigError) as e:
        parse_defaults(data)
    assert "ConfigMap sluice-notifications" in str(e.value) and problem in str(e.value)


def test_empty_or_absent_defaults_are_none() -> None:
    assert parse_defaults(None) == [] and parse_defaults({"subscriptions": ""}) == []
