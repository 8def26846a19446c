"""``sluice simulate``: try a rollout policy before trusting production to it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import click

from analysis.stats.evidence import Evidence
from rollouts.api.rollout import NOTIFICATIONS_OBJECT, NotificationSubscription, Rollout
from rollouts.api.validation import InvalidSpec, parse_rollout
from rollouts.cli.documents import NotYaml, load_all
from rollouts.cli.lint import analysis_refs, risky
from rollouts.engine.plan import AnalysisPhase
from rollouts.notifications.config import (
    NotificationConfigError,
    parse_defaults,
    subscriptions_for,
)
from rollouts.notifications.transitions import Notice
from rollouts.simulator.checks import WebAnswer
from rollouts.simulator.simulation import (
    SimLine,
    SimOptions,
    SimResult,
    Simulation,
    SimulationError,
)
from rollouts.simulator.timeline import Timeline, TimelineRecorder, chain
from simulations.simulated_provider import SCENARIOS, Scenario, load_scenario

VERDICTS: dict[str, AnalysisPhase] = {
    "pass": "Successful",
    "fail": "Failed",
    "inconclusive": "Inconclusive",
    "error": "Error",
}


TEMPLATE_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")


def load_docs(path: Path) -> list[Any]:
    """The non-empty documents of a file; a syntax error is one ``file:line`` line, as in lint."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise click.ClickException(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise click.ClickException(f"{path}: cannot read: not UTF-8 text") from None
    try:
        return [d for d in load_all(str(path), text) if d is not None]
    except NotYaml as e:
        raise click.ClickException(str(e)) from None


def load_templates(paths: list[Path]) -> list[dict[str, Any]]:
    """Every (Cluster)AnalysisTemplate document of the files (directories: their *.yaml)."""
    out: list[dict[str, Any]] = []
    for path in paths:
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
        for f in files:
            out += [
                d for d in load_docs(f) if isinstance(d, dict) and d.get("kind") in TEMPLATE_KINDS
            ]
    return out


def load_rollout_doc(path: Path) -> dict[str, Any]:
    """The first ``kind: Rollout`` document of a (multi-document) YAML file."""
    docs = load_docs(path)
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Rollout":
            return doc
    raise click.ClickException(f"{path}: no document of kind Rollout")


def load_workload(path: Path, rollout: Rollout) -> dict[str, Any] | None:
    """The Deployment a workloadRef adopts, from the same file (None when there is none)."""
    ref = rollout.spec.workload_ref
    if ref is None:
        return None
    for doc in load_docs(path):
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "Deployment"
            and (doc.get("metadata") or {}).get("name") == ref.name
        ):
            return doc
    return None


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


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _evidence_text(ev: Evidence) -> str:
    ci = "" if ev.interval is None else f" [{_num(ev.lower)}, {_num(ev.upper)}]"
    score = (
        f"e-value {_num(ev.e_value())}/{_num(ev.e_threshold())}"
        if ev.log_e_value is not None
        else f"value {_num(ev.statistic)}"
    )
    return f"estimate {_num(ev.estimate)}{ci}  {score}  {ev.events} events"


class Printer:
    """The simulation as text, each message once.

    The same words travel far in a rollout: an analysis verdict becomes the abort's message, the
    status message, the history entry and the summary. Printed at each place, one abort filled a
    screen five times; so a message already shown is referred to (``(above)``), not repeated.
    """

    def __init__(self, blue_green: bool) -> None:
        self.blue_green = blue_green
        self.shown: list[str] = []
        self.last_status_message: str | None = None

    def seen(self, message: str) -> bool:
        """Whether ``message`` (or its text after a leading ``aborted: ``) was printed already."""
        core = message.removeprefix("aborted: ")
        return bool(core) and any(core in m for m in self.shown)

    def once(self, message: str) -> str:
        """``message`` the first time; after that, nothing (the reader has it above)."""
        if not message or self.seen(message):
            return ""
        self.shown.append(message)
        return message

    def line(self, line: SimLine) -> None:
        if line.analysis is not None:
            self._analysis(line)
        elif line.event is not None:
            e = line.event
            if e.type == "Warning":  # a verdict, told once (a retry may abort the same way)
                told = self.once(e.message) or "(above)"
                click.echo(f"  {_clock(line.t)}   ! {e.reason}: {told}")
            else:  # routine ("step 1/4 done"): a retried rollout does it again, and says so
                self.shown.append(e.message)
                click.echo(f"  {_clock(line.t)}   · {e.reason}: {e.message}")
        else:
            self._status(line)

    def _status(self, line: SimLine) -> None:
        st = line.status
        slots = "  ".join(
            f"{s.name}:{s.role or '-'}@{s.revision or '-'} {s.ready_replicas}/{s.replicas}"
            for s in st.slots
        )
        # blue-green has no steps and no canary weight: the new revision is preview, then active
        where = (
            f"{st.step or '-':<13}"
            if self.blue_green
            else f"step {st.step or '-':<7} canary {st.weights.canary:>3}%"
        )
        message = ""
        if st.message != self.last_status_message:
            self.last_status_message = st.message
            # a state ("paused at a pause step") may recur; a verdict an event told is not repeated
            message = st.message if not self.seen(st.message) else st.message.split(":")[0]
        click.echo(
            f"  {_clock(line.t)} {st.phase or '-':<11} {where}  [{slots}]  {message}".rstrip()
        )

    def _analysis(self, line: SimLine) -> None:
        run = line.analysis
        assert run is not None
        click.echo(f"  {_clock(line.t)}   ~ analysis {run.name}: {run.phase}")
        for m in run.metrics:
            ev = m.evidence
            message = self.once(m.message) if m.message else ""
            click.echo(
                f"  {'':9}     {m.name:<16} {m.phase:<12} {ev.outcome.value if ev else '-':<12} "
                + (_evidence_text(ev) if ev else "estimate -  value -  0 events")
                + (" (dry run)" if m.dry_run else "")
                + (f"  {message}" if message else "")
            )

    def summary(self, result: SimResult) -> None:
        st = result.rollout.status
        assert st is not None
        click.echo("")
        click.echo(f"Result: {st.phase} after {_clock(result.seconds)} simulated ({result.reason})")
        if self.blue_green:
            click.echo(f"  stable (active) revision {st.stable_revision}")
        else:
            click.echo(
                f"  stable revision {st.stable_revision}, canary weight {st.weights.canary}%"
            )
        if st.abort is not None:
            text = f"{st.abort.reason}: {st.abort.message}"
            click.echo(f"  aborted: {self.once(text) or f'{st.abort.reason} (message above)'}")
        for run in st.analysis_runs:
            if run.metrics:
                message = self.once(run.message) if run.message else ""
                click.echo(f"  analysis {run.name}: {run.phase} {message}".rstrip())
        for h in st.history:
            click.echo(f"  history: {h.revision} {h.outcome} {self.once(h.message)}".rstrip())


def _check_plot(path: Path) -> None:
    """Before simulating: a plot needs matplotlib and a directory to land in."""
    from rollouts.simulator.plot import PlotUnavailable, require_matplotlib

    try:
        require_matplotlib()
    except PlotUnavailable as e:
        raise click.ClickException(str(e)) from None
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise click.ClickException(f"--plot {path}: directory {parent} does not exist")


def _write_plot(timeline: Timeline, path: Path) -> None:
    from rollouts.simulator.plot import PlotUnavailable, write_png

    try:
        write_png(timeline, path)
    except PlotUnavailable as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"--plot {path}: {e.strerror or e}") from None
    click.echo(f"plot written to {path}")


def _pairs(option: str, values: tuple[str, ...], parse: Callable[[str], Any]) -> list[Any]:
    out = []
    for value in values:
        url, sep, rest = value.rpartition("=")
        if not sep or not url:
            raise click.BadParameter(f"{value!r}: expected URL=VALUE", param_hint=option)
        try:
            out.append((url, parse(rest)))
        except ValueError as e:
            raise click.BadParameter(f"{value!r}: {e}", param_hint=option) from None
    return out


def _seconds(text: str) -> float:
    seconds = float(text)
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError("SECONDS must be a number >= 0")
    return seconds


def _web_answer(text: str) -> WebAnswer:
    if text not in ("pass", "fail", "error"):
        raise ValueError("expected pass, fail or error")
    return cast(WebAnswer, text)


@click.command("simulate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument(
    "update_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--set-image", help="Roll out this image (first container) instead of a template change."
)
@click.option(
    "--abort-at",
    metavar="N",
    type=click.IntRange(min=1),
    help="Request an abort when step N starts (steps count from 1; blue-green: 1 only).",
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
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Simulated time an analysis takes to reach its verdict.",
)
@click.option(
    "--ready-delay",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Simulated seconds for a new pod to become ready.",
)
@click.option(
    "--scenario",
    type=click.Choice(sorted(SCENARIOS)),
    help="Judge analyses with real AnalysisRuns on this simulated traffic (templates from FILE "
    "and --templates) instead of scripted verdicts.",
)
@click.option(
    "--scenario-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Like --scenario, with the traffic described in a YAML file.",
)
@click.option(
    "--templates",
    "template_paths",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="AnalysisTemplate files or directories (repeatable); FILE's own templates are read too.",
)
@click.option(
    "--prometheus",
    metavar="URL",
    help="With a scenario: remote-write the simulated traffic into this Prometheus and measure "
    "through PromQL (needs --web.enable-remote-write-receiver).",
)
@click.option(
    "--serve-metrics",
    metavar="HOST:PORT",
    help="With --prometheus: run on the wall clock and serve the simulated traffic on "
    "http://HOST:PORT/metrics for that Prometheus to scrape, instead of remote-writing it.",
)
@click.option(
    "--gate",
    "gate_opens",
    metavar="URL=SECONDS",
    multiple=True,
    help="The gate at URL answers HTTP 200 from simulated second SECONDS on (repeatable); a gate "
    "not given opens 60 s after it is first asked.",
)
@click.option(
    "--web",
    "web_answers",
    metavar="URL=pass|fail|error",
    multiple=True,
    help="With --scenario: the web check at URL passes, fails its threshold, or errs (repeatable); "
    "default: passes on healthy traffic, fails when the scenario has a regression.",
)
@click.option("--quiet", is_flag=True, help="Print only the summary.")
@click.option(
    "--notifications",
    "show_notifications",
    is_flag=True,
    help="Also print the notifications the run would send (every transition; a Rollout's "
    "subscriptions choose which reach which receiver on a cluster).",
)
@click.option(
    "--plot",
    "plot_path",
    metavar="PATH",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also draw the rollout as a PNG timeline: traffic to the new revision, each analysis "
    "metric for canary and stable, its e-value against the abort threshold, and every decision. "
    "Needs matplotlib (pip install 'sluice-rollouts[plots]').",
)
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
    scenario: str | None,
    scenario_file: Path | None,
    template_paths: tuple[Path, ...],
    prometheus: str | None,
    serve_metrics: str | None,
    gate_opens: tuple[str, ...],
    web_answers: tuple[str, ...],
    quiet: bool,
    show_notifications: bool,
    plot_path: Path | None,
) -> None:
    """Run FILE's Rollout through Sluice's engine on a simulated cluster and clock.

    FILE's revision is deployed as stable first; then UPDATE_FILE (or --set-image, or by default a
    template change) is rolled out step by step. No cluster is needed.

    Analyses get scripted verdicts (--analysis), or with --scenario real AnalysisRuns whose
    metrics are measured on simulated traffic; each analysis tick's evidence is printed. Steps
    are numbered from 1: "step 2/4" is the second step, the one --abort-at 2 aborts at.

    Exit codes: 0 Healthy, 1 Degraded or input that cannot be simulated, 2 stopped otherwise
    (paused for a person).

    With --plot, the run is also drawn as a timeline picture. Example:

    \b
        sluice simulate deploy/examples/canary-analysis.yaml \\
            --scenario error-regression --plot rollout.png
    """
    if plot_path is not None:
        _check_plot(plot_path)
    rollout = load_rollout(file)
    update = None
    if update_file is not None:
        load_rollout(update_file)  # validate first, so errors name the update file
        update = load_rollout_doc(update_file)
    outcomes: dict[str, AnalysisPhase] = {"*": VERDICTS[verdict]}
    outcomes.update({t: "Failed" for t in fail_template})
    chosen: Scenario | None = None
    if scenario is not None and scenario_file is not None:
        raise click.UsageError("give --scenario or --scenario-file, not both")
    try:
        if scenario is not None:
            chosen = SCENARIOS[scenario]
        elif scenario_file is not None:
            chosen = load_scenario(scenario_file)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if prometheus is not None and chosen is None:
        raise click.UsageError("--prometheus needs --scenario or --scenario-file")
    if serve_metrics is not None and prometheus is None:
        raise click.UsageError("--serve-metrics needs --prometheus (the server that scrapes it)")
    templates = load_templates([file, *template_paths]) if chosen is not None else []
    gates = {url: float(at) for url, at in _pairs("--gate", gate_opens, _seconds)}
    web = dict(_pairs("--web", web_answers, _web_answer))
    opts = SimOptions(
        gates=gates,
        web=web,
        workload=load_workload(file, rollout),
        set_image=set_image,
        update=update,
        abort_at=abort_at,
        promote=promote,
        promote_full=promote_full,
        analysis=outcomes,
        analysis_seconds=analysis_seconds,
        ready_delay=ready_delay,
        scenario=chosen,
        templates=tuple(templates),
        prometheus=prometheus,
        serve_metrics=serve_metrics,
        # live, every simulated second is a real one: reconcile every second, as the operator would
        tick=1.0 if serve_metrics is not None else SimOptions.tick,
    )
    subject = parse_update(update_file, update) if update is not None else rollout
    check_inputs(rollout, subject, set_image, abort_at)
    strategy = "canary" if rollout.canary is not None else "blue-green"
    click.echo(
        f"Simulating {strategy} Rollout {rollout.metadata.namespace}/{rollout.metadata.name} "
        f"from {file}"
    )
    for warning in [*risky(subject), *analysis_warnings(subject, chosen, templates)]:
        click.echo(f"Warning: {warning}", err=True)
    if chosen is not None:
        click.echo(f"Scenario {chosen.name}: {len(templates)} analysis template(s)")
    elif any(True for _ in analysis_refs(subject)):
        click.echo(f"Analysis: {scripted(verdict, fail_template, analysis_seconds)}")
    printer = Printer(blue_green=rollout.blue_green is not None)
    try:
        sim = Simulation(rollout, opts)
        recorder = None
        if plot_path is not None:
            recorder = TimelineRecorder(sim, chosen.name if chosen is not None else None)
        record = recorder.on_line if recorder is not None else None
        result = sim.run(chain(None if quiet else printer.line, record))
    except SimulationError as e:
        raise click.ClickException(str(e)) from None
    st = result.rollout.status
    assert st is not None
    printer.summary(result)
    if show_notifications:
        print_notifications(sim.notifier.notices, receivers(file, result.rollout))
    if plot_path is not None and recorder is not None:
        _write_plot(recorder.timeline(result), plot_path)
    if st.phase not in ("Healthy",):
        sys.exit(1 if st.phase == "Degraded" else 2)


def receivers(path: Path, rollout: Rollout) -> list[NotificationSubscription]:
    """The Rollout's subscriptions, with the namespace defaults of a ConfigMap
    sluice-notifications in the same file (as the controller would read it in the cluster)."""

    def defaults() -> list[NotificationSubscription]:
        for doc in load_docs(path):
            if (
                isinstance(doc, dict)
                and doc.get("kind") == "ConfigMap"
                and (doc.get("metadata") or {}).get("name") == NOTIFICATIONS_OBJECT
            ):
                try:
                    return parse_defaults(doc.get("data"))
                except NotificationConfigError as e:
                    raise click.ClickException(f"{path}: {e}") from None
        return []

    return subscriptions_for(rollout, defaults)


def print_notifications(notices: list[Notice], subs: list[NotificationSubscription]) -> None:
    """Every notification the run would send, each with the receivers subscribed to it."""
    click.echo(f"Notifications ({len(notices)}):")
    for n in notices:
        to = [s.receiver for s in subs if s.wants(n.event)]
        click.echo(f"  {n.event}: {n.title}  -> {', '.join(to) if to else 'no receiver'}")
        for line in n.body.splitlines():
            click.echo(f"      {line}")


def parse_update(path: Path | None, doc: dict[str, Any]) -> Rollout:
    try:
        return parse_rollout(doc)
    except InvalidSpec as e:  # load_rollout has validated it; kept for a clear message anyway
        raise click.ClickException(f"{path}: invalid Rollout: " + "; ".join(e.problems)) from None


def check_inputs(
    rollout: Rollout, subject: Rollout, set_image: str | None, abort_at: int | None
) -> None:
    """Refuse options that cannot mean what they say, before anything is simulated."""
    if set_image is not None:
        if not set_image.strip():
            raise click.ClickException("--set-image: the image is empty")
        containers = (rollout.spec.template.get("spec") or {}).get("containers") or []
        current = containers[0].get("image") if containers else None
        if set_image == current:
            raise click.ClickException(
                f"--set-image {set_image}: that is already the image of the first container; "
                "nothing would roll out"
            )
    if abort_at is not None:
        if subject.canary is None:
            if abort_at != 1:
                raise click.ClickException(
                    f"--abort-at {abort_at}: a blue-green Rollout has no steps "
                    "(--abort-at 1 aborts once the preview is up)"
                )
        else:
            count = len(subject.canary.steps)
            if abort_at > count:
                raise click.ClickException(
                    f"--abort-at {abort_at}: the Rollout has {count} step"
                    f"{'s' * (count != 1)}"
                    + (f" (give 1 to {count})" if count else " (nothing to abort at)")
                )


def scripted(verdict: str, fail_template: tuple[str, ...], seconds: float) -> str:
    """What scripted analysis means, said once: no template and no metric is looked at."""
    failing = f", except templates {', '.join(fail_template)}: failed" if fail_template else ""
    return (
        f"scripted, not measured: every analysis {VERDICTS[verdict]} after {seconds:g}s"
        f"{failing} (--scenario runs the real templates on simulated traffic)"
    )


def analysis_warnings(
    subject: Rollout, chosen: Scenario | None, templates: list[dict[str, Any]]
) -> list[str]:
    """A scenario with nothing to judge, or templates the Rollout names that were not given."""
    if chosen is None:
        return []
    refs = list(analysis_refs(subject))
    if not refs:
        return [
            f"--scenario {chosen.name}: the Rollout runs no analysis, so the simulated traffic "
            "judges nothing"
        ]
    given = {(d.get("kind"), (d.get("metadata") or {}).get("name")) for d in templates}
    missing = sorted(
        {
            name
            for _, name, cluster in refs
            if ("ClusterAnalysisTemplate" if cluster else "AnalysisTemplate", name) not in given
        }
    )
    return [
        f"AnalysisTemplate {name!r} is not in FILE or --templates: analyses using it will fail "
        "(give --templates DIR)"
        for name in missing
    ]
