"""The controller's settings reach kopf: watch timeouts (so a silently dead watch is replaced),
request timeout, peering, and kopf's state under sluice.dev."""

from __future__ import annotations

import json
import logging
from typing import Any

import kopf
import kubernetes
import pytest

from rollouts.operator import EXIT_GRACE_SECONDS, FINALIZER, configure_kopf
from rollouts.settings import Settings


def test_watch_and_request_timeouts_and_peering_reach_kopf() -> None:
    ours = Settings(
        watch_server_timeout=120,
        watch_client_timeout=150,
        request_timeout=7.0,
        priority=42,
        standalone=False,
        peering_lifetime=20,
        metrics_port=None,
        liveness_port=None,
    )
    theirs = kopf.OperatorSettings()
    assert theirs.peering.lifetime == Settings().peering_lifetime == 60  # kopf's default, kept
    configure_kopf(theirs, ours)
    assert theirs.watching.server_timeout == 120
    assert theirs.watching.client_timeout == 150
    assert theirs.watching.connect_timeout is not None
    assert theirs.networking.request_timeout == 7.0
    assert theirs.peering.priority == 42 and theirs.peering.name == "sluice.dev"
    assert theirs.peering.lifetime == 20
    assert theirs.peering.standalone is False and theirs.peering.clusterwide is True
    assert theirs.persistence.finalizer == FINALIZER == "sluice.dev/finalizer"
    assert theirs.scanning.disabled is False


def test_namespaced_mode_disables_scanning() -> None:
    theirs = kopf.OperatorSettings()
    configure_kopf(theirs, Settings(namespaces=("shop",), metrics_port=None, liveness_port=None))
    assert theirs.peering.clusterwide is False and theirs.scanning.disabled is True


def test_a_deletion_during_a_tick_is_not_held_for_a_minute() -> None:
    """kopf waits for a running timer to exit before it removes the finalizer, re-checking every
    ``cancellation_polling`` seconds (60 by default): the emulator test of deletion failed
    whenever the delete landed mid-tick."""
    theirs = kopf.OperatorSettings()
    assert theirs.background.cancellation_polling == 60  # kopf's default, which this overrides
    configure_kopf(theirs, Settings(metrics_port=None, liveness_port=None))
    assert theirs.background.cancellation_polling <= 2


def test_workers_timeouts_and_the_shards_peering_reach_kopf() -> None:
    from rollouts.sharding import Shard

    ours = Settings(
        workers=7,
        connect_timeout=2.5,
        shard=Shard(1, 3),
        standalone=False,
        metrics_port=None,
        liveness_port=None,
    )
    theirs = kopf.OperatorSettings()
    configure_kopf(theirs, ours)
    assert theirs.execution.max_workers == 7
    assert theirs.networking.connect_timeout == 2.5 == theirs.watching.connect_timeout
    assert theirs.peering.name == "sluice.dev-shard-1-of-3"


def test_the_controllers_client_pools_as_many_connections_as_workers() -> None:
    """Ten connections for twenty workers made urllib3 warn "pool is full" and threads wait."""
    import kubernetes

    from rollouts.cluster.kube import bound_api_client

    config = kubernetes.client.Configuration()
    config.host = "http://127.0.0.1:1"
    theirs = kubernetes.client.ApiClient(config)
    ours = bound_api_client(theirs, pool_size=24, timeout=(1.0, 2.0))
    assert ours.rest_client.pool_manager.connection_pool_kw["maxsize"] == 24
    assert ours.configuration.retries is False, "one retry policy: urllib3 adds none"
    assert theirs.configuration.connection_pool_maxsize != 24, "the caller's client is untouched"


def test_the_controllers_client_reads_the_proxy_environment_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token refresh hook assigns ``host`` before every request; the client recomputed the
    proxy from os.environ on each assignment (issue 13: per request, in a burst of thousands)."""
    import kubernetes
    import kubernetes.client.configuration as configuration

    from rollouts.cluster.kube import bound_api_client

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    config = kubernetes.client.Configuration()
    config.host = "https://10.0.0.1:443"
    config.api_key["BearerToken"] = "token"

    def refresh(c: kubernetes.client.Configuration) -> None:  # as kubernetes.config's hooks do
        c.host = "https://10.0.0.1:443"

    config.refresh_api_key_hook = refresh
    ours = bound_api_client(kubernetes.client.ApiClient(config), pool_size=4, timeout=(1.0, 2.0))
    reads: list[int] = []
    real = configuration.getproxies
    monkeypatch.setattr(configuration, "getproxies", lambda: reads.append(1) or real())
    for _ in range(3):
        ours.configuration.auth_settings()  # what every request does
    assert reads == []
    assert ours.configuration.proxy == "http://proxy.example:3128"


def test_kopf_keeps_no_diff_base_and_the_handlers_run_on_the_loop() -> None:
    """Issue 13's scale work: no diff-base annotation to PATCH on every Rollout change, and the
    index and event handlers are coroutines (a plain function costs a thread hand-off per
    watch event); ``deleted`` calls the API and stays in the pool."""
    import inspect

    from rollouts.operator import Controller, NoDiffBase, build_registry

    theirs = kopf.OperatorSettings()
    configure_kopf(theirs, Settings(metrics_port=None, liveness_port=None))
    assert isinstance(theirs.persistence.diffbase_storage, NoDiffBase)
    assert theirs.persistence.diffbase_storage.fetch(body={"spec": {"a": 1}}) == {}
    assert theirs.persistence.diffbase_storage.build(body={"spec": {"a": 1}}) == {}

    import kubernetes

    from rollouts.telemetry import Telemetry
    from rollouts.verdicts.scripted import ScriptedVerdicts

    settings = Settings(standalone=True, metrics_port=None, liveness_port=None)
    controller = Controller(
        kubernetes.client.ApiClient(), settings, Telemetry(), verdicts=ScriptedVerdicts(lambda: 0)
    )
    registry = build_registry(controller, settings)
    handlers = [
        *registry._indexing.get_all_handlers(),
        *registry._watching.get_all_handlers(),
        *registry._changing.get_all_handlers(),
    ]
    blocking = sorted(h.fn.__name__ for h in handlers if not inspect.iscoroutinefunction(h.fn))
    assert blocking == ["deleted"], blocking
    changing = {h.fn.__name__ for h in registry._changing.get_all_handlers()}
    assert changing == {"deleted"}  # no create/update/resume: they need a diff-base


def test_the_controller_does_not_load_scipy_stats() -> None:
    """scipy.stats alone is 50 MB of the controller's memory (issue 13's budget: 300 MB at
    1,000 Rollouts); the statistics use scipy.special."""
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, rollouts.operator; print('scipy.stats' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_a_stop_kopf_cannot_finish_ends_the_process_within_20s() -> None:
    """kopf's own last resort (SIGKILL of its process when a stop it did not ask for by its stop
    flag has not finished) comes after 20 s, not 10 minutes: a watcher that failed for good made
    kopf 1.45 wait for its workers forever, and the process stayed up doing nothing."""
    theirs = kopf.OperatorSettings()
    assert theirs.process.ultimate_exiting_timeout == 600  # kopf's default
    configure_kopf(theirs, Settings(metrics_port=None, liveness_port=None), EXIT_GRACE_SECONDS)
    assert theirs.process.ultimate_exiting_timeout == EXIT_GRACE_SECONDS == 20


def test_an_operator_inside_another_program_never_kills_its_process() -> None:
    """kopf's kill takes the whole process: armed by a cancelled in-process operator (the tests'
    harness cancels and restarts them), it killed a test worker 20 s later."""
    theirs = kopf.OperatorSettings()
    configure_kopf(theirs, Settings(metrics_port=None, liveness_port=None))
    assert theirs.process.ultimate_exiting_timeout is None


def test_the_tests_controller_processes_end_a_stop_that_cannot_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reliability suites' controller processes stand for ``sluice run`` (whose own test is
    in test_settings): kopf may kill them as it would a pod's process."""
    from tests.support import controller_process

    options: list[dict[str, Any]] = []

    async def fake_operator(settings: Settings, **kw: Any) -> None:
        options.append(kw)

    monkeypatch.setattr("rollouts.operator.run", fake_operator)
    monkeypatch.setattr("rollouts.operator.default_api_client", kubernetes.client.ApiClient)
    peering = logging.getLogger("sluice.peering")  # main() sets it up for its own process
    handlers, level = list(peering.handlers), peering.level
    try:
        controller_process.main([json.dumps({"standalone": True, "metrics_port": None})])
    finally:
        peering.handlers[:] = handlers
        peering.setLevel(level)
    [kw] = options
    assert kw["exit_grace_seconds"] == EXIT_GRACE_SECONDS
