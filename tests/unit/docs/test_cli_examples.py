"""Every ``sluice ...`` command the docs show parses with the CLI as it is now.

A guide whose commands no longer exist (a renamed flag, a moved subcommand) fails a reader at the
first step; this parses each example with click (no command runs), so such a change fails here.
"""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import click
import pytest

from rollouts.cli.main import cli

REPO = Path(__file__).parents[3]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
COMMAND = re.compile(r"^(?:\$ )?(?:\S*/)?(?:sluice|kubectl sluice) ")


def examples() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in FENCE.finditer(doc.read_text()):
            if block.group(1) not in ("", "sh", "bash", "console", "shell"):
                continue
            text = block.group(2).replace("\\\n", " ")
            for line in text.splitlines():
                line = line.split("  #")[0].strip()
                if COMMAND.match(line):
                    found.append((doc.name, line))
    return found


def parse(line: str) -> click.Context:
    """Resolve the subcommands and parse the options of ``line`` as the CLI would, without
    running it; raises click's usage errors on anything it would reject."""
    # a placeholder such as ``<random per pod>`` stands for one value
    words = shlex.split(re.sub(r"<[^>]*>", "1", line.removeprefix("$ ")))
    while words and not words[0].endswith("sluice"):
        words.pop(0)  # "kubectl sluice ..." → "sluice ..."
    command: click.Command = cli
    ctx = command.make_context("sluice", words[1:])
    while isinstance(command, click.Group):
        with warnings.catch_warnings():  # protected_args: deprecated in click 8.2, not yet gone
            warnings.simplefilter("ignore", DeprecationWarning)
            name, *rest = [*ctx.protected_args, *ctx.args]
        sub = command.get_command(ctx, name)
        if sub is None:
            raise click.UsageError(f"no such command {name!r}")
        command, ctx = sub, sub.make_context(name, rest, parent=ctx)
    return ctx


EXAMPLES = examples()


def test_the_docs_show_cli_examples() -> None:
    shown = {line.split()[1 if line.startswith("$") else 0] for _, line in EXAMPLES}
    assert len(EXAMPLES) >= 20, EXAMPLES
    guide = [line for doc, line in EXAMPLES if doc == "getting-started.md"]
    for sub in ("lint", "simulate", "list", "get", "status", "promote", "abort", "retry"):
        assert any(f" {sub} " in f" {line} " for line in guide), (sub, shown)


@pytest.mark.parametrize(("doc", "line"), EXAMPLES, ids=[f"{d}: {c}" for d, c in EXAMPLES])
def test_example_parses(doc: str, line: str) -> None:
    try:
        parse(line)
    except click.exceptions.Exit as e:  # --version, --help: print and exit 0
        assert e.exit_code == 0


def test_a_wrong_flag_is_caught() -> None:
    with pytest.raises(click.UsageError):
        parse("sluice status web --tiemout 5m")
    with pytest.raises(click.UsageError):
        parse("sluice get rollouts web")
