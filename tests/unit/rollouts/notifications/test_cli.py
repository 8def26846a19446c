"""``sluice lint`` and ``sluice simulate --notifications`` on notification settings, and the
CRD's CEL rule for spec.notifications agreeing with the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel
from click.testing import CliRunner
from pydantic import ValidationError

from rollouts.api.rollout import NotificationSubscription
from rollouts.cli.lint import lint_texts
from rollouts.cli.main import cli

REPO = Path(__file__).parents[4]
EXAMPLE = REPO / "deploy" / "examples" / "notifications.yaml"


def configmap(subscriptions: str, **extra: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "sluice-notifications", "namespace": "shop"},
            "data": {"subscriptions": subscriptions, **extra},
        }
    )


def test_lint_checks_the_notifications_configmap_naming_the_field() -> None:
    [bad] = lint_texts([("cm.yaml", configmap("- receiver: team\n  events: [Aborted, Nope]\n"))])
    assert not bad.ok
    assert bad.problems[0].startswith(
        "ConfigMap sluice-notifications: data.subscriptions[0].events[1]: must be one of"
    )
    [good] = lint_texts([("cm.yaml", configmap("- receiver: team\n"))])
    assert good.ok and not good.skipped
    [other] = lint_texts([("cm.yaml", configmap("nonsense").replace("sluice-notif", "app-notif"))])
    assert other.skipped  # another ConfigMap is not Sluice's to judge


def test_lint_passes_the_example() -> None:
    findings = lint_texts([(str(EXAMPLE), EXAMPLE.read_text())])
    assert all(f.ok for f in findings), [p for f in findings for p in f.problems]
    assert [f.source.split(": ")[1] for f in findings if not f.skipped] == [
        "Rollout/web",
        "ConfigMap/sluice-notifications",
    ]


def test_simulate_prints_each_notification_with_its_receivers() -> None:
    result = CliRunner().invoke(
        cli, ["simulate", str(EXAMPLE), "--promote", "--quiet", "--notifications"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = lines.index("Notifications (9):")
    heads = [x.strip() for x in lines[start + 1 :] if not x.startswith("      ")]
    assert heads[0].startswith("Healthy: ") and heads[0].endswith("-> deploy-log")
    paused = next(h for h in heads if h.startswith("Paused:"))
    assert paused.endswith("-> team-slack, deploy-log")
    promoted = next(h for h in heads if h.startswith("Promoted:"))
    # the Rollout's own receivers, then the namespace default (namespaceDefaults: true)
    assert promoted.endswith("-> team-slack, chat-discord, deploy-log, audit")


def _events_rule() -> list[dict[str, Any]]:
    crd = yaml.safe_load((REPO / "crds" / "sluice.dev_rollouts.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    item = spec["properties"]["notifications"]["properties"]["subscriptions"]["items"]
    rules: list[dict[str, Any]] = item["x-kubernetes-validations"]
    return rules


@pytest.mark.parametrize(
    "events",
    [None, ["Aborted"], ["Aborted", "Promoted"], ["Aborted", "Promoted", "Aborted"]],
)
def test_cel_and_the_model_agree_on_repeated_events(events: list[str] | None) -> None:
    obj: dict[str, Any] = {"receiver": "team"}
    if events is not None:
        obj["events"] = events
    env = celpy.Environment()
    cel = all(
        bool(env.program(env.compile(r["rule"])).evaluate({"self": json_to_cel(obj)}))
        for r in _events_rule()
    )
    try:
        NotificationSubscription.model_validate(obj)
        model = True
    except ValidationError:
        model = False
    assert cel == model == (events is None or len(set(events)) == len(events))
