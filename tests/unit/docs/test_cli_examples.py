"""Every ``sluice ...`` command the docs show parses with the CLI as it is now.

A guide whose commands no longer exist (a renamed flag, a moved subcommand) fails a reader at the
first step; this parses each example with click (no command runs), so such a change fails here.
"""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path
from typing import Any

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


def given_options(ctx: click.Context) -> dict[str, Any]:
    """Each option spelled on the command line, by the flag used, with the value it parsed to."""
    out: dict[str, Any] = {}
    chain: click.Context | None = ctx
    while chain is not None:
        for param in chain.command.params:
            if not isinstance(param, click.Option) or param.name is None:
                continue
            source = chain.get_parameter_source(param.name)
            if source == click.core.ParameterSource.COMMANDLINE:
                for flag in (*param.opts, *param.secondary_opts):
                    out[flag] = chain.params[param.name]
        chain = chain.parent
    return out


@pytest.mark.parametrize(("doc", "line"), EXAMPLES, ids=[f"{d}: {c}" for d, c in EXAMPLES])
def test_example_parses(doc: str, line: str) -> None:
    try:
        ctx = parse(line)
    except click.exceptions.Exit as e:  # --version, --help: print and exit 0
        assert e.exit_code == 0
        return
    # every option the example spells reached a parameter (none swallowed as an argument)
    words = shlex.split(re.sub(r"<[^>]*>", "1", line.removeprefix("$ ")))
    spelled = {w.split("=")[0] for w in words if w.startswith("-") and w not in ("-", "--")}
    spelled = {f for f in spelled if not f[1:].isdigit()}  # a negative number is a value
    parsed = given_options(ctx)
    assert spelled <= set(parsed), (spelled - set(parsed), line)
    for flag in spelled:
        assert parsed[flag] is not None, (flag, line)


def test_a_wrong_flag_is_caught() -> None:
    with pytest.raises(click.UsageError):
        parse("sluice status web --tiemout 5m")
    with pytest.raises(click.UsageError):
        parse("sluice get rollouts web")
