"""1,000 Rollouts in the list: the page renders them all, filters them as one types, and still
follows a change live. Measured (printed, not asserted: timings depend on the machine): the
server's time to answer the list, the browser's time to first render, and the server's memory.

The Rollouts are put straight into the emulator's store (as a controller would have written
them, status included): a thousand creates over HTTP would measure kmock's request history
(which it scans on every request), not the dashboard.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.integration.operator.conftest import canary
from tests.support.kube import RunningEmulator, patch_rollout

from .conftest import in_browser, start_dashboard, wait_in_browser

pytestmark = pytest.mark.integration

COUNT = 1000
NAMESPACES = 5
PHASES = ("Healthy", "Progressing", "Paused", "Degraded")


def rollout(i: int) -> dict[str, Any]:
    doc = canary(f"app-{i:04d}", steps=[{"setWeight": 20}, {"pause": {}}])
    phase = PHASES[i % len(PHASES)]
    doc["metadata"].update(
        namespace=f"team-{i % NAMESPACES}",
        uid=f"uid-{i}",
        resourceVersion=str(10 + i),
        generation=1,
        creationTimestamp="2026-01-01T00:00:00Z",
    )
    waiting = phase == "Paused"
    doc["status"] = {
        "phase": phase,
        "observedGeneration": 1,
        "stableRevision": "aaaa1111",
        "currentRevision": "aaaa1111" if phase == "Healthy" else "bbbb2222",
        "currentStepIndex": 1 if waiting else 0,
        "step": "1/2" if waiting else "0/2",
        "weights": {"canary": 20 if phase in ("Progressing", "Paused") else 0},
        "message": f"rollout number {i} is {phase.lower()}",
        "pauseConditions": (
            [{"reason": "PausedByUser", "startTime": "2026-01-01T00:00:00Z"}] if waiting else []
        ),
    }
    return doc


def first_render(chrome: webdriver.Chrome) -> dict[str, float]:
    timing = chrome.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "const p = performance.getEntriesByName('first-contentful-paint')[0];"
        "return {response: n.responseEnd, dom: n.domContentLoadedEventEnd, "
        "load: n.loadEventEnd, paint: p ? p.startTime : -1};"
    )
    return {k: float(v) for k, v in timing.items()}


def rows_shown(chrome: webdriver.Chrome) -> int:
    return int(
        chrome.execute_script(
            "return Array.from(document.querySelectorAll('#rollouts tbody tr'))"
            ".filter(r => !r.hidden).length;"
        )
    )


async def test_thousand_rollouts_listed(
    kube_emulator: RunningEmulator,
    kubeconfig: Path,
    api_client: kubernetes.client.ApiClient,
    browser: webdriver.Chrome,
) -> None:
    for i in range(COUNT):
        doc = rollout(i)
        key = (
            "sluice.dev/v1alpha1/rollouts",
            doc["metadata"]["namespace"],
            doc["metadata"]["name"],
        )
        kube_emulator.emulator.objects[key] = doc

    async with start_dashboard(kubeconfig) as dashboard:

        def health() -> dict[str, Any]:
            with urllib.request.urlopen(f"{dashboard.url}/healthz", timeout=5) as r:
                return dict(json.load(r))

        await wait_in_browser(
            browser, lambda _: health()["rollouts"] == COUNT, 20, "the watch to list them all"
        )
        idle_kib = dashboard.rss_kib()
        started = time.monotonic()
        await in_browser(browser.get, f"{dashboard.url}/")
        navigated = time.monotonic() - started
        timing = await in_browser(first_render, browser)
        rss_kib = dashboard.rss_kib()

        # correct: every rollout listed once, counted, and the markers where they belong
        assert await in_browser(lambda: browser.find_element(By.ID, "total").text) == str(COUNT)
        assert await in_browser(rows_shown, browser) == COUNT
        waiting = await in_browser(
            lambda: len(browser.find_elements(By.CSS_SELECTOR, "tr[data-waiting='1'] .waiting"))
        )
        assert waiting == COUNT // len(PHASES)
        row = await in_browser(lambda: browser.find_element(By.ID, "row-team-3--app-0003").text)
        assert "Degraded" in row and "rollout number 3 is degraded" in row

        # filtering by namespace and phase, then text, as one chooses and types
        started = time.monotonic()
        await in_browser(
            lambda: Select(browser.find_element(By.ID, "f-ns")).select_by_value("team-2")
        )
        await in_browser(
            lambda: Select(browser.find_element(By.ID, "f-phase")).select_by_value("Paused")
        )
        # i % 5 == 2 and i % 4 == 2: i % 20 == 2, 50 of them
        assert await in_browser(rows_shown, browser) == COUNT // 20
        await in_browser(browser.find_element(By.ID, "f-q").send_keys, "app-01")
        assert await in_browser(rows_shown, browser) == 5  # app-0102, 0122, ..., 0182
        filtered = time.monotonic() - started

        # still live: a change of one of the thousand reaches its row
        patch_rollout(api_client, "team-2", "app-0102", {"status": {"message": "changed just now"}})
        await wait_in_browser(
            browser,
            lambda c: "changed just now" in c.find_element(By.ID, "row-team-2--app-0102").text,
            10,
            "the live update of one row",
        )
        print(
            f"\n{COUNT} rollouts: page loaded in {navigated * 1000:.0f} ms "
            f"(server answered by {timing['response']:.0f} ms, first paint {timing['paint']:.0f} ms, "
            f"DOM ready {timing['dom']:.0f} ms, load {timing['load']:.0f} ms); "
            f"filtering by two selects and typing {filtered * 1000:.0f} ms; server memory "
            f"{idle_kib / 1024:.0f} MiB with the {COUNT} watched, {rss_kib / 1024:.0f} MiB "
            f"after rendering, peak {dashboard.peak_kib() / 1024:.0f} MiB"
        )
