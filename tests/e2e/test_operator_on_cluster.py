"""The controller against a real API server: a Rollout with no router is rolled out on real
Deployments (the pause image), and Sluice's writes carry its own field manager, so GitOps tools
can tell its fields (slot Deployments, Service selectors, status) from the user's."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.conftest import apply, canary_rollout, kubectl, service

pytestmark = pytest.mark.e2e

IMAGE = "registry.k8s.io/pause:3.9"


def rollout(image: str) -> dict[str, Any]:
    return canary_rollout(image, 2, [{"setWeight": 50}, {"pause": {"duration": "5s"}}])


def get(namespace: str, kind: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", "-n", namespace, kind, name, "-o", "json").stdout))


def wait_phase(
    namespace: str, phase: str, revision_changed_from: str | None, timeout: float = 180
) -> dict[str, Any]:
    deadline = time.time() + timeout
    status: dict[str, Any] = {}
    while time.time() < deadline:
        status = get(namespace, "rollouts.sluice.dev", "web").get("status") or {}
        moved = revision_changed_from is None or status.get("stableRevision") not in (
            None,
            revision_changed_from,
        )
        if status.get("phase") == phase and moved:
            return status
        time.sleep(2)
    raise AssertionError(f"rollout never reached {phase}: {status}")


def test_rollout_on_real_deployments_with_sluice_field_manager(
    namespace: str, controller: None
) -> None:
    apply(namespace, service("web"), service("web-canary"), rollout(IMAGE))
    first = wait_phase(namespace, "Healthy", None)
    apply(namespace, rollout(IMAGE.replace("3.9", "3.8")))
    done = wait_phase(namespace, "Healthy", first["stableRevision"])
    assert done["stableRevision"] != first["stableRevision"]
    ready = {c["type"]: c["status"] for c in done.get("conditions", [])}
    assert ready.get("Ready") == "True" and ready.get("Stalled") == "False"

    slot = next(s["name"] for s in done["slots"] if s.get("role") == "stable")
    deployment = get(namespace, "deployment", f"web-{slot}")
    managers = {m["manager"] for m in deployment["metadata"].get("managedFields", [])}
    assert "sluice" in managers, managers
    svc = get(namespace, "service", "web")
    assert svc["spec"]["selector"].get("sluice.dev/slot") == slot
    svc_managers = {m["manager"] for m in svc["metadata"].get("managedFields", [])}
    assert "sluice" in svc_managers, svc_managers
