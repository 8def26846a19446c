"""The README's layout table matches the tree.

A new maintainer reads that table first; a path it names that no longer exists, or a package it
leaves out, sends them to the wrong place. Every backticked path in the table must exist, and every
package and top-level module under ``rollouts/`` and ``analysis/`` (and the top-level folders that
hold code or manifests) must be named by a row, by itself or through a folder that contains it.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).parents[3]
ROW = re.compile(r"^\| (?P<paths>[^|]+) \| (?P<what>[^|]+) \|$", re.MULTILINE)
PATH = re.compile(r"`([^`]+)`")


def layout_rows() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    paths: list[str] = []
    for row in ROW.finditer(section):
        if row.group("paths").strip() in ("path", "---"):
            continue
        paths += PATH.findall(row.group("paths"))
    return paths


def named(path: str, rows: list[str]) -> bool:
    """``path`` is a row, or lies inside a folder that is one."""
    return any(
        path == row.rstrip("/") or (row.endswith("/") and path.startswith(row)) for row in rows
    )


def test_the_table_has_rows() -> None:
    rows = layout_rows()
    assert "rollouts/engine/" in rows and "analysis/stats/" in rows, rows


def test_every_path_the_table_names_exists() -> None:
    missing = [p for p in layout_rows() if not (REPO / p).exists()]
    assert missing == [], f"README layout names paths that do not exist: {missing}"


def test_every_package_and_module_is_in_the_table() -> None:
    rows = layout_rows()
    wanted: list[str] = []
    for package in ("rollouts", "analysis"):
        for child in sorted((REPO / package).iterdir()):
            if child.name.startswith(("_", ".")):
                continue
            if child.is_dir() and (child / "__init__.py").exists():
                wanted.append(f"{package}/{child.name}/")
            elif child.suffix == ".py":
                wanted.append(f"{package}/{child.name}")
    left_out = [p for p in wanted if not named(p.rstrip("/"), rows) and not named(p, rows)]
    for top in ("simulations", "benchmarks", "crds", "deploy", "docs", "charts"):
        # a top-level folder is named by a row for it or for something inside it
        if (REPO / top).is_dir() and not any(r.startswith(f"{top}/") for r in rows):
            left_out.append(f"{top}/")
    assert left_out == [], f"README layout leaves out: {left_out}"
