"""The controller reacts to watch events, not to a timer per Rollout (issue 13, item 1).

With the requeue and idle timers set far beyond each test's waits, only events can explain a
reconcile: a hand edit of the VirtualService is repaired at once, a settled Rollout costs no API
call at all, and a deleted Rollout leaves nothing behind in the controller's memory.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kubernetes
import pytest

from rollouts.settings import Settings
from tests.support.kube import create_rollout

from .conftest import OperatorHarness, canary, fast_settings, healthy

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "networking.istio.io", "v1beta1", "virtualservices"
ROUTE: dict[str, Any] = {
    "name": "primary",
    "route": [
        {"destination": {"host": "web"}, "weight": 100},
        {"destination": {"host": "web-canary"}, "weight": 0},
    ],
}
ISTIO = {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}}


@pytest.fixture()
def operator_settings() -> Settings:
    """No timer can fire within a test: requeues and the idle re-check are a minute away."""
    return fast_settings(max_requeue_seconds=60.0, idle_seconds=60.0)


def custom(h: OperatorHarness) -> Any:
    return kubernetes.client.CustomObjectsApi(h.api)


def weights(h: OperatorHarness) -> list[int]:
    vs = custom(h).get_namespaced_custom_object(GROUP, VERSION, h.namespace, PLURAL, "web")
    return [d.get("weight") for d in vs["spec"]["http"][0]["route"]]


async def paused_at_25(h: OperatorHarness) -> None:
    doc = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": h.namespace},
        "spec": {"hosts": ["web"], "http": [copy.deepcopy(ROUTE)]},
    }
    custom(h).create_namespaced_custom_object(GROUP, VERSION, h.namespace, PLURAL, doc)
    create_rollout(h.api, canary(steps=[{"setWeight": 25}, {"pause": {}}], router=ISTIO))
    await h.wait_status(healthy, what="first revision Healthy")
    h.set_image("web:2")
    await h.wait_status(lambda s: s.get("phase") == "Paused", what="paused at weight 25")
    assert weights(h) == [75, 25]


async def test_a_hand_edit_of_the_weights_is_repaired_by_its_watch_event(
    harness: OperatorHarness,
) -> None:
    h = harness
    await paused_at_25(h)
    custom(h).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        h.namespace,
        PLURAL,
        "web",
        {"spec": {"http": [{**ROUTE, "route": [{**d, "weight": 50} for d in ROUTE["route"]]}]}},
        _content_type="application/merge-patch+json",
    )
    # repaired long before any timer (a minute away) could have fired
    await h.wait_for(lambda: weights(h) == [75, 25], timeout=5, what="weights repaired")


async def test_settled_rollouts_cost_no_api_calls(harness: OperatorHarness) -> None:
    h = harness
    await paused_at_25(h)  # one in flight, paused for a person (no timer due)
    create_rollout(h.api, canary(name="shop"))
    await h.wait_status(healthy, name="shop", what="shop Healthy")
    h.auto_ready = False  # the harness's own readiness polling would be counted too

    def quiet() -> bool:  # the echoes of the last writes handled (skipped or run)
        assert h.controller is not None
        sizes = h.controller.state_sizes()
        return sizes["queue_queued"] == 0 and sizes["queue_running"] == 0

    await h.wait_for(quiet, what="no reconcile queued or running")
    await asyncio.sleep(0.5)  # events still in flight from the last writes
    calls = h.emulator.emulator.calls
    calls.clear()
    await asyncio.sleep(3.0)  # a window in which nothing must happen
    made = [str(c) for c in list(calls) if not c.watch]
    assert made == [], made


async def test_a_deleted_rollout_leaves_no_state_behind(harness: OperatorHarness) -> None:
    h = harness
    await paused_at_25(h)
    assert h.controller is not None
    sizes = h.controller.state_sizes()
    assert sizes["locks"] == 1 and sizes["seen"] == 1 and sizes["readers"] > 0
    custom(h).delete_namespaced_custom_object(
        "sluice.dev", "v1alpha1", h.namespace, "rollouts", "web"
    )
    await h.wait_for(lambda: "web" not in h.rollout_names(), timeout=15, what="Rollout gone")

    def pruned() -> bool:
        assert h.controller is not None
        left = {k: v for k, v in h.controller.state_sizes().items() if v}
        assert not left, left
        return True

    await h.wait_for(pruned, what="every per-Rollout structure empty")


async def test_the_controller_keeps_no_diff_base_on_rollouts(harness: OperatorHarness) -> None:
    """kopf's diff-base (a ``last-handled-configuration`` annotation PATCHed on every change,
    whose own event was processed again) is off: a new revision costs the Rollout no main
    resource write by the controller beyond its finalizer."""
    h = harness
    await paused_at_25(h)
    doc = custom(h).get_namespaced_custom_object(
        "sluice.dev", "v1alpha1", h.namespace, "rollouts", "web"
    )
    annotations = doc["metadata"].get("annotations") or {}
    assert not [k for k in annotations if "last-handled" in k], annotations
    assert doc["metadata"].get("finalizers") == ["sluice.dev/finalizer"]
    before = doc["status"]["currentRevision"]
    calls = h.emulator.emulator.calls
    calls.clear()
    h.set_image("web:3")  # the harness's own PATCH of the spec
    await h.wait_status(
        lambda s: s.get("phase") == "Paused" and s.get("currentRevision") != before,
        what="paused at weight 25 on web:3",
    )
    writes = [
        str(c)
        for c in list(calls)
        if c.method == "PATCH" and c.plural == "rollouts" and c.subresource is None
    ]
    assert len(writes) == 1, writes  # the harness's image change only


async def test_reconciles_leave_the_objects_they_read_from_the_cache_unchanged(
    harness: OperatorHarness,
) -> None:
    """The cache hands every reader the very dicts the watch parsed, without copies
    (``rollouts.operator._as_is``): a reader that changed one would change what every later
    reconcile of every Rollout reads, unseen. After reconciles that read everything (timed, so
    none is skipped), each object the cache holds as the watch delivered it must still be what
    the API server has at that resourceVersion, even a change made again and again."""
    h = harness
    await paused_at_25(h)  # in flight: the Rollout, both slots' Deployments, the VirtualService
    create_rollout(h.api, canary(name="shop"))
    await h.wait_status(healthy, name="shop", what="shop Healthy")
    await h.reconciles(10)
    assert h.controller is not None
    cache = h.controller.cache
    plurals = {"rollouts": ("sluice.dev", "v1alpha1"), PLURAL: (GROUP, VERSION)}
    compared = []
    for plural, (group, version) in plurals.items():
        with cache._guard:
            index = cache._indexes[plural]
        for (namespace, name), docs in list(index.items()):
            (held,) = docs
            server = custom(h).get_namespaced_custom_object(group, version, namespace, plural, name)
            if server["metadata"]["resourceVersion"] == held["metadata"]["resourceVersion"]:
                assert held == server, (plural, name)
                compared.append((plural, name))
    # the settled objects were not written meanwhile, so each was compared
    assert {("rollouts", "web"), ("rollouts", "shop"), (PLURAL, "web")} <= set(compared)
