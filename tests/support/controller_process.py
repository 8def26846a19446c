"""The real controller in its own process, so a test can kill it with SIGKILL.

A controller cancelled inside the test's event loop is not a crash: its handler threads run on
to the end of their reconcile and ``finally`` blocks run. A process killed with SIGKILL stops
mid-request, with half of a two-request write done, which is what a node failure or an OOM kill
does. ``python -m tests.support.controller_process SETTINGS_JSON`` runs ``rollouts.operator.run``
with those settings against the cluster named by ``KUBECONFIG``.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rollouts.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ControllerProcess:
    """One controller process at a time: ``start``, ``kill`` (SIGKILL), ``start`` again."""

    kubeconfig: Path
    settings: Settings
    log_dir: Path
    agent: str | None = None
    """Names this controller to the API server (its client's User-Agent, which the emulator
    records per request) and to kopf's peering (``POD_ID``): two replicas told apart."""
    starts: int = 0
    kills: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _killed: bool = False
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self._killed = False
        log = self.log_dir / f"{self.agent or 'controller'}-{self.starts}.log"
        self.logs.append(log)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONPATH": str(REPO),
            **({AGENT_ENV: self.agent, "POD_ID": self.agent} if self.agent else {}),
        }
        settings = {k: v for k, v in asdict(self.settings).items() if k != "extra"}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.controller_process", json.dumps(settings)],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizers, requests cut where they are."""
        if self.proc is not None and self.proc.poll() is None:
            self._killed = True
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.kills += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exited_by_itself(self) -> bool:
        """The process ended without being killed by us (a crash or an exit)."""
        return self.proc is not None and self.proc.poll() is not None and not self._killed

    def stop(self) -> int | None:
        """SIGTERM, as Kubernetes stops a Pod; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def tracebacks(self) -> int:
        return self.log_text().count("Traceback (most recent call last)")


AGENT_ENV = "SLUICE_TEST_USER_AGENT"

_LIBC = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded here: the child must not import


def _die_with_parent() -> None:
    """In the child: SIGKILL it when the suite's process dies, so no controller outlives it.
    (Only a C call between fork and exec, which is safe beside the suite's threads.)"""
    _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def wait_until(check: Any, timeout: float, interval: float = 0.2) -> Any:
    """Poll ``check()`` until it returns something truthy (returned) or ``timeout`` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def main(argv: list[str]) -> None:
    from rollouts.operator import EXIT_GRACE_SECONDS, default_api_client, run

    # the replica's pause and resume (kopf's peering) are INFO lines tests wait on; the rest of
    # the process logs as before (warnings and errors, through logging's last resort)
    peering = logging.getLogger("sluice.peering")
    peering.setLevel(logging.INFO)
    peering.addHandler(logging.StreamHandler())
    raw = json.loads(argv[0])
    raw["namespaces"] = tuple(raw.get("namespaces") or ())
    api = default_api_client()
    if os.environ.get(AGENT_ENV):
        api.user_agent = os.environ[AGENT_ENV]
    # a controller process, as `sluice run` is: kopf kills it when its stop cannot finish
    asyncio.run(run(Settings(**raw), api=api, exit_grace_seconds=EXIT_GRACE_SECONDS))


if __name__ == "__main__":
    main(sys.argv[1:])
