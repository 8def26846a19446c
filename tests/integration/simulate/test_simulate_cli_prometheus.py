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
