"""The controller creates its own ClusterKopfPeering, so a single ``kubectl apply`` installs it.

On a fresh cluster the controller may start before the peering CRD (applied in the same run) is
served: it must wait for it rather than fail, create the object once it is, and accept one that
another replica created first.
"""

from __future__ import annotations

import asyncio
import logging

import kubernetes
import pytest

from rollouts.peering import (
    CLUSTER_PEERINGS,
    PEERING_GROUP,
    PEERING_VERSION,
    PeeringError,
    create_cluster_peering,
    ensure_cluster_peering,
)
from tests.support.kube import RunningEmulator, get_json, serve_peering_crd

pytestmark = pytest.mark.integration

PATH = f"/apis/{PEERING_GROUP}/{PEERING_VERSION}/{CLUSTER_PEERINGS}"


async def test_waits_for_the_crd_then_creates_the_object(
    kube_emulator: RunningEmulator, api_client: kubernetes.client.ApiClient
) -> None:
    # the kind is not served yet: the API server answers 404 (kmock would accept any kind, so the
    # test plays the missing CRD); the controller keeps trying, and does not give up
    posts = kube_emulator.inject(method="POST", plural=CLUSTER_PEERINGS, status=404, times=None)
    task = asyncio.create_task(ensure_cluster_peering(api_client, "sluice.dev", retry_seconds=0.1))
    for _ in range(200):
        if posts.hits >= 2:
            break
        await asyncio.sleep(0.05)
    assert posts.hits >= 2 and not task.done()
    assert get_json(api_client, f"{PATH}/sluice.dev") is None

    kube_emulator.clear_faults()
    serve_peering_crd(kube_emulator)
    assert await asyncio.wait_for(task, timeout=10) is True
    obj = get_json(api_client, f"{PATH}/sluice.dev")
    assert obj is not None and obj["kind"] == "ClusterKopfPeering"
    # a second replica starting later finds it and goes on
    assert create_cluster_peering(api_client, "sluice.dev") is False
    assert await ensure_cluster_peering(api_client, "sluice.dev") is True


async def test_a_stop_while_waiting_returns_without_an_object(
    kube_emulator: RunningEmulator, api_client: kubernetes.client.ApiClient
) -> None:
    posts = kube_emulator.inject(method="POST", plural=CLUSTER_PEERINGS, status=404, times=None)
    stop = asyncio.Event()
    task = asyncio.create_task(
        ensure_cluster_peering(api_client, "sluice.dev", retry_seconds=5, stop_flag=stop)
    )
    for _ in range(200):
        if posts.hits:
            break
        await asyncio.sleep(0.05)
    stop.set()  # long before the 5 s retry: the wait ends at once
    assert await asyncio.wait_for(task, timeout=2) is False
    assert posts.hits == 1


async def test_a_refusal_is_one_clear_error_line_until_rbac_allows_it(
    kube_emulator: RunningEmulator,
    api_client: kubernetes.client.ApiClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    serve_peering_crd(kube_emulator)
    with pytest.raises(PeeringError, match=r"grant create on clusterkopfpeerings\.kopf\.dev"):
        kube_emulator.inject(method="POST", plural=CLUSTER_PEERINGS, status=403, times=1)
        create_cluster_peering(api_client, "sluice.dev")
    # the controller waits (as kopf waits for its peering), saying why once, and goes on when
    # the grant arrives (here: after five refusals)
    refusals = kube_emulator.inject(method="POST", plural=CLUSTER_PEERINGS, status=403, times=5)
    with caplog.at_level(logging.INFO, logger="sluice.peering"):
        assert await ensure_cluster_peering(api_client, "sluice.dev", retry_seconds=0.02) is True
    assert refusals.hits == 5
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "not allowed to create ClusterKopfPeering sluice.dev (grant create on "
        "clusterkopfpeerings.kopf.dev, as deploy/base/clusterrole.yaml does); retrying every 0.02s"
    ]


async def test_server_errors_are_retried(
    kube_emulator: RunningEmulator, api_client: kubernetes.client.ApiClient
) -> None:
    serve_peering_crd(kube_emulator)
    fault = kube_emulator.inject(method="POST", plural=CLUSTER_PEERINGS, status=503, times=2)
    assert await ensure_cluster_peering(api_client, "sluice.dev", retry_seconds=0.05) is True
    assert fault.hits == 2
    assert get_json(api_client, f"{PATH}/sluice.dev") is not None
