"""Controller settings: SLUICE_* environment variables, ``sluice run`` flags over them, and clear
errors for values the controller could only fail on later."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from rollouts.cli import run_controller as run_cli
from rollouts.cli.main import cli
from rollouts.operator import EXIT_GRACE_SECONDS
from rollouts.settings import Settings, SettingsError, from_env


def test_defaults_serve_every_namespace_with_both_endpoints() -> None:
    s = Settings()
    assert s.clusterwide and s.namespaces == ()
    assert (s.metrics_port, s.liveness_port) == (8080, 8081)
    assert s.liveness_endpoint() == "http://0.0.0.0:8081/healthz"
    assert Settings(liveness_port=None).liveness_endpoint() is None
    assert not s.standalone and s.log_format == "text"
    assert s.analysis_run_history == 5
    assert from_env({}) == s


def test_every_environment_variable_is_read() -> None:
    env = {
        "SLUICE_NAMESPACES": " shop, web ,,",
        "SLUICE_METRICS_PORT": "9100",
        "SLUICE_LIVENESS_PORT": "off",
        "SLUICE_LOG_FORMAT": "json",
        "SLUICE_PRIORITY": "7",
        "SLUICE_STANDALONE": "true",
        "SLUICE_PROMETHEUS_URL": "http://prometheus.monitoring:9090",
        "SLUICE_ISTIO_VERSION": "v1",
        "SLUICE_SMI_VERSION": "v1alpha4",
        "SLUICE_ANALYSIS_RUN_HISTORY": "0",
        "SLUICE_PEERING_LIFETIME": "20",
    }
    s = from_env(env)
    assert s.namespaces == ("shop", "web") and not s.clusterwide
    assert (s.metrics_port, s.liveness_port) == (9100, None)
    assert s.log_format == "json" and s.priority == 7 and s.standalone
    assert s.prometheus_url == "http://prometheus.monitoring:9090"
    assert (s.istio_version, s.smi_version) == ("v1", "v1alpha4")
    assert s.analysis_run_history == 0
    assert s.peering_lifetime == 20


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", False), ("0", False), ("false", False), ("No", False), ("1", True), ("YES", True)],
)
def test_standalone_booleans(value: str, expected: bool) -> None:
    assert from_env({"SLUICE_STANDALONE": value}).standalone is expected


def test_empty_values_mean_the_default() -> None:
    s = from_env({"SLUICE_METRICS_PORT": "", "SLUICE_PROMETHEUS_URL": "", "SLUICE_NAMESPACES": ""})
    assert s == Settings()


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"SLUICE_METRICS_PORT": "eighty"}, "SLUICE_METRICS_PORT='eighty'"),
        ({"SLUICE_LIVENESS_PORT": "8.5"}, "SLUICE_LIVENESS_PORT='8.5'"),
        ({"SLUICE_PRIORITY": "high"}, "SLUICE_PRIORITY='high'"),
        ({"SLUICE_METRICS_PORT": "70000"}, "SLUICE_METRICS_PORT"),
        ({"SLUICE_LIVENESS_PORT": "0"}, "SLUICE_LIVENESS_PORT"),
        ({"SLUICE_LOG_FORMAT": "xml"}, "SLUICE_LOG_FORMAT='xml'"),
        ({"SLUICE_STANDALONE": "maybe"}, "SLUICE_STANDALONE='maybe'"),
        ({"SLUICE_ISTIO_VERSION": "v1alpha3"}, "SLUICE_ISTIO_VERSION='v1alpha3'"),
        ({"SLUICE_SMI_VERSION": "v1alpha1"}, "SLUICE_SMI_VERSION='v1alpha1'"),
        ({"SLUICE_ANALYSIS_RUN_HISTORY": "-1"}, "SLUICE_ANALYSIS_RUN_HISTORY=-1: expected an"),
        ({"SLUICE_ANALYSIS_RUN_HISTORY": "off"}, "SLUICE_ANALYSIS_RUN_HISTORY='off'"),
        ({"SLUICE_PEERING_LIFETIME": "10"}, "SLUICE_PEERING_LIFETIME=10: expected whole seconds"),
        ({"SLUICE_PEERING_LIFETIME": "1.5"}, "SLUICE_PEERING_LIFETIME='1.5'"),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names.replace(".", r"\.")):
        from_env(env)


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"metrics_port": -1}, "--metrics-port"),
        ({"liveness_port": 65536}, "--liveness-port"),
        ({"metrics_port": True}, "--metrics-port"),
        ({"log_format": "yaml"}, "--log-format"),
        ({"tick_seconds": 0}, "tick_seconds"),
        ({"analysis_run_history": -3}, "--analysis-run-history"),
        ({"analysis_run_history": True}, "--analysis-run-history"),
        ({"min_requeue_seconds": 5.0, "max_requeue_seconds": 1.0}, "min_requeue_seconds"),
        ({"router_retry_max_seconds": 0}, "router_retry_max_seconds"),
        ({"router_retry_max_seconds": 0.5}, "router_retry_max_seconds=0.5"),
        ({"peering_lifetime": 14}, "SLUICE_PEERING_LIFETIME=14: expected whole seconds"),
        ({"peering_lifetime": 30.0}, "--peering-lifetime/SLUICE_PEERING_LIFETIME=30.0"),
    ],
)
def test_bad_values_are_refused_at_construction(kwargs: dict[str, Any], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings(**kwargs)


def test_flags_override_the_environment_and_none_means_not_given() -> None:
    env = from_env({"SLUICE_METRICS_PORT": "9000", "SLUICE_NAMESPACES": "shop"})
    s = env.with_flags(metrics_port=9100, liveness_port=None, namespaces=["web", "api"])
    assert s.metrics_port == 9100
    assert s.liveness_port == 8081  # not given: the environment's (here the default)
    assert s.namespaces == ("web", "api")
    with pytest.raises(SettingsError, match="--metrics-port"):
        env.with_flags(metrics_port=0)


def test_build_settings_flags_over_env_and_all_namespaces_clears(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLUICE_NAMESPACES", "shop,web")
    monkeypatch.setenv("SLUICE_LOG_FORMAT", "json")
    monkeypatch.setenv("SLUICE_PRIORITY", "3")
    s = run_cli.build_settings(log_format="text", priority=None)
    assert s.namespaces == ("shop", "web") and s.log_format == "text" and s.priority == 3
    assert run_cli.build_settings(all_namespaces=True).clusterwide


def test_ports_that_clash_only_after_flags_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_METRICS_PORT", "8081")  # clashes with the default liveness port
    with pytest.raises(SettingsError, match="both 8081"):
        run_cli.build_settings()
    # ... which a flag can resolve: the check runs once flags are applied
    assert run_cli.build_settings(liveness_port=9001).liveness_port == 9001


class Started(list[Settings]):
    """The settings each operator start got; ``options`` its other keyword arguments."""

    options: list[dict[str, Any]]


@pytest.fixture()
def started(monkeypatch: pytest.MonkeyPatch) -> Started:
    """``sluice run`` with the operator and logging set-up replaced: what would it start with?"""
    seen = Started()
    seen.options = []

    async def fake_operator(settings: Settings, **options: Any) -> None:
        seen.append(settings)
        seen.options.append(options)

    monkeypatch.setattr("rollouts.operator.run", fake_operator)
    # no cluster here: the start-up check has its own tests (integration/operator/test_run_startup)
    monkeypatch.setattr("rollouts.cli.cluster_check.load_api_client", lambda: None)
    monkeypatch.setattr("rollouts.cli.cluster_check.reach_cluster", lambda api: None)
    monkeypatch.setattr(run_cli, "configure_logging", lambda fmt, verbose: None)
    for key in ("SLUICE_NAMESPACES", "SLUICE_METRICS_PORT", "SLUICE_LIVENESS_PORT"):
        monkeypatch.delenv(key, raising=False)
    return seen


def test_sluice_run_passes_flags_over_env_to_the_operator(
    started: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_METRICS_PORT", "9000")
    monkeypatch.setenv("SLUICE_ANALYSIS_RUN_HISTORY", "2")
    args = ["run", "-n", "shop", "--namespace", "web", "--metrics-port", "9100"]
    args += ["--log-format", "json", "--priority", "5", "--standalone"]
    args += ["--analysis-run-history", "10", "--peering-lifetime", "15"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    [s] = started
    assert s.namespaces == ("shop", "web") and s.metrics_port == 9100
    assert s.log_format == "json" and s.priority == 5 and s.standalone
    assert s.analysis_run_history == 10 and s.peering_lifetime == 15


def test_sluice_run_lets_kopf_end_a_stop_that_cannot_finish(started: Started) -> None:
    """A controller process, unlike an operator inside another program: kopf kills it when a
    stop it did not ask for has not finished within the grace (see test_kopf_settings)."""
    result = CliRunner().invoke(cli, ["run", "--standalone"])
    assert result.exit_code == 0, result.output
    [options] = started.options
    assert options["exit_grace_seconds"] == EXIT_GRACE_SECONDS


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["run", "-n", "shop", "-A"], {}, "exclude each other"),
        (["run"], {"SLUICE_METRICS_PORT": "nope"}, "SLUICE_METRICS_PORT='nope'"),
        (["run", "--metrics-port", "99999"], {}, "--metrics-port"),
        (["run", "--metrics-port", "9000", "--liveness-port", "9000"], {}, "both 9000"),
        (["run", "--log-format", "xml"], {}, "xml"),
        (["run", "--analysis-run-history", "-1"], {}, "--analysis-run-history"),
        (["run"], {"SLUICE_ANALYSIS_RUN_HISTORY": "-2"}, "SLUICE_ANALYSIS_RUN_HISTORY=-2"),
    ],
)
def test_sluice_run_refuses_bad_settings_before_starting(
    started: list[Settings],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output  # click's usage error
    assert message in result.output
    assert started == []


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_routine_success_lines_are_filtered_and_the_rest_kept() -> None:
    quiet = run_cli.RoutineFilter()
    assert not quiet.filter(record("Activity 'rollouts' succeeded."))
    assert quiet.filter(record("Handler 'build_registry.<locals>.changed' succeeded."))
    assert quiet.filter(record("Activity 'rollouts' failed with an exception. Will retry.", 40))
    assert quiet.filter(record("rollout ns/web is invalid: [...]", logging.WARNING))


@pytest.fixture()
def root_logging() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.parametrize(("verbose", "filtered"), [(False, True), (True, False)])
def test_configure_logging_quiets_routine_lines_unless_verbose(
    root_logging: logging.Logger, verbose: bool, filtered: bool
) -> None:
    before = list(root_logging.handlers)
    run_cli.configure_logging("json", verbose)
    added = [h for h in root_logging.handlers if h not in before]
    assert added, "kopf installs its handler on the root logger"
    assert all(
        any(isinstance(f, run_cli.RoutineFilter) for f in h.filters) is filtered for h in added
    )
