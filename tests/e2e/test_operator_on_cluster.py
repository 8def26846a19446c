"""The controller against a real API server: a Rollout with no router is rolled out on real
Deployments (the pause image), and Sluice's writes carry its own field manager, so GitOps tools
can tell its fields (slot Deployments, Service selectors, status) from the user's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import kubectl

pytestmark = pytest.mark.e2e

IMAGE = "registry.k8s.io/pause:3.9"


def rollout(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
            "strategy": {
                "canary": {
                    "stableService": "web",
                    "canaryService": "web-canary",
                    "scaleDownDelaySeconds": 0,
                    "steps": [{"setWeight": 50}, {"pause": {"duration": "5s"}}],
                }
            },
        },
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def apply(namespace: str, *docs: dict[str, Any]) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))


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


@pytest.fixture
def controller(namespace: str) -> Iterator[None]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rollouts.cli.main",
            "run",
            "--standalone",
            "--namespace",
            namespace,
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


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
