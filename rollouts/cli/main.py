"""The ``sluice`` command (also installed as ``kubectl-sluice``, a kubectl plugin).

Subcommands are imported only when used: ``sluice lint`` in a CI job should not pay for importing
the Kubernetes client, kopf or matplotlib, and a broken optional dependency of one command must not
take the others down with it.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

COMMANDS: dict[str, str] = {
    "get": "rollouts.cli.get:get",
    "list": "rollouts.cli.listing:list_",
    "status": "rollouts.cli.status:status",
    "promote": "rollouts.cli.operations:promote",
    "abort": "rollouts.cli.operations:abort",
    "retry": "rollouts.cli.operations:retry",
    "pause": "rollouts.cli.operations:pause",
    "resume": "rollouts.cli.operations:resume",
    "lint": "rollouts.cli.lint:lint",
    "convert": "rollouts.cli.convert:convert",
    "simulate": "rollouts.cli.simulate:simulate",
    "dashboard": "rollouts.cli.dashboard.command:dashboard",
    "run": "rollouts.cli.run_controller:run",
}
"""Subcommand name → ``module:attribute`` of its click command, in the order ``--help`` lists them."""

SUMMARIES: dict[str, str] = {
    "get": "Show Sluice objects.",
    "list": "List Sluice objects.",
    "status": "Wait until rollout NAME is Healthy, Degraded or paused for a person; say so in the "
    "exit code.",
    "promote": "End the current pause or step of rollout NAME and go on to the next one.",
    "abort": "Abort rollout NAME: all traffic back to the stable revision, then scale the canary "
    "down.",
    "retry": "Start the aborted revision's rollout of NAME again from the first step.",
    "pause": "Hold rollout NAME at its current step until resume (or promote).",
    "resume": "Continue rollout NAME after a pause.",
    "lint": "Validate Rollouts and (Cluster)AnalysisTemplates in FILE... offline.",
    "convert": "Convert Argo Rollouts and Flagger manifests in FILE...",
    "simulate": "Run FILE's Rollout through Sluice's engine on a simulated cluster and clock.",
    "dashboard": "Serve a live web dashboard of the Rollouts on this machine "
    "(http://127.0.0.1:7070/).",
    "run": "Run the Sluice controller until interrupted.",
}
"""Each subcommand's one-line help, so ``sluice --help`` lists them without importing them (the
simulator pulls in numpy and scipy, the cluster commands the Kubernetes client: most of a second).
A unit test keeps these equal to the commands' own docstrings."""


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (click's documented pattern)."""

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, str],
        summaries: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)
        self.summaries = dict(summaries or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(n for n in super().list_commands(ctx) if n not in self.lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, _, attr = self.lazy[cmd_name].partition(":")
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's command list, with the known summaries instead of importing each command."""
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            if name in self.lazy and name in self.summaries:
                # a stand-in with the same first line: click shortens it exactly as the real one
                rows.append((name, click.Command(name, help=self.summaries[name])))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        shown = [(name, command.get_short_help_str(limit)) for name, command in rows]
        with formatter.section("Commands"):
            formatter.write_dl(shown)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    summaries=SUMMARIES,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="sluice-rollouts")
def cli() -> None:
    """Sluice: progressive delivery for Kubernetes, decided by anytime-valid statistics."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
