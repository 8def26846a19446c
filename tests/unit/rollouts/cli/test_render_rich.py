"""The terminal view: the same facts as the plain text, fitted to the terminal's width."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from rollouts.cli.render_rich import render_rich
from rollouts.cli.rollout_view import AbortView, PauseView

from .test_render_text import NOW, ago, canary_view


def draw(width: int, color: bool = False, **kw: object) -> str:
    console = Console(
        width=width,
        record=True,
        force_terminal=color,
        color_system="truecolor" if color else None,
        file=io.StringIO(),
    )
    console.print(render_rich(canary_view(**kw), NOW))
    return console.export_text(styles=color)


@pytest.mark.parametrize("width", [120, 100, 80])
def test_fits_the_terminal(width: int) -> None:
    text = draw(width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    assert "Rollout shop/web" in lines[0]
    for fact in ("Progressing", "analysis running", "bbb222 (stable aaa111)", "web:2", "0/1"):
        assert fact in text, fact
    # the marker sits on the current step, in a one-line step list
    assert "✓ setWeight 25% › ▶ analysis errors (now) › setWeight 75% › pause" in text


def test_analysis_row_keeps_its_numbers_whole_at_100_columns() -> None:
    row = next(line for line in draw(100).splitlines() if "error-rate" in line)
    for cell in ("Running", "1.07 [0.62, 1.9]", "e=2.31 / 40", "118", "▁▃ █"):
        assert cell in row, (cell, row)


def test_abort_and_pause_are_shown() -> None:
    text = draw(
        100,
        phase="Degraded",
        abort=AbortView("AnalysisFailed", "error-rate failed", ago(5), "bbb222"),
        pauses=(PauseView("PausedByUser", ago(3)),),
        waits_for_person=True,
    )
    assert "AnalysisFailed revision bbb222 (5s ago): error-rate failed" in text
    assert "PausedByUser (3s ago); waits for a person: sluice resume web -n shop" in text
    assert "✗ analysis errors (aborted here)" in text


def test_phase_is_coloured() -> None:
    assert "\x1b[1;32mHealthy" in draw(100, color=True, phase="Healthy")  # bold green
    assert "\x1b[1;31mDegraded" in draw(100, color=True, phase="Degraded")  # bold red
    assert "\x1b[" not in draw(100)
