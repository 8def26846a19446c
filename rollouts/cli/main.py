"""The ``sluice`` command (also installed as ``kubectl-sluice``, a kubectl plugin)."""

from __future__ import annotations

import click

from rollouts.cli.run import run
from rollouts.cli.simulate import simulate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sluice-rollouts")
def cli() -> None:
    """Sluice: progressive delivery for Kubernetes, decided by anytime-valid statistics."""


cli.add_command(simulate)
cli.add_command(run)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
