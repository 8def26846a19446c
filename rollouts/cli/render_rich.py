"""``sluice get rollout`` on a terminal: the same view as the plain text, with colour and shape.

Colour carries the verdicts (green healthy/passing, yellow paused/undecided, red aborted/failing)
and the weight is a bar, so a person glancing at a watch sees where the rollout is without
reading. Every word comes from the plain-text formatters, so the two views never disagree.
"""

from __future__ import annotations

from datetime import datetime

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rollouts.cli.render_text import (
    abort_text,
    age,
    gate_text,
    interval_text,
    num,
    pause_text,
    pods_text,
    revision_text,
    run_title,
    score_text,
    slot_ready,
    sparkline,
    spec_unseen,
    step_marker,
    step_note,
    traffic_text,
    weight_bar,
    weight_text,
)
from rollouts.cli.rollout_view import MetricView, RolloutView

PHASE_STYLES = {
    "Healthy": "bold green",
    "Progressing": "bold cyan",
    "Paused": "bold yellow",
    "Degraded": "bold red",
}
RESULT_STYLES = {
    "Successful": "green",
    "Running": "cyan",
    "Pending": "dim",
    "Inconclusive": "yellow",
    "Failed": "red",
    "Error": "red",
    "Stopped": "dim",
}
ROLE_STYLES = {"stable": "green", "active": "green", "canary": "yellow", "preview": "yellow"}
BAR_WIDTH = 30


def console() -> Console:
    """The terminal; rich itself honours NO_COLOR and the terminal's size."""
    return Console(highlight=False)


def _bar(view: RolloutView) -> Text:
    """The plain-text bar's glyphs (so it still reads without colour), coloured by segment."""
    plain = weight_bar(view.weight, view.desired_weight, BAR_WIDTH)
    bar = Text()
    for glyph, style in (("█", "bold yellow"), ("▒", "yellow"), ("░", "grey35")):
        bar.append(glyph * plain.count(glyph), style=style)
    bar.append(f" {weight_text(view)}")
    return bar


def _summary(view: RolloutView, now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    phase = view.phase or "Unknown"
    line = Text.assemble((phase, PHASE_STYLES.get(phase, "bold")))
    if view.message:
        line.append(f"  {view.message}")
    grid.add_row("Phase", line)
    if view.abort is not None:
        grid.add_row("Aborted", Text(abort_text(view, now), style="red"))
    if view.pauses:
        grid.add_row("Paused", Text(pause_text(view, now), style="yellow"))
    if view.gate is not None and view.gate.state == "Waiting":
        grid.add_row("Gate", Text(gate_text(view, now), style="yellow"))
    grid.add_row("Revision", revision_text(view))
    if view.strategy == "canary":
        grid.add_row("Weight", _bar(view))
        grid.add_row("Step", view.step or "-")
    elif view.strategy == "blueGreen":
        grid.add_row("Traffic", traffic_text(view))
    if spec_unseen(view):
        grid.add_row(
            "Spec",
            Text(f"generation {view.generation} not yet seen by the controller", style="yellow"),
        )
    return grid


def _steps(view: RolloutView) -> Text:
    """The steps as one flowing line (wrapped when long): a watch must fit a terminal's height,
    and the marker is what the eye looks for."""
    line = Text()
    for i, s in enumerate(view.steps):
        style = {"done": "green", "current": "bold yellow", "pending": "dim"}[s.state]
        if s.state == "current" and view.abort is not None:
            style = "bold red"
        if i:
            line.append(" › ", style="dim")
        marker = step_marker(s, view)
        line.append(f"{marker} {s.text}" if marker.strip() else s.text, style=style)
        note = step_note(s, view)
        if note:
            line.append(f" ({note})", style=style)
    return line


def _table() -> Table:
    """Tables with an underlined header and two spaces between columns, like kubectl's."""
    return Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        header_style="bold",
    )


def _slots(view: RolloutView) -> Table:
    table = _table()
    for header in ("SLOT", "ROLE", "REVISION", "IMAGE", "READY"):
        table.add_column(header, no_wrap=header != "IMAGE", overflow="fold")
    for s in view.slots:
        ready_style = "green" if s.exists and s.ready >= s.desired else "yellow"
        table.add_row(
            s.name,
            Text(s.role or "-", style=ROLE_STYLES.get(s.role or "", "")),
            s.revision or "-",
            s.image or "-",
            Text(slot_ready(s), style=ready_style if s.exists else "red"),
        )
    return table


def _metric_row(m: MetricView) -> list[RenderableType]:
    ev = m.evidence
    failing = ev is not None and ev.crossed()
    interval = interval_text(ev)
    estimate = num(ev.estimate if ev else None) + (f" {interval}" if interval != "-" else "")
    return [
        m.name + (" (dry run)" if m.dry_run else ""),
        Text(m.phase, style=RESULT_STYLES.get(m.phase, "")),
        estimate,
        Text(score_text(m), style="red" if failing else ""),
        str(ev.events if ev else 0),
        Text(sparkline(m.trend) or "-", style="cyan"),
    ]


def _analysis(view: RolloutView) -> RenderableType:
    """Per run, a table of its metrics. Narrower than the plain text's (the outcome is in the
    phase's colour, the interval beside the estimate) so it fits 80 columns."""
    parts: list[RenderableType] = []
    for run in view.runs:
        parts.append(Text(run_title(run), style=RESULT_STYLES.get(run.phase, "")))
        if not run.metrics:
            continue
        table = _table()
        table.add_column("METRIC", overflow="fold")
        table.add_column("PHASE", no_wrap=True)
        table.add_column("ESTIMATE")
        table.add_column("SCORE")
        table.add_column("EVENTS", no_wrap=True, justify="right")
        table.add_column("TREND", no_wrap=True)
        for m in run.metrics:
            table.add_row(*_metric_row(m))
        parts.append(table)
        for m in run.metrics:
            if m.message:
                parts.append(Text(f"{m.name}: {m.message}", style="dim"))
            if pods := pods_text(m.evidence):
                parts.append(Text(f"{m.name}: {pods}", style="dim"))
    return Group(*parts)


def _events(view: RolloutView, now: datetime) -> RenderableType:
    if not view.events:
        return Text("(none)", style="dim")
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
    table.add_column(no_wrap=True, style="dim", justify="right")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold", ratio=1)
    for e in view.events:
        reason = e.reason + (f" (x{e.count})" if e.count > 1 else "")
        style = "red" if e.type == "Warning" else "blue"
        table.add_row(f"{age(e.time, now)} ago", Text(reason, style=style), e.message)
    return table


def render_rich(view: RolloutView, now: datetime) -> RenderableType:
    strategy = {"canary": "canary", "blueGreen": "blue-green"}.get(view.strategy, "?")
    title = Text.assemble(
        ("Rollout ", "bold"), (f"{view.namespace}/{view.name}", "bold cyan"), f"  {strategy}"
    )
    body: list[RenderableType] = [_summary(view, now)]
    if view.steps:
        body += [Text(""), Text("Steps", style="bold underline"), _steps(view)]
    body += [
        Text(""),
        Text("Slots", style="bold underline"),
        _slots(view) if view.slots else Text("(none yet)", style="dim"),
    ]
    if view.runs:
        body += [Text(""), Text("Analysis", style="bold underline"), _analysis(view)]
    body += [Text(""), Text("Events", style="bold underline"), _events(view, now)]
    return Panel(Group(*body), title=title, title_align="left", box=box.ROUNDED, expand=True)
