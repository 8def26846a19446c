"""``sluice get rollout`` as plain text: for pipes, logs, CI jobs and ``TERM=dumb``.

The text is a function of the view and ``now`` alone (ages are the only thing the clock changes),
so tests compare it line by line and ``--watch`` can print a new block only when it changed.
The small formatters here (ages, numbers, the weight bar, the trend sparkline, a metric's score)
are shared with the rich view, so both say the same thing in the same words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from analysis.stats.evidence import Evidence
from rollouts.cli.rollout_view import MetricView, RolloutView, RunView, SlotView, StepView

SPARK_UNICODE = "▁▂▃▄▅▆▇█"
SPARK_ASCII = "_.-=+*#@"
GAP = " "
"""A measurement with no value (an error, no data) in a trend: a gap, not a made-up low."""
BAR_WIDTH = 20


def age(then: datetime | None, now: datetime) -> str:
    """kubectl-style ages ("42s", "3m5s", "2h10m", "4d3h"): exact while it matters, short after."""
    if then is None:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{s}s" if s and minutes < 10 else f"{minutes}m"
    hours, m = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{m}m" if m else f"{hours}h"
    days, h = divmod(hours, 24)
    return f"{days}d{h}h" if h and days < 7 else f"{days}d"


def num(x: float | None) -> str:
    """Three significant digits: an estimate's noise is far above that."""
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}"


def interval_text(ev: Evidence | None) -> str:
    """The confidence interval; an end the evidence leaves open (unbounded so far) is "-"."""
    if ev is None or (ev.lower is None and ev.upper is None):
        return "-"
    return f"[{num(ev.lower)}, {num(ev.upper)}]"


def pods_text(ev: Evidence | None) -> str:
    """The pod model behind a rate-ratio verdict (empty without one): the tolerance actually
    tested and the spread and pod counts it was widened for."""
    d = None if ev is None else ev.details
    if d is None or d.widened_tolerance is None:
        return ""
    source = "estimated" if d.pod_spread_estimated else "declared"
    return (
        f"tolerance {num(d.tolerance)} widened to {num(d.widened_tolerance)} for "
        f"{num(d.canary_pods)} canary pod(s), pod spread {num(d.pod_spread)} ({source}"
        + (f" from {num(d.baseline_pods)} baseline pods" if d.baseline_pods is not None else "")
        + ")"
    )


def score_text(m: MetricView) -> str:
    """The number the verdict hangs on, against what it is compared with: the e-value for the
    sequential tests (the metric fails when it reaches the threshold, 1/alpha), else the
    statistic (the measured value, Mann-Whitney's U). E-values are exponentiated here, for
    reading; status keeps their logs."""
    ev = m.evidence
    if ev is None:
        return "-"
    if ev.log_e_value is not None:
        bar = ev.e_threshold()
        return f"e={num(ev.e_value())}" + (f" / {num(bar)}" if bar is not None else "")
    if ev.statistic is not None:
        return f"stat={num(ev.statistic)}" + (
            f" / {num(ev.threshold)}" if ev.threshold is not None else ""
        )
    return "-"


def sparkline(values: Sequence[float | None], *, unicode: bool = True) -> str:
    """One character per measurement, scaled between the trend's own min and max (a flat trend
    sits in the middle): the shape matters here, the numbers are in the other columns."""
    ramp = SPARK_UNICODE if unicode else SPARK_ASCII
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return GAP * len(values)
    lo, hi = min(known), max(known)
    out = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(GAP)
        elif hi == lo:
            out.append(ramp[len(ramp) // 2 - 1])
        else:
            out.append(ramp[round((v - lo) / (hi - lo) * (len(ramp) - 1))])
    return "".join(out)


def weight_bar(
    actual: int, desired: int | None, width: int = BAR_WIDTH, *, unicode: bool = True
) -> str:
    """The canary's share of traffic: filled up to the actual weight, then a lighter run up to
    the desired one (traffic the steps ask for but the router has not moved yet), then empty."""
    full, todo, empty = ("█", "▒", "░") if unicode else ("#", "+", ".")
    a = round(max(0, min(100, actual)) * width / 100)
    d = a if desired is None else max(a, round(max(0, min(100, desired)) * width / 100))
    return full * a + todo * (d - a) + empty * (width - d)


def weight_text(view: RolloutView) -> str:
    desired = view.desired_weight
    text = f"{view.weight}% on the canary"
    if desired is not None and desired != view.weight:
        text += f", moving to {desired}%"
    elif desired is not None:
        text += f" (desired {desired}%)"
    if view.weight_verified is False:
        text += ", not yet verified at the router"
    return text


def pause_text(view: RolloutView, now: datetime) -> str:
    reasons = ", ".join(f"{p.reason} ({age(p.since, now)} ago)" for p in view.pauses)
    if view.waits_for_person:
        # a person's pause is ended by resume; every other pause that waits, by promote
        verb = "resume" if any(p.reason == "PausedByUser" for p in view.pauses) else "promote"
        reasons += f"; waits for a person: sluice {verb} {view.name} -n {view.namespace}"
    return reasons


def gate_text(view: RolloutView, now: datetime) -> str:
    """The gate's state, URL and last answer: ``waiting for http://... (last answer HTTP 403,
    5s ago); sluice promote passes it``."""
    g = view.gate
    assert g is not None
    when = f", {age(g.checked_at, now)} ago" if g.checked_at is not None else ""
    answer = f" (last answer {g.answer}{when})" if g.answer else ""
    if g.state == "Waiting":
        return f"waiting for {g.url}{answer}; sluice promote {view.name} passes it"
    return f"open: {g.url}{answer}"


def abort_text(view: RolloutView, now: datetime) -> str:
    a = view.abort
    assert a is not None
    when = f" ({age(a.time, now)} ago)" if a.time is not None else ""
    rev = f" revision {a.revision}" if a.revision else ""
    return f"{a.reason}{rev}{when}: {a.message}" if a.message else f"{a.reason}{rev}{when}"


def spec_unseen(view: RolloutView) -> bool:
    """The spec changed and the controller has not reconciled it yet: what the view shows is
    about the previous spec (a just-applied image is not rolling out yet)."""
    if view.generation is None:
        return False
    return view.observed_generation is None or view.observed_generation < view.generation


def revision_text(view: RolloutView) -> str:
    if view.current_revision is None:
        return "-"
    if view.current_revision == view.stable_revision:
        return f"{view.current_revision} (stable)"
    return f"{view.current_revision} (stable {view.stable_revision or '-'})"


def traffic_text(view: RolloutView) -> str:
    """Blue-green has no weights: what matters is which slot each Service points at."""
    services = dict(view.services)
    parts = []
    for role, slot in (("active", view.active_slot), ("preview", view.preview_slot)):
        svc = services.get(role)
        where = f"slot {slot}" if slot else "no slot"
        parts.append(f"{role} {where}" + (f" (service {svc})" if svc else ""))
    return ", ".join(parts)


def step_marker(step: StepView, view: RolloutView, *, unicode: bool = True) -> str:
    if step.state == "done":
        return "✓" if unicode else "*"
    if step.state == "current":
        if view.abort is not None:
            return "✗" if unicode else "x"
        return "▶" if unicode else ">"
    return " "


def step_note(step: StepView, view: RolloutView) -> str:
    if step.state != "current":
        return ""
    if view.abort is not None:
        return "aborted here"
    if view.pauses:
        return "paused here"
    return "now"


def slot_ready(slot: SlotView) -> str:
    return f"{slot.ready}/{slot.desired}" if slot.exists else "gone"


def run_title(run: RunView) -> str:
    where = f" (step {run.step_index + 1})" if run.step_index is not None else ""
    text = f"{run.name}: {run.kind}{where}, {run.phase}"
    return text + (f": {run.message}" if run.message else "")


# ------------------------------------------------------------------------------------ layout


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell; the last column is not padded (no trailing blanks)."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths[:-1], strict=True)] + [r[-1]]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def _field(label: str, value: str) -> str:
    return f"  {label + ':':<10} {value}".rstrip()


def render_text(view: RolloutView, now: datetime, *, unicode: bool = True) -> str:
    """The whole view, newline-terminated; ``unicode=False`` keeps to ASCII (``TERM=dumb``,
    an ASCII-only stdout)."""
    strategy = {"canary": "canary", "blueGreen": "blue-green"}.get(view.strategy, "?")
    lines = [f"Rollout {view.namespace}/{view.name} ({strategy})"]
    phase = view.phase or "Unknown"
    lines.append(_field("Phase", f"{phase}: {view.message}" if view.message else phase))
    if view.abort is not None:
        lines.append(_field("Aborted", abort_text(view, now)))
    if view.pauses:
        lines.append(_field("Paused", pause_text(view, now)))
    if view.gate is not None and view.gate.state == "Waiting":
        lines.append(_field("Gate", gate_text(view, now)))
    lines.append(_field("Revision", revision_text(view)))
    if view.strategy == "canary":
        bar = weight_bar(view.weight, view.desired_weight, unicode=unicode)
        lines.append(_field("Weight", f"[{bar}] {weight_text(view)}"))
        lines.append(_field("Step", view.step or "-"))
    elif view.strategy == "blueGreen":
        lines.append(_field("Traffic", traffic_text(view)))
    if spec_unseen(view):
        lines.append(
            _field(
                "Spec",
                f"generation {view.generation} not yet seen by the controller "
                f"(observed {view.observed_generation if view.observed_generation is not None else '-'})",
            )
        )

    if view.steps:
        lines += ["", "Steps"]
        rows = [
            [step_marker(s, view, unicode=unicode), f"{s.number}.", s.text, step_note(s, view)]
            for s in view.steps
        ]
        lines += _table(rows)

    lines += ["", "Slots"]
    if view.slots:
        rows = [["SLOT", "ROLE", "REVISION", "IMAGE", "READY"]] + [
            [s.name, s.role or "-", s.revision or "-", s.image or "-", slot_ready(s)]
            for s in view.slots
        ]
        lines += _table(rows)
    else:
        lines.append("  (none yet)")

    if view.runs:
        lines += ["", "Analysis"]
        for run in view.runs:
            lines.append(f"  {run_title(run)}")
            if not run.metrics:
                continue
            rows = [
                ["METRIC", "PHASE", "OUTCOME", "ESTIMATE", "INTERVAL", "SCORE", "EVENTS", "TREND"]
            ]
            for m in run.metrics:
                name = m.name + (" (dry run)" if m.dry_run else "")
                rows.append(
                    [
                        name,
                        m.phase,
                        m.evidence.outcome.value if m.evidence else "-",
                        num(m.evidence.estimate if m.evidence else None),
                        interval_text(m.evidence),
                        score_text(m),
                        str(m.evidence.events if m.evidence else 0),
                        sparkline(m.trend, unicode=unicode) or "-",
                    ]
                )
            lines += _table(rows, indent="    ")
            for m in run.metrics:
                if m.message:
                    lines.append(f"    {m.name}: {m.message}")
                if pods := pods_text(m.evidence):
                    lines.append(f"    {m.name}: {pods}")

    lines += ["", "Events"]
    if view.events:
        rows = [
            [
                f"{age(e.time, now)} ago",
                e.type,
                e.reason + (f" (x{e.count})" if e.count > 1 else ""),
                e.message,
            ]
            for e in view.events
        ]
        lines += _table(rows)
    else:
        lines.append("  (none)")
    return "\n".join(lines) + "\n"
