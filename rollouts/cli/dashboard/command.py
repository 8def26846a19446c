"""``sluice dashboard``: the click command. The web stack is imported only when it runs."""

from __future__ import annotations

import click

from rollouts.cli.connection import CliError, connect, context_option, kubeconfig_option
from rollouts.cli.dashboard.binding import RemoteBindRefused, check_bind

DEFAULT_PORT = 7070


@click.command("dashboard")
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback needs --allow-remote.",
)
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port, printed at start).",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a non-loopback --address. Anyone who reaches it sees what your kubeconfig "
    "sees; a warning is printed.",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Show everything, offer no operations (and refuse them).",
)
@kubeconfig_option
@context_option
@click.option(
    "-n",
    "--namespace",
    default=None,
    help="Show only this namespace's Rollouts (default: every namespace).",
)
def dashboard(
    address: str,
    port: int,
    allow_remote: bool,
    read_only: bool,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> None:
    """Serve a live web dashboard of the Rollouts on this machine (http://127.0.0.1:7070/).

    A list of every Rollout (phase, step, weight, revision, who it waits for), filterable, and
    a page per Rollout: its steps as a timeline, actual and desired weights, slots and images,
    conditions, recent events, and for each analysis metric the e-value path against its
    threshold, the estimate with its interval, the events counted, and why the rollout was
    aborted or promoted, in words. Pages update live from one shared Kubernetes watch.

    Operations (promote, promote --full, abort, retry, pause, resume) write the same request
    annotation as the CLI, after a confirmation, and show the controller's answer. Everything
    runs with your kubeconfig's credentials; operation forms carry a per-session CSRF token.

    Needs the dashboard extra: pip install 'sluice-rollouts[dashboard]'.

    \b
    Examples:
      sluice dashboard
      sluice dashboard -n shop --port 8080 --read-only
      sluice dashboard --address 0.0.0.0 --allow-remote    # reachable from elsewhere
    """
    try:
        warning = check_bind(address, allow_remote)
    except RemoteBindRefused as e:
        raise click.UsageError(str(e)) from None
    if warning is not None:
        click.echo(warning, err=True)
    try:
        from rollouts.cli.dashboard.serve import serve
    except ImportError as e:
        raise CliError(
            f"sluice dashboard needs the dashboard extra ({e.name} is missing): "
            "pip install 'sluice-rollouts[dashboard]'"
        ) from None
    target = connect(kubeconfig, context, namespace)
    try:
        serve(
            target,
            namespace=namespace,
            address=address,
            port=port,
            remote=warning is not None,
            read_only=read_only,
        )
    finally:
        target.close()
