"""``sluice dashboard`` as a separate process over kmock's emulator, driven by a real browser.

The operator runs in the test's event loop (the operator tests' harness, imported as the CLI
tests do); the dashboard runs as its own process (``--port 0``; the URL is read from its first
line), so it serves while the operator works, and its memory is its own to measure. Debian's
``chromium`` and ``chromedriver`` (scripts/system-deps.sh) are driven headless through selenium;
selenium calls block, so tests make them in a thread (``in_browser``) to keep the operator going.

Screenshots go to ``$SLUICE_SCREENSHOTS`` (default ``build/screenshots/dashboard``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

from tests.integration.operator.conftest import (
    api_client,
    harness,
    kube_emulator,
    kubeconfig,
    namespace,
    operator_settings,
    services,
)

__all__ = [
    "Dashboard",
    "api_client",
    "browser",
    "dashboard",
    "harness",
    "in_browser",
    "kube_emulator",
    "kubeconfig",
    "namespace",
    "operator_settings",
    "screenshot",
    "services",
    "start_dashboard",
    "text",
]

ROOT = Path(__file__).resolve().parents[3]
SHOTS = Path(os.environ.get("SLUICE_SCREENSHOTS") or ROOT / "build" / "screenshots" / "dashboard")
T = TypeVar("T")


@dataclass
class Dashboard:
    url: str
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)

    def rss_kib(self) -> int:
        """The server's resident memory now (VmRSS), in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS for the dashboard process")

    def peak_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM for the dashboard process")


@contextlib.asynccontextmanager
async def start_dashboard(kubeconfig: Path, *args: str) -> AsyncIterator[Dashboard]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), NO_PROXY="127.0.0.1,localhost")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rollouts.cli.main",
        "dashboard",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert "Sluice dashboard on http://" in line, line
        url = line.split(" on ", 1)[1].split()[0].rstrip("/")
        yield Dashboard(url, process, [line])
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.fixture
async def dashboard(kubeconfig: Path) -> AsyncIterator[Dashboard]:
    async with start_dashboard(kubeconfig) as d:
        yield d


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    """One headless chromium for the session (starting one costs about a second)."""
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("chromium and chromedriver are needed: run scripts/system-deps.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--force-device-scale-factor=1",
        "--no-proxy-server",
    ):
        options.add_argument(arg)
    try:
        chrome = webdriver.Chrome(options=options, service=Service(driver))
    except WebDriverException as e:
        pytest.fail(f"cannot start chromium through chromedriver: {e.msg}")
    try:
        yield chrome
    finally:
        chrome.quit()


def text(chrome: webdriver.Chrome, selector: str) -> str:
    """The rendered text of the first element matching ``selector``, whitespace collapsed.

    Read in one script call: live updates replace elements, and a reference found first and read
    after would go stale in between."""
    found = chrome.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", selector
    )
    if found is None:
        raise AssertionError(f"no element {selector}")
    return " ".join(str(found).split())


async def in_browser(call: Callable[..., T], *args: Any) -> T:
    """A blocking selenium call, in a thread, so the operator in this loop keeps running."""
    return await asyncio.to_thread(call, *args)


async def wait_in_browser(
    chrome: webdriver.Chrome, check: Callable[[webdriver.Chrome], T], timeout: float, what: str
) -> T:
    """Poll ``check`` (exceptions count as not yet) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await in_browser(check, chrome)
        except (WebDriverException, AssertionError, KeyError, IndexError, ValueError) as e:
            last = e
        else:
            if last:
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@pytest.fixture
def screenshot(browser: webdriver.Chrome) -> Callable[[str], Path]:
    """``screenshot(name)`` writes the browser's viewport to ``SHOTS/<name>.png``."""

    def take(name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        assert browser.save_screenshot(str(path)), path
        return path

    return take
