"""`sluice get` shows a closed gate: its URL, last answer and age, and that promote passes it."""

from __future__ import annotations

from datetime import UTC, datetime

from rollouts.cli.render_rich import render_rich
from rollouts.cli.render_text import render_text
from rollouts.cli.rollout_view import build_view
from tests.support.rollouts import rollout_doc

NOW = datetime(2026, 12, 2, 10, 0, 30, tzinfo=UTC)
GATE = "http://release-gate.platform:8080/gates/web"


def waiting(state: str = "Waiting") -> dict[str, object]:
    doc = rollout_doc(steps=[{"setWeight": 10}, {"gate": {"url": GATE}}])
    doc["status"] = {
        "phase": "Paused",
        "message": f"waiting for gate {GATE} (last answer: HTTP 403)",
        "currentRevision": "r2",
        "stableRevision": "r1",
        "currentStepIndex": 1,
        "pauseConditions": [{"reason": "WaitingForGate", "startTime": "2026-12-02T09:58:00Z"}],
        "gate": {
            "url": GATE,
            "state": state,
            "answer": "HTTP 403",
            "checkedAt": "2026-12-02T10:00:25Z",
        },
    }
    return doc


def test_a_waiting_gate_has_its_line_with_the_answer_and_the_override() -> None:
    view = build_view(waiting())
    assert view.gate is not None and view.gate.state == "Waiting"
    text = render_text(view, NOW)
    [line] = [ln for ln in text.splitlines() if ln.lstrip().startswith("Gate")]
    assert GATE in line and "last answer HTTP 403, 5s ago" in line
    assert "sluice promote web passes it" in line
    assert f"gate {GATE}" in text  # the step list names the gate step


def test_an_open_gate_adds_no_line() -> None:
    text = render_text(build_view(waiting("Open")), NOW)
    assert not any(ln.lstrip().startswith("Gate") for ln in text.splitlines())


def test_the_rich_view_shows_it_too() -> None:
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    Console(file=out, width=200, color_system=None).print(render_rich(build_view(waiting()), NOW))
    assert "waiting for " + GATE in out.getvalue()
