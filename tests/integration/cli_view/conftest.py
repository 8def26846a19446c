"""Fixtures for ``sluice get rollout`` against the emulator, driven by the real operator.

The operator harness, the emulator and its kubeconfig are the operator tests' own
(tests/integration/operator/conftest.py), imported rather than copied so both suites drive the
same controller the same way. ``snapshot`` compares the CLI's plain text with a file under
``snapshots/``; see ``normalize`` for what it treats as noise.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

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
    "api_client",
    "harness",
    "kube_emulator",
    "kubeconfig",
    "namespace",
    "normalize",
    "operator_settings",
    "services",
    "snapshot",
]

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("SLUICE_UPDATE_SNAPSHOTS") == "1"

_AGE = re.compile(r"\b(?:\d+[dhms]){1,2} ago\b( *)")


def normalize(text: str) -> str:
    """What varies between two runs of the same scenario, replaced by a placeholder.

    Only ages vary: the view prints every time as an age ("12s ago", "1m5s ago"), and an age
    becomes ``<age> ago``. The padding after it (ages are a column in the event table) becomes
    two spaces, so a column of "5s ago" and "12s ago" lines up the same either way. Everything
    else is stable and compared as is: revisions are hashes of the pod template, AnalysisRun
    names are built from the rollout, revision and step, and events are ordered by time, then
    by resourceVersion (their order of emission).
    """
    return _AGE.sub(lambda m: "<age> ago" + ("  " if m.group(1) else ""), text)


@pytest.fixture
def snapshot() -> Callable[[str, str], None]:
    """``snapshot(name, text)``: ``text`` (normalized) must equal ``snapshots/<name>.txt``.

    ``SLUICE_UPDATE_SNAPSHOTS=1`` rewrites the file instead (then review ``git diff``); a
    missing file fails, so a new snapshot is always written on purpose."""

    def check(name: str, text: str) -> None:
        path = SNAPSHOTS / f"{name}.txt"
        got = normalize(text)
        if UPDATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(got, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(
                f"no snapshot {path.name}; run with SLUICE_UPDATE_SNAPSHOTS=1 to write it:\n{got}"
            )
        want = path.read_text(encoding="utf-8")
        if got != want:
            diff = "".join(
                difflib.unified_diff(
                    want.splitlines(keepends=True),
                    got.splitlines(keepends=True),
                    f"snapshots/{path.name}",
                    "sluice get rollout (normalized)",
                )
            )
            pytest.fail(f"output differs from snapshots/{path.name}:\n{diff}", pytrace=False)

    return check
