"""Web checks and gates end to end: the real kopf operator over the emulator, asking a real HTTP
server on 127.0.0.1 (``tests.support.http_server``).

Nothing is stubbed between the Rollout and the sockets: the operator's AnalysisRuns use the real
web provider, its reconciles the real HTTP gate probe. The test plays the endpoints: a smoke-test
service answering JSON, and a release gate that is closed (403) until the test opens it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from tests.support.http_server import HttpServer
from tests.support.kube import SLUICE_GROUP, SLUICE_VERSION, create_rollout

from .conftest import OperatorHarness

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as s:
        yield s


def rollout(steps: list[dict[str, Any]]) -> dict[str, Any]:
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
                    "steps": steps,
                    "scaleDownDelaySeconds": 0,
                    "abortScaleDownDelaySeconds": 0,
                }
            },
        },
    }


def smoke_template(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "smoke", "namespace": "ns"},
        "spec": {
            "metrics": [
                {
                    "name": "smoke-tests",
                    "kind": "value",
                    "interval": "1s",
                    "count": 2,
                    "provider": {
                        "web": {
                            "url": url,
                            "method": "POST",
                            "body": '{"revision": {{args.canary-revision}}}',
                            "jsonPath": "$.summary.failed",
                            "timeout": "2s",
                        }
                    },
                    "threshold": {"max": 0, "consecutiveErrorLimit": 1},
                }
            ]
        },
    }


def create_template(h: OperatorHarness, doc: dict[str, Any]) -> None:
    kubernetes.client.CustomObjectsApi(h.api).create_namespaced_custom_object(
        SLUICE_GROUP, SLUICE_VERSION, "ns", "analysistemplates", doc
    )


def healthy(st: dict[str, Any]) -> bool:
    return st.get("phase") == "Healthy" and st.get("currentRevision") == st.get("stableRevision")


async def start(h: OperatorHarness, server: HttpServer) -> str:
    """web:1 Healthy, then web:2 rolling out; returns the new revision."""
    create_template(h, smoke_template(server.url("/smoke/{{args.canary-service}}")))
    gate = {"url": server.url("/gate"), "interval": "1s", "timeout": "1s"}
    steps = [
        {"setWeight": 50},
        {"analysis": {"templates": [{"templateName": "smoke"}]}},
        {"gate": gate},
    ]
    create_rollout(h.api, rollout(steps))
    st = await h.wait_status(healthy, what="first revision Healthy")
    h.set_image("web:2")
    st = await h.wait_status(
        lambda s: s.get("currentRevision") not in (None, st["stableRevision"]),
        what="new revision",
    )
    return str(st["currentRevision"])


async def test_web_check_passes_gate_waits_visibly_then_opens_and_promotes(
    harness: OperatorHarness, server: HttpServer
) -> None:
    h = harness
    server.route("/smoke/web-canary", body={"summary": {"failed": 0, "passed": 12}})
    server.route("/gate", status=403, body="closed")
    rev2 = await start(h, server)

    st = await h.wait_status(
        lambda s: (s.get("gate") or {}).get("answer") == "HTTP 403",
        timeout=20,
        what="waiting for the gate",
    )
    assert st["phase"] == "Paused" and st["currentStepIndex"] == 2
    assert [p["reason"] for p in st["pauseConditions"]] == ["WaitingForGate"]
    assert st["gate"]["state"] == "Waiting" and st["gate"]["url"] == server.url("/gate")
    assert st["message"] == f"waiting for gate {server.url('/gate')} (last answer: HTTP 403)"
    paused = {c["type"]: c for c in st["conditions"]}["Paused"]
    assert paused["status"] == "True" and paused["reason"] == "WaitingForGate"
    assert "WaitingForGate" in h.reasons()
    # the smoke test was asked by the real provider, with the revision in the JSON body
    posted = server.requests("/smoke/web-canary")
    assert len(posted) >= 2 and all(r.method == "POST" for r in posted)
    assert posted[0].json() == {"revision": rev2}

    server.route("/gate", status=200, body="open")
    st = await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == rev2, timeout=20, what="promoted"
    )
    assert st["gate"]["state"] == "Open" and st["gate"]["answer"] == "HTTP 200"
    assert "GateOpened" in h.reasons()
    assert all(r.method == "GET" for r in server.requests("/gate"))


async def test_a_failing_web_check_aborts_with_its_evidence(
    harness: OperatorHarness, server: HttpServer
) -> None:
    h = harness
    server.route("/smoke/web-canary", body={"summary": {"failed": 3, "passed": 9}})
    server.route("/gate", status=200)
    await start(h, server)
    st = await h.wait_status(lambda s: s.get("phase") == "Degraded", timeout=20, what="aborted")
    assert st["abort"]["reason"] == "AnalysisFailed"
    assert st["abort"]["metric"] == "smoke-tests"
    assert "smoke-tests" in st["message"] and "last value 3" in st["message"], st["message"]
    assert server.requests("/gate") == []  # the gate after the failed check is never asked


async def test_an_erring_endpoint_aborts_never_passes(
    harness: OperatorHarness, server: HttpServer
) -> None:
    h = harness
    server.route("/smoke/web-canary", status=500, body="boom")
    server.route("/gate", status=200)
    await start(h, server)
    st = await h.wait_status(lambda s: s.get("phase") == "Degraded", timeout=20, what="aborted")
    assert "HTTP 500" in st["message"], st["message"]
    assert server.requests("/gate") == []


async def test_promote_passes_a_closed_gate(harness: OperatorHarness, server: HttpServer) -> None:
    h = harness
    server.route("/smoke/web-canary", body={"summary": {"failed": 0}})
    server.route("/gate", hang=True)  # a gate that never answers: each ask times out (1 s)
    rev2 = await start(h, server)
    st = await h.wait_status(
        lambda s: (s.get("gate") or {}).get("answer") == "timeout after 1s",
        timeout=20,
        what="the gate timing out",
    )
    assert st["phase"] == "Paused"
    h.request("promote", "1")
    await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == rev2, timeout=20, what="promoted"
    )
