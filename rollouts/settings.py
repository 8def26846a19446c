"""The controller's own settings, from ``sluice run`` flags over ``SLUICE_*`` environment variables.

Environment variables exist so the Deployment in ``deploy/`` can configure the controller without
rewriting its command line; flags win so a person debugging locally can override anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rollouts.sharding import Shard, ShardError

LogFormat = Literal["json", "text"]


class SettingsError(ValueError):
    """A setting has a value the controller cannot use (the message names the setting)."""


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()
    """Namespaces to serve; empty means all namespaces (cluster-wide)."""
    metrics_port: int | None = 8080
    """Port of ``/metrics`` (None: no metrics server, as in tests)."""
    liveness_port: int | None = 8081
    """Port of kopf's ``/healthz`` liveness endpoint (None: none)."""
    log_format: LogFormat = "text"
    priority: int = 0
    """Peering priority: of several replicas, the highest priority one is active."""
    standalone: bool = False
    """Skip peering (one replica, or tests); two replicas must not both be standalone."""
    peering_name: str = "sluice.dev"
    peering_lifetime: int = 60
    """Seconds a replica's peering record counts as alive (kopf's ``peering.lifetime``; each
    replica renews its own 5-10 s before it expires). A replica killed without a word (SIGKILL, a
    lost node) holds its standby paused this long: lower means a faster takeover and more
    peering writes."""
    prometheus_url: str | None = None
    """Prometheus address for metrics whose provider names none."""
    istio_version: str = "v1beta1"
    smi_version: str = "v1alpha2"
    tick_seconds: float = 1.0
    """Ignored: kept so settings written for earlier versions still parse. Reconciles now run at
    their due time from one scheduler (``rollouts.reconcile_queue``); no per-Rollout timer
    ticks. ``sluice run`` warns when it is set."""
    min_requeue_seconds: float = 1.0
    max_requeue_seconds: float = 10.0
    """Bounds on the engine's ``requeue_after`` while a rollout is in flight."""
    idle_seconds: float = 60.0
    """How often a Rollout with nothing in flight is looked at anyway (drift repair)."""
    router_retry_max_seconds: float = 300.0
    """Cap on the growing wait between retries of a Rollout whose traffic router fails (the
    first retry comes after ``min_requeue_seconds``, each next one waits twice as long)."""
    watch_server_timeout: int = 300
    watch_client_timeout: int = 330
    request_timeout: float = 30.0
    """Read timeout of each Kubernetes API call (Sluice's and kopf's): the longest one call may
    hold a worker thread."""
    connect_timeout: float = 5.0
    """Connect timeout of every call: Kubernetes, routers and Prometheus."""
    router_timeout: float = 10.0
    """Read timeout of each traffic router call (a router object that hangs delays only its
    Rollout, by at most this per attempt)."""
    prometheus_timeout: float = 30.0
    """Upper bound on a Prometheus query's read timeout (a template's ``timeout`` above it is cut
    to it), so no analysis holds a worker longer."""
    workers: int = 20
    """kopf's worker threads (``execution.max_workers``); the API connection pool matches it."""
    shard: Shard | None = None
    """Serve only this shard of the Rollouts (``rollouts.sharding``); None: all of them."""
    analysis_run_history: int = 5
    """Per Rollout, how many finished AnalysisRuns of older revisions (or attempts) to keep, of
    the successful and of the unsuccessful ones each (Argo Rollouts' default is also 5): without
    a bound, a Rollout with many revisions accumulates runs until it is deleted."""
    notification_queue_size: int = 1000
    """Notices waiting for the sender threads; when full the oldest is dropped (and counted)."""
    notification_timeout_seconds: float = 10.0
    """Cap on connecting to, and on waiting for, one receiver."""
    notification_burst: int = 10
    notification_refill_seconds: float = 6.0
    """Rate limit per receiver: ``notification_burst`` messages at once, then one per
    ``notification_refill_seconds``; messages over it are skipped and counted."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse values the controller could only fail on later, obscurely (a port out of
        range fails deep in a server thread, an unknown router API version on every reconcile)."""
        # imported here: the routers pull in the kubernetes client, which the CLI loads only
        # when it runs the controller
        from rollouts.routing.istio import VERSIONS as ISTIO_VERSIONS
        from rollouts.routing.smi import VERSIONS as SMI_VERSIONS

        for name in ("metrics_port", "liveness_port"):
            port = getattr(self, name)
            if port is not None and not (
                isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535
            ):
                raise SettingsError(f"{_flag(name)}={port!r}: expected a port from 1 to 65535")
        if self.log_format not in ("json", "text"):
            raise SettingsError(f"{_flag('log_format')}={self.log_format!r}: expected json or text")
        if self.istio_version not in ISTIO_VERSIONS:
            raise SettingsError(
                f"{_flag('istio_version')}={self.istio_version!r}: "
                f"expected one of {', '.join(ISTIO_VERSIONS)}"
            )
        if self.smi_version not in SMI_VERSIONS:
            raise SettingsError(
                f"{_flag('smi_version')}={self.smi_version!r}: "
                f"expected one of {', '.join(SMI_VERSIONS)}"
            )
        history = self.analysis_run_history
        if not (isinstance(history, int) and not isinstance(history, bool) and history >= 0):
            raise SettingsError(
                f"{_flag('analysis_run_history')}={history!r}: expected an integer >= 0"
            )
        for name in (
            "tick_seconds",
            "min_requeue_seconds",
            "max_requeue_seconds",
            "idle_seconds",
            "router_retry_max_seconds",
            "notification_queue_size",
            "notification_timeout_seconds",
            "notification_burst",
            "notification_refill_seconds",
            "request_timeout",
            "connect_timeout",
            "router_timeout",
            "prometheus_timeout",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
                where = f" ({_flag(name)})" if name in _SOURCES else ""
                raise SettingsError(f"{name}={value!r}{where}: must be a number > 0")
        lifetime = self.peering_lifetime
        if not (isinstance(lifetime, int) and not isinstance(lifetime, bool) and lifetime >= 15):
            raise SettingsError(
                f"{_flag('peering_lifetime')}={lifetime!r}: expected whole seconds >= 15 "
                "(a replica renews its record 5-10 s before it expires)"
            )
        workers = self.workers
        if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
            raise SettingsError(f"{_flag('workers')}={workers!r}: expected an integer >= 1")
        if self.min_requeue_seconds > self.max_requeue_seconds:
            raise SettingsError(
                f"min_requeue_seconds={self.min_requeue_seconds} exceeds "
                f"max_requeue_seconds={self.max_requeue_seconds}"
            )
        if self.min_requeue_seconds > self.router_retry_max_seconds:
            raise SettingsError(
                f"min_requeue_seconds={self.min_requeue_seconds} exceeds "
                f"router_retry_max_seconds={self.router_retry_max_seconds}"
            )

    def check(self) -> Settings:
        """Checks across settings that may come from different sources, so they run once flags
        are applied over the environment (each alone may be fine)."""
        if self.metrics_port is not None and self.metrics_port == self.liveness_port:
            raise SettingsError(
                f"{_flag('metrics_port')} and {_flag('liveness_port')} are both "
                f"{self.metrics_port}: the two servers need different ports"
            )
        return self

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def peering(self) -> str:
        """The kopf peering this replica joins: one per shard (``rollouts.sharding``)."""
        return (
            self.peering_name if self.shard is None else self.shard.peering_name(self.peering_name)
        )

    def owns(self, namespace: str | None, name: str | None) -> bool:
        """Whether the Rollout ``namespace/name`` is this replica's to serve."""
        return self.shard is None or self.shard.owns(namespace, name)

    def liveness_endpoint(self) -> str | None:
        return (
            None if self.liveness_port is None else f"http://0.0.0.0:{self.liveness_port}/healthz"
        )

    def with_flags(self, **flags: Any) -> Settings:
        """Apply CLI flags given (None means 'not given')."""
        given = {k: v for k, v in flags.items() if v is not None}
        if "namespaces" in given:
            given["namespaces"] = tuple(given["namespaces"])
        if isinstance(given.get("shard"), str):
            given["shard"] = _shard("--shard", given["shard"])
        return replace(self, **given)


# Where each checked setting comes from, for messages: the flag and the environment variable.
_SOURCES = {
    "metrics_port": "--metrics-port/SLUICE_METRICS_PORT",
    "liveness_port": "--liveness-port/SLUICE_LIVENESS_PORT",
    "log_format": "--log-format/SLUICE_LOG_FORMAT",
    "istio_version": "SLUICE_ISTIO_VERSION",
    "smi_version": "SLUICE_SMI_VERSION",
    "analysis_run_history": "--analysis-run-history/SLUICE_ANALYSIS_RUN_HISTORY",
    "tick_seconds": "--tick-seconds/SLUICE_TICK_SECONDS",
    "min_requeue_seconds": "--min-requeue-seconds/SLUICE_MIN_REQUEUE_SECONDS",
    "max_requeue_seconds": "--max-requeue-seconds/SLUICE_MAX_REQUEUE_SECONDS",
    "idle_seconds": "--idle-seconds/SLUICE_IDLE_SECONDS",
    "request_timeout": "--kube-timeout/SLUICE_KUBE_TIMEOUT",
    "connect_timeout": "--connect-timeout/SLUICE_CONNECT_TIMEOUT",
    "router_timeout": "--router-timeout/SLUICE_ROUTER_TIMEOUT",
    "prometheus_timeout": "--prometheus-timeout/SLUICE_PROMETHEUS_TIMEOUT",
    "workers": "--workers/SLUICE_WORKERS",
    "peering_lifetime": "--peering-lifetime/SLUICE_PEERING_LIFETIME",
}

# The environment variable of each numeric setting ``from_env`` reads (flags in ``_SOURCES``).
_FLOAT_ENV = {
    "tick_seconds": "SLUICE_TICK_SECONDS",
    "min_requeue_seconds": "SLUICE_MIN_REQUEUE_SECONDS",
    "max_requeue_seconds": "SLUICE_MAX_REQUEUE_SECONDS",
    "idle_seconds": "SLUICE_IDLE_SECONDS",
    "request_timeout": "SLUICE_KUBE_TIMEOUT",
    "connect_timeout": "SLUICE_CONNECT_TIMEOUT",
    "router_timeout": "SLUICE_ROUTER_TIMEOUT",
    "prometheus_timeout": "SLUICE_PROMETHEUS_TIMEOUT",
}


def _flag(name: str) -> str:
    return _SOURCES.get(name, name)


def _bool(env: Mapping[str, str], key: str) -> bool:
    value = env.get(key, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{key}={env[key]!r}: expected true or false")


def _int(env: Mapping[str, str], key: str, default: int | None) -> int | None:
    value = env.get(key)
    if value is None or value == "":
        return default
    if value.lower() in ("none", "off", "disabled"):
        return None
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{key}={value!r}: expected an integer") from None


def _history(env: Mapping[str, str], key: str, default: int) -> int:
    """A count with no "off": unbounded history is what the setting exists to prevent."""
    value = env.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{key}={value!r}: expected an integer >= 0") from None


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    value = env.get(key)
    if value is None or value.strip() == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise SettingsError(f"{key}={value!r}: expected a number of seconds") from None


def _shard(source: str, value: str | None) -> Shard | None:
    if value is None or value.strip() == "":
        return None
    try:
        return Shard.parse(value)
    except ShardError as e:
        raise SettingsError(f"{source}={value!r}: {e}") from None


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    base = Settings()
    namespaces = tuple(n.strip() for n in env.get("SLUICE_NAMESPACES", "").split(",") if n.strip())
    log_format = env.get("SLUICE_LOG_FORMAT", base.log_format)
    if log_format not in ("json", "text"):
        raise SettingsError(f"SLUICE_LOG_FORMAT={log_format!r}: expected json or text")
    floats: dict[str, Any] = {n: _float(env, k, getattr(base, n)) for n, k in _FLOAT_ENV.items()}
    return Settings(
        namespaces=namespaces,
        metrics_port=_int(env, "SLUICE_METRICS_PORT", base.metrics_port),
        liveness_port=_int(env, "SLUICE_LIVENESS_PORT", base.liveness_port),
        log_format=log_format,  # type: ignore[arg-type]
        priority=_int(env, "SLUICE_PRIORITY", base.priority) or 0,
        standalone=_bool(env, "SLUICE_STANDALONE"),
        prometheus_url=env.get("SLUICE_PROMETHEUS_URL") or None,
        istio_version=env.get("SLUICE_ISTIO_VERSION", base.istio_version),
        smi_version=env.get("SLUICE_SMI_VERSION", base.smi_version),
        analysis_run_history=_history(
            env, "SLUICE_ANALYSIS_RUN_HISTORY", base.analysis_run_history
        ),
        workers=_history(env, "SLUICE_WORKERS", base.workers),  # checked >= 1 by Settings
        peering_lifetime=_history(env, "SLUICE_PEERING_LIFETIME", base.peering_lifetime),
        shard=_shard("SLUICE_SHARD", env.get("SLUICE_SHARD")),
        **floats,
    )
