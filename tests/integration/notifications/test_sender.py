"""The sender against a real webhook receiver on 127.0.0.1, through apprise's json:// and form://.

What the reconcile relies on: ``submit`` returns at once whatever the receiver does; every outcome
is counted; a failure says why without the URL.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.api.validation import parse_rollout
from rollouts.notifications.delivery import deliver
from rollouts.notifications.sender import NotificationSender, Target
from rollouts.notifications.transitions import Notice
from tests.support.patience import patience
from tests.support.rollouts import rollout_doc
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration

ROLLOUT = parse_rollout(rollout_doc(steps=[{"setWeight": 50}]))


def notice(event: str = "Aborted", n: int = 0) -> Notice:
    return Notice(
        event,  # type: ignore[arg-type]
        "ns",
        "web",
        f"rev{n}",
        1,
        None,
        datetime(2026, 12, 2, tzinfo=UTC),
        f"web: {event.lower()} {n}",
        f"Metric error-rate: estimate 4.9; interval [2.9, 8.9]; e-value 1e20 ({n})",
        "failure",
    )


class Harness:
    def __init__(self, urls: dict[str, str], **kw: Any) -> None:
        self.results: Counter[str] = Counter()
        self.warnings: list[str] = []
        self.lock = threading.Lock()
        timeout = kw.pop("timeout", 1.0)
        self.sender = NotificationSender(
            lambda rollout, n: [Target(r, u) for r, u in urls.items()],
            lambda url, n: deliver(url, n, timeout),
            self.count,
            lambda rollout, message: self.warnings.append(message),
            **kw,
        )

    def count(self, result: str) -> None:
        with self.lock:
            self.results[result] += 1

    def wait(self, check: Any, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + patience(timeout)
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}: {self.results}, {self.warnings}")


@pytest.fixture
def receivers() -> Iterator[list[WebhookReceiver]]:
    made: list[WebhookReceiver] = []
    yield made
    for r in made:
        r.close()


def test_json_and_form_receivers_get_the_title_and_the_evidence(
    receivers: list[WebhookReceiver],
) -> None:
    json_r, form_r = WebhookReceiver(), WebhookReceiver()
    receivers += [json_r, form_r]
    h = Harness({"j": json_r.url("json"), "f": form_r.url("form")})
    h.sender.submit(ROLLOUT, [notice()])
    h.wait(lambda: h.results["sent"] == 2, "two deliveries")
    [got] = json_r.received()
    body = got.json()
    assert body["title"] == "web: aborted 0" and "e-value 1e20" in body["message"]
    assert body["type"] == "failure"
    [form] = form_r.received()
    assert b"e-value" in form.body and form.path == "/hook"
    h.sender.stop()


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_a_failing_or_hanging_receiver_never_blocks_submit_and_is_counted(
    mode: str, receivers: list[WebhookReceiver]
) -> None:
    bad, good = WebhookReceiver(mode), WebhookReceiver()  # type: ignore[arg-type]
    receivers += [bad, good]
    h = Harness({"bad": bad.url(), "good": good.url()}, timeout=2.0 if mode == "hang" else 0.5)
    h.sender.submit(ROLLOUT, [notice(n=i) for i in range(3)])
    if mode == "hang":
        # submit returned before any delivery to the hanging receiver could end (each waits
        # out the timeout): it queued, it did not send on the caller's thread
        assert h.results["failed"] == 0
    h.wait(lambda: h.results["failed"] == 3 and h.results["sent"] == 3, "3 failed, 3 sent")
    assert len(good.received()) == 3 and len(bad.received()) == 3
    assert all(w.startswith("Aborted to receiver bad failed:") for w in h.warnings), h.warnings
    assert not any(bad.url() in w or str(bad.port) in w for w in h.warnings), h.warnings
    h.sender.stop()


def test_a_full_queue_drops_the_oldest_and_counts_it(receivers: list[WebhookReceiver]) -> None:
    slow = WebhookReceiver("slow", delay=0.3)
    receivers.append(slow)
    h = Harness({"slow": slow.url()}, queue_size=2, workers=1, timeout=2.0)
    h.sender.submit(ROLLOUT, [notice(n=0)])
    h.wait(lambda: len(slow.received()) == 1, "the first notice in flight")
    h.sender.submit(ROLLOUT, [notice(n=i) for i in (1, 2, 3, 4)])  # room for two
    h.wait(lambda: h.results["sent"] == 3, "three delivered")
    assert h.results["dropped"] == 2
    titles = [r.json()["title"] for r in slow.received()]
    assert titles == ["web: aborted 0", "web: aborted 3", "web: aborted 4"]  # oldest dropped
    h.sender.stop()


def test_each_receiver_is_rate_limited_on_its_own(receivers: list[WebhookReceiver]) -> None:
    a, b = WebhookReceiver(), WebhookReceiver()
    receivers += [a, b]
    now = [0.0]
    h = Harness({"a": a.url(), "b": b.url()}, burst=2, refill_seconds=60.0, clock=lambda: now[0])
    h.sender.submit(ROLLOUT, [notice(n=i) for i in range(3)])
    h.wait(lambda: sum(h.results.values()) == 6, "six outcomes")
    assert h.results == Counter({"sent": 4, "rate_limited": 2})
    assert len(a.received()) == 2 and len(b.received()) == 2
    now[0] = 60.0  # one token back for each
    h.sender.submit(ROLLOUT, [notice(n=9)])
    h.wait(lambda: h.results["sent"] == 6, "refilled")
    h.sender.stop()


def test_a_url_apprise_cannot_use_fails_with_a_reason() -> None:
    h = Harness({"x": "nosuchscheme://token@host"})
    h.sender.submit(ROLLOUT, [notice()])
    h.wait(lambda: h.results["failed"] == 1, "the failure")
    assert "not a URL apprise can send to" in h.warnings[0]
    assert "token" not in h.warnings[0]
    h.sender.stop()


def test_receivers_that_cannot_be_read_are_one_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The namespace's receivers are read from the API per message; an API server that times
    out is the network, not a bug: counted, logged once, no traceback (the API-fault suite
    found one per brownout)."""
    results: Counter[str] = Counter()

    def unreadable(rollout: Any, n: Notice) -> list[Target]:
        raise TimeoutError("timed out")

    sender = NotificationSender(
        unreadable,
        lambda url, n: deliver(url, n, 1.0),
        lambda result: results.update([result]),
        lambda rollout, message: None,
    )
    sender.submit(ROLLOUT, [notice()])
    deadline = time.monotonic() + patience(10)
    while results["failed"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    sender.stop()
    assert results["failed"] == 1
    records = [r for r in caplog.records if "sending notification" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None
    assert "TimeoutError: timed out" in records[0].getMessage()
