"""Gateway API HTTPRoute weights: every rule reaching the two Services, and only their weights."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
import yaml

from rollouts.routing import gateway_api
from rollouts.routing.common import RoutingError

# The Gateway API traffic-splitting guide's route, grown the way real ones grow: a filtered /api
# rule, a catch-all rule with an unweighted (default 1) stable ref, and a rule for another backend.
HTTP_ROUTE = yaml.safe_load(
    """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: shop
spec:
  parentRefs:
  - name: shop-gateway
    namespace: infra
    sectionName: https
  hostnames: [web.example.com]
  rules:
  - name: api
    matches:
    - path: {type: PathPrefix, value: /api}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add: [{name: x-route, value: api}]
    timeouts: {request: 10s}
    backendRefs:
    - {name: web-stable, port: 8080, weight: 90}
    - {group: "", kind: Service, name: web-canary, port: 8080, weight: 10}
  - matches:
    - path: {type: PathPrefix, value: /}
    backendRefs:
    - {name: web-stable, port: 8080}
    - {name: web-canary, port: 8080, weight: 0}
  - matches:
    - path: {type: PathPrefix, value: /static}
    backendRefs:
    - {name: assets, port: 80}
"""
)

KW: dict[str, Any] = {"stable": "web-stable", "canary": "web-canary", "namespace": "shop"}


def apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(obj, ops, in_place=False)
    return result


def with_weights(obj: dict[str, Any], rules: dict[int, tuple[int, int]]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for i, (stable, canary) in rules.items():
        out["spec"]["rules"][i]["backendRefs"][0]["weight"] = stable
        out["spec"]["rules"][i]["backendRefs"][1]["weight"] = canary
    return out


def test_every_rule_referencing_the_services_is_set_and_nothing_else_changes() -> None:
    after = apply(HTTP_ROUTE, gateway_api.weight_patch(HTTP_ROUTE, 30, **KW))
    assert after == with_weights(HTTP_ROUTE, {0: (70, 30), 1: (70, 30)})
    assert gateway_api.read_weight(after, **KW) == 30


def test_an_unweighted_ref_counts_as_weight_1_and_gets_an_explicit_weight() -> None:
    # rule 1 holds stable 1 (the default) + canary 0: a split, but not a percentage Sluice wrote
    assert gateway_api.read_weight(HTTP_ROUTE, **KW) is None
    ops = gateway_api.weight_patch(HTTP_ROUTE, 10, **KW)
    writes = [op for op in ops if op["op"] != "test"]
    assert writes == [
        {"op": "add", "path": "/spec/rules/1/backendRefs/0/weight", "value": 90},
        {"op": "replace", "path": "/spec/rules/1/backendRefs/1/weight", "value": 10},
    ]


def test_patch_guards_the_backend_names() -> None:
    ops = gateway_api.weight_patch(HTTP_ROUTE, 10, **KW)
    assert ops[:2] == [
        {"op": "test", "path": "/spec/rules/1/backendRefs/0/name", "value": "web-stable"},
        {"op": "test", "path": "/spec/rules/1/backendRefs/1/name", "value": "web-canary"},
    ]
    edited = copy.deepcopy(HTTP_ROUTE)
    edited["spec"]["rules"][1]["backendRefs"].reverse()
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        apply(edited, ops)


def test_idempotent_and_outside_changes_are_undone() -> None:
    ours = apply(HTTP_ROUTE, gateway_api.weight_patch(HTTP_ROUTE, 30, **KW))
    assert gateway_api.weight_patch(ours, 30, **KW) == []
    theirs = with_weights(ours, {0: (0, 100)})
    assert gateway_api.read_weight(theirs, **KW) is None  # the rules disagree
    assert apply(theirs, gateway_api.weight_patch(theirs, 30, **KW)) == ours
    both = with_weights(ours, {0: (50, 50), 1: (50, 50)})
    assert gateway_api.read_weight(both, **KW) == 50


def test_rule_with_only_the_stable_service_is_an_error_naming_it() -> None:
    route = copy.deepcopy(HTTP_ROUTE)
    del route["spec"]["rules"][1]["backendRefs"][1]
    with pytest.raises(RoutingError) as e:
        gateway_api.weight_patch(route, 30, **KW)
    assert str(e.value) == (
        'HTTPRoute shop/web: rules[1] has no backendRef for canary Service "web-canary"'
    )
    route = copy.deepcopy(HTTP_ROUTE)
    del route["spec"]["rules"][0]["backendRefs"][0]
    with pytest.raises(RoutingError, match='rule "api" has no backendRef for stable Service'):
        gateway_api.weight_patch(route, 30, **KW)


def test_route_reaching_neither_service_is_an_error() -> None:
    route = copy.deepcopy(HTTP_ROUTE)
    route["spec"]["rules"] = route["spec"]["rules"][2:]
    with pytest.raises(RoutingError, match="HTTPRoute shop/web: no rule has backendRefs for"):
        gateway_api.weight_patch(route, 30, **KW)


@pytest.mark.parametrize(
    "ref",
    [
        {"name": "web-canary", "namespace": "other", "port": 8080},
        {"name": "web-canary", "kind": "ServiceImport", "group": "multicluster.x-k8s.io"},
        {"name": "web-canary-v2", "port": 8080},
    ],
)
def test_refs_to_other_objects_are_not_the_canary(ref: dict[str, Any]) -> None:
    route = copy.deepcopy(HTTP_ROUTE)
    route["spec"]["rules"][0]["backendRefs"][1] = {**ref, "weight": 0}
    with pytest.raises(RoutingError, match='rule "api" has no backendRef for canary'):
        gateway_api.weight_patch(route, 30, **KW)


def test_a_same_namespace_ref_written_out_in_full_matches() -> None:
    route = copy.deepcopy(HTTP_ROUTE)
    route["spec"]["rules"][0]["backendRefs"][1]["namespace"] = "shop"
    assert apply(route, gateway_api.weight_patch(route, 30, **KW))["spec"]["rules"][0][
        "backendRefs"
    ][1] == {
        "group": "",
        "kind": "Service",
        "name": "web-canary",
        "namespace": "shop",
        "port": 8080,
        "weight": 30,
    }


def test_a_third_weighted_backend_is_refused_and_a_zero_one_left_alone() -> None:
    route = copy.deepcopy(HTTP_ROUTE)
    route["spec"]["rules"][0]["backendRefs"].append({"name": "web-old", "port": 8080, "weight": 0})
    after = apply(route, gateway_api.weight_patch(route, 30, **KW))
    assert after["spec"]["rules"][0]["backendRefs"][2] == {
        "name": "web-old",
        "port": 8080,
        "weight": 0,
    }
    del route["spec"]["rules"][0]["backendRefs"][2]["weight"]  # default 1: takes traffic
    with pytest.raises(RoutingError, match='also sends weight 1 to backendRef "web-old"'):
        gateway_api.weight_patch(route, 30, **KW)


def test_the_input_object_is_never_mutated() -> None:
    before = copy.deepcopy(HTTP_ROUTE)
    gateway_api.weight_patch(HTTP_ROUTE, 55, **KW)
    assert before == HTTP_ROUTE
