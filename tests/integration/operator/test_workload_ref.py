"""Adopting an existing Deployment (``spec.workloadRef``) with a running operator.

The Services keep reaching the Deployment's pods until the Rollout's own are ready, then move to
them and the Deployment scales to 0 (onSuccess); an edit of the Deployment's template is a new
revision, and editing it back mid-rollout rolls back; deleting the Rollout scales the Deployment back up and unpins the Services only once
its pods are ready, so traffic always has ready pods behind it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kubernetes
import pytest

from tests.support.kube import create_rollout, get_deployment, set_deployment_ready

from .conftest import OperatorHarness, healthy

pytestmark = pytest.mark.integration


def deployment(namespace: str, image: str = "web:1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def adopting(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 4,
            "workloadRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "scaleDown": "onSuccess",
            },
            "strategy": {
                "canary": {
                    "stableService": "web",
                    "canaryService": "web-canary",
                    "scaleDownDelaySeconds": 0,
                    "abortScaleDownDelaySeconds": 0,
                    "steps": [{"setWeight": 50}, {"pause": {}}],
                }
            },
        },
    }


def template(image: str) -> dict[str, Any]:
    """A patch of the Deployment's pod template, as a Git change brings it."""
    return {"spec": {"template": deployment("ns", image)["spec"]["template"]}}


def replicas(h: OperatorHarness, name: str) -> int | None:
    dep = get_deployment(h.api, h.namespace, name)
    return None if dep is None else int(dep["spec"]["replicas"])


async def test_adopt_roll_out_a_deployment_edit_and_hand_back_on_delete(
    harness: OperatorHarness,
) -> None:
    h = harness
    apps = kubernetes.client.AppsV1Api(h.api)
    apps.create_namespaced_deployment(h.namespace, deployment(h.namespace))
    set_deployment_ready(h.api, h.namespace, "web")

    h.hold.add("web-a")  # the Rollout's first slot is not ready yet
    create_rollout(h.api, adopting(h.namespace))
    await h.wait_for(lambda: h.deployment("web-a") is not None, what="slot a created")
    await asyncio.sleep(0.5)  # several reconciles: none may move traffic to unready pods
    assert "sluice.dev/slot" not in h.selector("web")  # the Deployment's pods still serve
    assert replicas(h, "web") == 4
    slot = h.deployment("web-a")
    assert slot is not None
    assert slot["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"

    h.hold.clear()
    st = await h.wait_status(lambda s: healthy(s) and s.get("adopted") is True, what="adopted")
    first = st["stableRevision"]
    assert h.selector("web")["sluice.dev/slot"] == "a"
    await h.wait_for(lambda: replicas(h, "web") == 0, what="Deployment scaled down (onSuccess)")
    set_deployment_ready(h.api, h.namespace, "web")  # play its controller: 0 pods now
    assert "Adopted" in h.reasons() and "WorkloadScaledDown" in h.reasons()

    # the Deployment edited in Git: a new revision rolls out through the steps
    apps.patch_namespaced_deployment("web", h.namespace, template("web:2"))

    st = await h.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("currentRevision") != first,
        what="new revision paused at the step",
    )
    canary = h.deployment("web-b")
    assert canary is not None
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"

    # rolled back in Git: the Deployment's template back to web:1 returns to the stable pods
    apps.patch_namespaced_deployment("web", h.namespace, template("web:1"))
    await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == first, what="rolled back to stable"
    )
    await h.wait_for(lambda: replicas(h, "web-b") == 0, what="canary scaled down")
    assert h.selector("web")["sluice.dev/slot"] == "a"

    apps.patch_namespaced_deployment("web", h.namespace, template("web:2"))
    await h.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("currentRevision") != first,
        what="web:2 again, paused at the step",
    )
    h.request("promote", "p1")
    await h.wait_status(lambda s: healthy(s) and s["stableRevision"] != first, what="promoted")
    assert replicas(h, "web") == 0  # scaled down stays down

    # delete: the Deployment comes back first, and only its ready pods take the traffic back
    kubernetes.client.CustomObjectsApi(h.api).delete_namespaced_custom_object(
        "sluice.dev", "v1alpha1", h.namespace, "rollouts", "web"
    )
    await h.wait_for(lambda: replicas(h, "web") == 4, what="Deployment scaled back up")
    await asyncio.sleep(0.5)  # the finalizer waits for its pods
    assert "web" in h.rollout_names()
    assert h.selector("web")["sluice.dev/slot"] == "b"  # still on the Rollout's ready pods
    set_deployment_ready(h.api, h.namespace, "web")
    await h.wait_for(lambda: "web" not in h.rollout_names(), what="Rollout gone")
    assert h.selector("web") == {"app": "web"}  # the Deployment's pods (ready) serve
    assert h.selector("web-canary") == {"app": "web"}
    assert h.deployment("web-a") is None and h.deployment("web-b") is None
