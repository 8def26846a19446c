"""The CEL rules in the committed CRD, evaluated (cel-python) and compared with the models.

The API server runs these rules; the controller and ``sluice lint`` run the pydantic validators.
For every combination of fields the two must give the same verdict, or a Rollout could pass
``sluice lint`` and be refused by ``kubectl apply`` (or the reverse).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel
from pydantic import BaseModel, ValidationError

from rollouts.api.rollout import CanaryStep, CanaryStrategy, Strategy, TrafficRouting

CRD_FILE = Path(__file__).resolve().parents[4] / "crds" / "sluice.dev_rollouts.yaml"

_STEP = {
    "setWeight": 20,
    "pause": {"duration": "1m"},
    "analysis": {"templates": [{"templateName": "error-rate"}]},
    "setHeaderRoute": {"match": [{"headerName": "x-canary", "headerValue": {"exact": "yes"}}]},
    "setMirrorRoute": {"percentage": 20},
}
_ROUTERS = {
    "istio": {"virtualService": {"name": "web"}},
    "gatewayAPI": {"httpRoute": {"name": "web"}},
    "smi": {"trafficSplitName": "web"},
    "nginx": {"stableIngress": "web"},
}
_STRATEGIES = {
    "canary": {"stableService": "web-stable", "canaryService": "web-canary"},
    "blueGreen": {"activeService": "web-active", "previewService": "web-preview"},
}
CASES: list[tuple[str, type[BaseModel], Mapping[str, Any]]] = [
    ("spec.strategy.canary.steps[]", CanaryStep, _STEP),
    ("spec.strategy.canary.trafficRouting", TrafficRouting, _ROUTERS),
    ("spec.strategy", Strategy, _STRATEGIES),
]


def _node(path: str) -> Mapping[str, Any]:
    doc = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    node: Mapping[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in path.split("."):
        node = node["properties"][part.removesuffix("[]")]
        if part.endswith("[]"):
            node = node["items"]
    return node


def _passes(rules: list[Mapping[str, Any]], obj: Mapping[str, Any]) -> bool:
    env = celpy.Environment()
    verdicts = []
    for rule in rules:
        result = env.program(env.compile(rule["rule"])).evaluate({"self": json_to_cel(dict(obj))})
        assert isinstance(result, celpy.celtypes.BoolType), (rule["rule"], result)
        verdicts.append(bool(result))
    return all(verdicts)


def _model_accepts(model: type[BaseModel], obj: Mapping[str, Any]) -> bool:
    try:
        model.model_validate(obj)
    except ValidationError:
        return False
    return True


def _subsets(options: Mapping[str, Any]) -> list[dict[str, Any]]:
    keys = list(options)
    return [
        {k: options[k] for k in chosen}
        for n in range(len(keys) + 1)
        for chosen in itertools.combinations(keys, n)
    ]


@pytest.mark.parametrize(
    ("step", "ok"),
    [
        ({"setWeight": 20}, True),
        ({"pause": {}}, True),  # an empty pause waits for a person: it is set
        ({"setWeight": 20, "pause": {"duration": "1m"}}, False),
        ({}, False),
    ],
)
def test_a_step_sets_exactly_one_kind(step: dict[str, Any], ok: bool) -> None:
    rules = _node("spec.strategy.canary.steps[]")["x-kubernetes-validations"]
    assert _passes(rules, step) is ok


@pytest.mark.parametrize(("path", "model", "options"), CASES, ids=[c[0] for c in CASES])
def test_cel_and_the_models_agree_on_every_combination(
    path: str, model: type[BaseModel], options: Mapping[str, Any]
) -> None:
    rules = _node(path)["x-kubernetes-validations"]
    for obj in _subsets(options):
        assert _passes(rules, obj) == _model_accepts(model, obj), (path, sorted(obj))
        assert _passes(rules, obj) == (len(obj) == 1), (path, sorted(obj))


@pytest.mark.parametrize("router", [None, *_ROUTERS])
@pytest.mark.parametrize("step", ["setHeaderRoute", "setMirrorRoute"])
def test_header_and_mirror_steps_need_a_router_that_carries_them(
    router: str | None, step: str
) -> None:
    """CEL and the models agree on which routers take which route steps."""
    canary: dict[str, Any] = {**_STRATEGIES["canary"], "steps": [{step: _STEP[step]}]}
    if router is not None:
        canary["trafficRouting"] = {router: _ROUTERS[router]}
    rules = _node("spec.strategy.canary")["x-kubernetes-validations"]
    accepted = _model_accepts(CanaryStrategy, canary)
    assert _passes(rules, canary) == accepted
    carriers = {
        "setHeaderRoute": {"istio", "gatewayAPI", "nginx"},
        "setMirrorRoute": {"istio", "gatewayAPI"},
    }
    assert accepted == (router in carriers[step])


_SPEC_PARTS = {
    "template": {"metadata": {"labels": {"app": "web"}}},
    "selector": {"matchLabels": {"app": "web"}},
    "workloadRef": {"name": "web"},
}


def test_template_or_workload_ref_cel_and_model_agree() -> None:
    from rollouts.api.rollout import RolloutSpec

    spec_rules = _node_spec()["x-kubernetes-validations"]
    strategy = {"strategy": {"canary": _STRATEGIES["canary"]}}
    for parts in _subsets(_SPEC_PARTS):
        obj = {**parts, **strategy}
        accepted = _model_accepts(RolloutSpec, obj)
        assert _passes(spec_rules, obj) == accepted, sorted(parts)
        valid = ({"template", "selector"}, {"workloadRef"}, {"workloadRef", "selector"})
        assert accepted == (set(parts) in valid), sorted(parts)


def _node_spec() -> Mapping[str, Any]:
    doc = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    node: Mapping[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return node["properties"]["spec"]
