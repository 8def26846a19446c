"""Every example Rollout simulates to its expected end, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from rollouts.cli.main import cli
from rollouts.cli.simulate import load_rollout
from rollouts.simulator.simulation import SimOptions, Simulation

EXAMPLES = Path(__file__).parents[4] / "deploy" / "examples"
ROLLOUT_EXAMPLES = sorted(
    p.name for p in EXAMPLES.glob("*.yaml") if "kind: Rollout" in p.read_text()
)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["simulate", *args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def test_there_are_examples_of_each_strategy() -> None:
    assert {"canary-istio.yaml", "canary-no-mesh.yaml", "bluegreen.yaml"} <= set(ROLLOUT_EXAMPLES)


@pytest.mark.parametrize("example", ROLLOUT_EXAMPLES)
def test_example_rolls_out_to_healthy(example: str) -> None:
    code, out = run(str(EXAMPLES / example), "--promote")
    assert code == 0, out
    assert "Result: Healthy" in out
    assert "RolloutPromoted" in out


@pytest.mark.parametrize("example", [e for e in ROLLOUT_EXAMPLES if "bluegreen" not in e])
def test_canary_example_shows_each_step(example: str) -> None:
    rollout = load_rollout(EXAMPLES / example)
    assert rollout.canary is not None
    code, out = run(str(EXAMPLES / example), "--promote")
    assert code == 0
    for i, step in enumerate(rollout.canary.steps, start=1):
        head = f"step {i}/{len(rollout.canary.steps)} ({step.describe()})"
        # a pause that waits for a person ends by --promote's request, not by itself
        waits = step.pause is not None and step.pause.duration is None
        assert f"{head} done" in out or (waits and f"{head} promoted by request" in out), head


@pytest.mark.parametrize("example", [e for e in ROLLOUT_EXAMPLES if "bluegreen" not in e])
def test_abort_at_step_two_ends_degraded_with_no_canary_traffic(example: str) -> None:
    code, out = run(str(EXAMPLES / example), "--abort-at", "2")
    assert code == 1
    assert "Result: Degraded" in out and "canary weight 0%" in out
    assert "AbortedByUser" in out


def test_failing_analysis_aborts_the_istio_example() -> None:
    code, out = run(str(EXAMPLES / "canary-istio.yaml"), "--fail-template", "latency")
    assert code == 1
    assert "AnalysisFailed" in out and "template latency" in out


def test_set_image_rolls_out_that_image() -> None:
    sim = Simulation(load_rollout(EXAMPLES / "canary-no-mesh.yaml"), SimOptions(set_image="web:9"))
    result = sim.run()
    assert result.rollout.status is not None and result.rollout.status.phase == "Healthy"
    stable = sim.cluster.slots[("demo", "web")][result.rollout.status.stable_slot or "a"]
    assert stable.template["spec"]["containers"][0]["image"] == "web:9"


def test_second_file_is_rolled_out(tmp_path: Path) -> None:
    text = (EXAMPLES / "canary-no-mesh.yaml").read_text().replace("web:1.4.0", "web:1.5.0")
    update = tmp_path / "update.yaml"
    update.write_text(text)
    code, out = run(str(EXAMPLES / "canary-no-mesh.yaml"), str(update))
    assert code == 0 and "Result: Healthy" in out


def test_indefinite_pause_without_promote_stops_paused() -> None:
    code, out = run(str(EXAMPLES / "canary-istio.yaml"), "--analysis", "inconclusive")
    assert code == 2
    assert "Result: Paused" in out and "--promote" in out


def test_simulated_clock_fast_forwards_a_long_rollout() -> None:
    """A 13-minute rollout is fast-forwarded: the simulated clock, not the wall clock, moves."""
    sim = Simulation(load_rollout(EXAMPLES / "canary-istio.yaml"))
    result = sim.run()
    assert result.seconds > 12 * 60
    assert result.rollout.status is not None and result.rollout.status.phase == "Healthy"


def test_set_image_without_containers_is_one_clear_error(tmp_path: Path) -> None:
    text = (EXAMPLES / "bluegreen.yaml").read_text().split("---")[0]
    text = text.replace(
        "      containers:\n        - name: api\n          image: ghcr.io/example/api:3.2.0\n",
        "      containers: []\n",
    )
    f = tmp_path / "r.yaml"
    f.write_text(text)
    code, out = run(str(f), "--set-image", "x:1")
    assert code == 1 and "Error: --set-image: spec.template.spec.containers is empty" in out
