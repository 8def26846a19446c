"""``sluice simulate --plot``: the PNG is written whole (or not at all), and the figure has the
panels a reader needs: traffic, each metric's canary and stable arms, the e-value against its
threshold, and the decision lines (fixed seeds: the scenarios are deterministic)."""

from __future__ import annotations

import itertools
import math
import struct
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from rollouts.cli.main import cli
from rollouts.cli.simulate import load_rollout, load_templates
from rollouts.simulator.plot import PANEL_TRAFFIC, build_figure, moment_label, write_png
from rollouts.simulator.simulation import SimOptions, Simulation
from rollouts.simulator.timeline import DecisionMark, Timeline, TimelineRecorder
from simulations.simulated_provider import SCENARIOS

EXAMPLES = Path(__file__).parents[4] / "deploy" / "examples"
CANARY = EXAMPLES / "canary-analysis.yaml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def record(path: Path, scenario: str | None = None, *templates: Path) -> Timeline:
    opts = SimOptions(
        scenario=SCENARIOS[scenario] if scenario else None,
        templates=tuple(load_templates([path, *templates])) if scenario else (),
    )
    sim = Simulation(load_rollout(path), opts)
    recorder = TimelineRecorder(sim, scenario)
    return recorder.timeline(sim.run(recorder.on_line))


@pytest.fixture(scope="module")
def regression() -> Timeline:
    return record(CANARY, "error-regression")


@pytest.fixture(scope="module")
def healthy() -> Timeline:
    return record(CANARY, "healthy")


def panels(fig: Figure) -> dict[str, Axes]:
    """The titled panels by title (the decision strip above them has none)."""
    return {ax.get_title(loc="left"): ax for ax in fig.axes if ax.get_title(loc="left")}


def labelled(ax: Axes, label: str) -> Line2D:
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return line


def decision_lines(ax: Axes, kind: str) -> list[Line2D]:
    return [ln for ln in ax.get_lines() if ln.get_gid() == f"decision:{kind}"]


def finite(line: Line2D) -> list[float]:
    ys = np.asarray(line.get_ydata(), dtype=np.float64)
    return [float(y) for y in ys if math.isfinite(y)]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    length, chunk = struct.unpack(">I4s", data[8:16])
    assert chunk == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# ---------------------------------------------------------------------------------- the CLI


def test_cli_writes_a_valid_png_and_says_where(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    result = CliRunner().invoke(
        cli,
        ["simulate", str(CANARY), "--scenario", "error-regression", "--quiet", "--plot", str(out)],
    )
    assert result.exit_code == 1, result.output  # Degraded, as without --plot
    assert f"plot written to {out}" in result.output
    data = out.read_bytes()
    width, height = png_size(data)
    assert width > 0 and height > 0
    pixels = matplotlib.image.imread(out)
    assert pixels.shape[:2] == (height, width)
    assert pixels.std() > 0  # something was drawn, not a blank canvas
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary file left


def test_without_matplotlib_plot_is_one_line_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    out = tmp_path / "out.png"
    result = CliRunner().invoke(cli, ["simulate", str(CANARY), "--plot", str(out)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --plot needs matplotlib: pip install 'sluice-rollouts[plots]'"
    ]
    assert not out.exists()


def test_plot_into_a_missing_directory_fails_before_simulating(tmp_path: Path) -> None:
    out = tmp_path / "nowhere" / "out.png"
    result = CliRunner().invoke(cli, ["simulate", str(CANARY), "--plot", str(out)])
    assert result.exit_code == 1
    assert "Simulating" not in result.output
    assert result.output.strip() == f"Error: --plot {out}: directory {out.parent} does not exist"


def test_a_failed_write_leaves_no_half_png(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, regression: Timeline
) -> None:
    out = tmp_path / "out.png"

    def broken(self: Figure, fname: object, **kwargs: object) -> None:
        assert hasattr(fname, "write")
        fname.write(PNG_SIGNATURE)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="No space left"):
        write_png(regression, out)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- the figure


def test_error_regression_shows_the_metric_that_aborted(regression: Timeline) -> None:
    fig = build_figure(regression)
    by_title = panels(fig)
    assert list(by_title) == [
        PANEL_TRAFFIC,
        "error-rate: canary vs stable, per window",
        "error-rate: evidence against the canary",
        "latency: canary vs stable, per window",
        "latency: evidence against the canary",
    ]
    errors = by_title["error-rate: canary vs stable, per window"]
    canary, stable = finite(labelled(errors, "canary")), finite(labelled(errors, "stable"))
    assert canary and stable
    assert canary[-1] > 2 * stable[-1]  # the scenario's errors ×5, in percent per window
    assert "errors per request (%)" in errors.get_ylabel()

    evidence = by_title["error-rate: evidence against the canary"]
    assert evidence.get_yscale() == "log"
    # the metric's α is 0.025 (two metrics share 0.05); pods as the sampling unit (the default)
    # spend half of it on the pod draw, so the test's own bound is 1/0.0125
    threshold = labelled(evidence, "abort at 1/α = 80")
    (bound,) = set(threshold.get_ydata())  # type: ignore[arg-type]
    assert bound == pytest.approx(80.0)
    assert max(finite(labelled(evidence, "e-value"))) >= 80

    (abort,) = [d for d in regression.decisions if d.kind == "abort"]
    assert abort.metric == "error-rate" and abort.label == "aborted: error-rate failed"
    for ax in by_title.values():  # the abort is marked on every panel, at its time
        (line,) = decision_lines(ax, "abort")
        assert set(line.get_xdata()) == {abort.t / 60}  # type: ignore[arg-type]
        assert not decision_lines(ax, "promote")
    texts = [t.get_text().strip() for ax in fig.axes for t in ax.texts]
    assert "aborted: error-rate failed" in texts
    assert "error-regression" in fig.get_suptitle() and "Degraded" in fig.get_suptitle()


def test_healthy_shows_promotion_and_evidence_below_the_threshold(healthy: Timeline) -> None:
    fig = build_figure(healthy)
    by_title = panels(fig)
    assert "latency: canary vs stable, per window" in by_title
    for name in ("error-rate", "latency"):
        evidence = by_title[f"{name}: evidence against the canary"]
        assert max(finite(labelled(evidence, "e-value"))) < 40
    for ax in by_title.values():
        assert len(decision_lines(ax, "promote")) == 1
        assert not decision_lines(ax, "abort")
        assert len(decision_lines(ax, "step")) == 4  # four steps completed
    traffic = by_title[PANEL_TRAFFIC]
    assert finite(labelled(traffic, "actual"))[-1] == 100  # the new revision serves everything
    assert {20, 50, 100} <= set(finite(labelled(traffic, "desired (step's weight)")))
    assert "Healthy: promoted" in fig.get_suptitle()


def test_step_marks_are_numbered_from_status_not_from_event_text(healthy: Timeline) -> None:
    steps = [d for d in healthy.decisions if d.kind == "step"]
    assert [d.steps for d in steps] == [(1,), (2,), (3,), (4,)]
    assert [d.label for d in steps] == [f"step {n} done" for n in (1, 2, 3, 4)]


def test_marks_of_one_moment_share_a_label() -> None:
    marks = [
        DecisionMark(60.0, "step", "step 3 done", steps=(3,)),
        DecisionMark(60.0, "step", "step 4 done", steps=(4,)),
        DecisionMark(60.0, "promote", "promoted"),
    ]
    assert moment_label(marks) == "steps 3, 4 done, promoted"
    assert moment_label(marks[1:]) == "step 4 done, promoted"
    skipped = DecisionMark(60.0, "step", "step 2 skipped")
    assert moment_label([skipped, *marks[:1]]) == "step 2 skipped, step 3 done"


@pytest.fixture(scope="module")
def long_healthy(tmp_path_factory: pytest.TempPathFactory) -> Timeline:
    """The healthy example with requests (not pods) as the sampling unit: a narrower tolerance,
    so the first analysis needs more than the ten windows status keeps to pass."""
    path = tmp_path_factory.mktemp("long") / "canary-analysis.yaml"
    text = CANARY.read_text()
    marker = "        tolerance: 1.25               # 25% more errors than stable is still fine\n"
    assert marker in text
    path.write_text(text.replace(marker, marker + "        podModel: false\n"))
    return record(path, "healthy")


def test_every_measurement_is_recorded_not_only_the_last_ten(long_healthy: Timeline) -> None:
    healthy = long_healthy
    errors = healthy.metrics["error-rate"]
    step1 = [p for p in errors.arms if p.run.endswith("step2")]  # the first analysis: step 2
    assert len(step1) > 10  # status keeps 10; the recorder saw each one as it came
    gaps = {b.t - a.t for a, b in itertools.pairwise(step1)}
    assert gaps == {30.0}  # one per 30 s interval, none lost or repeated
    assert all(p.canary is not None and 0 < p.canary < 0.05 for p in errors.arms)
    latency = healthy.metrics["latency"]
    assert latency.kind == "histogram" and latency.quantity.startswith("requests slower than")
    assert len(latency.arms) == len(errors.arms)


def test_scripted_analysis_draws_only_traffic_and_decisions(tmp_path: Path) -> None:
    timeline = record(CANARY)
    assert timeline.metrics == {} and timeline.scenario is None
    fig = build_figure(timeline)
    assert list(panels(fig)) == [PANEL_TRAFFIC]
    traffic = panels(fig)[PANEL_TRAFFIC]
    assert decision_lines(traffic, "promote") and decision_lines(traffic, "start")
    assert [s.label for s in timeline.steps][:4] == [
        "1. setWeight 20%",
        "2. analysis request-errors,request-latency",
        "3. setWeight 50%",
        "4. analysis request-errors,request-latency",
    ]
    assert "scripted analysis" in fig.get_suptitle()
    out = tmp_path / "scripted.png"
    write_png(timeline, out)
    assert png_size(out.read_bytes()) > (0, 0)


def test_blue_green_traffic_switches_at_promotion_after_the_pause() -> None:
    timeline = record(EXAMPLES / "bluegreen.yaml")
    (promoted,) = [d for d in timeline.decisions if d.kind == "promote"]
    assert [share for t, share in timeline.actual if t < promoted.t] == [0.0]
    assert timeline.actual[-1] == (promoted.t, 100.0)
    (pause,) = timeline.pauses
    assert pause.label == "waiting to switch" and pause.end == promoted.t
    fig = build_figure(timeline)
    assert list(panels(fig)) == [PANEL_TRAFFIC]
    assert fig.get_suptitle().startswith("blue-green Rollout demo/api")


def test_a_threshold_metric_is_drawn_against_its_bound(tmp_path: Path) -> None:
    rollout = tmp_path / "rollout.yaml"
    text = CANARY.read_text().replace("templateName: request-latency", "templateName: http-latency")
    rollout.write_text(text)
    timeline = record(rollout, "healthy", EXAMPLES / "templates" / "http-latency.yaml")
    p99 = timeline.metrics["p99"]
    assert p99.judgement == "threshold" and p99.maximum == 0.5 and p99.dry_run
    assert p99.values and all(p.value is not None and p.value < 0.5 for p in p99.values)
    ax = panels(build_figure(timeline))[
        "p99: measured value vs threshold (dry run: reported, never aborts)"
    ]
    assert set(labelled(ax, "max 0.5").get_ydata()) == {0.5}  # type: ignore[arg-type]
    assert finite(labelled(ax, "canary")) == pytest.approx(
        [v for p in p99.values if p.value is not None for v in (p.value, p.value)]
    )
