"""Opt-in tests against a real Kubernetes cluster (kind, k3d, ...): `KUBECONFIG=... pytest -m e2e tests/e2e`.

They check what kmock's emulator cannot: the API server's own schema and CEL validation of the
generated CRDs, and field ownership of Sluice's writes. Without a reachable cluster each test is
skipped with the reason; the default test run deselects them anyway (`-m 'not e2e'`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _cluster_problem() -> str | None:
    if not os.environ.get("KUBECONFIG"):
        return "KUBECONFIG is not set: these tests need a real cluster (kind or k3d)"
    if shutil.which("kubectl") is None:
        return "kubectl is not on PATH"
    probe = subprocess.run(
        ["kubectl", "version", "--request-timeout=5s", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"the cluster in KUBECONFIG is not reachable: {probe.stderr.strip()[:200]}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e = [item for item in items if "tests/e2e/" in str(item.fspath).replace(os.sep, "/")]
    if not e2e:
        return
    problem = _cluster_problem()
    for item in e2e:
        item.add_marker(pytest.mark.e2e)
        if problem is not None:
            item.add_marker(pytest.mark.skip(reason=problem))


def kubectl(
    *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args], input=input, capture_output=True, text=True, check=check, timeout=120
    )


@pytest.fixture(scope="session")
def crds_installed() -> None:
    """The generated CRDs, applied as a user would (server-side, so the schema is the server's)."""
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    for name in ("rollouts", "analysistemplates", "clusteranalysistemplates", "analysisruns"):
        kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}.sluice.dev")


@pytest.fixture
def namespace(crds_installed: None) -> Iterator[str]:
    name = f"sluice-e2e-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def canary_rollout(image: str, replicas: int, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Rollout ``web`` over the Services ``web`` and ``web-canary``, no mesh, no scale-down delay."""
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
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
                    "steps": steps,
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


@pytest.fixture
def controller(namespace: str) -> Iterator[None]:
    """``sluice run`` for the test's namespace, as a separate process like the real Deployment."""
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
