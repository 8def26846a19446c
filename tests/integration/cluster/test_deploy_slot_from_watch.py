"""deploy_slot with the operator's watch cache: whether the slot Deployment exists comes from the
watch, not from a GET (issue 13: 1,000 GETs when a fleet got a new revision at once), and a watch
that lags behind the API (a Deployment created or deleted meanwhile) still ends with the slot
deployed. The emulator's request log shows what was asked."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from rollouts.api.rollout import Rollout
from rollouts.api.validation import parse_rollout
from rollouts.cluster.cache import WatchCache
from rollouts.cluster.kube import KubeCluster
from tests.support.kube import RunningEmulator, create_rollout, get_deployment
from tests.support.rollouts import rollout_doc

pytestmark = pytest.mark.integration

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "web", "image": "web:1"}]},
}


@pytest.fixture()
def rollout(api_client: kubernetes.client.ApiClient) -> Rollout:
    return parse_rollout(create_rollout(api_client, rollout_doc(steps=[{"setWeight": 50}])))


@pytest.fixture()
def index() -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Stands for the operator's kopf index of slot Deployments, by (namespace, name)."""
    return {}


@pytest.fixture()
def cluster(
    api_client: kubernetes.client.ApiClient, index: dict[tuple[str, str], list[dict[str, Any]]]
) -> KubeCluster:
    cache = WatchCache()
    cache.attach("deployments", index)
    return KubeCluster(api_client, backoff=0.01, cache=cache)


def deployment_calls(emulator: RunningEmulator) -> list[str]:
    return [str(c) for c in emulator.emulator.calls if c.plural == "deployments" and not c.watch]


def revision(api: kubernetes.client.ApiClient) -> tuple[str, int]:
    dep = get_deployment(api, "ns", "web-a")
    assert dep is not None
    return dep["metadata"]["labels"]["sluice.dev/revision"], dep["spec"]["replicas"]


def deployed_and_watched(
    cluster: KubeCluster,
    rollout: Rollout,
    api: kubernetes.client.ApiClient,
    index: dict[tuple[str, str], list[dict[str, Any]]],
) -> None:
    """Slot ``a`` at rev1, and the watch has delivered it."""
    cluster.deploy_slot(rollout, "a", "rev1", TEMPLATE, 1)
    dep = get_deployment(api, "ns", "web-a")
    assert dep is not None
    index[("ns", "web-a")] = [dep]


def redeploy_calls(cluster: KubeCluster, rollout: Rollout, emulator: RunningEmulator) -> list[str]:
    """The Deployment calls that deploying rev2 (2 replicas) to slot ``a`` makes."""
    emulator.emulator.calls.clear()
    cluster.deploy_slot(rollout, "a", "rev2", TEMPLATE, 2)
    return deployment_calls(emulator)


def test_a_new_slot_is_created_without_a_get(
    cluster: KubeCluster,
    rollout: Rollout,
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
) -> None:
    kube_emulator.emulator.calls.clear()
    cluster.deploy_slot(rollout, "a", "rev1", TEMPLATE, 1)
    assert deployment_calls(kube_emulator) == ["POST deployments"]
    assert revision(api_client) == ("rev1", 1)


def test_an_existing_slot_is_patched_without_a_get(
    cluster: KubeCluster,
    rollout: Rollout,
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
    index: dict[tuple[str, str], list[dict[str, Any]]],
) -> None:
    deployed_and_watched(cluster, rollout, api_client, index)
    assert cluster.cache is not None and cluster.cache.fresher_count() == 0
    assert redeploy_calls(cluster, rollout, kube_emulator) == ["PATCH deployments/web-a"]
    assert revision(api_client) == ("rev2", 2)


def test_a_slot_created_before_the_watch_saw_it_is_patched(
    cluster: KubeCluster,
    rollout: Rollout,
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
) -> None:
    """Another writer (or a previous process) created it; the watch has not delivered it."""
    KubeCluster(api_client).deploy_slot(rollout, "a", "rev1", TEMPLATE, 1)
    assert redeploy_calls(cluster, rollout, kube_emulator) == [
        "POST deployments",
        "PATCH deployments/web-a",
    ]
    assert revision(api_client) == ("rev2", 2)


def test_a_slot_deleted_before_the_watch_told_is_created_again(
    cluster: KubeCluster,
    rollout: Rollout,
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
    index: dict[tuple[str, str], list[dict[str, Any]]],
) -> None:
    deployed_and_watched(cluster, rollout, api_client, index)
    kubernetes.client.AppsV1Api(api_client).delete_namespaced_deployment("web-a", "ns")
    assert redeploy_calls(cluster, rollout, kube_emulator) == [
        "PATCH deployments/web-a",
        "POST deployments",
    ]
    assert revision(api_client) == ("rev2", 2)


def test_without_a_watch_the_slot_is_read_first(
    rollout: Rollout,
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
) -> None:
    """A KubeCluster driven without the operator's watches (the CLI, tests) still asks."""
    kube_emulator.emulator.calls.clear()
    KubeCluster(api_client).deploy_slot(rollout, "a", "rev1", TEMPLATE, 1)
    assert deployment_calls(kube_emulator) == ["GET deployments/web-a", "POST deployments"]
