"""The real operator over kmock's emulator (the operator tests' harness), for the CLI commands.

The CLI is driven in-process through click's ``CliRunner``. Its calls are synchronous while the
operator runs in the test's event loop, so a command that waits (``status``, an operation's
``--wait``) must run in a thread (:func:`sluice_in_thread`) or the operator could never act.
"""

from __future__ import annotations

import asyncio

from click.testing import CliRunner, Result

from rollouts.cli.main import cli
from tests.integration.operator.conftest import (
    api_client,
    harness,
    kube_emulator,
    kubeconfig,
    namespace,
    operator_settings,
    services,
)

__all__ = [  # fixtures, used by name
    "api_client",
    "harness",
    "kube_emulator",
    "kubeconfig",
    "namespace",
    "operator_settings",
    "services",
    "sluice",
    "sluice_in_thread",
]


def sluice(*args: str) -> Result:
    """``sluice ARGS`` in-process; never a traceback, whatever the exit code."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"sluice {' '.join(args)} raised {result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output
    return result


async def sluice_in_thread(*args: str) -> Result:
    """``sluice ARGS`` in a thread, so the operator keeps running while the command waits."""
    return await asyncio.to_thread(sluice, *args)
