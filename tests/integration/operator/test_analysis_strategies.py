"""Background, blue-green pre/post-promotion analysis and basic auth, with the real operator.

``test_analysis_operator.py`` covers canary *step* analysis end to end; this file covers the other
places an AnalysisRun is started from, over the same parts (kopf operator, kmock's emulator, a
real Prometheus fed by remote write) and the same builders, imported from there.

The test controls what Prometheus sees: a whole healthy timeline is pushed up front, and a
regression is pushed as an extra error series (``code="503"``) from the moment the test chooses,
so the verdict changes exactly when the test says and not when the wall clock happens to.

Blue-green: the preview Service gets no production traffic, so what judges it is traffic the
test pushes for it (smoke traffic, in real life), selected through the built-in args that map
preview/active to ``canary-service``/``stable-service``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import kubernetes
import pytest

from tests.support.kube import create_rollout
from tests.support.prometheus import Series

from .conftest import OperatorHarness, canary
from .conftest_analysis import (
    STEP_S,
    Arm,
    HeaderRecorder,
    TrafficTimeline,
    operator_settings,
    prometheus,
    recorder,
    timeline,
)
from .test_analysis_operator import (
    ISTIO,
    VIRTUAL_SERVICE,
    W,
    analysis_runs,
    closed_port,
    create_template,
    custom,
    error_rate_metric,
    healthy,
    new_revision,
    replicas,
    rollout,
    template,
    vs_weights,
)

__all__ = ["operator_settings", "prometheus", "recorder", "timeline"]  # fixtures, used by name

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------------------------ helpers


def surge(tl: TrafficTimeline, service: str, rps: float, *, future: float = 60.0) -> None:
    """From now on, ``service`` also answers ``rps`` requests per second with a 503.

    A new counter series beside the timeline's 200s and 500s: the error-rate queries select
    ``code=~"5.."`` for errors and every code for the total, so both see the surge at once."""
    t0 = time.time()
    n = int(future / STEP_S)
    labels = {
        "__name__": "http_requests_total",
        "test_id": tl.test_id,
        "service": service,
        "code": "503",
    }
    samples = [(int((t0 + i * STEP_S) * 1000), rps * i * STEP_S) for i in range(n + 1)]
    series: list[Series] = [(labels, samples)]
    tl.server.push(series)


@contextlib.asynccontextmanager
async def watching(probe: Callable[[], Any]) -> AsyncIterator[list[Any]]:
    """Record ``probe()`` every 50 ms while the block runs: what a test must show never happened
    (the active Service on the preview, the old pods gone) can happen between two polls."""
    seen: list[Any] = []

    async def loop() -> None:
        while True:
            with contextlib.suppress(Exception):
                seen.append(probe())
            await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def error_ratio_query(service_arg: str) -> str:
    """Share of ``{{args.<service_arg>}}``'s requests that failed in the window."""
    sel = f"test_id={{{{args.test-id}}}}, service={{{{args.{service_arg}}}}}"
    return (
        f'(sum(increase(http_requests_total{{{sel}, code=~"5.."}}[{W}])) or vector(0)) '
        f"/ sum(increase(http_requests_total{{{sel}}}[{W}]))"
    )


def blue_green(**analysis: dict[str, Any]) -> dict[str, Any]:
    """The shared blue-green Rollout (active ``web``, preview ``web-preview``) with analyses."""
    return canary(blue_green={"scaleDownDelaySeconds": 0, **analysis})


def ref(template_name: str, test_id: str) -> dict[str, Any]:
    return {
        "templates": [{"templateName": template_name}],
        "args": [{"name": "test-id", "value": test_id}],
    }


def slot_of(h: OperatorHarness, service: str) -> str | None:
    return h.selector(service).get("sluice.dev/slot")


# ------------------------------------------------------------------------- canary background


async def test_background_regression_during_a_pause_aborts_mid_steps(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    # both arms healthy (1% errors) until the test makes the canary regress
    timeline.push([Arm("web-canary", 200, 0.01), Arm("web", 200, 0.01)])
    create_template(h, template("errors", [error_rate_metric(count=None)]))
    custom(h).create_namespaced_custom_object(
        "networking.istio.io", "v1beta1", "ns", "virtualservices", VIRTUAL_SERVICE
    )
    doc = rollout(
        "web",
        [
            {"setWeight": 25},
            {"pause": {"duration": "1s"}},
            {"setWeight": 50},
            {"pause": {}},  # waits for a person: only the background analysis can end it
            {"setWeight": 75},
        ],
        router=ISTIO,
    )
    doc["spec"]["strategy"]["canary"]["analysis"] = {
        **ref("errors", timeline.test_id),
        "startingStep": 1,
    }
    doc["spec"]["strategy"]["canary"]["abortScaleDownDelaySeconds"] = 3
    create_rollout(h.api, doc)
    st = await h.wait_status(healthy, what="first revision Healthy")
    rev1 = st["stableRevision"]
    canary_slot = "b" if st["stableSlot"] == "a" else "a"
    h.hold.add(f"web-{canary_slot}")  # the canary's pods stay unready: step 1 cannot complete
    h.set_image("web:2")
    st = await h.wait_status(lambda s: s.get("currentRevision") != rev1, what="new revision")
    await h.reconciles(3)  # several reconciles at step 1
    st = h.status()
    assert st["currentStepIndex"] == 0 and st["analysisRuns"] == [], st
    assert analysis_runs(h) == []  # startingStep 1: nothing runs before it
    h.hold.clear()

    st = await h.wait_status(
        lambda s: s.get("currentStepIndex") == 3, timeout=10, what="at the indefinite pause"
    )
    [record] = st["analysisRuns"]
    assert record["kind"] == "background" and record["phase"] == "Running", record

    def measured() -> int:
        [run] = analysis_runs(h)
        return int(run["status"]["metrics"][0]["successful"])

    # the healthy canary has been judged across steps without failing
    await h.wait_for(lambda: measured() >= 2, what="two healthy background measurements")
    assert h.status()["phase"] == "Paused"
    assert vs_weights(h) == [50, 50]

    surge(timeline, "web-canary", 200)  # now half of the canary's requests fail
    st = await h.wait_status(lambda s: s.get("phase") == "Degraded", timeout=15, what="aborted")
    assert vs_weights(h) == [100, 0]
    assert replicas(h, f"web-{canary_slot}") > 0  # traffic moved first; pods go after 3 s
    assert st["weights"]["canary"] == 0 and st["stableRevision"] == rev1
    assert st["currentStepIndex"] == 3  # aborted mid-steps, in the pause
    assert st["abort"]["reason"] == "AnalysisFailed"
    assert "background analysis" in st["message"] and "error-rate" in st["message"], st
    [record] = st["analysisRuns"]
    assert record["kind"] == "background" and record["phase"] == "Failed"
    [summary] = record["metrics"]
    ev = summary["evidence"]
    assert summary["name"] == "error-rate" and ev["outcome"] == "reject"
    assert ev["estimate"] > 5 and ev["logEValue"] >= ev["logThreshold"]
    assert st["abort"]["metric"] == "error-rate"
    [run] = analysis_runs(h)
    assert run["spec"]["kind"] == "background" and run["status"]["phase"] == "Failed"
    await h.wait_for(
        lambda: replicas(h, f"web-{canary_slot}") == 0, what="canary scaled down after the delay"
    )


async def test_healthy_background_analysis_is_stopped_at_promotion(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    timeline.push([Arm("web-canary", 50_000, 0.01), Arm("web", 50_000, 0.01)])
    create_template(h, template("errors", [error_rate_metric(count=None)]))
    doc = rollout("web", [{"setWeight": 50}, {"pause": {"duration": "3s"}}])
    doc["spec"]["strategy"]["canary"]["analysis"] = ref("errors", timeline.test_id)
    create_rollout(h.api, doc)
    _, rev2 = await new_revision(h)
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == rev2, timeout=15, what="promoted"
    )
    [record] = st["analysisRuns"]
    assert record["kind"] == "background" and record["phase"] == "Stopped", record
    [run] = analysis_runs(h)
    status = run["status"]
    assert status["phase"] == "Stopped" and status["state"].get("stopped") is True
    assert status["finishedAt"] and "stopped" in status["message"]
    [metric] = status["metrics"]
    # it measured while the steps ran, and never found a regression
    assert metric["successful"] >= 2 and metric["failed"] == 0 and metric["errors"] == 0
    assert metric["evidence"]["outcome"] in ("accept", "continue")
    taken = metric["successful"]
    await asyncio.sleep(1.5)  # more than an interval: a live run would have measured again
    await h.reconciles(2)  # ... and been observed by reconciles since
    [run] = analysis_runs(h)
    assert run["status"]["metrics"][0]["successful"] == taken
    assert run["status"]["phase"] == "Stopped"


# -------------------------------------------------------------------------------- blue-green


async def test_failed_pre_promotion_analysis_never_switches_the_active_service(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    # smoke traffic to the preview fails half the time; production on the active is healthy
    timeline.push([Arm("web-preview", 200, 0.5), Arm("web", 200, 0.01)])
    create_template(h, template("errors", [error_rate_metric()]))
    create_rollout(h.api, blue_green(prePromotionAnalysis=ref("errors", timeline.test_id)))
    st = await h.wait_status(healthy, what="first revision Healthy")
    rev1, blue = st["stableRevision"], st["stableSlot"]
    green = "b" if blue == "a" else "a"

    async with watching(lambda: slot_of(h, "web")) as active:
        h.set_image("web:2")
        await h.wait_for(lambda: slot_of(h, "web-preview") == green, what="preview on green")
        st = await h.wait_status(lambda s: s.get("phase") == "Degraded", timeout=15, what="aborted")
        await h.reconciles(2)  # and it stays on blue after the abort
    assert active and set(active) == {blue}, "production never reached the preview"
    assert st["stableSlot"] == blue and st["stableRevision"] == rev1
    assert st["abort"]["reason"] == "AnalysisFailed"
    assert "pre-promotion analysis" in st["message"] and "error-rate" in st["message"], st
    [record] = st["analysisRuns"]
    assert record["kind"] == "prePromotion" and record["phase"] == "Failed"
    assert record["metrics"][0]["evidence"]["outcome"] == "reject"
    assert st["abort"]["metric"] == record["metrics"][0]["name"]
    [run] = analysis_runs(h)
    # blue-green's preview and active Services are the canary and stable of the built-in args
    args = {a["name"]: a["value"] for a in run["spec"]["args"]}
    assert args["canary-service"] == "web-preview" and args["stable-service"] == "web"
    assert args["canary-slot"] == f"web-{green}" and args["stable-slot"] == f"web-{blue}"
    queries = run["spec"]["metrics"][0]["provider"]["prometheus"]
    assert 'service="web-preview"' in queries["canary"]["events"]
    assert 'service="web"' in queries["baseline"]["total"]
    await h.wait_for(lambda: replicas(h, f"web-{green}") == 0, what="preview scaled down")
    assert replicas(h, f"web-{blue}") == 4


async def test_pre_promotion_analysis_that_cannot_measure_never_promotes(
    harness: OperatorHarness,
) -> None:
    """Every query fails: the count of 2 is never reached (an Error is no measurement), and the
    5th consecutive error ends the run, before any production traffic moves."""
    h = harness
    port = closed_port()
    metric = {
        "name": "availability",
        "kind": "value",
        "interval": "1s",
        "count": 2,
        "provider": {"prometheus": {"address": f"http://127.0.0.1:{port}", "query": "vector(1)"}},
        "threshold": {"min": 0.5},  # consecutiveErrorLimit: the default, 4
    }
    create_template(h, template("availability", [metric]))
    create_rollout(
        h.api, blue_green(prePromotionAnalysis={"templates": [{"templateName": "availability"}]})
    )
    st = await h.wait_status(healthy, what="first revision Healthy")
    rev1, blue = st["stableRevision"], st["stableSlot"]
    async with watching(lambda: slot_of(h, "web")) as active:
        h.set_image("web:2")
        st = await h.wait_status(lambda s: s.get("phase") == "Degraded", timeout=15, what="aborted")
    assert active and set(active) == {blue}, "production never reached the preview"
    assert st["stableRevision"] == rev1
    assert "availability" in st["message"] and "consecutiveErrorLimit 4" in st["message"], st
    assert f"127.0.0.1:{port}" in st["message"]
    [record] = st["analysisRuns"]
    assert record["kind"] == "prePromotion" and record["phase"] == "Error"
    [run] = analysis_runs(h)
    m = run["status"]["metrics"][0]
    assert m["errors"] == 5 and m["successful"] == 0


async def test_failed_post_promotion_analysis_switches_back_to_the_old_pods(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    h = harness
    timeline.push([Arm("web", 200, 0.0)])
    metric = {
        "name": "active-errors",
        "kind": "value",
        "interval": "1s",
        "count": 10,
        "provider": {"prometheus": {"query": error_ratio_query("stable-service")}},
        "threshold": {"max": 0.05},
    }
    create_template(h, template("active", [metric]))
    create_rollout(h.api, blue_green(postPromotionAnalysis=ref("active", timeline.test_id)))
    st = await h.wait_status(healthy, what="first revision Healthy")
    rev1, blue = st["stableRevision"], st["stableSlot"]
    green = "b" if blue == "a" else "a"

    async with watching(lambda: replicas(h, f"web-{blue}")) as old_pods:
        h.set_image("web:2")
        st = await h.wait_status(
            lambda s: s.get("stableSlot") == green, timeout=10, what="switched to green"
        )
        assert slot_of(h, "web") == green
        rev2 = st["stableRevision"]
        assert rev2 != rev1 and st["phase"] == "Progressing", st
        [record] = st["analysisRuns"]
        assert record["kind"] == "postPromotion"
        # the new revision serves production, and half of its requests fail
        surge(timeline, "web", 200)
        st = await h.wait_status(lambda s: s.get("phase") == "Degraded", timeout=15, what="aborted")
    assert old_pods and min(old_pods) == 4, "the old pods stayed up for the switch back"
    assert slot_of(h, "web") == blue and slot_of(h, "web-preview") == green
    assert st["stableSlot"] == blue and st["stableRevision"] == rev1
    assert st["abort"]["reason"] == "AnalysisFailed"
    assert "post-promotion analysis" in st["message"] and "active-errors" in st["message"], st
    [record] = st["analysisRuns"]
    assert record["kind"] == "postPromotion" and record["phase"] == "Failed"
    [run] = analysis_runs(h)
    assert run["spec"]["revision"] == rev2 and run["status"]["phase"] == "Failed"
    m = run["status"]["metrics"][0]
    assert m["failed"] >= 1 and m["measurements"][-1]["value"] > 0.05
    await h.wait_for(lambda: replicas(h, f"web-{green}") == 0, what="new pods scaled down")
    assert replicas(h, f"web-{blue}") == 4
    await h.reconciles(2)
    assert h.status()["phase"] == "Degraded" and slot_of(h, "web") == blue


# -------------------------------------------------------------------------------- basic auth


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("pa:ss/word", id="ascii"),  # a colon is legal in a password
        # RFC 7617: user-id and password are sent as UTF-8 (what Prometheus's bcrypt check and
        # an nginx htpasswd compare against); Latin-1 bytes would be refused with a 401
        pytest.param("pässwörd-€", id="utf-8"),
    ],
)
async def test_basic_auth_from_a_secret_reaches_prometheus(
    harness: OperatorHarness, recorder: HeaderRecorder, password: str
) -> None:
    h = harness
    secret = kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="prom-basic", namespace="ns"),
        data={
            "user": base64.b64encode(b"sluice").decode(),
            # as `kubectl create secret --from-file` stores it: with the file's newline
            "pass": base64.b64encode(password.encode() + b"\n").decode(),
        },
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
                "auth": {
                    "secretRef": {"name": "prom-basic"},
                    "usernameKey": "user",
                    "passwordKey": "pass",
                },
            }
        },
        "threshold": {"min": 0.5},
    }
    create_template(h, template("availability", [metric]))
    # pre- and post-promotion analyses that pass: the switch waits for the first, the old pods
    # go only once the second has passed
    only = {"templates": [{"templateName": "availability"}]}
    create_rollout(h.api, blue_green(prePromotionAnalysis=only, postPromotionAnalysis=only))
    st = await h.wait_status(healthy, what="first revision Healthy")
    blue = st["stableSlot"]
    h.set_image("web:2")
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableSlot"] != blue, timeout=10, what="switched"
    )
    phases = {r["kind"]: r["phase"] for r in st["analysisRuns"]}
    assert phases == {"prePromotion": "Successful", "postPromotion": "Successful"}, st
    assert st["history"][-1]["outcome"] == "Promoted"
    await h.wait_for(lambda: replicas(h, f"web-{blue}") == 0, what="old pods scaled down")
    assert len(recorder.headers) >= 4  # two measurements per run
    user_pass = b"sluice:" + password.encode("utf-8")
    expected = "Basic " + base64.b64encode(user_pass).decode()
    assert {r.get("Authorization") for r in recorder.headers} == {expected}


async def test_background_windows_are_cut_at_the_weight_change(
    harness: OperatorHarness, timeline: TrafficTimeline
) -> None:
    # issue 12, part 3: the Rollout records when it changed the weight, and the background run's
    # window that straddles that moment is measured as two pieces split there
    h = harness
    timeline.push([Arm("web-canary", 2000, 0.01), Arm("web", 2000, 0.01)])
    create_template(h, template("errors", [error_rate_metric(count=None, interval="2s")]))
    custom(h).create_namespaced_custom_object(
        "networking.istio.io", "v1beta1", "ns", "virtualservices", VIRTUAL_SERVICE
    )
    doc = rollout(
        "web",
        [{"setWeight": 25}, {"pause": {"duration": "3s"}}, {"setWeight": 50}, {"pause": {}}],
        router=ISTIO,
    )
    doc["spec"]["strategy"]["canary"]["analysis"] = ref("errors", timeline.test_id)
    create_rollout(h.api, doc)
    await new_revision(h)
    st = await h.wait_status(
        lambda s: s.get("currentStepIndex") == 3, timeout=15, what="at the indefinite pause"
    )
    assert vs_weights(h) == [50, 50]
    cut = datetime.fromisoformat(st["weightChangedAt"]).timestamp()

    def history() -> tuple[list[float], list[float]]:
        [run] = analysis_runs(h)
        state = run["status"]["state"]
        ats = [float(m["at"]) for m in state["metrics"]["error-rate"]["history"]]
        return [float(c) for c in state.get("cuts", [])], ats

    await h.wait_for(
        lambda: any(at > cut + 2.0 for at in history()[1]), what="a whole window after the change"
    )
    cuts, ats = history()
    assert cut in cuts, (cut, cuts)
    assert any(abs(at - cut) < 1e-6 for at in ats), (cut, ats)  # a piece ends at the change
    assert h.status()["phase"] == "Paused"  # identical arms: nothing aborted
