"""An operation from the page: the list shows who waits for a person, the user reaches the
Rollout by keyboard, clicks Promote, confirms, and reads the controller's answer; a second
promote with nothing left to promote shows the controller ignoring it, and why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.integration.operator.conftest import OperatorHarness, canary, healthy
from tests.support.kube import create_rollout

from .conftest import Dashboard, in_browser, text, wait_in_browser

pytestmark = pytest.mark.integration


async def test_promote_clicked_and_confirmed(
    harness: OperatorHarness,
    dashboard: Dashboard,
    browser: webdriver.Chrome,
    screenshot: Callable[[str], Path],
) -> None:
    h = harness
    create_rollout(h.api, canary(steps=[{"setWeight": 25}, {"pause": {}}]))
    create_rollout(h.api, canary("shop", steps=[{"setWeight": 50}]))
    await h.wait_status(healthy, what="web Healthy")
    await h.wait_status(healthy, name="shop", what="shop Healthy")
    h.set_image("web:2")
    await h.wait_status(
        lambda s: s.get("currentStepIndex") == 1 and s["phase"] == "Paused", what="at the pause"
    )

    # the list: both rollouts, the marker on the one that waits for a person
    await in_browser(browser.get, f"{dashboard.url}/")
    row = "#row-ns--web"
    marker = await wait_in_browser(
        browser, lambda c: "waits for a person" in text(c, row) and text(c, row), 10, "marker"
    )
    assert "Paused" in marker and "25%" in marker
    assert "waits for a person" not in await in_browser(text, browser, "#row-ns--shop")
    # filtering as one types keeps only the matching row
    search = await in_browser(browser.find_element, By.ID, "f-q")
    await in_browser(search.send_keys, "web")
    await wait_in_browser(
        browser,
        lambda c: (
            not c.find_element(By.ID, "row-ns--shop").is_displayed() and text(c, "#shown") == "1"
        ),
        5,
        "the filter to hide shop",
    )
    screenshot("list_filtered")
    # every form control has a label a screen reader announces
    unlabelled = await in_browser(
        browser.execute_script,
        "return Array.from(document.querySelectorAll('input, select, button'))"
        ".filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.textContent.trim())"
        ".map(e => e.outerHTML);",
    )
    assert unlabelled == []

    # to the rollout by keyboard: focus its link and press Enter
    await in_browser(browser.execute_script, f"document.querySelector('{row} a').focus();")
    await in_browser(lambda: browser.switch_to.active_element.send_keys(Keys.ENTER))
    await wait_in_browser(browser, lambda c: "Rollout ns/web" in text(c, "h1"), 10, "rollout page")
    assert "It waits for a person" in await in_browser(text, browser, "#headline")

    # Promote, then the confirmation, then the controller's answer
    await in_browser(lambda: browser.find_element(By.ID, "op-promote").click())
    await wait_in_browser(
        browser, lambda c: "Promote rollout ns/web?" in text(c, "h1"), 10, "confirm"
    )
    assert h.status().get("phase") == "Paused"  # nothing is sent before the confirmation
    screenshot("confirm_promote")
    await in_browser(lambda: browser.find_element(By.ID, "confirm").click())
    answer = await wait_in_browser(browser, lambda c: text(c, "#answer"), 40, "the answer")
    assert "Handled by the controller" in answer, answer
    screenshot("promote_handled")
    st = await h.wait_status(healthy, what="promoted to Healthy")
    assert st["lastRequest"].startswith("promote@cli-")

    # again, with nothing in flight: the controller ignores it and says why
    await in_browser(browser.get, f"{dashboard.url}/rollouts/ns/web/confirm/promote")
    await in_browser(lambda: browser.find_element(By.ID, "confirm").click())
    answer = await wait_in_browser(browser, lambda c: text(c, "#answer"), 40, "the answer")
    assert "Ignored by the controller" in answer, answer
    screenshot("promote_ignored")
