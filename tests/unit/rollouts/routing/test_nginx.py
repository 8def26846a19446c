"""NGINX canary Ingress: derived from the stable Ingress, owned by the Rollout, patched minimally."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from rollouts.routing import nginx
from rollouts.routing.common import RoutingError

# ingress-nginx's canary example, as a production Ingress looks: TLS, a class, controller and
# cert-manager annotations, a second path for another Service and a second host.
STABLE_INGRESS = yaml.safe_load(
    """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  uid: 3b0a8f2e-0000-4000-8000-000000000001
  resourceVersion: "812"
  labels: {app: web}
  annotations:
    kubernetes.io/ingress.class: nginx
    nginx.ingress.kubernetes.io/proxy-body-size: 8m
    cert-manager.io/cluster-issuer: letsencrypt
spec:
  ingressClassName: nginx
  tls:
  - hosts: [web.example.com]
    secretName: web-tls
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: web-stable, port: {number: 80}}
      - path: /admin
        pathType: Prefix
        backend:
          service: {name: admin, port: {number: 80}}
  - host: admin.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: admin, port: {name: http}}
"""
)

OWNER = nginx.Owner("web", "7c1d-rollout-uid")
KW: dict[str, Any] = {
    "owner": OWNER,
    "stable_service": "web-stable",
    "canary_service": "web-canary",
}


def desired(weight: int, stable: dict[str, Any] = STABLE_INGRESS) -> dict[str, Any]:
    return nginx.desired_canary(stable, weight=weight, **KW)


def merge(obj: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies a merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(obj) if isinstance(obj, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def test_canary_ingress_copies_only_the_stable_paths_pointed_at_the_canary() -> None:
    assert desired(20) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "web-web-canary",
            "namespace": "shop",
            "labels": {"sluice.dev/rollout": "web", "app.kubernetes.io/managed-by": "sluice"},
            "annotations": {
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "20",
                "kubernetes.io/ingress.class": "nginx",
            },
            "ownerReferences": [
                {
                    "apiVersion": "sluice.dev/v1alpha1",
                    "kind": "Rollout",
                    "name": "web",
                    "uid": "7c1d-rollout-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
            "rules": [
                {
                    "host": "web.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": "web-canary", "port": {"number": 80}}
                                },
                            }
                        ]
                    },
                }
            ],
        },
    }


def test_the_stable_ingress_is_never_mutated() -> None:
    before = copy.deepcopy(STABLE_INGRESS)
    desired(50)
    assert before == STABLE_INGRESS


def test_without_a_uid_there_is_no_owner_reference() -> None:
    doc = nginx.desired_canary(
        STABLE_INGRESS,
        weight=5,
        owner=nginx.Owner("web"),
        stable_service="web-stable",
        canary_service="web-canary",
    )
    assert "ownerReferences" not in doc["metadata"]


def test_stable_ingress_without_the_stable_service_is_an_error() -> None:
    with pytest.raises(RoutingError) as e:
        nginx.desired_canary(
            STABLE_INGRESS, weight=5, owner=OWNER, stable_service="shop", canary_service="c"
        )
    assert str(e.value) == 'Ingress shop/web: spec.rules has no path with backend Service "shop"'


def test_weight_change_patches_only_the_weight_annotation() -> None:
    current = desired(20)
    assert nginx.canary_patch(current, desired(20)) is None
    patch = nginx.canary_patch(current, desired(40))
    assert patch == {
        "metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "40"}}
    }
    assert nginx.read_weight(merge(current, patch)) == 40


def test_annotations_added_by_others_survive_and_a_hand_edit_is_undone() -> None:
    current = desired(20)
    current["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header"] = "x-canary"
    current["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] = "100"
    assert nginx.read_weight(current) == 100  # the engine sees the hand edit ...
    after = merge(current, nginx.canary_patch(current, desired(20)))
    assert nginx.read_weight(after) == 20  # ... and the patch undoes it
    assert after["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header"] == (
        "x-canary"
    )


def test_changes_to_the_stable_ingress_follow_into_the_canary() -> None:
    current = desired(20)
    stable = copy.deepcopy(STABLE_INGRESS)
    stable["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/v2"
    del stable["spec"]["tls"]
    del stable["metadata"]["annotations"]["kubernetes.io/ingress.class"]
    want = desired(20, stable)
    patch = nginx.canary_patch(current, want)
    assert patch is not None
    assert patch["spec"]["tls"] is None
    assert patch["metadata"]["annotations"] == {"kubernetes.io/ingress.class": None}
    assert merge(current, patch) == want


def test_read_weight() -> None:
    assert nginx.read_weight(None) == 0  # no canary Ingress: everything goes to stable
    assert nginx.read_weight(desired(35)) == 35
    bad = desired(35)
    bad["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"] = "false"
    assert nginx.read_weight(bad) is None
    bad = desired(35)
    bad["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] = "lots"
    assert nginx.read_weight(bad) is None


def test_ownership_is_by_rollout_label() -> None:
    assert nginx.is_managed(desired(10), "web")
    assert not nginx.is_managed(desired(10), "api")
    assert not nginx.is_managed(STABLE_INGRESS, "web")


def test_canary_ingress_name() -> None:
    assert nginx.canary_ingress_name("shop-public", "web") == "shop-public-web-canary"
    with pytest.raises(RoutingError, match="would exceed 253 characters"):
        nginx.canary_ingress_name("i" * 200, "r" * 60)
