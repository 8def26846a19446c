"""``sluice run``: start the controller (kopf operator) against the current cluster.

Flags override ``SLUICE_*`` environment variables (see ``rollouts.settings``), which is how the
Deployment in ``deploy/`` configures the controller.
"""

from __future__ import annotations

import asyncio
import logging
import os

import click

from rollouts.settings import Settings, SettingsError, from_env


class RoutineFilter(logging.Filter):
    """Drops kopf's success line for the liveness probe, which runs all the time and succeeds as
    a rule.

    kopf logs "<handler> succeeded." at INFO after every call: a line per probe (every few
    seconds) would drown what matters (requests, steps, failures; those are still logged, and the
    probe's failures too). Watch events pass beside kopf's handlers (``rollouts.kopf_fast_path``)
    and log nothing. ``-v`` keeps everything.
    """

    def __init__(self) -> None:
        super().__init__()
        from rollouts.operator import PROBE_ID

        self.routine = frozenset({f"Activity {PROBE_ID!r} succeeded."})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.routine


def configure_logging(log_format: str, verbose: bool) -> None:
    import kopf

    level = logging.DEBUG if verbose else logging.INFO
    fmt = kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=verbose, log_format=fmt)
    root = logging.getLogger()
    root.setLevel(level)
    if not verbose:
        for handler in root.handlers:
            if not any(isinstance(f, RoutineFilter) for f in handler.filters):
                handler.addFilter(RoutineFilter())
    for noisy in ("urllib3", "kubernetes", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.command("run")
@click.option(
    "-n", "--namespace", "namespaces", multiple=True, help="Serve only this namespace (repeatable)."
)
@click.option(
    "-A", "--all-namespaces", is_flag=True, default=False, help="Serve every namespace (default)."
)
@click.option("--metrics-port", type=int, default=None, help="Port of /metrics (default 8080).")
@click.option("--liveness-port", type=int, default=None, help="Port of /healthz (default 8081).")
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default=None,
    help="Log lines as JSON objects (for log pipelines) or text (default text).",
)
@click.option(
    "--priority",
    type=int,
    default=None,
    help="Peering priority: with several replicas, the highest one is active, others wait.",
)
@click.option(
    "--standalone", is_flag=True, default=None, help="No peering (a single replica, or tests)."
)
@click.option("--prometheus-url", default=None, help="Prometheus for metrics that name no address.")
@click.option(
    "--analysis-run-history",
    type=int,
    default=None,
    help="Per Rollout, finished AnalysisRuns of older revisions kept, successful and "
    "unsuccessful each (default 5); the current revision's are always kept.",
)
@click.option(
    "--tick-seconds",
    type=float,
    default=None,
    help="Ignored (accepted so existing settings still work): reconciles run at their due "
    "time from one scheduler; there is no per-Rollout timer to tick.",
)
@click.option(
    "--min-requeue-seconds",
    type=float,
    default=None,
    help="Shortest wait between reconciles of a Rollout in flight, and the first retry "
    "after a failure (default 1).",
)
@click.option(
    "--max-requeue-seconds",
    type=float,
    default=None,
    help="Longest wait between reconciles of a Rollout in flight (default 10).",
)
@click.option(
    "--idle-seconds",
    type=float,
    default=None,
    help="How often a settled Rollout is looked at anyway, to repair drift (default 60).",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Worker threads for reconciles; the API connection pool matches it (default 20).",
)
@click.option(
    "--peering-lifetime",
    type=int,
    default=None,
    help="Seconds a replica's peering record counts as alive; a replica killed without a word "
    "holds its standby this long (default 60, at least 15).",
)
@click.option(
    "--connect-timeout",
    type=float,
    default=None,
    help="Connect timeout in seconds of every Kubernetes, router and Prometheus call (default 5).",
)
@click.option(
    "--kube-timeout",
    "request_timeout",
    type=float,
    default=None,
    help="Read timeout in seconds of each Kubernetes API call (default 30).",
)
@click.option(
    "--router-timeout",
    type=float,
    default=None,
    help="Read timeout in seconds of each traffic router call (default 10).",
)
@click.option(
    "--prometheus-timeout",
    type=float,
    default=None,
    help="Upper bound in seconds on a Prometheus query's timeout (default 30).",
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Serve only shard I of N (0-based): the Rollouts whose namespace/name hashes to I; "
    "replicas of one shard share a peering (docs/sharding.md).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    default=False,
    help="Debug logging, including kopf's line for every routine handler call.",
)
def run(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    metrics_port: int | None,
    liveness_port: int | None,
    log_format: str | None,
    priority: int | None,
    standalone: bool | None,
    prometheus_url: str | None,
    analysis_run_history: int | None,
    tick_seconds: float | None,
    min_requeue_seconds: float | None,
    max_requeue_seconds: float | None,
    idle_seconds: float | None,
    workers: int | None,
    peering_lifetime: int | None,
    connect_timeout: float | None,
    request_timeout: float | None,
    router_timeout: float | None,
    prometheus_timeout: float | None,
    shard: str | None,
    verbose: bool,
) -> None:
    """Run the Sluice controller until interrupted."""
    if namespaces and all_namespaces:
        raise click.UsageError("--namespace and --all-namespaces exclude each other")
    try:
        settings = build_settings(
            namespaces=namespaces or None,
            all_namespaces=all_namespaces,
            metrics_port=metrics_port,
            liveness_port=liveness_port,
            log_format=log_format,
            priority=priority,
            standalone=standalone,
            prometheus_url=prometheus_url,
            analysis_run_history=analysis_run_history,
            tick_seconds=tick_seconds,
            min_requeue_seconds=min_requeue_seconds,
            max_requeue_seconds=max_requeue_seconds,
            idle_seconds=idle_seconds,
            workers=workers,
            peering_lifetime=peering_lifetime,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            router_timeout=router_timeout,
            prometheus_timeout=prometheus_timeout,
            shard=shard,
        )
    except SettingsError as e:
        raise click.UsageError(str(e)) from None
    configure_logging(settings.log_format, verbose)
    if tick_seconds is not None or os.environ.get("SLUICE_TICK_SECONDS"):
        logging.getLogger("sluice").warning(
            "--tick-seconds/SLUICE_TICK_SECONDS has no effect: reconciles run at their due "
            "time from one scheduler, with no per-Rollout timer; remove the setting"
        )
    from rollouts.cli.cluster_check import load_api_client, reach_cluster
    from rollouts.gc_tuning import tune_gc
    from rollouts.operator import EXIT_GRACE_SECONDS
    from rollouts.operator import run as run_operator

    api = load_api_client()
    reach_cluster(api)
    # after the imports, so the modules and schemas are what it freezes (rollouts.gc_tuning);
    # here rather than in run_operator, which tests start many times in one process
    tune_gc()
    try:
        asyncio.run(run_operator(settings, api=api, exit_grace_seconds=EXIT_GRACE_SECONDS))
    except KeyboardInterrupt:
        pass
    except Exception as e:  # kopf has logged the details; the exit says what ended it
        from rollouts.cli.cluster_check import why

        raise click.ClickException(f"the controller stopped: {why(e)}") from None


def build_settings(*, all_namespaces: bool = False, **flags: object) -> Settings:
    settings = from_env().with_flags(**flags)
    if all_namespaces:
        settings = settings.with_flags(namespaces=())
    return settings.check()
