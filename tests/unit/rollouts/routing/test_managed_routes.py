"""Header and mirror routes in Istio VirtualServices and Gateway API HTTPRoutes, and NGINX's
canary-by-header annotations.

The patches are applied with ``jsonpatch`` (RFC 6902, ``test`` ops included) to the object as read,
so what is checked is the object the API server would hold afterwards.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from rollouts.engine.plan import HeaderMatch, ManagedRoutes
from rollouts.routing import gateway_api, istio, managed, nginx
from rollouts.routing.common import RoutingError

PREFIX = "sluice-web"
SERVICES = {"stable": "web-stable", "canary": "web-canary", "namespace": "shop"}
HEADER = ManagedRoutes(headers=(HeaderMatch("X-Canary", "yes"),))
MIRROR = ManagedRoutes(mirror=20)
BOTH = ManagedRoutes(headers=HEADER.headers, mirror=20)


def vs() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "hosts": ["web.example.com"],
            "http": [
                {
                    "name": "admin",
                    "match": [{"uri": {"prefix": "/admin"}}],
                    "route": [{"destination": {"host": "admin"}}],
                },
                {
                    "name": "primary",
                    "match": [{"uri": {"prefix": "/"}}],
                    "retries": {"attempts": 3},
                    "route": [
                        {
                            "destination": {"host": "web-stable", "port": {"number": 80}},
                            "weight": 70,
                        },
                        {
                            "destination": {"host": "web-canary", "port": {"number": 80}},
                            "weight": 30,
                        },
                    ],
                },
            ],
        },
    }


def apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = jsonpatch.apply_patch(obj, ops)
    return out


def istio_routes(obj: dict[str, Any], wanted: ManagedRoutes, **kw: Any) -> dict[str, Any]:
    ops = istio.managed_routes_patch(obj, wanted, prefix=PREFIX, routes=None, **SERVICES, **kw)
    return apply(obj, ops)


def test_istio_header_route_goes_first_with_the_headers_on_each_match_and_only_the_canary() -> None:
    out = istio_routes(vs(), HEADER)
    header, *user = out["spec"]["http"]
    assert user == vs()["spec"]["http"]  # the user's routes, untouched and in order
    assert header["name"] == "sluice-web-header"
    assert header["match"] == [{"uri": {"prefix": "/"}, "headers": {"x-canary": {"exact": "yes"}}}]
    assert header["route"] == [
        {"destination": {"host": "web-canary", "port": {"number": 80}}, "weight": 100}
    ]
    assert header["retries"] == {"attempts": 3}  # the copied route's behaviour stays
    assert managed.marked(out) == {"sluice-web-header"}
    # a weight change later leaves the header route alone (it has no split)
    assert istio.read_weight(out, routes=None, **SERVICES) == 30
    reweighted = apply(out, istio.weight_patch(out, 50, routes=None, **SERVICES))
    assert reweighted["spec"]["http"][0] == header


def test_istio_mirror_route_copies_the_managed_route_and_keeps_its_weights_in_step() -> None:
    out = istio_routes(vs(), MIRROR)
    mirror = out["spec"]["http"][0]
    assert mirror["name"] == "sluice-web-mirror"
    assert mirror["mirror"] == {"host": "web-canary", "port": {"number": 80}}
    assert mirror["mirrorPercentage"] == {"value": 20.0}
    assert mirror["route"] == vs()["spec"]["http"][1]["route"]
    # with named routes, the Rollout's own mirror route is weighted with them
    splits = istio.route_splits(out, routes=["primary"], prefix=PREFIX, **SERVICES)
    assert {s.where for s in splits} == {'http route "primary"', 'http route "sluice-web-mirror"'}
    moved = apply(out, istio.patch_for(out, splits, 60))
    assert [d["weight"] for d in moved["spec"]["http"][0]["route"]] == [40, 60]
    assert [d["weight"] for d in moved["spec"]["http"][2]["route"]] == [40, 60]


def test_istio_routes_are_idempotent_and_removal_restores_the_object() -> None:
    out = istio_routes(vs(), BOTH)
    assert [r["name"] for r in out["spec"]["http"]] == [
        "sluice-web-header",
        "sluice-web-mirror",
        "admin",
        "primary",
    ]
    assert istio.managed_routes_patch(out, BOTH, prefix=PREFIX, routes=None, **SERVICES) == []
    back = istio_routes(out, ManagedRoutes())
    assert back["spec"] == vs()["spec"]
    assert managed.ANNOTATION not in (back["metadata"].get("annotations") or {})


def test_drift_is_repaired_a_hand_edited_route_comes_back() -> None:
    out = istio_routes(vs(), HEADER)
    edited = copy.deepcopy(out)
    edited["spec"]["http"][0]["route"][0]["weight"] = 50  # someone halves it
    repaired = istio_routes(edited, HEADER)
    assert repaired["spec"]["http"][0] == out["spec"]["http"][0]
    gone = copy.deepcopy(out)
    del gone["spec"]["http"][0]  # a sync removed it, the mark stayed
    assert istio_routes(gone, HEADER)["spec"] == out["spec"]


def test_only_routes_both_named_and_marked_are_sluices() -> None:
    obj = vs()
    other = {"name": "sluice-api-header", "route": [{"destination": {"host": "api"}}]}
    obj["spec"]["http"].insert(0, other)  # another Rollout's, marked
    obj["metadata"]["annotations"] = {managed.ANNOTATION: "sluice-api-header"}
    out = istio_routes(obj, HEADER)
    assert [r["name"] for r in out["spec"]["http"]][:2] == [
        "sluice-web-header",
        "sluice-api-header",
    ]
    assert other in out["spec"]["http"]
    assert managed.marked(out) == {"sluice-api-header", "sluice-web-header"}
    back = istio_routes(out, ManagedRoutes())
    assert back["spec"] == obj["spec"]
    assert managed.marked(back) == {"sluice-api-header"}


def test_a_user_route_with_sluices_name_is_refused_not_taken_over() -> None:
    obj = vs()
    lookalike = {"name": "sluice-web-header", "route": [{"destination": {"host": "elsewhere"}}]}
    obj["spec"]["http"].insert(0, lookalike)  # the user's own route, unmarked
    with pytest.raises(RoutingError, match='route named "sluice-web-header" exists'):
        istio.managed_routes_patch(obj, HEADER, prefix=PREFIX, routes=None, **SERVICES)
    # and removing (nothing of Sluice's there) leaves it alone
    assert (
        istio.managed_routes_patch(obj, ManagedRoutes(), prefix=PREFIX, routes=None, **SERVICES)
        == []
    )


def test_a_concurrent_edit_fails_the_guard() -> None:
    obj = vs()
    ops = istio.managed_routes_patch(obj, HEADER, prefix=PREFIX, routes=None, **SERVICES)
    obj["spec"]["http"][1]["retries"] = {"attempts": 5}  # changed between read and write
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(obj, ops)


def http_route() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": "web-stable", "port": 80, "weight": 90},
                        {"name": "web-canary", "port": 80, "weight": 10},
                    ],
                }
            ],
        },
    }


def gw_routes(obj: dict[str, Any], wanted: ManagedRoutes) -> dict[str, Any]:
    return apply(obj, gateway_api.managed_routes_patch(obj, wanted, prefix=PREFIX, **SERVICES))


def test_gateway_header_rule_adds_header_matches_and_sends_to_the_canary() -> None:
    wanted = ManagedRoutes(
        headers=(HeaderMatch("x-canary", "yes"), HeaderMatch("x-tier", "gold", "prefix"))
    )
    out = gw_routes(http_route(), wanted)
    header, user = out["spec"]["rules"]
    assert user == http_route()["spec"]["rules"][0]
    assert header["name"] == "sluice-web-header"
    assert header["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [
                {"type": "Exact", "name": "x-canary", "value": "yes"},
                {"type": "RegularExpression", "name": "x-tier", "value": "^gold.*"},
            ],
        }
    ]
    assert header["backendRefs"] == [{"name": "web-canary", "port": 80, "weight": 100}]
    assert gateway_api.read_weight(out, **SERVICES) == 10  # the header rule carries no split


def test_gateway_mirror_rule_mirrors_a_percentage_and_is_weighted_with_the_rule() -> None:
    out = gw_routes(http_route(), MIRROR)
    mirror, _ = out["spec"]["rules"]
    assert mirror["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "web-canary", "port": 80}, "percent": 20},
        }
    ]
    moved = apply(out, gateway_api.weight_patch(out, 40, **SERVICES))
    assert [r["weight"] for rule in moved["spec"]["rules"] for r in rule["backendRefs"]] == [
        60,
        40,
        60,
        40,
    ]
    back = gw_routes(moved, ManagedRoutes())
    assert [r["weight"] for r in back["spec"]["rules"][0]["backendRefs"]] == [60, 40]
    assert len(back["spec"]["rules"]) == 1
    assert gateway_api.managed_routes_patch(back, ManagedRoutes(), prefix=PREFIX, **SERVICES) == []


def test_routers_without_routes_say_so() -> None:
    with pytest.raises(RoutingError, match="cannot mirror"):
        nginx.NginxRouter.set_managed_routes(_nginx(), MIRROR)


def _nginx() -> nginx.NginxRouter:
    router = nginx.NginxRouter.__new__(nginx.NginxRouter)
    router.namespace, router.stable_ingress = "shop", "web"
    return router


@pytest.mark.parametrize(
    ("headers", "annotations"),
    [
        ((), {}),
        (
            (HeaderMatch("X-Canary", "yes"),),
            {nginx.BY_HEADER: "X-Canary", nginx.BY_HEADER_VALUE: "yes"},
        ),
        (
            (HeaderMatch("X-Canary", "y.*", "regex"),),
            {nginx.BY_HEADER: "X-Canary", nginx.BY_HEADER_PATTERN: "y.*"},
        ),
        ((HeaderMatch("cookie", "^...$", "regex", cookie="beta"),), {nginx.BY_COOKIE: "beta"}),
    ],
)
def test_nginx_canary_by_header_annotations(
    headers: tuple[HeaderMatch, ...], annotations: dict[str, str]
) -> None:
    assert nginx.header_annotations(headers, "web") == annotations


def test_nginx_cannot_route_by_two_headers_or_a_prefix() -> None:
    with pytest.raises(RoutingError, match="one header"):
        nginx.header_annotations((HeaderMatch("a", "1"), HeaderMatch("b", "2")), "web")
    with pytest.raises(RoutingError, match="exactly or by regex"):
        nginx.header_annotations((HeaderMatch("a", "1", "prefix"),), "web")
