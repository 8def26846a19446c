"""A peered controller (not ``--standalone``) on a cluster where its peering object does not exist
yet, as after one ``kubectl apply`` of deploy/: it creates ``ClusterKopfPeering/sluice.dev``,
kopf joins it, and Rollouts are served (before, kopf waited paused for an object nobody created
until the apply was repeated)."""

from __future__ import annotations

import pytest

from rollouts.peering import CLUSTER_PEERINGS, PEERING_GROUP, PEERING_VERSION
from rollouts.settings import Settings
from tests.support.kube import create_rollout, get_json, peering_emulator

from .conftest import (
    OperatorHarness,
    api_client,
    canary,
    fast_settings,
    harness,
    healthy,
    kubeconfig,
    namespace,
    services,
)

__all__ = ["api_client", "harness", "kubeconfig", "namespace", "services"]

pytestmark = pytest.mark.integration

PRIORITY = 4242


kube_emulator = pytest.fixture(name="kube_emulator")(peering_emulator)


@pytest.fixture()
def operator_settings() -> Settings:
    return fast_settings(standalone=False, priority=PRIORITY)


async def test_a_peered_controller_creates_its_peering_object_and_serves(
    harness: OperatorHarness,
) -> None:
    path = f"/apis/{PEERING_GROUP}/{PEERING_VERSION}/{CLUSTER_PEERINGS}/sluice.dev"
    create_rollout(harness.api, canary())
    await harness.wait_status(healthy, what="first revision Healthy (the controller is not paused)")
    peering = get_json(harness.api, path)
    assert peering is not None, "the controller did not create its peering object"
    # kopf's keep-alive: one live peer, this controller, with its priority
    peers = await harness.wait_for(
        lambda: (get_json(harness.api, path) or {}).get("status"), what="a keep-alive"
    )
    assert [p["priority"] for p in peers.values()] == [PRIORITY]
