"""What one reconcile of an idle analysed Rollout costs in Kubernetes API calls.

Measured when this test was written (issue 11): 13 calls before the reconcile became phases (a
GET of every template of every analysis for every running run, 4 here; a status PATCH of each
running run, 2; the Rollout's unchanged status PATCHed), 6 after (the reads below). Under the
operator (issue 13), the reads come from its watch cache: 0 calls (the second test).

An analysed Rollout spends most of its life waiting for the next measurement; the controller
reconciles it every few seconds meanwhile. Each of those reconciles should read what it must
(the Rollout, its slots, its Services, its runs) and write nothing: no template reads (the run
keeps what it needs from its templates), no run status patch when no measurement came due, no
Rollout status patch when nothing changed. The emulator records every request it serves.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import kubernetes
import pytest

from rollouts.operator import Controller
from rollouts.settings import Settings
from tests.support.kube import (
    SLUICE_GROUP,
    SLUICE_VERSION,
    ApiCall,
    RunningEmulator,
    create_rollout,
    get_rollout,
    list_json,
    patch_rollout,
    ready_slots,
)

from .conftest import OperatorHarness, canary, fast_settings, healthy

pytestmark = pytest.mark.integration

W = "{{window}}"


def template(name: str, metric: str) -> dict[str, Any]:
    """A counts compare measured hourly: once its run is created, nothing is due for an hour."""

    def arm(service: str) -> dict[str, str]:
        sel = f"service={{{{args.{service}}}}}"
        return {
            "events": f'sum(increase(http_requests_total{{{sel}, code=~"5.."}}[{W}]))',
            "total": f"sum(increase(http_requests_total{{{sel}}}[{W}]))",
        }

    return {
        "apiVersion": f"{SLUICE_GROUP}/{SLUICE_VERSION}",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "metrics": [
                {
                    "name": metric,
                    "kind": "counts",
                    "interval": "1h",
                    "count": 3,
                    "provider": {
                        "prometheus": {
                            "canary": arm("canary-service"),
                            "baseline": arm("stable-service"),
                        }
                    },
                    "compare": {"direction": "increase", "tolerance": 1.25},
                }
            ]
        },
    }


def runs(api: kubernetes.client.ApiClient) -> list[dict[str, Any]]:
    return list_json(api, f"/apis/{SLUICE_GROUP}/{SLUICE_VERSION}/namespaces/ns/analysisruns")


def settle(
    controller: Controller, api: kubernetes.client.ApiClient, done: Any, what: str
) -> dict[str, Any]:
    """Reconcile (playing the Deployment controller in between) until ``done(status)``."""
    st: dict[str, Any] = {}
    for _ in range(30):
        controller.sync("ns", "web")
        ready_slots(api, "ns", "web")
        st = get_rollout(api, "ns", "web").get("status") or {}
        if done(st):
            return st
    raise AssertionError(f"never reached {what}; status: {st}")


def test_an_idle_analysed_rollout_reads_no_templates_and_writes_nothing(
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
    services: list[str],
) -> None:
    custom = kubernetes.client.CustomObjectsApi(api_client)
    for name, metric in (("step-check", "errors"), ("background-check", "background-errors")):
        custom.create_namespaced_custom_object(
            SLUICE_GROUP, SLUICE_VERSION, "ns", "analysistemplates", template(name, metric)
        )
    doc = canary(
        steps=[{"setWeight": 25}, {"analysis": {"templates": [{"templateName": "step-check"}]}}],
        background={"templates": [{"templateName": "background-check"}]},
    )
    create_rollout(api_client, doc)
    settings = Settings(
        standalone=True,
        metrics_port=None,
        liveness_port=None,
        request_timeout=5.0,
        prometheus_url="http://127.0.0.1:9",  # never asked: no measurement comes due
    )
    controller = Controller(api_client, settings)
    settle(
        controller,
        api_client,
        lambda s: s.get("phase") == "Healthy" and s.get("stableRevision"),
        "the first revision Healthy",
    )
    rollout = get_rollout(api_client, "ns", "web")
    template_ = rollout["spec"]["template"]
    template_["spec"]["containers"][0]["image"] = "web:2"
    patch_rollout(api_client, "ns", "web", {"spec": {"template": template_}})

    def analysing(st: dict[str, Any]) -> bool:
        running = [r for r in runs(api_client) if (r.get("status") or {}).get("phase") == "Running"]
        return st.get("currentStepIndex") == 1 and len(running) == 2

    settle(controller, api_client, analysing, "both analyses running at step 2")
    controller.sync("ns", "web")  # anything the last one left to settle

    before = get_rollout(api_client, "ns", "web")
    before_runs = runs(api_client)
    kube_emulator.emulator.calls.clear()
    controller.sync("ns", "web")
    calls: list[ApiCall] = list(kube_emulator.emulator.calls)
    print(f"\n{len(calls)} API calls in one idle reconcile:")
    for call, n in Counter(str(c) for c in calls).most_common():
        print(f"  {n} x {call}")

    # the rollout is as it was, and so are its runs: nothing was due
    after = get_rollout(api_client, "ns", "web")
    assert after["status"] == before["status"]
    assert runs(api_client) == before_runs
    # reads only: the Rollout, its two slots, its two Services, its runs (one list)
    assert not [c for c in calls if c.plural in ("analysistemplates", "clusteranalysistemplates")]
    assert not [c for c in calls if c.method != "GET"], [str(c) for c in calls]
    assert Counter(str(c) for c in calls) == {
        "GET rollouts/web": 1,
        "GET deployments/web-a": 1,
        "GET deployments/web-b": 1,
        "GET services/web": 1,
        "GET services/web-canary": 1,
        "GET analysisruns": 1,
    }
    # what the runs need from their templates was kept in them when they were created: each
    # metric's share of the budget (two metrics: half of the rollout's 0.05 each)
    alphas = {m["name"]: m["compare"]["alpha"] for r in before_runs for m in r["spec"]["metrics"]}
    assert alphas == {"errors": 0.025, "background-errors": 0.025}
    # and they analyse the revision in flight (the one the cycle that started them moved to)
    revision = before["status"]["currentRevision"]
    assert {r["spec"]["revision"] for r in before_runs} == {revision}
    assert {r["metadata"]["labels"]["sluice.dev/revision"] for r in before_runs} == {revision}


@pytest.fixture()
def operator_settings() -> Settings:
    """No timer fires within the test, and Prometheus is never asked (nothing comes due)."""
    return fast_settings(
        prometheus_url="http://127.0.0.1:9", max_requeue_seconds=60.0, idle_seconds=60.0
    )


async def test_an_idle_analysed_reconcile_under_the_operator_makes_no_api_call(
    harness: OperatorHarness,
) -> None:
    """The same idle reconcile as above, run by the operator: every read is served from its
    watches (Rollout, slots, Services, runs), nothing is due, nothing is written."""
    h = harness
    custom = kubernetes.client.CustomObjectsApi(h.api)
    for name, metric in (("step-check", "errors"), ("background-check", "background-errors")):
        custom.create_namespaced_custom_object(
            SLUICE_GROUP, SLUICE_VERSION, "ns", "analysistemplates", template(name, metric)
        )
    doc = canary(
        steps=[{"setWeight": 25}, {"analysis": {"templates": [{"templateName": "step-check"}]}}],
        background={"templates": [{"templateName": "background-check"}]},
    )
    create_rollout(h.api, doc)
    await h.wait_status(healthy, what="first revision Healthy")
    h.set_image("web:2")

    def analysing() -> bool:
        running = [r for r in runs(h.api) if (r.get("status") or {}).get("phase") == "Running"]
        return h.status().get("currentStepIndex") == 1 and len(running) == 2

    await h.wait_for(analysing, what="both analyses running at step 2")
    h.auto_ready = False  # the harness's readiness polling would be counted too
    controller = h.controller
    assert controller is not None

    async def reconcile() -> None:
        before = h.reconcile_count()
        controller.trigger("ns", "web", timed=True)  # as a due time would
        await h.wait_for(lambda: h.reconcile_count() > before, what="a reconcile")

    # anything the last ones left to settle (as the first test does; under load a run's first
    # ticks may still be writing when both runs show Running), then one that writes nothing
    calls = h.emulator.emulator.calls
    made: list[str] = ["not yet"]
    for _ in range(5):
        calls.clear()
        await reconcile()
        made = [str(c) for c in list(calls) if not c.watch]
        if not made:
            break
    assert made == [], made
