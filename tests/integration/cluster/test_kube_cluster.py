"""KubeCluster against the emulator: slot Deployments, readiness, Service selectors, status and
Events as a real API server would store them."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from rollouts.api.rollout import Rollout, RolloutStatus
from rollouts.api.validation import parse_rollout
from rollouts.cluster.kube import KubeCluster, observe_deployment
from tests.support.kube import (
    RunningEmulator,
    create_rollout,
    create_service,
    events_for,
    get_deployment,
    get_rollout,
    get_service,
    set_deployment_ready,
)
from tests.support.rollouts import rollout_doc

pytestmark = pytest.mark.integration

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}, "annotations": {"note": "v1"}},
    "spec": {"containers": [{"name": "web", "image": "web:1"}]},
}


@pytest.fixture()
def rollout(api_client: kubernetes.client.ApiClient, namespace: str) -> Rollout:
    doc = rollout_doc(steps=[{"setWeight": 50}])
    created = create_rollout(api_client, doc)
    create_service(api_client, namespace, "web", {"app": "web"})
    create_service(api_client, namespace, "web-canary", {"app": "web"})
    return parse_rollout(created)


@pytest.fixture()
def cluster(api_client: kubernetes.client.ApiClient) -> KubeCluster:
    return KubeCluster(api_client, backoff=0.01)


def test_deploy_slot_labels_selector_and_owner(
    cluster: KubeCluster, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    cluster.deploy_slot(rollout, "a", "rev1", TEMPLATE, 3)
    dep = get_deployment(api_client, "ns", "web-a")
    assert dep is not None
    assert dep["metadata"]["labels"] == {
        "sluice.dev/rollout": "web",
        "sluice.dev/slot": "a",
        "sluice.dev/revision": "rev1",
    }
    assert dep["spec"]["selector"]["matchLabels"] == {
        "app": "web",
        "sluice.dev/rollout": "web",
        "sluice.dev/slot": "a",
    }
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == {**dep["spec"]["selector"]["matchLabels"], "sluice.dev/revision": "rev1"}
    owner = dep["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Rollout" and owner["name"] == "web"
    assert owner["uid"] == rollout.metadata.uid and owner["controller"] is True
    assert dep["spec"]["replicas"] == 3


def test_redeploy_replaces_the_template(
    cluster: KubeCluster, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    cluster.deploy_slot(rollout, "b", "rev1", TEMPLATE, 2)
    v2 = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "web:2"}]},
    }
    cluster.deploy_slot(rollout, "b", "rev2", v2, 4)
    dep = get_deployment(api_client, "ns", "web-b")
    assert dep is not None
    assert dep["metadata"]["labels"]["sluice.dev/revision"] == "rev2"
    assert "annotations" not in dep["spec"]["template"]["metadata"]  # dropped fields go
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
    assert dep["spec"]["replicas"] == 4
    assert dep["spec"]["selector"]["matchLabels"]["sluice.dev/slot"] == "b"


def test_readiness_follows_the_deployment_status(
    cluster: KubeCluster, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    assert cluster.read_slots(rollout) == {}
    cluster.deploy_slot(rollout, "a", "rev1", TEMPLATE, 3)
    obs = cluster.read_slots(rollout)["a"]
    assert (obs.revision, obs.replicas, obs.ready_replicas) == ("rev1", 3, 0)
    set_deployment_ready(api_client, "ns", "web-a", ready=2)
    assert cluster.read_slots(rollout)["a"].ready_replicas == 2
    set_deployment_ready(api_client, "ns", "web-a")
    assert cluster.read_slots(rollout)["a"].ready_replicas == 3
    # a new spec the controller has not observed yet has no ready pods of its own
    cluster.deploy_slot(rollout, "a", "rev2", TEMPLATE, 3)
    obs = cluster.read_slots(rollout)["a"]
    assert (obs.revision, obs.ready_replicas) == ("rev2", 0)


def test_observe_deployment_counts_only_updated_pods() -> None:
    dep: dict[str, Any] = {
        "metadata": {"generation": 2, "labels": {"sluice.dev/revision": "r"}},
        "spec": {"replicas": 4},
        "status": {"observedGeneration": 2, "readyReplicas": 4, "updatedReplicas": 1},
    }
    assert observe_deployment(dep).ready_replicas == 1
    dep["status"]["observedGeneration"] = 1
    assert observe_deployment(dep).ready_replicas == 0


def test_deployment_without_sluice_labels_is_not_a_slot(
    cluster: KubeCluster, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    kubernetes.client.AppsV1Api(api_client).create_namespaced_deployment(
        "ns",
        {
            "metadata": {"name": "web-a"},
            "spec": {
                "selector": {"matchLabels": {"x": "y"}},
                "template": {"metadata": {"labels": {"x": "y"}}},
            },
        },
    )
    assert cluster.read_slots(rollout) == {}


def test_scale_slot(
    cluster: KubeCluster, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    cluster.deploy_slot(rollout, "a", "rev1", TEMPLATE, 3)
    cluster.scale_slot(rollout, "a", 0)
    dep = get_deployment(api_client, "ns", "web-a")
    assert dep is not None and dep["spec"]["replicas"] == 0
    cluster.scale_slot(rollout, "b", 2)  # a missing slot is logged, not fatal
    assert get_deployment(api_client, "ns", "web-b") is None


def test_service_selectors(
    cluster: KubeCluster, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    services = ["web", "web-canary", "missing"]
    assert cluster.read_service_slots(rollout, services) == {"web": None, "web-canary": None}
    cluster.set_service_selector(rollout, "web", "a")
    cluster.set_service_selector(rollout, "web-canary", "b")
    assert cluster.read_service_slots(rollout, services) == {"web": "a", "web-canary": "b"}
    svc = get_service(api_client, "ns", "web")
    assert svc is not None and svc["spec"]["selector"] == {"app": "web", "sluice.dev/slot": "a"}
    cluster.set_service_selector(rollout, "web", None)
    svc = get_service(api_client, "ns", "web")
    assert svc is not None and svc["spec"]["selector"] == {"app": "web"}
    assert cluster.read_service_slots(rollout, ["web"]) == {"web": None}


def test_write_status_replaces_and_clears_fields(
    cluster: KubeCluster, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    st = RolloutStatus.model_validate(
        {"phase": "Progressing", "currentStepIndex": 1, "message": "step 2/3", "lastRequest": "x"}
    )
    cluster.write_status(rollout, st)
    status = get_rollout(api_client, "ns", "web")["status"]
    assert status["phase"] == "Progressing" and status["currentStepIndex"] == 1
    assert status["lastRequest"] == "x"
    st2 = RolloutStatus.model_validate({"phase": "Healthy"})
    cluster.write_status(rollout, st2)
    obj = get_rollout(api_client, "ns", "web")
    assert obj["status"]["phase"] == "Healthy"
    assert "currentStepIndex" not in obj["status"] and "lastRequest" not in obj["status"]
    assert RolloutStatus.model_validate(obj["status"]) == st2
    assert obj["metadata"]["generation"] == 1  # status writes never look like spec changes


def test_status_write_retries_conflicts_and_server_errors(
    cluster: KubeCluster,
    rollout: Rollout,
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
) -> None:
    fault = kube_emulator.inject(
        method="PATCH", plural="rollouts", subresource="status", status=409, times=1
    )
    fault500 = kube_emulator.inject(
        method="PATCH", plural="rollouts", subresource="status", status=500, times=1
    )
    cluster.write_status(rollout, RolloutStatus.model_validate({"phase": "Healthy"}))
    assert fault.hits == 1 and fault500.hits == 1
    assert get_rollout(api_client, "ns", "web")["status"]["phase"] == "Healthy"


def test_persistent_failure_raises(
    cluster: KubeCluster, rollout: Rollout, kube_emulator: RunningEmulator
) -> None:
    fault = kube_emulator.inject(method="PATCH", plural="rollouts", status=503, times=None)
    with pytest.raises(kubernetes.client.ApiException) as e:
        cluster.write_status(rollout, RolloutStatus())
    assert e.value.status == 503 and fault.hits == cluster.retries + 1


def test_deploy_retries_a_conflict_by_rereading(
    cluster: KubeCluster,
    rollout: Rollout,
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
) -> None:
    cluster.deploy_slot(rollout, "a", "rev1", TEMPLATE, 1)
    fault = kube_emulator.inject(
        method="PATCH", plural="deployments", name="web-a", status=409, times=2
    )
    cluster.deploy_slot(rollout, "a", "rev2", TEMPLATE, 2)
    dep = get_deployment(api_client, "ns", "web-a")
    assert fault.hits == 2 and dep is not None
    assert (
        dep["metadata"]["labels"]["sluice.dev/revision"] == "rev2" and dep["spec"]["replicas"] == 2
    )


def test_events_name_the_rollout_and_count_repeats(
    cluster: KubeCluster, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    cluster.emit_event(rollout, "Normal", "StepStarted", "step 1/2: setWeight 50%")
    cluster.emit_event(rollout, "Warning", "Aborted", "analysis failed")
    cluster.emit_event(rollout, "Normal", "StepStarted", "step 1/2: setWeight 50%")
    events = events_for(api_client, "ns", "web")
    by_reason = {e["reason"]: e for e in events}
    assert len(events) == 2
    started = by_reason["StepStarted"]
    assert started["count"] == 2 and started["type"] == "Normal"
    assert started["message"] == "step 1/2: setWeight 50%"
    assert started["involvedObject"] == {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "name": "web",
        "namespace": "ns",
        "uid": rollout.metadata.uid,
    }
    assert by_reason["Aborted"]["type"] == "Warning" and by_reason["Aborted"]["count"] == 1


def test_event_failures_do_not_fail_the_reconcile(
    cluster: KubeCluster,
    rollout: Rollout,
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
) -> None:
    kube_emulator.inject(method="POST", plural="events", status=500, times=None)
    cluster.emit_event(rollout, "Normal", "StepStarted", "x")  # logged, not raised
    kube_emulator.clear_faults()
    assert events_for(api_client, "ns", "web") == []


def test_every_write_names_the_sluice_field_manager(
    cluster: KubeCluster, rollout: Rollout, kube_emulator: RunningEmulator
) -> None:
    before = len(list(kube_emulator.emulator))  # the fixture's own writes are not Sluice's
    cluster.deploy_slot(rollout, "a", "rev1", TEMPLATE, 1)
    cluster.deploy_slot(rollout, "a", "rev2", TEMPLATE, 1)
    cluster.scale_slot(rollout, "a", 2)
    cluster.set_service_selector(rollout, "web", "a")
    cluster.write_status(rollout, RolloutStatus())
    cluster.emit_event(rollout, "Normal", "X", "y")
    cluster.emit_event(rollout, "Normal", "X", "y")
    requests = list(kube_emulator.emulator)[before:]
    writes = [r for r in requests if r.method.value in ("POST", "PATCH")]
    assert len(writes) == 7
    assert all(r.params.get("fieldManager") == "sluice" for r in writes)
