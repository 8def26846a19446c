"""constraints.txt pins what scripts/setup.sh installs, so a new release of a tool cannot turn a
fresh clone red; every dependency pyproject.toml names must have its pin."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"not an exact pin: {line!r}"
            out[normalized(name)] = version
    return out


def test_every_dependency_and_dev_tool_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"]]
    for extra in ("dev", "plots"):
        wanted += project["optional-dependencies"][extra]
    names = {normalized(re.split(r"[<>=!~\[; ]", w, maxsplit=1)[0]) for w in wanted}
    pinned = pins()
    assert {"ruff", "mypy", "import-linter", "pytest", "pytest-xdist", "matplotlib"} <= names
    assert sorted(names - set(pinned)) == []


def test_setup_installs_with_the_constraints() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt" in setup
