"""Istio VirtualService weights: only the two weights of the managed routes ever change."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
import yaml

from rollouts.routing import istio
from rollouts.routing.common import RoutingError

# Shaped like the Istio docs' weighted routing and Argo Rollouts' "primary" route, with the
# things users add around it: a header route, retries, timeouts, header edits, another app's route.
VIRTUAL_SERVICE = yaml.safe_load(
    """
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: web
  namespace: shop
  resourceVersion: "4711"
spec:
  hosts: [web.example.com, web]
  gateways: [shop/web-gateway, mesh]
  http:
  - name: debug
    match:
    - headers:
        x-debug: {exact: "1"}
    route:
    - destination: {host: web-canary}
  - name: primary
    match:
    - uri: {prefix: /}
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset"}
    timeout: 10s
    route:
    - destination:
        host: web-stable
        port: {number: 80}
      weight: 100
      headers:
        response:
          set: {x-served-by: stable}
    - destination:
        host: web-canary.shop.svc.cluster.local
        port: {number: 80}
      weight: 0
  - name: legacy
    route:
    - destination: {host: legacy.shop.svc.cluster.local}
"""
)

KW: dict[str, Any] = {"stable": "web-stable", "canary": "web-canary", "namespace": "shop"}


def apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(obj, ops, in_place=False)
    return result


def with_weights(obj: dict[str, Any], route: int, stable: int, canary: int) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["spec"]["http"][route]["route"][0]["weight"] = stable
    out["spec"]["http"][route]["route"][1]["weight"] = canary
    return out


def test_named_route_gets_weights_and_nothing_else_changes() -> None:
    ops = istio.weight_patch(VIRTUAL_SERVICE, 20, routes=["primary"], **KW)
    after = apply(VIRTUAL_SERVICE, ops)
    assert after == with_weights(VIRTUAL_SERVICE, 1, 80, 20)
    assert istio.read_weight(after, routes=["primary"], **KW) == 20


def test_patch_guards_the_hosts_and_route_name_before_writing() -> None:
    ops = istio.weight_patch(VIRTUAL_SERVICE, 20, routes=["primary"], **KW)
    tests = [op for op in ops if op["op"] == "test"]
    writes = [op for op in ops if op["op"] != "test"]
    assert ops[: len(tests)] == tests  # every guard runs before any write
    assert {(t["path"], t["value"]) for t in tests} == {
        ("/spec/http/1/name", "primary"),
        ("/spec/http/1/route/0/destination/host", "web-stable"),
        ("/spec/http/1/route/1/destination/host", "web-canary.shop.svc.cluster.local"),
    }
    assert writes == [
        {"op": "replace", "path": "/spec/http/1/route/0/weight", "value": 80},
        {"op": "replace", "path": "/spec/http/1/route/1/weight", "value": 20},
    ]


def test_a_concurrent_reorder_fails_the_patch_instead_of_misdirecting_weights() -> None:
    ops = istio.weight_patch(VIRTUAL_SERVICE, 20, routes=["primary"], **KW)
    edited = copy.deepcopy(VIRTUAL_SERVICE)
    edited["spec"]["http"][1]["route"].reverse()  # someone swapped the destinations meanwhile
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        apply(edited, ops)


def test_idempotent_once_the_weights_are_held() -> None:
    after = apply(
        VIRTUAL_SERVICE, istio.weight_patch(VIRTUAL_SERVICE, 20, routes=["primary"], **KW)
    )
    assert istio.weight_patch(after, 20, routes=["primary"], **KW) == []
    # the starting object already holds 0%: nothing to write either
    assert istio.weight_patch(VIRTUAL_SERVICE, 0, routes=["primary"], **KW) == []


def test_an_outside_change_is_read_back_and_undone() -> None:
    ours = apply(VIRTUAL_SERVICE, istio.weight_patch(VIRTUAL_SERVICE, 20, routes=["primary"], **KW))
    theirs = with_weights(ours, 1, 50, 50)
    assert istio.read_weight(theirs, routes=["primary"], **KW) == 50
    assert apply(theirs, istio.weight_patch(theirs, 20, routes=["primary"], **KW)) == ours


def test_weights_not_summing_to_100_read_as_unknown() -> None:
    broken = with_weights(VIRTUAL_SERVICE, 1, 70, 20)
    assert istio.read_weight(broken, routes=["primary"], **KW) is None
    fixed = apply(broken, istio.weight_patch(broken, 20, routes=["primary"], **KW))
    assert fixed == with_weights(VIRTUAL_SERVICE, 1, 80, 20)


def test_missing_named_route_is_an_error_naming_it() -> None:
    with pytest.raises(RoutingError) as e:
        istio.weight_patch(VIRTUAL_SERVICE, 20, routes=["primary", "canary-split"], **KW)
    assert str(e.value) == (
        'VirtualService shop/web: no http route named "canary-split" '
        '(named routes: "debug", "primary", "legacy")'
    )


def test_route_without_canary_destination_is_an_error_naming_route_and_service() -> None:
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    del vs["spec"]["http"][1]["route"][1]
    with pytest.raises(RoutingError) as e:
        istio.weight_patch(vs, 20, routes=["primary"], **KW)
    assert str(e.value) == (
        'VirtualService shop/web: http route "primary" has no destination for canary Service '
        '"web-canary"'
    )


def test_route_without_stable_destination_is_an_error() -> None:
    with pytest.raises(RoutingError, match='"debug" has no destination for stable Service'):
        istio.weight_patch(VIRTUAL_SERVICE, 20, routes=["debug"], **KW)


def test_unset_routes_manage_every_route_reaching_the_services() -> None:
    # "debug" reaches only the canary, so with routes unset it must be named out explicitly
    with pytest.raises(RoutingError, match='"debug" has no destination for stable'):
        istio.weight_patch(VIRTUAL_SERVICE, 20, routes=None, **KW)
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    del vs["spec"]["http"][0]
    after = apply(vs, istio.weight_patch(vs, 30, routes=None, **KW))
    assert after == with_weights(vs, 0, 70, 30)  # "legacy" (another host) is untouched


def test_unset_routes_with_no_route_to_the_services_is_an_error() -> None:
    vs = {"metadata": {"name": "other", "namespace": "shop"}, "spec": {"http": []}}
    with pytest.raises(RoutingError, match="VirtualService shop/other: no http route sends to"):
        istio.weight_patch(vs, 10, routes=None, **KW)


def test_every_named_route_is_set_and_unnamed_routes_are_labelled_by_index() -> None:
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    del vs["spec"]["http"][0]
    second = copy.deepcopy(vs["spec"]["http"][0])
    second["name"] = "mobile"
    vs["spec"]["http"].insert(1, second)
    after = apply(vs, istio.weight_patch(vs, 40, routes=["primary", "mobile"], **KW))
    assert istio.read_weight(after, routes=["primary", "mobile"], **KW) == 40
    assert after == with_weights(with_weights(vs, 0, 60, 40), 1, 60, 40)
    # the routes disagree after a hand edit of one: unknown, so the engine writes again
    assert istio.read_weight(with_weights(after, 1, 90, 10), routes=None, **KW) is None
    unnamed = copy.deepcopy(vs)
    del unnamed["spec"]["http"][0]["name"]
    del unnamed["spec"]["http"][0]["route"][1]
    with pytest.raises(RoutingError, match=r"http\[0\] has no destination for canary"):
        istio.weight_patch(unnamed, 10, routes=None, **KW)


@pytest.mark.parametrize(
    "host",
    [
        "web-canary",
        "web-canary.shop",
        "web-canary.shop.svc",
        "web-canary.shop.svc.cluster.local",
        "web-canary.shop.svc.corp.internal",
    ],
)
def test_canary_host_forms_all_match(host: str) -> None:
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    vs["spec"]["http"][1]["route"][1]["destination"]["host"] = host
    assert istio.read_weight(vs, routes=["primary"], **KW) == 0


@pytest.mark.parametrize(
    "host", ["web-canary.other", "web-canary.other.svc.cluster.local", "web-canary-v2", "web"]
)
def test_other_hosts_do_not_match(host: str) -> None:
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    vs["spec"]["http"][1]["route"][1]["destination"]["host"] = host
    with pytest.raises(RoutingError, match="no destination for canary"):
        istio.read_weight(vs, routes=["primary"], **KW)


def test_missing_weights_are_added_and_read_as_zero() -> None:
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    for dest in vs["spec"]["http"][1]["route"]:
        del dest["weight"]
    assert istio.read_weight(vs, routes=["primary"], **KW) is None  # 0 + 0: not a split
    ops = istio.weight_patch(vs, 10, routes=["primary"], **KW)
    assert [op["op"] for op in ops if op["op"] != "test"] == ["add", "add"]
    assert apply(vs, ops) == with_weights(vs, 1, 90, 10)


def test_a_third_destination_is_left_alone_at_zero_and_refused_when_weighted() -> None:
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    vs["spec"]["http"][1]["route"].append({"destination": {"host": "web-mirror"}, "weight": 0})
    after = apply(vs, istio.weight_patch(vs, 25, routes=["primary"], **KW))
    assert after == with_weights(vs, 1, 75, 25)
    vs["spec"]["http"][1]["route"][2]["weight"] = 5
    with pytest.raises(RoutingError, match='also sends weight 5 to "web-mirror"'):
        istio.weight_patch(vs, 25, routes=["primary"], **KW)


def test_two_destinations_for_one_service_are_refused() -> None:
    vs = copy.deepcopy(VIRTUAL_SERVICE)
    extra = {"destination": {"host": "web-stable", "subset": "v2"}, "weight": 0}
    vs["spec"]["http"][1]["route"].append(extra)
    with pytest.raises(RoutingError, match='2 destinations for stable Service "web-stable"'):
        istio.weight_patch(vs, 25, routes=["primary"], **KW)


@pytest.mark.parametrize("weight", [-1, 101, True])
def test_weights_outside_a_percentage_are_refused(weight: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        istio.weight_patch(VIRTUAL_SERVICE, weight, routes=["primary"], **KW)


def test_the_input_object_is_never_mutated() -> None:
    before = copy.deepcopy(VIRTUAL_SERVICE)
    istio.weight_patch(VIRTUAL_SERVICE, 55, routes=["primary"], **KW)
    assert before == VIRTUAL_SERVICE


def test_api_versions() -> None:
    assert istio.resource().api_version == "networking.istio.io/v1beta1"
    assert istio.resource("v1").api_version == "networking.istio.io/v1"
    with pytest.raises(ValueError, match="v1beta1, v1"):
        istio.resource("v1alpha3")
