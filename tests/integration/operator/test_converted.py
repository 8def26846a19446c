"""Manifests ``sluice convert`` wrote, run by the operator against the emulator.

The converted Flagger canary (tests/fixtures/convert/flagger-canary-istio) is applied as a user
would apply it, with the Services and the VirtualService the report asks for; it adopts the
Deployment Flagger targeted, and a new image in that Deployment rolls out through the weights
Flagger would have stepped through, to Healthy. Analyses get
scripted verdicts: what runs here is the converted Rollout, not Prometheus.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from rollouts.convert import convert_documents
from rollouts.settings import Settings
from rollouts.verdicts.scripted import ScriptedVerdicts
from tests.support.kube import (
    RunningEmulator,
    create_rollout,
    create_service,
    set_deployment_ready,
)

from .conftest import OperatorHarness, healthy

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[2] / "fixtures" / "convert" / "flagger-canary-istio" / "input.yaml"
ISTIO = ("networking.istio.io", "v1beta1", "virtualservices")


@pytest.fixture()
async def scripted(
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
    operator_settings: Settings,
    namespace: str,
) -> AsyncIterator[OperatorHarness]:
    verdicts = ScriptedVerdicts(time.monotonic, after=0.3)
    h = OperatorHarness(api_client, kube_emulator, operator_settings, namespace, verdicts=verdicts)
    await h.start()
    try:
        yield h
    finally:
        await h.close()


def converted(
    namespace: str,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    docs = list(yaml.safe_load_all(FIXTURE.read_text()))
    result = convert_documents((str(FIXTURE), d) for d in docs)
    assert not result.invalid
    for doc in result.documents:
        doc["metadata"]["namespace"] = namespace
    (rollout,) = [d for d in result.documents if d["kind"] == "Rollout"]
    templates = [d for d in result.documents if d["kind"] == "AnalysisTemplate"]
    for step in rollout["spec"]["strategy"]["canary"]["steps"]:
        if "pause" in step:
            step["pause"] = {"duration": "1s"}  # the converted 30s, shortened for the test
    (deployment,) = [d for d in result.documents if d["kind"] == "Deployment"]
    return rollout, templates, deployment


def vs_weights(h: OperatorHarness) -> tuple[int, int]:
    vs = kubernetes.client.CustomObjectsApi(h.api).get_namespaced_custom_object(
        ISTIO[0], ISTIO[1], h.namespace, ISTIO[2], "podinfo"
    )
    primary, canary = vs["spec"]["http"][0]["route"]
    return int(primary.get("weight", 0)), int(canary.get("weight", 0))


async def test_a_converted_flagger_canary_rolls_out_through_its_weights(
    scripted: OperatorHarness,
) -> None:
    h = scripted
    rollout, templates, deployment = converted(h.namespace)
    # the Flagger target, kept as it was: the converted Rollout adopts it (workloadRef)
    apps = kubernetes.client.AppsV1Api(h.api)
    apps.create_namespaced_deployment(h.namespace, deployment)
    set_deployment_ready(h.api, h.namespace, "podinfo")
    custom = kubernetes.client.CustomObjectsApi(h.api)
    for t in templates:
        custom.create_namespaced_custom_object(
            "sluice.dev", "v1alpha1", h.namespace, "analysistemplates", t
        )
    # what the report's todo lines ask for: the primary and canary Services, and the
    # VirtualService Flagger used to generate, routing to both
    for name in ("podinfo-primary", "podinfo-canary"):
        create_service(h.api, h.namespace, name, {"app": "podinfo"})
    custom.create_namespaced_custom_object(
        ISTIO[0],
        ISTIO[1],
        h.namespace,
        ISTIO[2],
        {
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "podinfo", "namespace": h.namespace},
            "spec": {
                "hosts": ["podinfo"],
                "http": [
                    {
                        "route": [
                            {"destination": {"host": "podinfo-primary"}, "weight": 100},
                            {"destination": {"host": "podinfo-canary"}, "weight": 0},
                        ]
                    }
                ],
            },
        },
    )
    create_rollout(h.api, rollout)
    first = await h.wait_status(healthy, name="podinfo", what="first revision Healthy")

    seen: set[tuple[int, int]] = set()

    def progressed() -> bool:
        seen.add(vs_weights(h))
        st = h.status("podinfo")
        return healthy(st) and st["stableRevision"] != first["stableRevision"]

    # a new image for the Deployment in Git, as with Flagger
    template = deployment["spec"]["template"]
    template["spec"]["containers"][0]["image"] = "ghcr.io/stefanprodan/podinfo:6.0.1"
    apps.patch_namespaced_deployment("podinfo", h.namespace, {"spec": {"template": template}})
    await h.wait_for(progressed, timeout=30, what="new revision Healthy")
    # the weights Flagger would have set (stepWeight 20 up to maxWeight 50), then all back to
    # the promoted stable
    assert {(80, 20), (60, 40), (50, 50)} <= seen, seen
    assert vs_weights(h) == (100, 0)
    st = h.status("podinfo")
    assert st["history"][-1]["outcome"] == "Promoted"
