"""Job checks end to end: the real operator over the emulator creates a Job per measurement;
the test plays the Job controller (the emulator runs none) by writing the Job's status."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from tests.support.kube import SLUICE_GROUP, SLUICE_VERSION, create_rollout, list_json

from .conftest import OperatorHarness

pytestmark = pytest.mark.integration

JOB_SPEC = {
    "backoffLimit": 0,
    "activeDeadlineSeconds": 600,
    "template": {
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "suite", "image": "example/conformance:1", "args": ["run"]}],
        }
    },
}


def rollout() -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]},
            },
            "strategy": {
                "canary": {
                    "stableService": "web",
                    "canaryService": "web-canary",
                    "steps": [
                        {"setWeight": 50},
                        {"analysis": {"templates": [{"templateName": "conformance"}]}},
                    ],
                    "scaleDownDelaySeconds": 0,
                    "abortScaleDownDelaySeconds": 0,
                }
            },
        },
    }


TEMPLATE = {
    "apiVersion": "sluice.dev/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "conformance", "namespace": "ns"},
    "spec": {
        "metrics": [
            {
                "name": "conformance",
                "kind": "value",
                "interval": "1s",
                "count": 1,
                "provider": {"job": {"metadata": {"labels": {"team": "web"}}, "spec": JOB_SPEC}},
                "threshold": {"min": 1},
            }
        ]
    },
}


def jobs(h: OperatorHarness) -> list[dict[str, Any]]:
    return [
        j
        for j in list_json(h.api, "/apis/batch/v1/namespaces/ns/jobs")
        if (j["metadata"].get("labels") or {}).get("sluice.dev/rollout") == "web"
    ]


def finish(h: OperatorHarness, name: str, condition: dict[str, str]) -> None:
    """What the Job controller does when the Job ends."""
    status = {"conditions": [{"status": "True", **condition}]}
    if condition["type"] == "Complete":
        status["succeeded"] = 1  # type: ignore[assignment]
    kubernetes.client.BatchV1Api(h.api).patch_namespaced_job_status(name, "ns", {"status": status})


async def start(h: OperatorHarness) -> tuple[str, dict[str, Any]]:
    kubernetes.client.CustomObjectsApi(h.api).create_namespaced_custom_object(
        SLUICE_GROUP, SLUICE_VERSION, "ns", "analysistemplates", TEMPLATE
    )
    create_rollout(h.api, rollout())
    st = await h.wait_status(
        lambda s: s.get("phase") == "Healthy" and s.get("stableRevision"), what="first Healthy"
    )
    h.set_image("web:2")
    [job] = await h.wait_for(lambda: jobs(h), timeout=20, what="the check's Job")
    return str(st["stableRevision"]), job


async def test_a_succeeded_job_passes_the_step_and_is_cleaned_up(harness: OperatorHarness) -> None:
    h = harness
    old, job = await start(h)
    meta = job["metadata"]
    run_name = meta["labels"]["sluice.dev/analysisrun"]
    assert meta["labels"]["sluice.dev/metric"] == "conformance"
    assert meta["labels"]["team"] == "web"
    [owner] = meta["ownerReferences"]
    assert owner["kind"] == "AnalysisRun" and owner["name"] == run_name and owner["controller"]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "example/conformance:1"
    await h.reconciles(3)
    assert h.status()["phase"] == "Progressing"  # a running Job holds the step, never an error
    assert len(jobs(h)) == 1  # and is not created twice

    finish(h, meta["name"], {"type": "Complete"})
    st = await h.wait_status(
        lambda s: s.get("phase") == "Healthy" and s["stableRevision"] != old,
        timeout=20,
        what="promoted",
    )
    [record] = st["analysisRuns"]
    assert record["phase"] == "Successful"
    await h.wait_for(lambda: not jobs(h), what="the Job deleted with its finished run")


async def test_a_job_past_its_deadline_aborts_with_the_reason(harness: OperatorHarness) -> None:
    h = harness
    old, job = await start(h)
    finish(
        h,
        job["metadata"]["name"],
        {"type": "Failed", "reason": "DeadlineExceeded", "message": "Job was active longer"},
    )
    st = await h.wait_status(lambda s: s.get("phase") == "Degraded", timeout=20, what="aborted")
    assert st["stableRevision"] == old
    assert st["abort"]["metric"] == "conformance"
    run = kubernetes.client.CustomObjectsApi(h.api).get_namespaced_custom_object(
        SLUICE_GROUP,
        SLUICE_VERSION,
        "ns",
        "analysisruns",
        job["metadata"]["labels"]["sluice.dev/analysisrun"],
    )
    [measurement] = run["status"]["metrics"][0]["measurements"]
    assert measurement["phase"] == "Failed" and measurement["value"] == 0
    message = measurement["message"]
    assert "DeadlineExceeded: Job was active longer" in message, message
    # the emulator has no pods: the evidence says the logs could not be read, never invents them
    assert "logs unavailable" in message, message
