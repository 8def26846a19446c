"""Invalid Rollouts are rejected with messages that name the offending field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from rollouts.api.base import parse_duration
from rollouts.api.validation import InvalidSpec, parse_rollout
from rollouts.cli.main import cli
from tests.support.rollouts import ISTIO, rollout_doc

INVALID = Path(__file__).parents[3] / "fixtures" / "invalid"


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidSpec) as e:
        parse_rollout(doc)
    return e.value.problems


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("bad-weight.yaml", "spec.strategy.canary.steps[2].setWeight: must be between 0 and 100"),
        (
            "two-strategies.yaml",
            "spec.strategy: must set exactly one of canary, blueGreen (got canary, blueGreen)",
        ),
        ("unknown-step.yaml", "spec.strategy.canary.steps[4].setCanaryScale: is not a known field"),
        (
            "bad-duration.yaml",
            "spec.strategy.canary.steps[1].pause.duration: must be a duration such as 30s, 5m or 1h (got 'ten minutes')",
        ),
    ],
)
def test_invalid_examples_name_the_field(file: str, expected: str) -> None:
    doc = yaml.safe_load((INVALID / file).read_text())
    assert expected in problems(doc)


@pytest.mark.parametrize("file", sorted(p.name for p in INVALID.glob("*.yaml")))
def test_simulate_rejects_invalid_files_with_one_clear_error(file: str) -> None:
    result = CliRunner().invoke(cli, ["simulate", str(INVALID / file)])
    assert result.exit_code == 1
    assert "invalid Rollout" in result.output and "spec.strategy" in result.output
    assert "Traceback" not in result.output


def test_step_with_two_kinds_is_rejected() -> None:
    doc = rollout_doc(steps=[{"setWeight": 10, "pause": {}}])
    assert problems(doc) == [
        "spec.strategy.canary.steps[0]: must set exactly one of setWeight, pause, analysis, "
        "setHeaderRoute, setMirrorRoute, gate (got setWeight, pause)"
    ]


def test_empty_step_is_rejected() -> None:
    assert problems(rollout_doc(steps=[{}])) == [
        "spec.strategy.canary.steps[0]: must set exactly one of setWeight, pause, analysis, "
        "setHeaderRoute, setMirrorRoute, gate (got none)"
    ]


def test_two_routers_are_rejected() -> None:
    doc = rollout_doc(router={**ISTIO, "smi": {"trafficSplitName": "x"}})
    assert problems(doc) == [
        "spec.strategy.canary.trafficRouting: must set exactly one of istio, gatewayAPI, smi, nginx (got istio, smi)"
    ]


def test_missing_required_fields_are_named() -> None:
    doc = rollout_doc()
    del doc["spec"]["selector"]
    del doc["spec"]["strategy"]["canary"]["stableService"]
    assert set(problems(doc)) == {
        "spec.selector: is required",
        "spec.strategy.canary.stableService: is required",
    }


def test_selector_must_match_template_labels() -> None:
    doc = rollout_doc()
    doc["spec"]["selector"]["matchLabels"] = {"app": "other"}
    assert problems(doc) == [
        "spec: selector.matchLabels must match template.metadata.labels (not matched: app=other)"
    ]


def test_negative_and_boolean_numbers_are_rejected() -> None:
    doc = rollout_doc()
    doc["spec"]["replicas"] = -1
    doc["spec"]["strategy"]["canary"]["scaleDownDelaySeconds"] = True
    assert set(problems(doc)) == {
        "spec.replicas: must not be negative",
        "spec.strategy.canary.scaleDownDelaySeconds: must be an integer",
    }


def test_same_service_for_both_roles_is_rejected() -> None:
    doc = rollout_doc()
    doc["spec"]["strategy"]["canary"]["canaryService"] = "web"
    assert problems(doc) == [
        "spec.strategy.canary: stableService and canaryService must name different Services"
    ]


def test_defaults_are_applied() -> None:
    r = parse_rollout(rollout_doc(steps=[{"setWeight": 5}]))
    assert r.canary is not None
    assert r.canary.scale_down_delay_seconds == 30 and r.canary.abort_scale_down_delay_seconds == 30
    assert r.spec.progress_deadline_seconds == 600 and r.spec.revision_history_limit == 10


def test_wire_form_round_trips() -> None:
    doc = rollout_doc(steps=[{"setWeight": 5}, {"pause": {"duration": "1m"}}], router=ISTIO)
    r = parse_rollout(doc)
    again = parse_rollout(copy.deepcopy(r.wire()))
    assert again == r
    assert r.wire()["spec"]["strategy"]["canary"]["trafficRouting"] == ISTIO


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), (45, 45), ("90", 90)],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "-5s", -1, "1.5h"])
def test_bad_durations(text: str | int) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


NGINX = {"nginx": {"stableIngress": "web"}}
HEADER_STEP = {
    "setHeaderRoute": {"match": [{"headerName": "x-canary", "headerValue": {"exact": "y"}}]}
}


@pytest.mark.parametrize(
    ("steps", "router", "problem"),
    [
        (
            [{"setMirrorRoute": {"percentage": 10}}],
            NGINX,
            "spec.strategy.canary.steps[0].setMirrorRoute: needs trafficRouting istio, gatewayAPI "
            "(got trafficRouting nginx)",
        ),
        (
            [{"setWeight": 5}, HEADER_STEP],
            None,
            "spec.strategy.canary.steps[1].setHeaderRoute: needs trafficRouting istio, gatewayAPI, "
            "nginx (got no trafficRouting)",
        ),
        (
            [{"setMirrorRoute": {"percentage": 101}}],
            ISTIO,
            "spec.strategy.canary.steps[0].setMirrorRoute.percentage: must be between 0 and 100",
        ),
        (
            [
                {
                    "setHeaderRoute": {
                        "match": [{"headerName": "x canary", "headerValue": {"exact": "y"}}]
                    }
                }
            ],
            ISTIO,
            "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerName: ",
        ),
        (
            [{"setHeaderRoute": {"cookie": {"name": "beta", "value": "yes"}}}],
            NGINX,
            "spec.strategy.canary.steps[0].setHeaderRoute.cookie.value: NGINX sends a cookie to the "
            "canary only when it is always",
        ),
        (
            [
                {
                    "setHeaderRoute": {
                        **HEADER_STEP["setHeaderRoute"],
                        "cookie": {"name": "b", "value": "always"},
                    }
                }
            ],
            NGINX,
            "spec.strategy.canary.steps[0].setHeaderRoute: NGINX routes by one header or one cookie",
        ),
    ],
)
def test_header_and_mirror_steps_are_checked_with_the_field_named(
    steps: list[dict[str, Any]], router: dict[str, Any] | None, problem: str
) -> None:
    (got,) = problems(rollout_doc(steps=steps, router=router))
    assert got.startswith(problem), got


def test_header_and_mirror_steps_on_a_router_that_carries_them_are_valid() -> None:
    steps = [HEADER_STEP, {"setMirrorRoute": {"percentage": 20}}, {"setHeaderRoute": {}}]
    rollout = parse_rollout(rollout_doc(steps=steps, router=ISTIO))
    assert rollout.canary is not None
    assert [s.kind for s in rollout.canary.steps] == [
        "setHeaderRoute",
        "setMirrorRoute",
        "setHeaderRoute",
    ]


def _adopting(**ref: Any) -> dict[str, Any]:
    doc = rollout_doc()
    del doc["spec"]["template"], doc["spec"]["selector"]
    doc["spec"]["workloadRef"] = {"name": "web", **ref}
    return doc


def test_workload_ref_fields_are_checked_with_the_field_named() -> None:
    assert parse_rollout(_adopting(scaleDown="progressively")).spec.workload_ref is not None
    assert problems(_adopting(scaleDown="sometimes")) == [
        "spec.workloadRef.scaleDown: must be one of 'never', 'onSuccess' or 'progressively'"
    ]
    assert problems(_adopting(kind="StatefulSet")) == [
        "spec.workloadRef.kind: must be one of 'Deployment'"
    ]
    assert problems(_adopting(name="")) == ["spec.workloadRef.name: must not be empty"]
    both = _adopting()
    both["spec"]["template"] = rollout_doc()["spec"]["template"]
    assert problems(both) == ["spec: must set exactly one of template or workloadRef (got both)"]
    neither = rollout_doc()
    del neither["spec"]["template"]
    assert problems(neither) == ["spec.template: is required (or workloadRef)"]
