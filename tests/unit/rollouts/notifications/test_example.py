"""The notifications example: every receiver URL is one apprise can send to, every receiver the
Rollout and the ConfigMap name is in the Secret, and the ConfigMap parses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apprise
import yaml

from rollouts.api.validation import parse_rollout
from rollouts.notifications.config import parse_defaults, subscriptions_for

EXAMPLE = Path(__file__).parents[4] / "deploy" / "examples" / "notifications.yaml"


def docs() -> dict[str, Any]:
    return {d["kind"]: d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d}


def test_every_receiver_url_is_one_apprise_understands() -> None:
    urls = docs()["Secret"]["stringData"]
    assert len(urls) >= 5
    for receiver, url in urls.items():
        assert apprise.Apprise.instantiate(url) is not None, (receiver, url)


def test_every_subscribed_receiver_has_a_url() -> None:
    d = docs()
    rollout = parse_rollout(d["Rollout"])
    subs = subscriptions_for(rollout, lambda: parse_defaults(d["ConfigMap"]["data"]))
    assert {s.receiver for s in subs} == set(d["Secret"]["stringData"])
