"""``sluice simulate`` refuses input that cannot mean what it says, in one line, before simulating;
and warns about input that is legal but probably not meant."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from rollouts.cli.main import cli

EXAMPLES = Path(__file__).parents[4] / "deploy" / "examples"
NO_MESH = EXAMPLES / "canary-no-mesh.yaml"  # 4 steps, image ghcr.io/example/web:1.4.0
BLUE_GREEN = EXAMPLES / "bluegreen.yaml"


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["simulate", *map(str, args)])
    assert "Traceback" not in result.output, result.output
    return result


def one_error(result: Result) -> str:
    assert result.exit_code != 0, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert "Simulating" not in result.output  # refused before anything ran
    return errors[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--abort-at", "99"],
            "Error: --abort-at 99: the Rollout has 4 steps (give 1 to 4)",
        ),
        (["--set-image", ""], "Error: --set-image: the image is empty"),
        (["--set-image", "  "], "Error: --set-image: the image is empty"),
        (
            ["--set-image", "ghcr.io/example/web:1.4.0"],
            "Error: --set-image ghcr.io/example/web:1.4.0: that is already the image of the first "
            "container; nothing would roll out",
        ),
    ],
)
def test_meaningless_options_are_one_line(args: list[str], expected: str) -> None:
    assert one_error(run(NO_MESH, *args)) == expected


def test_negative_delays_are_refused() -> None:
    for option in ("--ready-delay", "--analysis-seconds"):
        r = run(NO_MESH, option, "-5")
        assert r.exit_code == 2, r.output
        assert f"Invalid value for '{option}': -5.0 is not in the range x>=0." in r.output


def test_abort_at_the_last_step_is_accepted() -> None:
    r = run(NO_MESH, "--abort-at", "4")
    assert r.exit_code == 1 and "AbortedByUser" in r.output, r.output


def test_blue_green_has_no_steps_to_abort_at() -> None:
    assert one_error(run(BLUE_GREEN, "--abort-at", "2")) == (
        "Error: --abort-at 2: a blue-green Rollout has no steps "
        "(--abort-at 1 aborts once the preview is up)"
    )
    assert run(BLUE_GREEN, "--abort-at", "1").exit_code == 1


def test_broken_yaml_is_one_file_line_line_as_in_lint(tmp_path: Path) -> None:
    text = NO_MESH.read_text().replace("        - setWeight: 60", "            - setWeight: 60")
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    line = one_error(run(broken))
    lint = CliRunner().invoke(cli, ["lint", str(broken)])
    assert lint.exit_code == 1
    assert line == f"Error: {lint.output.strip()}"
    assert line.startswith(f"Error: {broken}:") and ": not valid YAML: " in line
    assert len(run(broken).output.splitlines()) == 1


def no_steps(tmp_path: Path) -> Path:
    docs = list(yaml.safe_load_all(NO_MESH.read_text()))
    docs[0]["spec"]["strategy"]["canary"]["steps"] = []
    path = tmp_path / "nosteps.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_a_rollout_with_no_steps_is_a_warning(tmp_path: Path) -> None:
    r = run(no_steps(tmp_path))
    assert r.exit_code == 0 and "Result: Healthy" in r.output, r.output
    assert r.output.count("Warning: spec.strategy.canary.steps: no steps:") == 1
    assert "--abort-at 1: the Rollout has 0 steps (nothing to abort at)" in one_error(
        run(no_steps(tmp_path), "--abort-at", "1")
    )


def test_scripted_analysis_says_so_and_a_scenario_without_analysis_warns() -> None:
    scripted = run(EXAMPLES / "canary-istio.yaml")
    assert "Analysis: scripted, not measured: every analysis Successful after 60s" in (
        scripted.output
    )
    assert "Analysis: scripted" not in run(NO_MESH).output  # nothing to script
    nothing = run(NO_MESH, "--scenario", "healthy")
    assert nothing.exit_code == 0
    assert (
        "Warning: --scenario healthy: the Rollout runs no analysis, so the simulated traffic "
        "judges nothing" in nothing.output
    )


def test_templates_the_rollout_names_but_nobody_gave_are_a_warning() -> None:
    r = run(EXAMPLES / "canary-istio.yaml", "--scenario", "healthy", "--quiet")
    assert r.exit_code == 1
    for name in ("error-rate", "latency"):
        assert (
            f"Warning: AnalysisTemplate {name!r} is not in FILE or --templates: analyses using "
            "it will fail (give --templates DIR)" in r.output
        )


def test_blue_green_shows_preview_and_active_not_a_canary_weight() -> None:
    r = run(BLUE_GREEN)
    assert r.exit_code == 0
    status = [line for line in r.output.splitlines() if "[a:" in line]
    assert status and not [line for line in status if "canary" in line], status
    assert any(" preview " in line for line in status)
    assert "stable (active) revision" in r.output and "canary weight" not in r.output
