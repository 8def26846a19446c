"""``sluice simulate --prometheus URL`` against a real Prometheus: the example canary's analysis
steps measured through PromQL on the simulator's remote-written traffic reach the same outcomes as
on the simulated provider (error regression aborts at the first analysis step, healthy promotes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from rollouts.cli.main import cli
from tests.support.prometheus import start_prometheus

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy/examples/canary-analysis.yaml"


# Each test starts its own server: a simulation writes the example's fixed namespace and
# services, so two runs sharing one server would read each other's series.


def simulate(scenario: str, url: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["simulate", str(EXAMPLE), "--scenario", scenario, "--prometheus", url, "--quiet"]
    )
    return result.exit_code, result.output


def test_error_regression_aborts_at_the_first_analysis_step(tmp_path: Path) -> None:
    with start_prometheus(tmp_path / "p") as server:
        code, out = simulate("error-regression", server.url)
    assert code == 1, out
    assert "Result: Degraded" in out
    assert "step 2 analysis" in out and "metric 'error-rate' failed" in out


def test_healthy_promotes(tmp_path: Path) -> None:
    with start_prometheus(tmp_path / "p") as server:
        code, out = simulate("healthy", server.url)
    assert code == 0, out
    assert "Result: Healthy" in out
    assert "Promoted" in out


def test_runs_repeat_against_the_same_prometheus(tmp_path: Path) -> None:
    """A second run neither collides with the first one's samples (refused as out of order) nor
    reads them: each run writes after the newest sample the server holds."""
    with start_prometheus(tmp_path / "p") as server:
        first = simulate("error-regression", server.url)
        second = simulate("healthy", server.url)
        third = simulate("error-regression", server.url)
    assert first[0] == 1 and "metric 'error-rate' failed" in first[1], first[1]
    assert second[0] == 0 and "Result: Healthy" in second[1], second[1]
    assert third[0] == 1 and "metric 'error-rate' failed" in third[1], third[1]
    for _, out in (first, second, third):
        assert "Traceback" not in out and "out of order" not in out


def test_an_unreachable_prometheus_is_one_line() -> None:
    code, out = simulate("healthy", "http://127.0.0.1:9")  # discard port: nothing listens
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: --prometheus http://127.0.0.1:9: cannot reach "
        "http://127.0.0.1:9/api/v1/status/tsdb: [Errno 111] Connection refused"
    ]
    assert "Traceback" not in out
