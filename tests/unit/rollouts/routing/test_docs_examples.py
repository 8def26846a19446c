"""The routing objects in docs/routers.md work as the guide says they do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from rollouts.engine.routing_hold import stall_message
from rollouts.routing import gateway_api, istio, nginx, smi
from rollouts.routing.common import RoutingError

GUIDE = Path(__file__).parents[4] / "docs" / "routers.md"
KW: dict[str, Any] = {"stable": "checkout-stable", "canary": "checkout-canary", "namespace": "shop"}


def documents() -> dict[str, dict[str, Any]]:
    """The guide's top-level objects by kind (the first of each kind)."""
    found: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), re.S):
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and "kind" in doc:
            found.setdefault(doc["kind"], doc)
    return found


DOCS = documents()


def apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(obj, ops, in_place=False)
    return result


def test_istio_example() -> None:
    vs = DOCS["VirtualService"]
    after = apply(vs, istio.weight_patch(vs, 10, routes=["primary"], **KW))
    assert [d["weight"] for d in after["spec"]["http"][1]["route"]] == [90, 10]
    assert after["spec"]["http"][0] == vs["spec"]["http"][0]
    with pytest.raises(RoutingError, match='"internal-debug" has no destination for stable'):
        istio.weight_patch(vs, 10, routes=None, **KW)


def test_gateway_api_example() -> None:
    route = DOCS["HTTPRoute"]
    after = apply(route, gateway_api.weight_patch(route, 10, **KW))
    assert gateway_api.read_weight(after, **KW) == 10
    assert after["spec"]["rules"][1] == route["spec"]["rules"][1]


def test_smi_example() -> None:
    split = DOCS["TrafficSplit"]
    after = apply(split, smi.weight_patch(split, 10, **KW))
    assert smi.read_weight(after, **KW) == 10


def test_nginx_example() -> None:
    stable, shown = (
        yaml.safe_load(b)
        for b in re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), re.S)
        if "kind: Ingress" in b
    )
    made = nginx.desired_canary(
        stable,
        owner=nginx.Owner("checkout", "<the Rollout's uid>"),
        stable_service="checkout-stable",
        canary_service="checkout-canary",
        weight=10,
    )
    assert made == shown


def test_the_routing_error_shown_is_the_one_sluice_writes() -> None:
    """The "When the router fails" status is what the engine reports for that VirtualService."""
    shown = next(
        yaml.safe_load(block)["status"]
        for block in re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), re.S)
        if "RoutingError" in block
    )
    vs = {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"http": [{"name": "api"}, {"name": "main"}]},
    }
    with pytest.raises(RoutingError) as e:
        istio.route_splits(vs, routes=["primary"], **KW)
    assert shown["message"] == stall_message(str(e.value))
    stalled = shown["conditions"][0]
    assert (stalled["type"], stalled["status"], stalled["reason"]) == (
        "Stalled",
        "True",
        "RoutingError",
    )
    assert stalled["message"] == shown["message"]
