"""The emulator fixtures behave as the operator tests assume: server-side metadata, patches,
status subresource, conflicts and injected faults."""

from __future__ import annotations

import kubernetes
import pytest

from tests.support.kube import (
    RunningEmulator,
    create_rollout,
    get_deployment,
    get_rollout,
    patch_rollout,
    set_deployment_ready,
)

pytestmark = pytest.mark.integration


def deployment(name: str) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}},
        },
    }


def rollout(name: str) -> dict[str, object]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"replicas": 1},
    }


def test_create_fills_server_side_metadata(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("web"))
    dep = get_deployment(api_client, namespace, "web")
    assert dep is not None
    meta = dep["metadata"]
    assert meta["namespace"] == "ns"  # from the URL
    assert meta["uid"] and meta["generation"] == 1
    rv1 = int(meta["resourceVersion"])
    apps.patch_namespaced_deployment("web", namespace, {"spec": {"replicas": 5}})
    dep = get_deployment(api_client, namespace, "web")
    assert dep is not None
    assert int(dep["metadata"]["resourceVersion"]) > rv1
    assert dep["metadata"]["generation"] == 2
    assert dep["spec"]["replicas"] == 5 and dep["spec"]["selector"] == {
        "matchLabels": {"app": "web"}
    }


def test_generate_name(api_client: kubernetes.client.ApiClient, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(api_client)
    core.create_namespaced_event(
        namespace,
        {
            "metadata": {"generateName": "web."},
            "involvedObject": {"name": "web", "namespace": namespace},
            "reason": "Test",
            "message": "hello",
        },
    )
    events = core.list_namespaced_event(namespace).items
    assert len(events) == 1 and events[0].metadata.name.startswith("web.")
    assert len(events[0].metadata.name) > len("web.")


def test_status_subresource_writes_status_only(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    create_rollout(api_client, rollout("r"))
    custom = kubernetes.client.CustomObjectsApi(api_client)
    custom.patch_namespaced_custom_object_status(
        "sluice.dev",
        "v1alpha1",
        namespace,
        "rollouts",
        "r",
        {"status": {"phase": "Healthy"}, "spec": {"replicas": 9}},
        _content_type="application/merge-patch+json",
    )
    obj = get_rollout(api_client, namespace, "r")
    assert obj["status"] == {"phase": "Healthy"}
    assert obj["spec"] == {"replicas": 1}
    assert obj["metadata"]["generation"] == 1


def test_stale_resource_version_conflicts(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    obj = create_rollout(api_client, rollout("r"))
    rv = obj["metadata"]["resourceVersion"]
    patch_rollout(
        api_client, namespace, "r", {"metadata": {"resourceVersion": rv, "labels": {"a": "1"}}}
    )
    with pytest.raises(kubernetes.client.ApiException) as e:
        patch_rollout(
            api_client, namespace, "r", {"metadata": {"resourceVersion": rv, "labels": {"a": "2"}}}
        )
    assert e.value.status == 409
    assert get_rollout(api_client, namespace, "r")["metadata"]["labels"] == {"a": "1"}


def test_failed_json_patch_test_is_422(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    create_rollout(api_client, rollout("r"))
    custom = kubernetes.client.CustomObjectsApi(api_client)
    patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
    ]
    with pytest.raises(kubernetes.client.ApiException) as e:
        custom.patch_namespaced_custom_object(
            "sluice.dev", "v1alpha1", namespace, "rollouts", "r", patch
        )
    assert e.value.status == 422
    current = get_rollout(api_client, namespace, "r")["metadata"]["resourceVersion"]
    patch[0]["value"] = current
    custom.patch_namespaced_custom_object(
        "sluice.dev", "v1alpha1", namespace, "rollouts", "r", patch
    )
    assert get_rollout(api_client, namespace, "r")["metadata"]["finalizers"] == ["x"]


def test_deployment_readiness_helper(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    kubernetes.client.AppsV1Api(api_client).create_namespaced_deployment(
        namespace, deployment("web")
    )
    dep = set_deployment_ready(api_client, namespace, "web", ready=2)
    assert dep["status"]["readyReplicas"] == 2 and dep["status"]["replicas"] == 3
    dep = set_deployment_ready(api_client, namespace, "web")
    assert dep["status"]["readyReplicas"] == 3
    assert dep["metadata"]["generation"] == 1  # a status write is not a spec change


def test_injected_faults_fail_then_pass(
    api_client: kubernetes.client.ApiClient, namespace: str, kube_emulator: RunningEmulator
) -> None:
    create_rollout(api_client, rollout("r"))
    fault = kube_emulator.inject(method="PATCH", plural="rollouts", name="r", status=409, times=1)
    with pytest.raises(kubernetes.client.ApiException) as e:
        patch_rollout(api_client, namespace, "r", {"metadata": {"labels": {"a": "1"}}})
    assert e.value.status == 409 and fault.hits == 1
    assert "labels" not in get_rollout(api_client, namespace, "r")["metadata"]  # not applied
    patch_rollout(api_client, namespace, "r", {"metadata": {"labels": {"a": "1"}}})
    assert get_rollout(api_client, namespace, "r")["metadata"]["labels"] == {"a": "1"}


def test_injected_delay_times_out(
    api_client: kubernetes.client.ApiClient, namespace: str, kube_emulator: RunningEmulator
) -> None:
    create_rollout(api_client, rollout("r"))
    # urllib3 retries a timed-out GET by itself (3 times), so every GET is slow until cleared
    kube_emulator.inject(method="GET", plural="rollouts", status=None, delay=1.0, times=None)
    custom = kubernetes.client.CustomObjectsApi(api_client)
    with pytest.raises(Exception) as e:
        custom.get_namespaced_custom_object(
            "sluice.dev", "v1alpha1", namespace, "rollouts", "r", _request_timeout=0.2
        )
    assert "timed out" in str(e.value).lower() or "timeout" in type(e.value).__name__.lower()
    kube_emulator.clear_faults()
    assert get_rollout(api_client, namespace, "r")["metadata"]["name"] == "r"


async def test_kopf_operator_runs_handlers_and_finalizers(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    """kopf adds its finalizer (a JSON patch testing resourceVersion), runs a sync handler that
    uses the synchronous client, posts Events (generateName) and releases the object on deletion."""
    import asyncio

    import kopf

    registry = kopf.OperatorRegistry()
    seen: list[str] = []

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: object) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="sluice.dev")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="sluice.dev", key="last-handled-configuration"
        )
        settings.persistence.finalizer = "sluice.dev/finalizer"
        settings.posting.level = 0

    @kopf.on.login(registry=registry)
    def login(**kwargs: object) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.create("sluice.dev", "v1alpha1", "rollouts", registry=registry)
    def created(name: str, **_: object) -> None:
        # the synchronous client from kopf's handler thread, against the same emulator
        get_rollout(api_client, namespace, name)
        seen.append(f"create {name}")

    @kopf.on.delete("sluice.dev", "v1alpha1", "rollouts", registry=registry)
    def deleted(name: str, **_: object) -> None:
        seen.append(f"delete {name}")

    task = asyncio.create_task(kopf.operator(registry=registry, clusterwide=True, standalone=True))
    try:
        create_rollout(api_client, rollout("r"))
        for _ in range(100):
            await asyncio.sleep(0.05)
            obj = get_rollout(api_client, namespace, "r")
            if seen and "sluice.dev/finalizer" in (obj["metadata"].get("finalizers") or []):
                break
        assert seen == ["create r"]
        assert obj["metadata"]["finalizers"] == ["sluice.dev/finalizer"]
        custom = kubernetes.client.CustomObjectsApi(api_client)
        custom.delete_namespaced_custom_object("sluice.dev", "v1alpha1", namespace, "rollouts", "r")
        gone = False
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                get_rollout(api_client, namespace, "r")
            except kubernetes.client.ApiException as e:
                gone = e.status == 404
                break
        assert gone and seen == ["create r", "delete r"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
