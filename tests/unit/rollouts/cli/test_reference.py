"""The generated CLI reference: complete, up to date, and faithful to each command's ``--help``."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from rollouts.cli import reference
from rollouts.cli.main import COMMANDS, LazyGroup, cli
from rollouts.cli.reference import Tree, check, help_text, render, walk

ROOT = Path(__file__).resolve().parents[4]
PAGE = ROOT / "docs" / "reference" / "cli.md"


def sections(text: str) -> dict[str, str]:
    """Heading (``sluice get rollout``) → the body of its section."""
    parts = re.split(r"^## `([^`]+)`$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


# ------------------------------------------------------------------------ the real program


def test_every_command_loads() -> None:
    """The page is only complete when every subcommand imports; a failing import is named."""
    tree = walk()
    assert [(m.name, m.error) for m in tree.unavailable] == []
    loaded = {e.path[0] for e in tree.entries if e.path}
    assert loaded == set(COMMANDS)


def test_committed_page_is_the_generated_one() -> None:
    assert check(PAGE) == [], "run: python -m rollouts.cli.reference"


def test_every_command_has_a_section_with_its_usage() -> None:
    found = sections(render())
    for name in COMMANDS:
        assert f"sluice {name}" in found, name
        assert "Not documented" not in found[f"sluice {name}"], name
        assert f"\nsluice {name} " in found[f"sluice {name}"]  # the usage line
    # the groups' own subcommands are documented too
    assert "sluice get rollout" in found
    assert "sluice list rollouts" in found


def test_every_option_of_simulate_is_in_its_table() -> None:
    body = sections(render())["sluice simulate"]
    simulate = cli.get_command(click.Context(cli), "simulate")
    assert simulate is not None
    options = [p for p in simulate.params if isinstance(p, click.Option)]
    assert len(options) >= 10
    rows = [line for line in body.splitlines() if line.startswith("| `-")]
    assert len(rows) == len(options)
    for option, row in zip(options, rows, strict=True):
        assert row.startswith(f"| `{', '.join(option.opts)}"), (option.opts, row)
        assert (option.help or "").split()[0] in row
    analysis = next(r for r in rows if r.startswith("| `--analysis`"))
    assert "`pass`" in analysis and "one of `error`, `fail`, `inconclusive`, `pass`" in analysis
    assert "| `FILE` | existing file | yes |" in body


def test_check_names_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text("# CLI reference\n\nold\n", encoding="utf-8")
    assert reference.main(["--check", "--out", str(stale)]) == 1
    err = capsys.readouterr().err
    assert f"{stale} is out of date" in err
    assert "+## `sluice simulate`" in err  # the diff says what is missing


def test_writes_then_checks_clean(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "cli.md"
    assert reference.main(["--out", str(out)]) == 0
    assert reference.main(["--check", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render()


# ------------------------------------------------------------------- a made-up command tree


@click.group("things")
def things() -> None:
    """Things, by kind."""


@things.command("thing")
@click.argument("name", help="The thing's name.")
@click.option("-n", "--namespace", metavar="NS", help="Where it lives.")
@click.option("--count", type=click.IntRange(min=1), default=3, show_default=True, help="How many.")
@click.option("--color", type=click.Choice(["red", "blue"]), required=True, help="Its color.")
@click.option("--secret", hidden=True, help="Not for people.")
@click.option("--loud/--quiet", default=True, show_default=True, help="Volume.")
@click.option("--tag", multiple=True, envvar="THING_TAG", show_envvar=True, help="A tag.")
def thing(**_: object) -> None:
    """Show one thing.

    Its details, re-flowed
    as one paragraph.

    \b
    Example:
      demo get thing web --color red

    \f
    Internal notes that --help hides.
    """


def made_up() -> LazyGroup:
    @click.group(cls=LazyGroup, lazy={"broken": "no_such_module:cmd"})
    def demo() -> None:
        """Demo program."""

    demo.add_command(things, "get")
    return demo


def made_up_tree() -> Tree:
    return walk(made_up(), "sluice")


def test_groups_are_walked_and_a_broken_import_is_reported() -> None:
    tree = made_up_tree()
    assert [e.name for e in tree.entries] == ["sluice", "sluice get", "sluice get thing"]
    [broken] = tree.unavailable
    assert broken.name == "sluice broken" and "no_such_module" in broken.error
    text = render(tree)
    found = sections(text)
    assert list(found) == ["sluice", "sluice broken", "sluice get", "sluice get thing"]
    assert "could not be loaded" in found["sluice broken"]
    assert "- [`sluice get thing`](#sluice-get-thing): Show one thing." in found["sluice get"]
    problems = check(Path("/nonexistent/cli.md"), tree)
    assert problems[0].startswith("sluice broken: cannot be loaded: ModuleNotFoundError")


def test_a_command_section_says_what_help_says() -> None:
    body = sections(render(made_up_tree()))["sluice get thing"]
    assert "```text\nsluice get thing [OPTIONS] NAME\n```" in body
    assert "Its details, re-flowed as one paragraph." in body
    assert "```text\nExample:\n  demo get thing web --color red\n```" in body
    assert "Internal notes" not in body
    assert "| `NAME` | text | yes | The thing's name. |" in body
    assert "| `-n, --namespace NS` | text |  | Where it lives. |" in body
    assert "| `--count` | integer, x>=1 | `3` | How many. |" in body
    assert "| `--color` | one of `red`, `blue` | required | Its color. |" in body
    assert "| `--loud / --quiet` | flag | `loud` | Volume. |" in body
    assert "| `--tag` | text, repeatable |  | A tag. Environment variable: `THING_TAG`. |" in body
    assert "--secret" not in body and "--help" not in body


def test_help_text_keeps_b_blocks_and_drops_f() -> None:
    assert help_text(thing).split("\n\n") == [
        "Show one thing.",
        "Its details, re-flowed as one paragraph.",
        "```text\nExample:\n  demo get thing web --color red\n```",
    ]


def test_render_is_deterministic() -> None:
    assert render(made_up_tree()) == render(made_up_tree())


def test_angle_brackets_survive_markdown_outside_code_only() -> None:
    @click.command("op")
    def op() -> None:
        """Writes request=abort@<id>; the same as `kubectl annotate x request=abort@<id>`."""

    assert help_text(op) == (
        "Writes request=abort@&lt;id>; the same as `kubectl annotate x request=abort@<id>`."
    )
