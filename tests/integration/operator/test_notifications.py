"""Notifications from the real operator over the emulator, to a real webhook receiver.

Issue 14: an abort produces exactly one message carrying the evidence; a controller restart sends
no duplicate; a receiver that hangs or returns 500 changes neither the reconcile latency nor the
outcome, and its failure shows in ``sluice_notifications_total`` and a Warning Event.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from rollouts.settings import Settings
from tests.support.kube import create_rollout
from tests.support.webhook_receiver import WebhookReceiver

from .conftest import OperatorHarness, fast_settings
from .conftest_analysis import TrafficTimeline, prometheus, timeline
from .test_analysis_crash_safety import failing_canary
from .test_analysis_operator import new_revision
from .test_analysis_operator import rollout as rollout_doc

__all__ = ["prometheus", "timeline"]  # fixtures, used by name

pytestmark = pytest.mark.integration

TIMEOUT = 8.0
"""The notifier's cap per receiver: a sender on the reconcile path would add this per message."""


@pytest.fixture()
def operator_settings(prometheus: Any) -> Settings:
    return fast_settings(prometheus_url=prometheus.url, notification_timeout_seconds=TIMEOUT)


@pytest.fixture()
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


def receiver_secret(h: OperatorHarness, url: str) -> None:
    """The Secret sluice-notifications with one receiver, ``team``."""
    kubernetes.client.CoreV1Api(h.api).create_namespaced_secret(
        h.namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "sluice-notifications", "namespace": h.namespace},
            "data": {"team": base64.b64encode(url.encode()).decode()},
        },
    )


def titles(r: WebhookReceiver) -> list[str]:
    return [str(x.json()["title"]) for x in r.received()]


def sample(h: OperatorHarness, result: str) -> float:
    v = h.telemetry.registry.get_sample_value("sluice_notifications_total", {"result": result})
    return v or 0.0


async def test_an_abort_sends_one_message_with_its_evidence_and_a_restart_sends_no_other(
    harness: OperatorHarness, timeline: TrafficTimeline, receiver: WebhookReceiver
) -> None:
    h = harness
    receiver_secret(h, receiver.url())
    # failing_canary creates the Rollout; the notifications come from the namespace default
    # ConfigMap here, so the Rollout's spec is the crash-safety tests' own
    kubernetes.client.CoreV1Api(h.api).create_namespaced_config_map(
        h.namespace,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "sluice-notifications", "namespace": h.namespace},
            "data": {"subscriptions": "- receiver: team\n"},
        },
    )
    failing_canary(h, timeline)
    await new_revision(h)
    st = await h.wait_status(lambda s: s.get("phase") == "Degraded", timeout=20, what="aborted")
    assert st["abort"]["metric"] == "error-rate"

    def aborted() -> list[dict[str, Any]]:
        return [x.json() for x in receiver.received() if "aborted" in x.json()["title"]]

    [message] = await h.wait_for(aborted, what="the abort message")
    body = message["message"]
    assert message["type"] == "failure" and "AnalysisFailed" in body
    line = next(x for x in body.splitlines() if x.startswith("Metric error-rate:"))
    for part in ("estimate", "interval [", "e-value", "against threshold"):
        assert part in line, line
    assert "Aborted" in [r["event"] for r in h.status()["notifications"]["sent"]]
    before = titles(receiver)
    assert len(before) == len(set(before)), before  # nothing sent twice so far

    await h.restart()  # fresh memory: only status says what was sent
    await h.reconciles(5)
    assert titles(receiver) == before and len(aborted()) == 1
    assert sample(h, "failed") == 0


def paused_canary(name: str, receiver: str) -> dict[str, Any]:
    """Steps that wait for a person after each weight, notifying ``receiver`` of everything."""
    weights = [25, 75]
    steps = [s for w in weights for s in ({"setWeight": w}, {"pause": {}})]
    doc = rollout_doc(name, steps)
    doc["spec"]["notifications"] = {"subscriptions": [{"receiver": receiver}]}
    return doc


@pytest.mark.parametrize("mode", ["hang", "500"])
async def test_a_failing_receiver_changes_neither_latency_nor_outcome(
    harness: OperatorHarness, receiver: WebhookReceiver, mode: str
) -> None:
    """Two Rollouts side by side, under the same load: web notifies a healthy receiver, shop one
    that hangs (or fails). Both are promoted at the same moment; shop's weight must move about
    as fast as web's (within 2x + 1 s; measured 0.7-1.0x on a loaded machine, where one promote
    took 4-8 s). A sender on the reconcile path would add TIMEOUT per message to shop's (two per
    promote here: StepCompleted and Paused), beyond the bound while web takes under 15 s."""
    h = harness
    bad = WebhookReceiver(mode)  # type: ignore[arg-type]
    try:
        kubernetes.client.CoreV1Api(h.api).create_namespaced_secret(
            h.namespace,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "sluice-notifications", "namespace": h.namespace},
                "stringData": {"good": receiver.url(), "bad": bad.url()},
            },
        )
        create_rollout(h.api, paused_canary("web", "good"))
        create_rollout(h.api, paused_canary("shop", "bad"))
        await new_revision(h, "web")
        await new_revision(h, "shop")

        def weight(name: str) -> int:
            return int(h.status(name)["weights"]["canary"])

        for name in ("web", "shop"):
            await h.wait_for(lambda n=name: h.status(n)["step"] == "2/4", what=f"{name} paused")
        await h.wait_for(lambda: len(bad.received()) >= 2, what="the bad receiver reached")

        async def promote_both(rid: str, to: int) -> dict[str, float]:
            """From the request annotation to the weight written, per Rollout."""
            start = time.monotonic()
            took: dict[str, float] = {}
            h.request("promote", rid, "web")
            h.request("promote", rid, "shop")

            def done() -> bool:
                for name in ("web", "shop"):
                    if name not in took and weight(name) == to:
                        took[name] = time.monotonic() - start
                return len(took) == 2

            await h.wait_for(done, what=f"both at weight {to}")
            return took

        took = await promote_both("p1", 75)
        assert took["shop"] < 2 * took["web"] + 1.0, took
        for name in ("web", "shop"):
            await h.wait_for(lambda n=name: h.status(n)["step"] == "4/4", what=f"{name} paused")

        # the outcome is the same: a last promote takes both to Healthy
        h.request("promote", "p2", "web")
        h.request("promote", "p2", "shop")
        for name in ("web", "shop"):
            st = await h.wait_status(
                lambda s: (
                    s.get("phase") == "Healthy"
                    and s.get("currentRevision") == s.get("stableRevision")
                ),
                name=name,
                what=f"{name} Healthy",
            )
            assert st["weights"]["canary"] == 0
        # the failures are visible: counted, and a Warning Event naming the receiver
        patience_s = 4 * TIMEOUT
        await h.wait_for(lambda: sample(h, "failed") >= 1, timeout=patience_s, what="failed")
        events = await h.wait_for(
            lambda: [e for e in h.events("shop") if e["reason"] == "NotificationFailed"],
            timeout=patience_s,
            what="a NotificationFailed Event",
        )
        assert events[0]["type"] == "Warning" and "receiver bad" in events[0]["message"]
        assert bad.url() not in events[0]["message"]
        assert not [e for e in h.events("web") if e["reason"] == "NotificationFailed"]
        assert any("Healthy" in t for t in titles(receiver))  # web's receiver got everything
    finally:
        bad.close()
