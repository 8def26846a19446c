"""AnalysisRun history against the emulator: old runs really leave the API, and a run someone
else already deleted (404) is no error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes
import pytest

from analysis.api import AnalysisRun, parse_run
from analysis.providers.port import MetricProvider
from analysis.store.kubernetes import KubeAnalysisStore
from rollouts.api.rollout import Rollout, RolloutStatus
from rollouts.api.validation import parse_rollout
from rollouts.verdicts.analysis_runs import AnalysisVerdicts, owner_of
from tests.support.kube import SLUICE_GROUP, SLUICE_VERSION, RunningEmulator, create_rollout, custom
from tests.support.rollouts import rollout_doc

pytestmark = pytest.mark.integration

NS = "ns"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
METRIC = {
    "name": "success-rate",
    "kind": "value",
    "provider": {"prometheus": {"query": 'avg(up{app="web"})'}},
    "threshold": {"min": 0.99},
}


def run_model(name: str, revision: str, phase: str, minute: int) -> AnalysisRun:
    return parse_run(
        {
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "rollout": "web",
                "revision": revision,
                "kind": "step",
                "stepIndex": 1,
                "metrics": [METRIC],
            },
            "status": {"phase": phase, "startedAt": T0 + timedelta(minutes=minute)},
        }
    )


def stored_names(api: kubernetes.client.ApiClient) -> set[str]:
    listed = custom(api).list_namespaced_custom_object(
        SLUICE_GROUP, SLUICE_VERSION, NS, "analysisruns"
    )
    return {item["metadata"]["name"] for item in listed["items"]}


def no_provider(*_: Any) -> MetricProvider:
    raise AssertionError("pruning measures nothing")


@pytest.fixture()
def store(api_client: kubernetes.client.ApiClient) -> KubeAnalysisStore:
    return KubeAnalysisStore(api_client, backoff=0.01)


@pytest.fixture()
def rollout(api_client: kubernetes.client.ApiClient, namespace: str) -> Rollout:
    """The Rollout ``web`` now at revision r9, with runs of r1..r4 finished and one still running."""
    created = parse_rollout(create_rollout(api_client, rollout_doc(steps=[{"setWeight": 50}])))
    status = RolloutStatus.model_validate({"currentRevision": "r9", "attempt": 1})
    return created.model_copy(update={"status": status})


def seed(store: KubeAnalysisStore, rollout: Rollout) -> None:
    for rev in range(1, 5):
        store.create_run(
            owner_of(rollout), run_model(f"web-r{rev}-ok", f"r{rev}", "Successful", rev)
        )
        store.create_run(owner_of(rollout), run_model(f"web-r{rev}-bad", f"r{rev}", "Failed", rev))
    store.create_run(owner_of(rollout), run_model("web-r4-background", "r4", "Running", 4))
    store.create_run(owner_of(rollout), run_model("web-r9-ok", "r9", "Successful", 9))


KEPT_WITH_ONE = {"web-r4-ok", "web-r4-bad", "web-r4-background", "web-r9-ok"}


def test_old_runs_are_deleted_from_the_api(
    store: KubeAnalysisStore, rollout: Rollout, api_client: kubernetes.client.ApiClient
) -> None:
    seed(store, rollout)
    assert len(stored_names(api_client)) == 10
    deleted = AnalysisVerdicts(store, no_provider, T0.timestamp, run_history=1).prune(rollout)
    assert stored_names(api_client) == KEPT_WITH_ONE
    assert len(deleted) == 6
    for name in deleted:
        with pytest.raises(kubernetes.client.ApiException) as e:
            custom(api_client).get_namespaced_custom_object(
                SLUICE_GROUP, SLUICE_VERSION, NS, "analysisruns", name
            )
        assert e.value.status == 404
        assert store.get_run(NS, name) is None


def test_deletes_are_background_and_a_run_already_gone_is_no_error(
    store: KubeAnalysisStore,
    rollout: Rollout,
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(store, rollout)
    policies: list[Any] = []
    real = store.custom.delete_namespaced_custom_object

    def spy(*args: Any, **kwargs: Any) -> Any:
        policies.append(kwargs.get("propagation_policy"))
        return real(*args, **kwargs)

    monkeypatch.setattr(store.custom, "delete_namespaced_custom_object", spy)
    # another replica deleted it between our list and our delete; a 503 is retried
    gone = kube_emulator.inject(
        method="DELETE", plural="analysisruns", name="web-r1-ok", status=404
    )
    flaky = kube_emulator.inject(
        method="DELETE", plural="analysisruns", name="web-r2-bad", status=503
    )
    AnalysisVerdicts(store, no_provider, T0.timestamp, run_history=1).prune(rollout)
    assert (gone.hits, flaky.hits) == (1, 1)
    assert stored_names(api_client) == KEPT_WITH_ONE | {"web-r1-ok"}  # the fault kept it here
    assert set(policies) == {"Background"} and len(policies) == 7  # 6 runs, one retried
    # a real 404 from the server: deleting twice
    store.delete_run(NS, "web-r4-ok")
    store.delete_run(NS, "web-r4-ok")
    assert "web-r4-ok" not in stored_names(api_client)


def test_a_lasting_delete_failure_is_raised_by_the_store(
    store: KubeAnalysisStore, rollout: Rollout, kube_emulator: RunningEmulator
) -> None:
    store.create_run(owner_of(rollout), run_model("web-r1-ok", "r1", "Successful", 1))
    kube_emulator.inject(method="DELETE", plural="analysisruns", status=403, times=None)
    with pytest.raises(kubernetes.client.ApiException) as e:
        store.delete_run(NS, "web-r1-ok")
    assert e.value.status == 403
