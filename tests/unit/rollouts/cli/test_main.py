"""``sluice --help`` answers without importing what only the subcommands need.

Timing is the benchmark's job (benchmarks/cli_startup.py); what keeps it fast is checked here: the
modules ``--help`` loads, in a fresh interpreter, and that its command list is the one click would
print after importing every command.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import click
from click.testing import CliRunner

from rollouts.cli.main import COMMANDS, SUMMARIES, LazyGroup, cli

HEAVY = ("numpy", "scipy", "kubernetes", "kopf", "matplotlib")

PROBE = """
import json, sys
from rollouts.cli.main import cli
try:
    cli.main(args=sys.argv[1:], prog_name="sluice")
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules)))
"""


def loaded_by(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_help_imports_no_heavy_library() -> None:
    assert heavy(loaded_by("--help")) == []
    assert heavy(loaded_by()) == []  # no arguments prints the help too
    assert heavy(loaded_by("--version")) == []


def test_the_probe_sees_heavy_imports() -> None:
    """The check above can fail: a subcommand's --help does load the simulator's numpy."""
    assert "numpy" in heavy(loaded_by("simulate", "--help"))


def test_every_command_has_a_summary_equal_to_its_own_help() -> None:
    assert set(SUMMARIES) == set(COMMANDS)
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        assert SUMMARIES[name] == command.get_short_help_str(limit=10**6), name


def test_help_lists_what_click_would_after_importing_every_command() -> None:
    lazy_help = CliRunner().invoke(cli, ["--help"]).output
    assert isinstance(cli, LazyGroup)
    eager = LazyGroup(
        name=cli.name, lazy=COMMANDS, help=cli.help, context_settings=cli.context_settings
    )
    eager.params = cli.params
    eager_help = CliRunner().invoke(eager, ["--help"]).output
    assert lazy_help == eager_help
    assert re.search(r"\n  simulate +Run FILE's Rollout through Sluice's engine", lazy_help)
