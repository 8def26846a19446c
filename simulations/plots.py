"""PNG plots of the benchmark (matplotlib is an optional extra; import fails without it)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from simulations.benchmark import Row


def plot_all(rows: list[Row], out: Path, name: str) -> list[Path]:
    """False-abort rates in A/A scenarios, and median time to abort per regression cell."""
    paths = []
    aa = [r for r in rows if r.kind == "A/A" and r.variant == "default"]
    by_method: dict[str, list[Row]] = defaultdict(list)
    for r in aa:
        by_method[r.method].append(r)
    fig, ax = plt.subplots(figsize=(10, 4))
    for i, (meth, rs) in enumerate(sorted(by_method.items())):
        ax.scatter([i] * len(rs), [r.abort_rate for r in rs], label=meth, alpha=0.6)
    ax.axhline(0.05, color="k", ls="--", lw=1)
    ax.set_xticks(range(len(by_method)), sorted(by_method), rotation=15)
    ax.set_ylabel("A/A false-abort rate")
    ax.set_title("False aborts of identical canaries (each dot a scenario); dashed: α = 5%")
    p = out / f"{name}-false-aborts.png"
    fig.tight_layout()
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)

    reg = [r for r in rows if r.kind == "regression" and r.variant in ("default", "oracle")]
    cells = sorted({(r.condition, r.scenario) for r in reg})
    fig, ax = plt.subplots(figsize=(12, 5))
    methods = sorted({r.method for r in reg})
    for j, meth in enumerate(methods):
        ys = []
        for cell in cells:
            hit = [r for r in reg if (r.condition, r.scenario) == cell and r.method == meth]
            ys.append(hit[0].median_tta_s / 60 if hit else float("nan"))
        ax.plot(range(len(cells)), ys, marker="o", ls="", label=meth, alpha=0.7, ms=4 + j % 3)
    ax.set_xticks(
        range(len(cells)), [f"{s}\n{c.split(',')[0]}" for c, s in cells], rotation=90, fontsize=6
    )
    ax.set_ylabel("median time to abort (min; missing = not reached)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p = out / f"{name}-time-to-abort.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    return paths
