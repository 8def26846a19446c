"""Plain kubectl on a real cluster: what docs/kubectl.md promises.

``kubectl get sro -w`` is printed by the API server from the CRD's printer columns (kmock's
emulator prints no Tables), and ``kubectl wait --for=condition=Ready`` started right after a new
revision is applied must wait for that revision, not return on the previous one's Healthy. The
same properties are checked on the emulator, without kubectl, in
tests/integration/kubectl/test_printer_columns.py.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.conftest import apply, canary_rollout, kubectl, service

pytestmark = pytest.mark.e2e

IMAGE = "registry.k8s.io/pause:3.9"
NEXT_IMAGE = "registry.k8s.io/pause:3.8"
STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "5s"}},
    {"setWeight": 75},
    {"pause": {}},  # waits for a person
]
COLUMNS = ["EVENT", "NAME", "PHASE", "STEP", "WEIGHT", "STABLE", "CANARY", "AGE"]


def rollout(image: str) -> dict[str, Any]:
    return canary_rollout(image, 4, STEPS)


def status(namespace: str) -> dict[str, Any]:
    out = kubectl("get", "-n", namespace, "sro", "web", "-o", "json").stdout
    return dict(json.loads(out).get("status") or {})


def wait_until(namespace: str, what: str, check: Any, timeout: float = 180) -> dict[str, Any]:
    deadline = time.time() + timeout
    st: dict[str, Any] = {}
    while time.time() < deadline:
        st = status(namespace)
        if check(st):
            return st
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}: {st}")


@dataclass
class Background:
    """A kubectl running in the background, its output read line by line as it comes."""

    args: list[str]
    lines: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None

    def start(self) -> Background:
        self.proc = subprocess.Popen(
            ["kubectl", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.terminate()
            self.wait(timeout=10)


def watch_rows(lines: list[str]) -> list[dict[str, str]]:
    """The rows of ``kubectl get sro -w --output-watch-events`` (no ``-o wide``: every cell is one
    word, so a row splits on whitespace however the table is aligned)."""
    rows = []
    for line in lines:
        cells = line.split()
        if len(cells) == len(COLUMNS) and cells[0] != "EVENT":
            rows.append(dict(zip(COLUMNS, cells, strict=True)))
    return rows


def test_get_watch_and_wait_follow_a_canary(namespace: str, controller: None) -> None:
    apply(namespace, service("web"), service("web-canary"), rollout(IMAGE))
    first = kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "sro/web", "--timeout=180s", check=False
    )
    assert first.returncode == 0, first.stderr
    assert "condition met" in first.stdout
    old = status(namespace)["stableRevision"]

    watch = Background(["get", "-n", namespace, "sro", "web", "-w", "--output-watch-events"])
    watch.start()
    try:
        apply(namespace, rollout(NEXT_IMAGE))
        # started right after the apply, as a CI job would: it must wait for the new revision
        wait = Background(
            ["wait", "-n", namespace, "--for=condition=Ready", "sro/web", "--timeout=300s"]
        ).start()
        try:
            paused = wait_until(
                namespace,
                "the pause that waits for a person",
                lambda s: s.get("phase") == "Paused" and s.get("currentStepIndex") == 3,
            )
            assert paused["stableRevision"] == old and paused["currentRevision"] != old
            assert wait.running(), f"kubectl wait returned early: {wait.lines}"
            kubectl(
                "annotate", "-n", namespace, "sro", "web",
                "sluice.dev/request=promote@e2e", "--overwrite",
            )  # fmt: skip
            assert wait.wait(timeout=300) == 0, wait.lines
        finally:
            wait.stop()
        assert any("condition met" in line for line in wait.lines), wait.lines
        done = status(namespace)
        assert done["phase"] == "Healthy" and done["stableRevision"] == paused["currentRevision"]
        time.sleep(2)  # let the watch print the last events
    finally:
        watch.stop()

    rows = watch_rows(watch.lines)
    assert rows, watch.lines
    assert {r["EVENT"] for r in rows} >= {"ADDED", "MODIFIED"}
    seen = [(r["PHASE"], r["STEP"], r["WEIGHT"]) for r in rows]
    for expected in [
        ("Paused", "2/4", "25"),  # steps count from 1: at step 2, the pause after setWeight 25
        ("Paused", "4/4", "75"),
        ("Healthy", "-", "0"),  # promoted: nothing rolling out through the steps
    ]:
        assert expected in seen, (expected, seen)
    assert seen.index(("Paused", "2/4", "25")) < seen.index(("Paused", "4/4", "75"))
    assert seen[-1] == ("Healthy", "-", "0"), seen
    new = paused["currentRevision"]
    assert {(r["STABLE"], r["CANARY"]) for r in rows} >= {(old, new), (new, new)}
