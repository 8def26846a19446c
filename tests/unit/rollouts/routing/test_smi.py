"""SMI TrafficSplit weights: the two backends' weights, nothing else."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
import yaml

from rollouts.routing import smi
from rollouts.routing.common import RoutingError

# The SMI spec's canary example (v1alpha3 adds matches), with Sluice's Service names.
TRAFFIC_SPLIT = yaml.safe_load(
    """
apiVersion: split.smi-spec.io/v1alpha3
kind: TrafficSplit
metadata:
  name: web
  namespace: shop
spec:
  service: web.shop.svc.cluster.local
  matches:
  - kind: HTTPRouteGroup
    name: web-api
  backends:
  - service: web-stable
    weight: 100
  - service: web-canary
    weight: 0
"""
)

KW: dict[str, Any] = {"stable": "web-stable", "canary": "web-canary", "namespace": "shop"}


def apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(obj, ops, in_place=False)
    return result


def with_weights(obj: dict[str, Any], stable: Any, canary: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["spec"]["backends"][0]["weight"] = stable
    out["spec"]["backends"][1]["weight"] = canary
    return out


def test_backends_get_weights_and_nothing_else_changes() -> None:
    assert smi.read_weight(TRAFFIC_SPLIT, **KW) == 0
    ops = smi.weight_patch(TRAFFIC_SPLIT, 5, **KW)
    assert ops == [
        {"op": "test", "path": "/spec/backends/0/service", "value": "web-stable"},
        {"op": "test", "path": "/spec/backends/1/service", "value": "web-canary"},
        {"op": "replace", "path": "/spec/backends/0/weight", "value": 95},
        {"op": "replace", "path": "/spec/backends/1/weight", "value": 5},
    ]
    after = apply(TRAFFIC_SPLIT, ops)
    assert after == with_weights(TRAFFIC_SPLIT, 95, 5)
    assert smi.weight_patch(after, 5, **KW) == []


def test_an_outside_change_is_read_back_and_undone() -> None:
    ours = with_weights(TRAFFIC_SPLIT, 60, 40)
    theirs = with_weights(TRAFFIC_SPLIT, 100, 0)
    assert smi.read_weight(theirs, **KW) == 0
    assert apply(theirs, smi.weight_patch(theirs, 40, **KW)) == ours
    assert smi.read_weight(with_weights(TRAFFIC_SPLIT, 60, 30), **KW) is None


def test_digit_string_weights_are_read() -> None:
    assert smi.read_weight(with_weights(TRAFFIC_SPLIT, "75", "25"), **KW) == 25


def test_backends_may_name_the_services_in_full() -> None:
    split = copy.deepcopy(TRAFFIC_SPLIT)
    split["spec"]["backends"][1]["service"] = "web-canary.shop.svc.cluster.local"
    assert apply(split, smi.weight_patch(split, 10, **KW)) == with_weights(split, 90, 10)


def test_missing_backend_is_an_error_naming_it() -> None:
    split = copy.deepcopy(TRAFFIC_SPLIT)
    del split["spec"]["backends"][1]
    with pytest.raises(RoutingError) as e:
        smi.weight_patch(split, 10, **KW)
    assert str(e.value) == (
        'TrafficSplit shop/web: spec.backends has no backend for canary Service "web-canary"'
    )


def test_a_third_weighted_backend_is_refused() -> None:
    split = copy.deepcopy(TRAFFIC_SPLIT)
    split["spec"]["backends"].append({"service": "web-v0", "weight": 0})
    assert apply(split, smi.weight_patch(split, 10, **KW))["spec"]["backends"][2] == {
        "service": "web-v0",
        "weight": 0,
    }
    split["spec"]["backends"][2]["weight"] = 10
    with pytest.raises(RoutingError, match='also sends weight 10 to "web-v0"'):
        smi.weight_patch(split, 10, **KW)


def test_api_versions() -> None:
    assert smi.resource().api_version == "split.smi-spec.io/v1alpha2"
    assert smi.resource("v1alpha4").plural == "trafficsplits"
    with pytest.raises(ValueError, match="v1alpha2, v1alpha3, v1alpha4"):
        smi.resource("v1alpha1")
