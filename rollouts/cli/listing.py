"""``sluice list rollouts``: every Rollout of a namespace (or all) at a glance, one line each.

The output is plain aligned text, terminal or not, so it reads the same in a CI log, pipes into
``grep``/``awk`` and stays stable across versions; ``sluice get rollout`` is the detailed view.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click

from rollouts.cli.connection import Target, cluster_options, list_rollouts
from rollouts.cli.render_text import age
from rollouts.cli.rollout_view import parse_time

MESSAGE_WIDTH = 60
"""Characters of status.message a row keeps; the rest is one `get rollout` away."""

COLUMNS = ("NAME", "STRATEGY", "PHASE", "STEP", "WEIGHT", "STABLE", "CANARY", "AGE", "MESSAGE")


def row(doc: dict[str, Any], now: datetime, all_namespaces: bool = False) -> list[str]:
    """One Rollout's cells, in the order of COLUMNS (NAMESPACE first with ``all_namespaces``)."""
    meta = doc.get("metadata") or {}
    spec_strategy = (doc.get("spec") or {}).get("strategy") or {}
    st = doc.get("status") or {}
    strategy = (
        "canary"
        if "canary" in spec_strategy
        else "blueGreen"
        if "blueGreen" in spec_strategy
        else "-"
    )
    weight = (st.get("weights") or {}).get("canary")
    stable, current = st.get("stableRevision"), st.get("currentRevision")
    cells = [
        str(meta.get("name", "")),
        strategy,
        str(st.get("phase") or "-"),
        str(st.get("step") or "-"),
        "-" if weight is None else f"{weight}%",
        str(stable or "-"),
        str(current) if current and current != stable else "-",
        created_age(meta.get("creationTimestamp"), now),
        truncate(" ".join(str(st.get("message") or "").split()), MESSAGE_WIDTH),
    ]
    return [str(meta.get("namespace", "")), *cells] if all_namespaces else cells


def created_age(timestamp: Any, now: datetime) -> str:
    """The AGE cell, spelled as ``get rollout`` spells ages; ``-`` when the time is unknown."""
    then = parse_time(timestamp)
    return "-" if then is None else age(then, now)


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks (as kubectl)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join(lines)


@click.group("list")
def list_() -> None:
    """List Sluice objects."""


@list_.command("rollouts")
@click.option(
    "-A", "--all-namespaces", is_flag=True, help="Rollouts of every namespace, not just one."
)
@cluster_options
def rollouts(target: Target, all_namespaces: bool) -> None:
    """A table of the Rollouts in the namespace: phase, step, canary weight, revisions, message.

    STABLE is the stable revision, CANARY the revision being rolled out (- when none is); WEIGHT
    is the canary's share of traffic. The message is cut at 60 characters; `sluice get rollout
    NAME` shows all of it.

    \b
    Example:
      sluice list rollouts -n shop
      sluice list rollouts -A
    """
    docs = list_rollouts(target, all_namespaces)
    if not docs:
        where = "any namespace" if all_namespaces else f"namespace {target.namespace}"
        click.echo(f"No rollouts in {where}.")
        return
    now = datetime.now(UTC)
    header = ("NAMESPACE", *COLUMNS) if all_namespaces else COLUMNS
    click.echo(table(header, [row(d, now, all_namespaces) for d in docs]))
