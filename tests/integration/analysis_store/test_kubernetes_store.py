"""KubeAnalysisStore against the emulator: templates, runs and Secrets as the API server keeps them."""

from __future__ import annotations

import base64
import copy
import logging
from datetime import UTC, datetime
from typing import Any

import kubernetes
import pytest

from analysis.api import (
    AnalysisRun,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    InvalidAnalysisSpec,
    parse_run,
)
from analysis.store.kubernetes import KubeAnalysisStore
from analysis.store.port import AnalysisRunStore, SecretNotFound
from rollouts.api.rollout import Rollout
from rollouts.api.validation import parse_rollout
from rollouts.verdicts.analysis_runs import owner_of
from tests.support.kube import SLUICE_GROUP, SLUICE_VERSION, RunningEmulator, create_rollout, custom
from tests.support.rollouts import rollout_doc

pytestmark = pytest.mark.integration

NS = "ns"
METRIC = {
    "name": "success-rate",
    "kind": "value",
    "provider": {"prometheus": {"query": "avg(up{app={{args.app}}})"}},
    "threshold": {"min": 0.99},
}


def template_body(kind: str = "AnalysisTemplate", name: str = "success") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if kind == "AnalysisTemplate":
        meta["namespace"] = NS
    return {
        "apiVersion": f"{SLUICE_GROUP}/{SLUICE_VERSION}",
        "kind": kind,
        "metadata": meta,
        "spec": {"args": [{"name": "app", "value": "web"}], "metrics": [METRIC]},
    }


def run_model(name: str = "web-r1-1-step-1", revision: str = "r1", **status: Any) -> AnalysisRun:
    rendered = copy.deepcopy(METRIC)
    rendered["provider"] = {"prometheus": {"query": 'avg(up{app="web"})'}}
    doc: dict[str, Any] = {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "rollout": "web",
            "revision": revision,
            "kind": "step",
            "stepIndex": 1,
            "args": [{"name": "app", "value": "web"}],
            "metrics": [rendered],
        },
    }
    if status:
        doc["status"] = status
    return parse_run(doc)


def raw_run(api: kubernetes.client.ApiClient, name: str) -> dict[str, Any]:
    out: dict[str, Any] = custom(api).get_namespaced_custom_object(
        SLUICE_GROUP, SLUICE_VERSION, NS, "analysisruns", name
    )
    return out


@pytest.fixture()
def store(api_client: kubernetes.client.ApiClient) -> KubeAnalysisStore:
    store = KubeAnalysisStore(api_client, backoff=0.01)
    port: AnalysisRunStore = store  # mypy checks the class satisfies the port
    assert port is store
    return store


@pytest.fixture()
def rollout(api_client: kubernetes.client.ApiClient, namespace: str) -> Rollout:
    return parse_rollout(create_rollout(api_client, rollout_doc(steps=[{"setWeight": 50}])))


# ------------------------------------------------------------------------------------- templates


def test_templates_are_read_by_scope(
    store: KubeAnalysisStore, api_client: kubernetes.client.ApiClient
) -> None:
    api = custom(api_client)
    api.create_namespaced_custom_object(
        SLUICE_GROUP, SLUICE_VERSION, NS, "analysistemplates", template_body()
    )
    api.create_cluster_custom_object(
        SLUICE_GROUP,
        SLUICE_VERSION,
        "clusteranalysistemplates",
        template_body("ClusterAnalysisTemplate", "global"),
    )
    namespaced = store.get_template(NS, "success")
    assert isinstance(namespaced, AnalysisTemplate)
    assert namespaced.spec.metrics[0].name == "success-rate"
    assert namespaced.metadata.uid  # what the server stored, not what we sent
    cluster = store.get_template(NS, "global", cluster_scope=True)
    assert isinstance(cluster, ClusterAnalysisTemplate)
    assert cluster.spec == namespaced.spec
    assert store.get_template(NS, "global") is None
    assert store.get_template(NS, "success", cluster_scope=True) is None
    assert store.get_template("elsewhere", "success") is None


def test_an_invalid_template_is_named_with_its_field(
    store: KubeAnalysisStore, api_client: kubernetes.client.ApiClient
) -> None:
    body = template_body()
    body["spec"]["metrics"][0]["provider"]["prometheus"]["query"] = "up{a={{args.nope}}}"
    custom(api_client).create_namespaced_custom_object(
        SLUICE_GROUP, SLUICE_VERSION, NS, "analysistemplates", body
    )
    with pytest.raises(InvalidAnalysisSpec) as e:
        store.get_template(NS, "success")
    assert e.value.problems == [
        "AnalysisTemplate ns/success: spec.metrics[0].provider.prometheus.query: "
        "{{args.nope}} names no declared arg"
    ]


# ------------------------------------------------------------------------------------------ runs


def test_a_run_is_created_owned_labelled_and_with_its_status(
    store: KubeAnalysisStore, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    started = datetime(2025, 1, 1, tzinfo=UTC)
    run = run_model(phase="Running", startedAt=started, state={"tests": {"m": [1, None]}})
    created = store.create_run(owner_of(rollout), run)
    raw = raw_run(api_client, run.metadata.name)
    meta = raw["metadata"]
    assert meta["labels"] == {"sluice.dev/rollout": "web", "sluice.dev/revision": "r1"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "Rollout",
            "name": "web",
            "uid": rollout.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert raw["status"]["phase"] == "Running"
    assert raw["status"]["state"] == {"tests": {"m": [1, None]}}
    assert created.status is not None and created.status.started_at == started
    assert created.spec == run.spec
    assert store.get_run(NS, run.metadata.name) == created


def test_writes_name_the_sluice_field_manager(
    store: KubeAnalysisStore, rollout: Rollout, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, Any]] = []
    for method in ("create_namespaced_custom_object", "patch_namespaced_custom_object_status"):
        real = getattr(store.custom, method)

        def spy(*args: Any, _real: Any = real, _name: str = method, **kwargs: Any) -> Any:
            seen.append((_name, kwargs.get("field_manager")))
            return _real(*args, **kwargs)

        monkeypatch.setattr(store.custom, method, spy)
    store.create_run(owner_of(rollout), run_model(phase="Running"))
    assert seen == [
        ("create_namespaced_custom_object", "sluice"),
        ("patch_namespaced_custom_object_status", "sluice"),
    ]


def test_creating_a_run_twice_returns_the_first_unchanged(
    store: KubeAnalysisStore, rollout: Rollout
) -> None:
    first = store.create_run(owner_of(rollout), run_model(phase="Running", message="first"))
    again = store.create_run(owner_of(rollout), run_model(phase="Pending", message="second"))
    assert again == first
    assert again.status is not None and again.status.message == "first"


def test_a_run_left_without_status_by_a_crash_gets_it_on_the_retried_create(
    store: KubeAnalysisStore, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    run = run_model(phase="Running", message="resumed")
    body = run.wire()
    body.pop("status")
    body["metadata"]["labels"] = {"sluice.dev/rollout": "web", "sluice.dev/revision": "r1"}
    custom(api_client).create_namespaced_custom_object(
        SLUICE_GROUP, SLUICE_VERSION, NS, "analysisruns", body
    )
    created = store.create_run(owner_of(rollout), run)
    assert created.status is not None and created.status.message == "resumed"
    assert raw_run(api_client, run.metadata.name)["status"]["message"] == "resumed"


def test_runs_are_listed_per_rollout_and_a_broken_one_is_skipped(
    store: KubeAnalysisStore,
    rollout: Rollout,
    api_client: kubernetes.client.ApiClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store.create_run(owner_of(rollout), run_model("web-1", phase="Running"))
    store.create_run(owner_of(rollout), run_model("web-2", revision="r2", phase="Running"))
    other = parse_rollout(
        create_rollout(api_client, {**rollout_doc(), "metadata": {"name": "api", "namespace": NS}})
    )
    store.create_run(owner_of(other), run_model("api-1", phase="Running"))
    broken = run_model("web-broken").wire()
    broken["metadata"]["labels"] = {"sluice.dev/rollout": "web"}
    broken["spec"]["kind"] = "nonsense"
    custom(api_client).create_namespaced_custom_object(
        SLUICE_GROUP, SLUICE_VERSION, NS, "analysisruns", broken
    )
    with caplog.at_level(logging.WARNING, logger="analysis.store.kubernetes"):
        runs = store.list_runs(owner_of(rollout))
    assert sorted(r.metadata.name for r in runs) == ["web-1", "web-2"]
    assert "web-broken" in caplog.text and "spec.kind" in caplog.text
    assert [r.metadata.name for r in store.list_runs(owner_of(other))] == ["api-1"]
    assert store.get_run(NS, "missing") is None


def test_status_is_replaced_whole_and_spec_is_never_written(
    store: KubeAnalysisStore, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    run = store.create_run(
        owner_of(rollout), run_model(phase="Running", state={"tests": {"a": 1}, "stale": True})
    )
    assert run.status is not None
    run.status.state = {"tests": {"a": 2}}
    run.status.phase = "Successful"
    changed_spec = run.spec.model_copy(update={"revision": "tampered"})
    updated = store.update_run_status(run.model_copy(update={"spec": changed_spec}))
    raw = raw_run(api_client, run.metadata.name)
    assert raw["status"]["state"] == {"tests": {"a": 2}}  # "stale" is gone: not a merge
    assert raw["status"]["phase"] == "Successful"
    assert raw["spec"]["revision"] == "r1"
    assert updated.status == run.status and updated.spec.revision == "r1"


def test_transient_failures_are_retried_and_lasting_ones_raised(
    store: KubeAnalysisStore, rollout: Rollout, kube_emulator: RunningEmulator
) -> None:
    create_fault = kube_emulator.inject(method="POST", plural="analysisruns", status=503)
    status_fault = kube_emulator.inject(
        method="PATCH", plural="analysisruns", subresource="status", status=500, times=2
    )
    created = store.create_run(owner_of(rollout), run_model(phase="Running"))
    assert (create_fault.hits, status_fault.hits) == (1, 2)
    assert created.status is not None and created.status.phase == "Running"
    kube_emulator.inject(method="GET", plural="analysisruns", status=500, times=None)
    with pytest.raises(kubernetes.client.ApiException) as e:
        store.get_run(NS, created.metadata.name)
    assert e.value.status == 500
    kube_emulator.clear_faults()
    kube_emulator.inject(method="GET", plural="analysistemplates", status=403, times=None)
    with pytest.raises(kubernetes.client.ApiException):  # not transient: no retry, no None
        store.get_template(NS, "success")


# --------------------------------------------------------------------------------------- secrets


def _secret(api: kubernetes.client.ApiClient, name: str, data: dict[str, str]) -> None:
    body: Any = {  # the client takes a plain dict as well as a V1Secret
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": data,
    }
    kubernetes.client.CoreV1Api(api).create_namespaced_secret(NS, body)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_keys_are_decoded_and_missing_ones_named(
    store: KubeAnalysisStore, api_client: kubernetes.client.ApiClient
) -> None:
    _secret(
        api_client,
        "prom",
        {"token": _b64("s3cr3t\n"), "user": _b64("ops"), "pass": _b64("pä ss"), "bad": "!!"},
    )
    assert store.resolve_secret(NS, "prom", "token") == "s3cr3t"
    assert store.resolve_secret(NS, "prom", "user") == "ops"
    assert store.resolve_secret(NS, "prom", "pass") == "pä ss"
    with pytest.raises(SecretNotFound, match=r"^Secret ns/prom has no key 'password'$"):
        store.resolve_secret(NS, "prom", "password")
    with pytest.raises(SecretNotFound, match=r"^Secret ns/absent not found$"):
        store.resolve_secret(NS, "absent", "token")
    with pytest.raises(SecretNotFound, match="not base64"):
        store.resolve_secret(NS, "prom", "bad")


def test_a_secret_the_controller_may_not_read_names_the_grant_to_add(
    store: KubeAnalysisStore,
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
) -> None:
    # the ClusterRole grants no Secret reads (deploy/rbac/secret-reader.yaml does, per namespace):
    # a 403 becomes the run's error message, saying what to apply, instead of a reconcile failure
    _secret(api_client, "prom", {"token": _b64("t")})
    fault = kube_emulator.inject(method="GET", plural="secrets", status=403, times=None)
    with pytest.raises(SecretNotFound) as e:
        store.resolve_secret(NS, "prom", "token")
    assert fault.hits == 1  # refused, not retried
    assert str(e.value).startswith(f"Secret {NS}/prom: the controller may not read Secrets")
    assert "deploy/rbac/secret-reader.yaml" in str(e.value)
