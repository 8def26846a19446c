"""Analysis end to end: the real kopf operator over the emulator, judging from a real Prometheus.

Nothing is stubbed between the Rollout and PromQL: the operator's ``build_verdicts`` wires
``AnalysisVerdicts`` over ``KubeAnalysisStore`` (templates, AnalysisRuns and Secrets in the
emulator) and the real ``PrometheusProvider``, on the wall clock. Each test pushes its traffic to
the session's Prometheus first (``conftest_analysis.TrafficTimeline``), with differences far from
any decision boundary (errors ×50, or identical arms with a thousand errors per window), and
analysis intervals of 1 s so every test ends in a few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import socket
from datetime import datetime
from typing import Any

import kubernetes
import pytest

from analysis.stats.evidence import Evidence
from tests.support.kube import SLUICE_GROUP, SLUICE_VERSION, create_rollout, list_json

from .conftest import OperatorHarness
from .conftest_analysis import (
    Arm,
    HeaderRecorder,
    TrafficTimeline,
    operator_settings,
    prometheus,
    recorder,
    timeline,
)

__all__ = ["operator_settings", "prometheus", "recorder", "timeline"]  # fixtures, used by name

pytestmark = pytest.mark.integration

W = "{{window}}"
VIRTUAL_SERVICE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "VirtualService",
    "metadata": {"name": "web", "namespace": "ns"},
    "spec": {
        "hosts": ["web.example.com"],
        "http": [
            {
                "name": "primary",
                "route": [
                    {"destination": {"host": "web"}, "weight": 100},
                    {"destination": {"host": "web-canary"}, "weight": 0},
                ],
            }
        ],
    },
}
ISTIO = {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}}


# ------------------------------------------------------------------------------------ builders


def rollout(
    name: str, steps: list[dict[str, Any]], *, router: dict[str, Any] | None = None
) -> dict[str, Any]:
    canary: dict[str, Any] = {
        "stableService": name,
        "canaryService": f"{name}-canary",
        "steps": steps,
        "scaleDownDelaySeconds": 0,
        "abortScaleDownDelaySeconds": 0,
    }
    if router is not None:
        canary["trafficRouting"] = router
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "replicas": 4,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": f"{name}:1"}]},
            },
            "strategy": {"canary": canary},
        },
    }


def analysis_step(
    template: str, *, cluster: bool = False, args: dict[str, str] | None = None
) -> dict[str, Any]:
    ref: dict[str, Any] = {"templateName": template}
    if cluster:
        ref["clusterScope"] = True
    step: dict[str, Any] = {"templates": [ref]}
    if args:
        step["args"] = [{"name": k, "value": v} for k, v in args.items()]
    return {"analysis": step}


def error_rate_metric(**overrides: Any) -> dict[str, Any]:
    """The example template's error-rate compare, selecting the arms by Service and test id."""

    def sel(service: str, errors: bool) -> str:
        code = ', code=~"5.."' if errors else ""
        return f"test_id={{{{args.test-id}}}}, service={{{{args.{service}}}}}{code}"

    def arm(service: str) -> dict[str, str]:
        return {
            "events": f"sum(increase(http_requests_total{{{sel(service, True)}}}[{W}])) "
            "or vector(0)",
            "total": f"sum(increase(http_requests_total{{{sel(service, False)}}}[{W}]))",
        }

    return {
        "name": "error-rate",
        "kind": "counts",
        "interval": "1s",
        "initialDelay": "0s",
        "count": 10,
        "provider": {
            "prometheus": {"canary": arm("canary-service"), "baseline": arm("stable-service")}
        },
        "compare": {"direction": "increase", "tolerance": 1.25},
        **overrides,
    }


def canary_traffic_metric(*, count: int) -> dict[str, Any]:
    """A threshold on the canary's requests per 1 s window (~100 pushed, at least 50 needed)."""
    query = (
        f"sum(increase(http_requests_total{{test_id={{{{args.test-id}}}}, "
        f"service={{{{args.canary-service}}}}}}[{W}]))"
    )
    return {
        "name": "canary-traffic",
        "kind": "value",
        "interval": "1s",
        "count": count,
        "provider": {"prometheus": {"query": query}},
        "threshold": {"min": 50},
    }


def template(name: str, metrics: list[dict[str, Any]], *, cluster: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if not cluster:
        meta["namespace"] = "ns"
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate",
        "metadata": meta,
        "spec": {"args": [{"name": "test-id", "value": "unset"}], "metrics": metrics},
    }


# ------------------------------------------------------------------------------------ cluster


def custom(h: OperatorHarness) -> Any:
    return kubernetes.client.CustomObjectsApi(h.api)


def create_template(h: OperatorHarness, doc: dict[str, Any]) -> None:
    if doc["kind"] == "ClusterAnalysisTemplate":
        custom(h).create_cluster_custom_object(
            SLUICE_GROUP, SLUICE_VERSION, "clusteranalysistemplates", doc
        )
    else:
        custom(h).create_namespaced_custom_object(
            SLUICE_GROUP, SLUICE_VERSION, "ns", "analysistemplates", doc
        )


def analysis_runs(h: OperatorHarness, rollout_name: str = "web") -> list[dict[str, Any]]:
    items = list_json(h.api, f"/apis/{SLUICE_GROUP}/{SLUICE_VERSION}/namespaces/ns/analysisruns")
    return [
        i
        for i in items
        if (i["metadata"].get("labels") or {}).get("sluice.dev/rollout") == rollout_name
    ]


def analysis_run(h: OperatorHarness, name: str) -> dict[str, Any]:
    out: dict[str, Any] = custom(h).get_namespaced_custom_object(
        SLUICE_GROUP, SLUICE_VERSION, "ns", "analysisruns", name
    )
    return out


def vs_weights(h: OperatorHarness) -> list[int]:
    vs = custom(h).get_namespaced_custom_object(
        "networking.istio.io", "v1beta1", "ns", "virtualservices", "web"
    )
    return [r["weight"] for r in vs["spec"]["http"][0]["route"]]


def replicas(h: OperatorHarness, deployment: str) -> int:
    dep = h.deployment(deployment)
    assert dep is not None, deployment
    return int(dep["spec"]["replicas"])


def healthy(st: dict[str, Any]) -> bool:
    return st.get("phase") == "Healthy" and st.get("currentRevision") == st.get("stableRevision")


async def new_revision(h: OperatorHarness, name: str = "web") -> tuple[str, str]:
    """Wait for the first revision to be Healthy, push image :2; returns (old, new) revisions."""
    st = await h.wait_status(healthy, name=name, what=f"{name} first revision Healthy")
    rev1 = st["stableRevision"]
    h.set_image(f"{name}:2", name=name)
    st = await h.wait_status(
        lambda s: s.get("currentRevision") not in (None, rev1), name=name, what="new revision"
    )
    return rev1, st["currentRevision"]


def closed_port() -> int:
    """A port nothing listens on (bound, then released: connecting is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------ tests


async def test_error_regression_fails_the_run_and_aborts_the_rollout(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    # canary: half of its requests fail; stable: one in a hundred
    timeline.push([Arm("web-canary", 200, 0.5), Arm("web", 200, 0.01)])
    create_template(h, template("errors", [error_rate_metric()]))
    custom(h).create_namespaced_custom_object(
        "networking.istio.io", "v1beta1", "ns", "virtualservices", VIRTUAL_SERVICE
    )
    doc = rollout(
        "web",
        [
            {"setWeight": 25},
            analysis_step("errors", args={"test-id": timeline.test_id}),
            {"setWeight": 75},
        ],
        router=ISTIO,
    )
    doc["spec"]["strategy"]["canary"]["abortScaleDownDelaySeconds"] = 3
    create_rollout(h.api, doc)
    rev1, rev2 = await new_revision(h)
    st = await h.wait_status(lambda s: s["weights"]["canary"] == 25, what="weight 25")
    canary_slot = "b" if st["stableSlot"] == "a" else "a"

    st = await h.wait_status(lambda s: s.get("phase") == "Degraded", timeout=15, what="aborted")
    # all traffic back on stable while the canary's pods are still up (scale-down waits 3 s)
    assert vs_weights(h) == [100, 0]
    assert replicas(h, f"web-{canary_slot}") > 0
    assert st["weights"]["canary"] == 0 and st["stableRevision"] == rev1
    assert "error-rate" in st["message"] and "e-value" in st["message"], st["message"]
    assert st["abort"]["reason"] == "AnalysisFailed"
    await h.wait_for(
        lambda: replicas(h, f"web-{canary_slot}") == 0,
        what="canary scaled down after the delay",
    )

    [record] = st["analysisRuns"]
    assert record["phase"] == "Failed" and record["kind"] == "step" and record["stepIndex"] == 1
    [summary] = record["metrics"]
    assert summary["name"] == "error-rate" and summary["phase"] == "Failed"
    ev = summary["evidence"]
    assert ev["method"].startswith("sequential") and ev["outcome"] == "reject"
    assert ev["estimate"] > 10 and ev["logEValue"] >= ev["logThreshold"] > 0
    assert ev["events"] > 0
    assert st["abort"]["metric"] == "error-rate"

    [run] = analysis_runs(h)
    assert run["metadata"]["name"] == record["name"]
    owner = run["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Rollout" and owner["name"] == "web" and owner["controller"] is True
    assert owner["uid"] == h.rollout()["metadata"]["uid"]
    assert run["metadata"]["labels"] == {"sluice.dev/rollout": "web", "sluice.dev/revision": rev2}
    spec = run["spec"]
    assert spec["rollout"] == "web" and spec["revision"] == rev2 and spec["kind"] == "step"
    canary_q = spec["metrics"][0]["provider"]["prometheus"]["canary"]
    # args rendered as PromQL string literals; the window is left for the provider
    assert f'test_id="{timeline.test_id}"' in canary_q["events"]
    assert 'service="web-canary"' in canary_q["events"] and "{{args." not in canary_q["events"]
    assert W in canary_q["total"]
    baseline_q = spec["metrics"][0]["provider"]["prometheus"]["baseline"]
    assert 'service="web"' in baseline_q["total"]
    status = run["status"]
    assert status["phase"] == "Failed" and "error-rate" in status["message"]
    assert status["finishedAt"] and status["startedAt"]
    [metric] = status["metrics"]
    assert metric["phase"] == "Failed" and metric["failed"] + metric["successful"] >= 1
    evidence = metric["evidence"]
    assert evidence["outcome"] == "reject" and evidence["estimate"] > 10
    # the Rollout carries the run's very record (written with explicit nulls for absent numbers,
    # which a merge patch needs): nothing lost on the way
    assert Evidence.model_validate(evidence) == Evidence.model_validate(ev)
    first = metric["measurements"][0]
    # what Prometheus said for the window: ~200 req/s, half of them errors on the canary
    assert first["phase"] in ("Successful", "Failed")
    assert first["values"], first
    assert "AnalysisStarted" in h.reasons()


async def test_healthy_canary_passes_analysis_and_promotes(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    # identical arms with 500 errors per 1 s window each: equivalence shows in a few windows
    timeline.push([Arm("web-canary", 50_000, 0.01), Arm("web", 50_000, 0.01)])
    create_template(h, template("errors-everywhere", [error_rate_metric()], cluster=True))
    steps = [
        {"setWeight": 25},
        analysis_step("errors-everywhere", cluster=True, args={"test-id": timeline.test_id}),
        {"setWeight": 75},
    ]
    create_rollout(h.api, rollout("web", steps))
    _, rev2 = await new_revision(h)
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == rev2, timeout=15, what="promoted"
    )
    [record] = st["analysisRuns"]
    assert record["phase"] == "Successful", record
    [summary] = record["metrics"]
    ev = summary["evidence"]
    assert summary["phase"] == "Successful" and ev["outcome"] == "accept"
    assert 0.8 < ev["estimate"] < 1.25
    low, high = ev["lower"], ev["upper"]
    assert low <= 1.0 <= high and high < 1.25  # within tolerance, which is what promoted it
    assert ev["logEValue"] < ev["logThreshold"]
    assert ev["events"] >= 1000 and summary["measurements"] >= 2
    [run] = analysis_runs(h)
    assert run["status"]["phase"] == "Successful"
    assert run["spec"]["revision"] == rev2


async def test_unreachable_prometheus_errors_and_never_promotes(
    harness: OperatorHarness,
) -> None:
    h = harness
    port = closed_port()
    metric = {
        "name": "availability",
        "kind": "value",
        "interval": "1s",
        "count": 5,
        "provider": {
            "prometheus": {
                "address": f"http://127.0.0.1:{port}",
                "timeout": "1s",
                "query": "vector(1)",
            }
        },
        "threshold": {"min": 0.5, "consecutiveErrorLimit": 1},
    }
    create_template(h, template("availability", [metric]))
    create_rollout(h.api, rollout("web", [{"setWeight": 25}, analysis_step("availability")]))
    rev1, _ = await new_revision(h)
    st = await h.wait_status(lambda s: s.get("phase") == "Degraded", timeout=15, what="aborted")
    assert st["stableRevision"] == rev1 and st["weights"]["canary"] == 0
    assert "availability" in st["message"] and "consecutive" in st["message"], st["message"]
    assert f"127.0.0.1:{port}" in st["message"] and "refused" in st["message"]  # the cause
    [record] = st["analysisRuns"]
    assert record["phase"] == "Error"
    [summary] = record["metrics"]
    assert summary["phase"] == "Error"
    assert f"127.0.0.1:{port}" in summary["message"], summary  # the cause, where status shows it
    run = analysis_run(h, record["name"])
    metric_status = run["status"]["metrics"][0]
    assert metric_status["errors"] == 2 and metric_status["successful"] == 0
    assert all(m["phase"] == "Error" for m in metric_status["measurements"])
    # and it stays that way: later reconciles never promote a run that errored
    await h.reconciles(3)
    st = h.status()
    assert st["phase"] == "Degraded" and st["stableRevision"] == rev1


async def test_missing_template_aborts_and_other_rollouts_go_on(
    harness: OperatorHarness,
) -> None:
    h = harness
    create_rollout(h.api, rollout("web", [{"setWeight": 25}, analysis_step("no-such-template")]))
    create_rollout(h.api, rollout("shop", [{"setWeight": 50}, {"pause": {"duration": "1s"}}]))
    await new_revision(h, "web")
    st = await h.wait_status(lambda s: s.get("phase") == "Degraded", what="web aborted")
    assert "templates[0].templateName" in st["message"], st["message"]
    assert "no-such-template" in st["message"] and "not found" in st["message"]
    assert st["analysisRuns"][0]["phase"] == "Error"
    assert analysis_runs(h) == []  # nothing to run: no AnalysisRun object
    # the operator keeps serving the others
    _, shop2 = await new_revision(h, "shop")
    await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == shop2, name="shop", what="shop promoted"
    )


async def test_bearer_token_from_a_secret_reaches_prometheus(
    harness: OperatorHarness, recorder: HeaderRecorder
) -> None:
    h = harness
    secret = kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="prom-auth", namespace="ns"),
        # as `kubectl create secret --from-file` stores it: with the file's newline
        data={"token": base64.b64encode(b"s3cret\n").decode()},
    )
    kubernetes.client.CoreV1Api(h.api).create_namespaced_secret("ns", secret)
    metric = {
        "name": "availability",
        "kind": "value",
        "interval": "1s",
        "count": 2,
        "provider": {
            "prometheus": {
                "address": recorder.url,
                "query": "vector(1)",
                "auth": {"secretRef": {"name": "prom-auth"}, "bearerTokenKey": "token"},
            }
        },
        "threshold": {"min": 0.5},
    }
    create_template(h, template("availability", [metric]))
    create_rollout(h.api, rollout("web", [analysis_step("availability")]))
    _, rev2 = await new_revision(h)
    await h.wait_status(lambda s: healthy(s) and s["stableRevision"] == rev2, what="promoted")
    assert len(recorder.headers) >= 2
    assert {r.get("Authorization") for r in recorder.headers} == {"Bearer s3cret"}


async def test_restart_mid_analysis_resumes_the_same_run(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    timeline.push([Arm("web-canary", 100, 0.0), Arm("web", 100, 0.0)])
    metric = canary_traffic_metric(count=4)
    create_template(h, template("traffic", [metric]))
    create_rollout(
        h.api,
        rollout("web", [analysis_step("traffic", args={"test-id": timeline.test_id})]),
    )
    _, rev2 = await new_revision(h)

    def measured(n: int) -> dict[str, Any] | None:
        runs = analysis_runs(h)
        if len(runs) != 1:
            return None
        metrics = (runs[0].get("status") or {}).get("metrics") or []
        return runs[0] if metrics and metrics[0]["successful"] >= n else None

    before = await h.wait_for(lambda: measured(2), what="two measurements")
    assert before is not None and before["status"]["phase"] == "Running"
    await h.restart()
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == rev2, timeout=15, what="promoted"
    )
    assert st["analysisRuns"][0]["phase"] == "Successful"
    [after] = analysis_runs(h)  # the same run, resumed: no second one
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["status"]["startedAt"] == before["status"]["startedAt"]
    m = after["status"]["metrics"][0]
    assert m["successful"] == 4 and m["errors"] == 0
    # every window measured once, in order, tiling time: none repeated or skipped by the restart
    ats = [datetime.fromisoformat(x["at"]).timestamp() for x in m["measurements"]]
    assert len(ats) == 4
    assert [round(b - a, 3) for a, b in itertools.pairwise(ats)] == [1.0] * 3
    first = before["status"]["metrics"][0]["measurements"][0]["at"]
    assert datetime.fromisoformat(first).timestamp() == ats[0]


async def test_abort_request_mid_analysis_stops_the_run(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    timeline.push([Arm("web-canary", 100, 0.0), Arm("web", 100, 0.0)])
    metric = canary_traffic_metric(count=30)
    create_template(h, template("traffic", [metric]))
    steps = [{"setWeight": 25}, analysis_step("traffic", args={"test-id": timeline.test_id})]
    create_rollout(h.api, rollout("web", steps))
    rev1, _ = await new_revision(h)

    def successful() -> int:
        runs = analysis_runs(h)
        return int(runs[0]["status"]["metrics"][0]["successful"]) if runs else 0

    await h.wait_for(lambda: successful() >= 1, what="a measurement")
    h.request("abort", "1")
    st = await h.wait_status(lambda s: s.get("phase") == "Degraded", what="aborted")
    assert st["stableRevision"] == rev1 and st["weights"]["canary"] == 0
    assert st["analysisRuns"][0]["phase"] == "Stopped"
    [run] = analysis_runs(h)
    status = run["status"]
    assert status["phase"] == "Stopped", "kubectl get analysisruns must not show it Running"
    assert status["state"].get("stopped") is True and status["finishedAt"]
    assert "stopped" in status["message"]
    taken = successful()
    await asyncio.sleep(1.5)  # more than an interval: a live run would have measured again
    await h.reconciles(2)  # ... and been observed by reconciles since
    assert successful() == taken < 30
