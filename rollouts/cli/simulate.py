"""``sluice simulate``: try a rollout policy before trusting production to it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from rollouts.api.rollout import Rollout
from rollouts.api.validation import InvalidSpec, parse_rollout
from rollouts.engine.plan import AnalysisPhase
from rollouts.simulate import SimLine, SimOptions, Simulation, SimulationError

VERDICTS: dict[str, AnalysisPhase] = {
    "pass": "Successful",
    "fail": "Failed",
    "inconclusive": "Inconclusive",
    "error": "Error",
}


def load_rollout_doc(path: Path) -> dict[str, Any]:
    """The first ``kind: Rollout`` document of a (multi-document) YAML file."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        raise click.ClickException(f"{path}: not valid YAML: {e}") from None
    except OSError as e:
        raise click.ClickException(f"{path}: {e.strerror}") from None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Rollout":
            return doc
    raise click.ClickException(f"{path}: no document of kind Rollout")


def load_rollout(path: Path) -> Rollout:
    try:
        return parse_rollout(load_rollout_doc(path))
    except InvalidSpec as e:
        raise click.ClickException(
            f"{path}: invalid Rollout:\n  " + "\n  ".join(e.problems)
        ) from None


def _clock(t: float) -> str:
    t = int(t)
    return f"{t // 3600:d}:{t % 3600 // 60:02d}:{t % 60:02d}"


def _print_line(line: SimLine) -> None:
    st = line.status
    if line.event is not None:
        e = line.event
        mark = "!" if e.type == "Warning" else "·"
        click.echo(f"  {_clock(line.t)}   {mark} {e.reason}: {e.message}")
        return
    slots = "  ".join(
        f"{s.name}:{s.role or '-'}@{s.revision or '-'} {s.ready_replicas}/{s.replicas}"
        for s in st.slots
    )
    click.echo(
        f"  {_clock(line.t)} {st.phase or '-':<11} step {st.step or '-':<7} "
        f"canary {st.weights.canary:>3}%  [{slots}]  {st.message}"
    )


@click.command("simulate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument(
    "update_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--set-image", help="Roll out this image (first container) instead of a template change."
)
@click.option(
    "--abort-at", type=click.IntRange(min=1), help="Request an abort when step N (1-based) starts."
)
@click.option(
    "--promote", is_flag=True, help="Answer every pause that waits for a person with a promote."
)
@click.option(
    "--promote-full", is_flag=True, help="Request promote-full as soon as the rollout starts."
)
@click.option(
    "--analysis",
    "verdict",
    type=click.Choice(sorted(VERDICTS)),
    default="pass",
    show_default=True,
    help="Scripted verdict of every analysis.",
)
@click.option(
    "--fail-template", multiple=True, help="Analyses using this template fail (repeatable)."
)
@click.option(
    "--analysis-seconds",
    type=float,
    default=60.0,
    show_default=True,
    help="Simulated time an analysis takes to reach its verdict.",
)
@click.option(
    "--ready-delay",
    type=float,
    default=10.0,
    show_default=True,
    help="Simulated seconds for a new pod to become ready.",
)
@click.option("--quiet", is_flag=True, help="Print only the summary.")
def simulate(
    file: Path,
    update_file: Path | None,
    set_image: str | None,
    abort_at: int | None,
    promote: bool,
    promote_full: bool,
    verdict: str,
    fail_template: tuple[str, ...],
    analysis_seconds: float,
    ready_delay: float,
    quiet: bool,
) -> None:
    """Run FILE's Rollout through Sluice's engine on a simulated cluster and clock.

    FILE's revision is deployed as stable first; then UPDATE_FILE (or --set-image, or by default a
    template change) is rolled out step by step. No cluster is needed.
    """
    rollout = load_rollout(file)
    update = None
    if update_file is not None:
        load_rollout(update_file)  # validate first, so errors name the update file
        update = load_rollout_doc(update_file)
    outcomes: dict[str, AnalysisPhase] = {"*": VERDICTS[verdict]}
    outcomes.update({t: "Failed" for t in fail_template})
    opts = SimOptions(
        set_image=set_image,
        update=update,
        abort_at=abort_at,
        promote=promote,
        promote_full=promote_full,
        analysis=outcomes,
        analysis_seconds=analysis_seconds,
        ready_delay=ready_delay,
    )
    strategy = "canary" if rollout.canary is not None else "blue-green"
    click.echo(
        f"Simulating {strategy} Rollout {rollout.metadata.namespace}/{rollout.metadata.name} "
        f"from {file}"
    )
    sim = Simulation(rollout, opts)
    try:
        result = sim.run(None if quiet else _print_line)
    except SimulationError as e:
        raise click.ClickException(str(e)) from None
    st = result.rollout.status
    assert st is not None
    click.echo("")
    click.echo(f"Result: {st.phase} after {_clock(result.seconds)} simulated ({result.reason})")
    click.echo(f"  stable revision {st.stable_revision}, canary weight {st.weights.canary}%")
    if st.abort is not None:
        click.echo(f"  aborted: {st.abort.reason}: {st.abort.message}")
    for h in st.history:
        click.echo(f"  history: {h.revision} {h.outcome} {h.message}")
    if st.phase not in ("Healthy",):
        sys.exit(1 if st.phase == "Degraded" else 2)
