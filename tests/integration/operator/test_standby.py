"""A warm standby: two controller processes in one peering, one works, the other waits.

Two ``rollouts.operator.run`` processes (as two pods of the controller Deployment would be), each
with its own client, identity (``POD_ID``) and peering priority, against one emulator. The
emulator records each request's User-Agent, so which replica wrote what is checked, not assumed.

A (priority 100) serves the Rollout; B (priority 50) joins the same ClusterKopfPeering and writes
nothing while A is alive, through a whole first rollout and a new revision up to a pause for a
person. A is then stopped as a pod is (SIGTERM: kopf leaves the peering on its way out); B
resumes at once, acts on the promotion, and the promotion happens once.

(In one process the two operators did not pause each other; see test_sharding.py. Two processes
do, as two pods do.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import kubernetes
import pytest

from rollouts.peering import CLUSTER_PEERINGS, PEERING_GROUP, PEERING_VERSION
from tests.integration.cluster.test_peering import peering_emulator
from tests.support.kube import RunningEmulator, create_rollout, get_json

from .conftest import (
    FAST_SETTINGS,
    OperatorHarness,
    api_client,
    canary,
    fast_settings,
    healthy,
    kubeconfig,
    namespace,
    services,
)

__all__ = ["api_client", "kubeconfig", "namespace", "services"]

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
WRITES = {"POST", "PATCH", "PUT", "DELETE"}
PEERING = f"/apis/{PEERING_GROUP}/{PEERING_VERSION}/{CLUSTER_PEERINGS}/sluice.dev"

REPLICA = """
import asyncio, json, sys
from rollouts.cli.run_controller import configure_logging
from rollouts.operator import default_api_client, run
from rollouts.settings import Settings
configure_logging("text", False)
api = default_api_client()
api.user_agent = sys.argv[1]
asyncio.run(run(Settings(**json.loads(sys.argv[2])), api=api))
"""


kube_emulator = pytest.fixture(name="kube_emulator")(peering_emulator)


class Replica:
    """One controller process: ``sluice run``'s operator with the test's fast timers."""

    def __init__(self, name: str, priority: int, kubeconfig: Path) -> None:
        self.name = name
        settings = {**FAST_SETTINGS, "standalone": False, "priority": priority}
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "POD_ID": name,  # kopf's identity in the peering object
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", REPLICA, name, json.dumps(settings)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    async def stop(self) -> int:
        """As Kubernetes stops a pod: SIGTERM, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        for _ in range(400):
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        else:
            self.proc.kill()
        return self.proc.wait()

    def log(self) -> str:
        return self.proc.stderr.read().decode(errors="replace")[-3000:] if self.proc.stderr else ""


@pytest.fixture()
async def replicas() -> AsyncIterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for r in started:
        with contextlib.suppress(Exception):
            await r.stop()


def writes_by(h: OperatorHarness, agent: str, since: int = 0) -> list[str]:
    """Sluice's writes by the replica ``agent`` (peering heartbeats aside)."""
    return [
        str(c)
        for c in list(h.emulator.emulator.calls)[since:]
        if c.agent == agent and c.method in WRITES and c.plural != CLUSTER_PEERINGS
    ]


def peers(api: kubernetes.client.ApiClient) -> set[str]:
    """The identities in the peering object's status (kopf's heartbeat of each replica)."""
    doc = get_json(api, PEERING) or {}
    return {k for k, v in (doc.get("status") or {}).items() if v}


async def test_the_standby_writes_nothing_until_the_active_replica_stops(
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
    namespace: str,
    services: list[str],
    kubeconfig: Path,
    replicas: list[Replica],
) -> None:
    # the test plays the Deployment controller (slot Deployments become ready); no operator here
    h = OperatorHarness(api_client, kube_emulator, fast_settings(), namespace)
    api_client.user_agent = "the-test"
    ready = asyncio.create_task(h._keep_ready())
    try:
        a = Replica("replica-a", 100, kubeconfig)
        replicas.append(a)
        create_rollout(api_client, canary("web"))
        await h.wait_status(healthy, timeout=60, what="first revision Healthy, by A")
        assert writes_by(h, "replica-a"), "A serves the Rollout"

        b = Replica("replica-b", 50, kubeconfig)
        replicas.append(b)
        await h.wait_for(
            lambda: {"replica-a", "replica-b"} <= peers(api_client),
            timeout=60,
            what="both replicas in the peering object",
        )
        h.set_image("web:2")
        paused = await h.wait_status(
            lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 3,
            timeout=60,
            what="paused for a person at 75%, by A",
        )
        assert paused["weights"]["canary"] == 75
        assert b.proc.poll() is None, f"B is alive: {b.log()}"
        assert writes_by(h, "replica-b") == [], "B waited while A was active"

        assert await a.stop() == 0, a.log()
        stopped = len(kube_emulator.emulator.calls)
        await h.wait_for(
            lambda: "replica-a" not in peers(api_client),
            timeout=30,
            what="A gone from the peering object",
        )
        h.request("promote", "p1")
        done = await h.wait_status(healthy, timeout=60, what="Healthy, promoted by B")
        assert done["stableRevision"] == done["currentRevision"]
        assert writes_by(h, "replica-b"), "B did the rest"
        assert writes_by(h, "replica-a", since=stopped) == [], "A wrote nothing after it stopped"
        promoted = [e for e in h.events() if e["reason"] == "RolloutPromoted"]
        assert sum(int(e.get("count") or 1) for e in promoted) == 1, promoted
        assert b.proc.poll() is None, b.log()
    finally:
        ready.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ready
