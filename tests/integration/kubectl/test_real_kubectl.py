"""The real kubectl (v1.31, from .venv/bin: ``bash scripts/setup.sh``) against the emulator and a
running controller: what docs/kubectl.md tells users to type.

- ``kubectl apply`` creates and updates a Rollout (``--validate=false``: the emulator serves no
  OpenAPI document, which kubectl's client-side validation downloads);
- ``kubectl get sro -o json`` reads it back through discovery, the short name and a list;
- ``kubectl wait --for=condition=Ready`` returns once the rollout is promoted, not on the stale
  Ready of the previous generation;
- ``kubectl sluice ...`` finds the ``kubectl-sluice`` entry point on PATH and drives the rollout.

The operator runs in the test's event loop, so kubectl runs as an asyncio subprocess: a blocking
call would stall the controller it waits for.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import tool, venv_bin

from .conftest import OperatorHarness, canary, healthy

pytestmark = pytest.mark.integration


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path, namespace: str) -> None:
        self.binary = str(tool("kubectl"))
        tool("kubectl-sluice")
        self.namespace = namespace
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HOME": str(home),  # kubectl's discovery cache, per test
            # kubectl finds plugins on PATH: kubectl-sluice is the project's entry point
            "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
            "NO_PROXY": "127.0.0.1,localhost",
        }

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        # kubectl takes no flags before a plugin's name: `kubectl sluice ... -n NS`
        ns = [] if args[0] == "sluice" else ["-n", self.namespace]
        return await asyncio.create_subprocess_exec(
            self.binary,
            *ns,
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def __call__(self, *args: str, timeout: float = 60) -> tuple[int, str, str]:
        proc = await self.start(*args)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def ok(self, *args: str, timeout: float = 60) -> str:
        code, out, err = await self(*args, timeout=timeout)
        assert code == 0, f"kubectl {' '.join(args)} exited {code}:\n{out}\n{err}"
        return out


@pytest.fixture()
def kubectl(harness: OperatorHarness, kubeconfig: Path, tmp_path: Path) -> Kubectl:
    return Kubectl(kubeconfig, tmp_path, harness.namespace)


def manifest(tmp_path: Path, image: str) -> Path:
    doc = canary()
    doc["metadata"].pop("namespace", None)
    doc["spec"]["template"]["spec"]["containers"][0]["image"] = image
    path = tmp_path / f"rollout-{image.replace(':', '-')}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_apply_get_wait_and_the_kubectl_sluice_plugin(
    harness: OperatorHarness, kubectl: Kubectl, tmp_path: Path
) -> None:
    out = await kubectl.ok("apply", "--validate=false", "-f", str(manifest(tmp_path, "web:1")))
    assert out.strip() == "rollout.sluice.dev/web created"
    out = await kubectl.ok("wait", "--for=condition=Ready", "sro/web", "--timeout=30s")
    assert out.strip() == "rollout.sluice.dev/web condition met"
    assert healthy(harness.status())

    # get by short name, as JSON
    listed: dict[str, Any] = json.loads(await kubectl.ok("get", "sro", "-o", "json"))
    (item,) = listed["items"]
    assert (item["apiVersion"], item["kind"]) == ("sluice.dev/v1alpha1", "Rollout")
    assert item["metadata"]["name"] == "web" and item["status"]["phase"] == "Healthy"
    first = item["status"]["stableRevision"]
    one: dict[str, Any] = json.loads(
        await kubectl.ok("get", "rollout.sluice.dev", "web", "-o", "json")
    )
    assert one["status"]["stableRevision"] == first

    # a new image through `kubectl apply`: generation 2 walks to its manual pause
    out = await kubectl.ok("apply", "--validate=false", "-f", str(manifest(tmp_path, "web:2")))
    assert out.strip() == "rollout.sluice.dev/web configured"
    assert harness.rollout()["metadata"]["generation"] == 2
    # `kubectl wait` does not take generation 1's Ready for this one: it is still waiting at the
    # pause, and returns once a person promotes
    waiting = await kubectl.start("wait", "--for=condition=Ready", "sro/web", "--timeout=60s")
    await harness.wait_status(
        lambda s: s["phase"] == "Paused" and s.get("currentStepIndex") == 3,
        what="manual pause",
        timeout=20,
    )
    # a negative check needs some time: kubectl has a second to (wrongly) return
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(waiting.wait()), 1.0)

    # (the plugin is the Python CLI: importing the kubernetes client takes seconds on a busy box)
    out = await kubectl.ok("sluice", "promote", "web", "-n", harness.namespace, timeout=90)
    assert out.startswith("promote requested for rollout ns/web (sluice.dev/request=promote@")
    assert "rollout ns/web is " in out  # the controller acted on it (--wait)
    stdout, stderr = await asyncio.wait_for(waiting.communicate(), 60)
    assert waiting.returncode == 0, stderr.decode()
    assert stdout.decode().strip() == "rollout.sluice.dev/web condition met"
    status = harness.status()
    assert healthy(status) and status["stableRevision"] != first


async def test_kubectl_sees_typed_lists_and_clean_discovery(
    harness: OperatorHarness, kubectl: Kubectl, tmp_path: Path
) -> None:
    """The emulator fixes kubectl needs: lists carry kind/apiVersion; "sro" is unambiguous."""
    await kubectl.ok("apply", "--validate=false", "-f", str(manifest(tmp_path, "web:1")))
    code, out, err = await kubectl("get", "sro")
    assert code == 0, err
    assert "could also match" not in err  # no short name on the status subresource
    assert out.splitlines()[0].split()[0] == "NAME" and "web" in out
    raw: dict[str, Any] = json.loads(
        await kubectl.ok(
            "get", "--raw", f"/apis/sluice.dev/v1alpha1/namespaces/{harness.namespace}/rollouts"
        )
    )
    assert (raw["apiVersion"], raw["kind"]) == ("sluice.dev/v1alpha1", "RolloutList")
    deployments: dict[str, Any] = json.loads(
        await kubectl.ok(
            "get", "--raw", f"/apis/apps/v1/namespaces/{harness.namespace}/deployments"
        )
    )
    assert (deployments["apiVersion"], deployments["kind"]) == ("apps/v1", "DeploymentList")
    services: dict[str, Any] = json.loads(
        await kubectl.ok("get", "--raw", f"/api/v1/namespaces/{harness.namespace}/services")
    )
    assert (services["apiVersion"], services["kind"]) == ("v1", "ServiceList")
