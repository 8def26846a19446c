"""No polling storms: one list and one watch of the Rollouts serve every open page, and one
reader per open Rollout page serves all the tabs showing it; a change reaches every tab."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import kubernetes
import pytest

from tests.integration.operator.conftest import canary
from tests.support.kube import RunningEmulator, create_rollout, patch_rollout

from .conftest import Dashboard

pytestmark = pytest.mark.integration

SECONDS = 4.0
TABS = 3


def read_events(url: str, seconds: float) -> list[tuple[str, dict[str, Any]]]:
    """The server-sent events of ``url`` for ``seconds``, as (event, data) pairs.

    A plain socket speaking HTTP/1.0 (no chunking), so a read that times out can go on."""
    parts = urlsplit(url)
    body = b""
    deadline = time.monotonic() + seconds
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET {parts.path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            body += chunk
    out: list[tuple[str, dict[str, Any]]] = []
    event = ""
    for line in body.decode().split("\r\n\r\n", 1)[-1].splitlines():
        if line.startswith("event: "):
            event = line[7:].strip()
        elif line.startswith("data: "):
            out.append((event, json.loads(line[6:])))
    return out


async def test_tabs_share_one_watch_and_one_reader(
    kube_emulator: RunningEmulator,
    api_client: kubernetes.client.ApiClient,
    dashboard: Dashboard,
) -> None:
    create_rollout(api_client, canary())
    with urllib.request.urlopen(f"{dashboard.url}/rollouts/ns/web", timeout=10) as page:
        assert page.status == 200  # the hub has listed the rollouts
    rollouts = kube_emulator.inject(method="GET", plural="rollouts", status=None, times=None)
    deployments = kube_emulator.inject(method="GET", plural="deployments", status=None, times=None)

    async def change_midway() -> None:
        await asyncio.sleep(SECONDS / 2)
        patch_rollout(api_client, "ns", "web", {"status": {"message": "changed for every tab"}})

    page_tabs = [
        asyncio.to_thread(read_events, f"{dashboard.url}/events/rollouts/ns/web", SECONDS)
        for _ in range(TABS)
    ]
    list_tabs = [
        asyncio.to_thread(read_events, f"{dashboard.url}/events", SECONDS) for _ in range(TABS)
    ]
    *results, _ = await asyncio.gather(*page_tabs, *list_tabs, change_midway())
    for events in results[:TABS]:
        views = [d["html"] for e, d in events if e == "view"]
        assert views and "changed for every tab" in views[-1], events
    for events in results[TABS:]:
        rows = [d for e, d in events if e == "row"]
        assert rows and rows[-1]["id"] == "row-ns--web", events
        assert "changed for every tab" in rows[-1]["html"]
    # the API server saw no rollout request at all from six tabs (the watch was already open),
    # and one reader's deployment lists (one per change or refresh), not one per tab
    assert rollouts.hits == 0, rollouts.hits
    assert 1 <= deployments.hits <= 3, deployments.hits
