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


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (click's documented pattern)."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

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


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="sluice-rollouts")
def cli() -> None:
    """Sluice: progressive delivery for Kubernetes, decided by anytime-valid statistics."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
