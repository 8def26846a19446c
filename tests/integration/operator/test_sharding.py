"""Sharding under the real kopf operator: a replica serves only its shard's Rollouts, and a shard
moves to another replica mid-rollout without a double promotion.

Replica A serves shard 0 of 2 through the shard's own peering (``sluice.dev-shard-0-of-2``); a
Rollout of shard 1 sits beside it and must never be touched. A is stopped while its Rollout waits
for a person at 75%; replica B (the same shard, as a replacement pod would be) starts, takes the
shard over, the promotion that follows happens once, and the Rollout ends Healthy. The emulator
records which client made each request (its User-Agent), so "B wrote nothing before A stopped" and
"the promotion was B's alone" are checked, not assumed.

B starts after A stops rather than waiting as a standby beside it: with both operators in one
test process, kopf's peering did not pause B while A was active (both reconciled, A writing and B
reading; nothing double-written, but not what two pods do), so a standby's pause is tested with
two processes (test_standby.py); the peering object per shard is checked here.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import kubernetes
import pytest

from rollouts.operator import run
from rollouts.peering import CLUSTER_PEERINGS, PEERING_GROUP, PEERING_VERSION
from rollouts.settings import Settings
from rollouts.sharding import Shard, shard_of
from tests.support.kube import (
    create_rollout,
    create_service,
    get_json,
    list_json,
    peering_emulator,
)

from .conftest import (
    WRITES,
    OperatorHarness,
    api_client,
    canary,
    fast_settings,
    harness,
    healthy,
    kubeconfig,
    namespace,
    services,
    writes_by,
)

__all__ = ["api_client", "harness", "kubeconfig", "namespace", "services"]

pytestmark = pytest.mark.integration

SHARD = Shard(0, 2)
MINE, OTHER = "web", "cart"  # shard 0 and shard 1 of 2


kube_emulator = pytest.fixture(name="kube_emulator")(peering_emulator)


@pytest.fixture()
def operator_settings() -> Settings:
    return fast_settings(standalone=False, priority=100, shard=SHARD)


def untouched(h: OperatorHarness, name: str) -> bool:
    doc = h.rollout(name)
    deployments = list_json(h.api, f"/apis/apps/v1/namespaces/{h.namespace}/deployments")
    return (
        not doc.get("status")
        and not (doc["metadata"].get("finalizers") or [])
        and not any(name in d["metadata"]["name"] for d in deployments)
    )


async def test_a_shard_moves_to_its_standby_replica_without_a_double_promotion(
    harness: OperatorHarness, kubeconfig: Path
) -> None:
    assert shard_of("ns", MINE, 2) == 0 and shard_of("ns", OTHER, 2) == 1
    a = harness
    # A's controller copies its client's User-Agent at start; the test's own calls use another
    await a.stop()
    a.api.user_agent = "replica-a"
    await a.start()
    a.api.user_agent = "the-test"
    for name in (OTHER, f"{OTHER}-canary"):
        create_service(a.api, a.namespace, name, {"app": OTHER})
    # replica B: the same shard, its own client; started once A is gone
    b_api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    b_api.user_agent = "replica-b"
    b_settings = fast_settings(standalone=False, priority=50, shard=SHARD)
    b: asyncio.Task[None] | None = None
    try:
        create_rollout(a.api, canary(MINE))
        create_rollout(a.api, canary(OTHER))
        await a.wait_status(healthy, name=MINE, what="first revision Healthy")
        a.set_image("web:2", name=MINE)
        paused = await a.wait_status(
            lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 3,
            name=MINE,
            timeout=20,
            what="paused for a person at 75%",
        )
        assert paused["weights"]["canary"] == 75
        assert writes_by(a, "replica-a"), "A served the shard"
        assert writes_by(a, "replica-b") == [], "B waited while A was active"
        assert untouched(a, OTHER), "nobody serves shard 1 here: its Rollout stays untouched"

        await a.stop()  # A dies mid-rollout; B comes up and takes the shard over
        stopped = len(a.emulator.emulator.calls)
        b = asyncio.create_task(run(b_settings, api=b_api))
        a.request("promote", "p1", name=MINE)
        done = await a.wait_status(healthy, name=MINE, timeout=30, what="Healthy, promoted by B")
        assert done["stableRevision"] == done["currentRevision"]
        assert writes_by(a, "replica-b"), "B did the rest"
        late_a = [
            str(c)
            for c in list(a.emulator.emulator.calls)[stopped:]
            if c.agent == "replica-a" and c.method in WRITES and c.plural == "rollouts"
        ]
        assert late_a == [], "A wrote nothing after it stopped"
        promoted = [e for e in a.events(MINE) if e["reason"] == "RolloutPromoted"]
        assert sum(int(e.get("count") or 1) for e in promoted) == 1, promoted
        assert untouched(a, OTHER)
        peering = f"/apis/{PEERING_GROUP}/{PEERING_VERSION}/{CLUSTER_PEERINGS}/"
        assert get_json(a.api, peering + SHARD.peering_name("sluice.dev")) is not None
        assert get_json(a.api, peering + "sluice.dev") is None, (
            "no replica joined the fleet-wide one"
        )
    finally:
        if b is not None:
            b.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await b
        b_api.close()
