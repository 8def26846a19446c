"""The picture of a simulated rollout (``sluice simulate --plot``), drawn with matplotlib.

Why a picture: the simulator's text output is complete but long; one figure with a shared time
axis shows at a glance how traffic moved, how each metric's canary compared with stable, how the
evidence grew towards its threshold, and where the controller decided. Panels, top to bottom:
traffic to the new revision (actual and desired, steps shaded), then per analysis metric its arms
(canary vs stable) and its evidence (e-value on a log scale against ``1/alpha``, or a threshold
metric's measured value against its bounds). Decisions are vertical lines through every panel,
labelled once in a strip at the top.

matplotlib is optional (the ``plots`` extra): it is imported only when drawing, with the Agg
backend, so the CLI works without it and a headless CI can still draw.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollouts.simulator.timeline import PAUSE_LABELS, ArmPoint, DecisionMark, MetricTrack, Timeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text

INSTALL_HINT = "pip install 'sluice-rollouts[plots]'"

CANARY = "#e8590c"  # orange: the new revision, in every panel
STABLE = "#1971c2"  # blue: the stable revision (the baseline arm)
DESIRED = "#495057"
EVIDENCE = "#5f3dc4"
THRESHOLD = "#c92a2a"
DECISION_COLOURS = {
    "start": "#495057",
    "step": "#868e96",
    "promote": "#2b8a3e",
    "abort": "#c92a2a",
    "request": "#5f3dc4",
}
PAUSE_FILL = "#fff6d1"
STEP_FILL = ("#f1f3f5", "#ffffff")

PANEL_TRAFFIC = "Traffic to the new revision"

StepLabels = list[tuple["Text", float, float]]  # a step's name and its start and end (minutes)


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed; the message says how to install it."""


def require_matplotlib() -> None:
    """Fail early (before a long simulation) when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable(f"--plot needs matplotlib: {INSTALL_HINT}") from None


def _minutes(t: float) -> float:
    return t / 60.0


def _clock(minutes: float, _pos: Any = None) -> str:
    s = round(minutes * 60)
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s >= 3600:
        return f"{sign}{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{sign}{s // 60}:{s % 60:02d}"


def _tick_minutes(span: float) -> float:
    """A tick spacing a clock reads well (10 s, 30 s, 1 min, 5 min...) giving at most 12 ticks."""
    for seconds in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if span * 60 / seconds <= 12:
            return seconds / 60
    return 4 * 3600 / 60


def _steps(points: Sequence[tuple[float, float]], end: float) -> tuple[list[float], list[float]]:
    """x, y of a step line holding each value until the next (and the last until ``end``)."""
    xs = [_minutes(t) for t, _ in points] + [_minutes(end)]
    ys = [v for _, v in points] + [points[-1][1]]
    return xs, ys


def _series(points: Sequence[ArmPoint], arm: str, scale: float) -> tuple[list[float], list[float]]:
    """x, y of one arm as a step line: each value held over the window it measured, joined to
    the next window when they touch, with a gap (NaN) otherwise (between steps, no data)."""
    xs: list[float] = []
    ys: list[float] = []
    end: float | None = None
    for p in points:
        v = p.canary if arm == "canary" else p.baseline
        y = math.nan if v is None else v * scale
        start = p.t - p.window
        if end is not None and abs(start - end) > 1e-6:
            xs.append(math.nan)
            ys.append(math.nan)
        xs += [_minutes(start), _minutes(p.t)]
        ys += [y, y]
        end = p.t
    return xs, ys


def build_figure(timeline: Timeline) -> Figure:
    """The whole figure (not yet saved), for ``write_png`` and for tests to inspect."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    panels: list[tuple[str, float, MetricTrack | None]] = [("traffic", 2.4, None)]
    for track in timeline.metrics.values():
        if track.judgement == "threshold":
            panels.append(("value", 2.0, track))
            continue
        panels.append(("arms", 2.0, track))
        if track.sequential or any(
            e.evidence is not None and e.evidence.statistic is not None for e in track.evidence
        ):
            panels.append(("evidence", 1.8, track))
    strip = 0.55
    heights = [strip] + [h for _, h, _ in panels]
    layout = ConstrainedLayoutEngine(h_pad=0.06, hspace=0.02)
    fig = Figure(figsize=(12.0, sum(heights) + 1.3), dpi=100, layout=layout)
    FigureCanvasAgg(fig)  # no pyplot, no display: draws anywhere, leaks no global figures
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    top = fig.add_subplot(grid[0])
    axes: list[Axes] = []
    step_labels: StepLabels = []
    for i, (what, _, metric) in enumerate(panels):
        ax = fig.add_subplot(grid[i + 1], sharex=axes[0] if axes else None)
        axes.append(ax)
        if metric is None:
            step_labels = _traffic(ax, timeline)
        elif what == "arms":
            _arms(ax, metric)
        elif what == "evidence":
            _evidence(ax, metric)
        else:
            _values(ax, metric)
    start = _minutes(0.0)
    end = _minutes(max(timeline.end, 1.0))
    pad = (end - start) * 0.01
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    for ax in axes:
        ax.set_xlim(start - pad, end + pad)
        for p in timeline.pauses:
            ax.axvspan(_minutes(p.start), _minutes(p.end), color=PAUSE_FILL, zorder=0, lw=0)
        _decision_lines(ax, timeline.decisions)
        ax.grid(True, axis="y", color="#e9ecef", lw=0.8)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=9)
        if ax is not axes[-1]:
            ax.tick_params(labelbottom=False)
    axes[-1].xaxis.set_major_locator(MultipleLocator(_tick_minutes(end - start)))
    axes[-1].xaxis.set_major_formatter(FuncFormatter(_clock))
    axes[-1].set_xlabel("simulated time (m:ss)", fontsize=10)
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    # Agg's draw/get_renderer are untyped: called through Any, mypy is clean with matplotlib
    # installed (no untyped call) and without it (no unused ignore)
    agg: Any = canvas
    agg.draw()  # text extents need the final layout
    renderer = agg.get_renderer()
    _fit_step_labels(axes[0], step_labels, renderer)
    _decision_strip(fig, top, axes[0], timeline.decisions, renderer)
    scenario = f"scenario {timeline.scenario}" if timeline.scenario else "scripted analysis"
    fig.suptitle(
        f"{timeline.strategy} Rollout {timeline.rollout} · {scenario} · {timeline.outcome}",
        fontsize=13,
        fontweight="bold",
    )
    return fig


def _traffic(ax: Axes, timeline: Timeline) -> StepLabels:
    for i, step in enumerate(timeline.steps):
        a, b = _minutes(step.start), _minutes(step.end)
        ax.axvspan(a, b, color=STEP_FILL[i % 2], zorder=0, lw=0)
    for p in timeline.pauses:
        # pauses are shaded on every panel by build_figure; here they get their words, unless
        # the step's own name already says it is a pause step
        if p.label == PAUSE_LABELS["CanaryPauseStep"]:
            continue
        ax.text(
            (_minutes(p.start) + _minutes(p.end)) / 2,
            50,
            p.label,
            ha="center",
            va="center",
            fontsize=8,
            color="#8f6b00",
            clip_on=True,
        )
    xs, ys = _steps(timeline.desired, timeline.end)
    ax.step(xs, ys, where="post", color=DESIRED, lw=1.4, ls="--", label="desired (step's weight)")
    xs, ys = _steps(timeline.actual, timeline.end)
    ax.step(xs, ys, where="post", color=CANARY, lw=2.2, label="actual")
    ax.set_ylim(-4, 118)
    ax.set_yticks([0, 25, 50, 75, 100])
    ax.set_ylabel("% of requests", fontsize=9)
    ax.set_title(PANEL_TRAFFIC, loc="left", fontsize=10, fontweight="bold")
    _legend(ax)
    return _step_labels(ax, timeline)


def _step_labels(ax: Axes, timeline: Timeline) -> StepLabels:
    """Step names along the top of the traffic panel (fitted to their steps after layout)."""
    labels: StepLabels = []
    for step in timeline.steps:
        text = ax.text(
            _minutes((step.start + step.end) / 2),
            108,
            step.label,
            ha="center",
            va="center",
            fontsize=8,
            color="#495057",
            gid="step-label",
        )
        text.set_visible(False)  # until _fit_step_labels finds a form that fits, if any
        labels.append((text, _minutes(step.start), _minutes(step.end)))
    return labels


def _fit_step_labels(ax: Axes, labels: StepLabels, renderer: Any) -> None:
    """Each step's longest name that fits between its boundaries: "2. analysis request-errors",
    else "2. analysis", else "2", else none, so that names never run into each other."""
    for text, start, end in labels:
        left, right = (ax.transData.transform((x, 0))[0] for x in (start, end))
        room = right - left - 6
        full = text.get_text()
        number, _, rest = full.partition(". ")
        forms = [full, f"{number}. {rest.split()[0]}", number] if rest else [full]
        text.set_visible(True)  # an invisible text measures as empty
        for form in forms:
            text.set_text(form)
            if text.get_window_extent(renderer).width <= room:
                break
        else:
            text.set_visible(False)


def _arms(ax: Axes, track: MetricTrack) -> None:
    last: dict[str, tuple[float, float]] = {}
    for arm, colour, label in (("baseline", STABLE, "stable"), ("canary", CANARY, "canary")):
        xs, ys = _series(track.arms, arm, track.scale)
        ax.plot(xs, ys, color=colour, lw=2, label=label)
        finite = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
        if finite:
            last[arm] = finite[-1]
    # the latest window's values, written next to the points: the numbers a reader looks for
    if "canary" in last and "baseline" in last:
        above = "canary" if last["canary"][1] >= last["baseline"][1] else "baseline"
        for arm, (x, y) in last.items():
            ax.annotate(
                f"{y:.2g}",
                (x, y),
                xytext=(5, 3 if arm == above else -3),
                textcoords="offset points",
                va="bottom" if arm == above else "top",
                fontsize=8,
                color=CANARY if arm == "canary" else STABLE,
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
                zorder=6,
            )
    ax.set_ylim(bottom=0)
    ax.set_ylabel(track.quantity, fontsize=9)
    dry = " (dry run: reported, never aborts)" if track.dry_run else ""
    ax.set_title(
        f"{track.name}: canary vs stable, per window{dry}", loc="left", fontsize=10, weight="bold"
    )
    _legend(ax)


def _evidence(ax: Axes, track: MetricTrack) -> None:
    sequential = track.sequential
    # e-values are exponentiated here, for the picture only; the record keeps their logs
    shown = [
        (e.t, ev.e_value(), ev.e_threshold()) if sequential else (e.t, ev.statistic, ev.threshold)
        for e in track.evidence
        if (ev := e.evidence) is not None
    ]
    points = [(t, y, thr) for t, y, thr in shown if y is not None]
    xs = [_minutes(t) for t, _, _ in points]
    values = [float(y) for _, y, _ in points if y is not None]
    thresholds = [thr for _, _, thr in points if thr is not None]
    last = next((e.evidence for e in reversed(track.evidence) if e.evidence is not None), None)
    ax.plot(
        xs,
        values,
        color=EVIDENCE,
        lw=1.8,
        marker="o",
        ms=3,
        label="e-value" if sequential else "statistic",
        drawstyle="steps-post" if sequential else "default",
    )
    if thresholds:
        thr = thresholds[-1]
        name = f"abort at 1/α = {thr:g}" if sequential else f"threshold {thr:g}"
        ax.axhline(thr, color=THRESHOLD, lw=1.3, ls="--", label=name)
    if sequential:
        ax.set_yscale("log")
        finite = [v for v in values if math.isfinite(v) and v > 0] + thresholds
        lo = min([*finite, 1.0]) / 3
        hi = max([*finite, 1.0]) * 30
        ax.set_ylim(lo, hi)
        ax.axhline(1.0, color="#adb5bd", lw=0.8, zorder=1)
        crossed = [(x, v) for x, v in zip(xs, values, strict=True) if thresholds and v >= thr]
        if crossed:
            x, v = crossed[0]
            ax.plot([x], [v], marker="X", ms=10, color=THRESHOLD, ls="none", zorder=5)
            ax.annotate(
                f"e = {v:.2g}",
                (x, v),
                xytext=(-8, -2),
                textcoords="offset points",
                ha="right",
                va="top",
                fontsize=8,
                color=THRESHOLD,
            )
        elif points and math.isfinite(values[-1]):
            # where the evidence ended and what it concluded ("accept": shown within tolerance)
            outcome = last.outcome if last is not None else None
            ax.annotate(
                f"e = {values[-1]:.2g}" + (f" · {outcome}" if outcome else ""),
                (xs[-1], values[-1]),
                xytext=(5, 4),
                textcoords="offset points",
                va="bottom",
                fontsize=8,
                color=EVIDENCE,
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
                zorder=6,
            )
    ax.set_ylabel("e-value (log)" if sequential else "statistic", fontsize=9)
    what = "evidence against the canary" if sequential else "test statistic"
    ax.set_title(f"{track.name}: {what}", loc="left", fontsize=10, weight="bold")
    _legend(ax)


def _values(ax: Axes, track: MetricTrack) -> None:
    windows = [ArmPoint(p.t, p.value, None, p.run, track.interval) for p in track.values]
    xs, ys = _series(windows, "canary", 1.0)
    ax.plot(xs, ys, color=CANARY, lw=2, label="canary")
    failed = [(_minutes(p.t), p.value) for p in track.values if p.phase == "Failed"]
    if failed:
        fx, fy = zip(*failed, strict=True)
        ax.plot(fx, fy, ls="none", marker="X", ms=8, color=THRESHOLD, label="failed")
    for bound, name in ((track.minimum, "min"), (track.maximum, "max")):
        if bound is not None:
            ax.axhline(bound, color=THRESHOLD, ls="--", lw=1.3, label=f"{name} {bound:g}")
    ax.set_ylabel("measured value", fontsize=9)
    dry = " (dry run: reported, never aborts)" if track.dry_run else ""
    ax.set_title(
        f"{track.name}: measured value vs threshold{dry}", loc="left", fontsize=10, weight="bold"
    )
    _legend(ax)


def _legend(ax: Axes) -> None:
    """Outside, right of the panel: a legend inside would sit on data or on the step names."""
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False, borderaxespad=0
    )


def _decision_lines(ax: Axes, decisions: Sequence[DecisionMark]) -> None:
    for d in decisions:
        strong = d.kind in ("promote", "abort")
        ax.axvline(
            _minutes(d.t),
            color=DECISION_COLOURS[d.kind],
            lw=1.6 if strong else 1.0,
            ls="-" if strong else ":",
            zorder=1.5,
            gid=f"decision:{d.kind}",
        )


def _decision_strip(
    fig: Figure, strip: Axes, first: Axes, decisions: Sequence[DecisionMark], renderer: Any
) -> None:
    """Decision labels above the first panel, in as many rows as it takes not to overlap.

    Why rows: decisions bunch together (a step completes and the next starts within seconds),
    and labels written over each other cannot be read.
    """
    strip.set_xlim(first.get_xlim())
    strip.set_ylim(0, 1)
    strip.axis("off")
    groups: list[list[DecisionMark]] = []  # the marks of one moment
    for d in sorted(decisions, key=lambda d: d.t):
        if groups and abs(_minutes(groups[-1][0].t) - _minutes(d.t)) < 1e-9:
            groups[-1].append(d)
        else:
            groups.append([d])
    rank = {"abort": 4, "promote": 3, "request": 2, "start": 1, "step": 0}
    merged = [  # x, label, kind of the strongest
        (_minutes(g[0].t), moment_label(g), max((d.kind for d in g), key=rank.__getitem__))
        for g in groups
    ]
    rows: list[float] = []  # per row, the right edge (display px) of its last label
    texts = []
    for x, label, kind in merged:
        strip.plot(
            [x, x], [0, 1], color=DECISION_COLOURS[kind], lw=0.8, ls=":", clip_on=False
        )  # the line continues down into the panels
        t = strip.text(
            x,
            0,
            " " + label,
            ha="left",
            va="bottom",
            fontsize=8.5,
            color=DECISION_COLOURS[kind],
            fontweight="bold" if kind in ("abort", "promote") else "normal",
        )
        bbox = t.get_window_extent(renderer)
        for i, right in enumerate(rows):
            if bbox.x0 > right + 4:
                rows[i] = bbox.x1
                break
        else:
            i = len(rows)
            rows.append(bbox.x1)
        texts.append((t, i, bbox))
    n = max(len(rows), 1)
    strip_px = strip.get_window_extent(renderer)
    for t, i, bbox in texts:
        # keep a label inside the figure: one that would run off the right goes left of its line
        if bbox.x1 > fig.bbox.x1 - 4:
            t.set_horizontalalignment("right")
            t.set_text(t.get_text().strip() + " ")
        t.set_y((i + 0.1) / n)
    if strip_px.height / n < 11:  # too many rows for the strip: shrink the labels to fit
        for t, _, _ in texts:
            t.set_fontsize(max(6.0, 8.5 * strip_px.height / n / 11))


def moment_label(marks: Sequence[DecisionMark]) -> str:
    """The labels of one moment in one: runs of completed steps ("step 3 done", "step 4 done")
    read "steps 3, 4 done"."""
    parts: list[str] = []
    run: list[int] = []  # completed steps not yet written
    for d in [*marks, None]:
        if d is not None and d.steps:
            run += d.steps
            continue
        if run:
            nums = ", ".join(map(str, run))
            parts.append(f"steps {nums} done" if len(run) > 1 else f"step {nums} done")
            run = []
        if d is not None:
            parts.append(d.label)
    return ", ".join(parts)


def write_png(timeline: Timeline, path: Path) -> None:
    """Draw ``timeline`` into ``path``: a temporary file in the same directory, renamed into
    place, so a failure never leaves half a PNG where the user expects a picture."""
    fig = build_figure(timeline)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            fig.savefig(out, format="png", dpi=100)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is for secrets, not a picture to share
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
