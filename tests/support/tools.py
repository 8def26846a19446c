"""The helm and kubectl binaries the tests run: the ones ``bash scripts/setup.sh`` puts into the
virtualenv (from PyPI, see scripts/kube_tools.py), never whatever happens to be on PATH, so every
machine runs the same versions. A missing binary fails the test with the command that fixes it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP_HINT = "run `bash scripts/setup.sh` (it installs helm and kubectl into .venv/bin)"


def venv_bin() -> Path:
    """The virtualenv's bin directory (the interpreter's own, else the repository's .venv)."""
    own = Path(sys.executable).parent
    return (
        own
        if (own / "python").exists() and sys.prefix != sys.base_prefix
        else REPO / ".venv" / "bin"
    )


def tool(name: str) -> Path:
    path = venv_bin() / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: {SETUP_HINT}", pytrace=False)
    return path


def run_tool(
    name: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run helm or kubectl; with ``check``, a nonzero exit fails the test showing its stderr."""
    done = subprocess.run(
        [str(tool(name)), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else None,
        cwd=cwd,
    )
    if check and done.returncode != 0:
        pytest.fail(
            f"{name} {' '.join(args)} exited {done.returncode}:\n{done.stderr}", pytrace=False
        )
    return done
