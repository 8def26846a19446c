"""The page follows a rollout live: the real operator moves it to the analysis step, the
analysis (a real Prometheus, a canary failing half of its requests) fails it, and the open page
shows each state as it comes, without a reload, with the evidence and the reason in words."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from rollouts.cli.render_text import num
from tests.integration.operator.conftest import OperatorHarness, canary, healthy
from tests.integration.operator.conftest_analysis import (
    Arm,
    TrafficTimeline,
    operator_settings,
    prometheus,
    timeline,
)
from tests.integration.operator.test_analysis_operator import (
    analysis_step,
    create_template,
    error_rate_metric,
    template,
)
from tests.support.kube import create_rollout

from .conftest import Dashboard, in_browser, text, wait_in_browser

__all__ = ["operator_settings", "prometheus", "timeline"]  # fixtures, used by name

pytestmark = pytest.mark.integration


def charts(chrome: webdriver.Chrome) -> list[dict[str, Any]]:
    """The e-value charts' data; read again when a live update replaced an element between
    finding it and reading it (the page re-renders on every status the server pushes)."""
    for _ in range(20):
        try:
            return [
                json.loads(el.get_attribute("data-chart"))
                for el in chrome.find_elements(By.CSS_SELECTOR, "[data-kind=evalue]")
            ]
        except StaleElementReferenceException:
            continue
    raise AssertionError("the charts kept being replaced while read")


async def test_progressing_then_aborting_live(
    harness: OperatorHarness,
    timeline: TrafficTimeline,
    dashboard: Dashboard,
    browser: webdriver.Chrome,
    screenshot: Callable[[str], Path],
) -> None:
    h = harness
    timeline.push([Arm("web-canary", 200, 0.5), Arm("web", 200, 0.01)])
    # a 3 s initial delay holds the rollout at the analysis step long enough to be seen there
    create_template(h, template("errors", [error_rate_metric(initialDelay="3s")]))
    steps = [
        {"setWeight": 25},
        analysis_step("errors", args={"test-id": timeline.test_id}),
        {"setWeight": 75},
    ]
    create_rollout(h.api, canary(steps=steps))
    await h.wait_status(healthy, what="first revision Healthy")

    await in_browser(browser.get, f"{dashboard.url}/rollouts/ns/web")
    await wait_in_browser(
        browser, lambda c: c.find_element(By.TAG_NAME, "body").get_attribute("data-live"), 10, "SSE"
    )
    await in_browser(browser.execute_script, "window.sluiceTestMark = 'same page';")
    assert "Healthy" in await in_browser(text, browser, "#phase")

    h.set_image("web:2")
    shown = await wait_in_browser(
        browser,
        lambda c: (
            "Progressing" in text(c, "#phase")
            and text(c, "#weight") == "25%"
            and "2. analysis errors" in text(c, ".timeline .step-current")
            and text(c, ".timeline")
        ),
        15,
        "the page to show the analysis step at 25%",
    )
    # steps as a timeline, each state told by a symbol and a word, not by colour alone
    assert "✓ done: 1. setWeight 25%" in shown, shown
    assert "▶ current: 2. analysis errors (now)" in shown, shown
    assert "○ pending: 3. setWeight 75%" in shown, shown
    screenshot("rollout_progressing")

    page = await wait_in_browser(
        browser,
        lambda c: "Degraded" in text(c, "#phase") and text(c, "main"),
        20,
        "the page to show the abort",
    )
    st = h.status()
    assert st["phase"] == "Degraded" and st["abort"]["reason"] == "AnalysisFailed"
    assert "analysis found the new revision worse than the stable one" in page
    assert st["abort"]["message"] in await in_browser(text, browser, "#abort-reason")
    [record] = st["analysisRuns"]
    [metric] = record["metrics"]
    evidence = metric["evidence"]
    # status keeps e-values in log space; the page shows exp(logEValue) against 1/alpha
    e_value, bar = math.exp(evidence["logEValue"]), math.exp(evidence["logThreshold"])
    words = await in_browser(text, browser, ".metric .words")
    assert words.startswith("Failed: the evidence against the canary")
    # the numbers are status's own (the CLI's three significant digits)
    assert f"e-value {num(e_value)}" in words
    assert f"threshold {num(bar)}" in words
    assert f"estimate {num(evidence['estimate'])}" in words
    assert f"{evidence['events']} events counted" in words
    # the charts are drawn (uPlot canvases) and the e-value path ends at status's e-value
    await wait_in_browser(
        browser,
        lambda c: len(c.find_elements(By.CSS_SELECTOR, ".metric canvas")) >= 2,
        10,
        "the charts",
    )
    [path] = await in_browser(charts, browser)
    assert path["path"]["y"] and path["path"]["y"][-1] == pytest.approx(e_value)
    assert path["threshold"] == pytest.approx(bar)
    # all of it arrived live: the page was never reloaded
    assert await in_browser(browser.execute_script, "return window.sluiceTestMark") == "same page"
    screenshot("rollout_aborted")
    # the whole page, for the docs (docs/img/dashboard-aborted.png is one of these)
    height = await in_browser(browser.execute_script, "return document.body.scrollHeight")
    await in_browser(browser.set_window_size, 1280, int(height) + 40)
    try:
        screenshot("rollout_aborted_full")
    finally:
        await in_browser(browser.set_window_size, 1280, 1000)
