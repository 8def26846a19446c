"""``sluice convert FILE...``: Argo Rollouts and Flagger manifests to Sluice manifests.

The Sluice manifests go to stdout (or ``--output``), the report to stderr (or ``--report``): one
line per input field that was not carried over as is, with what to do about it. Nothing is
dropped without a line. The output is checked with the parsers ``sluice lint`` uses.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click
import yaml

from rollouts.cli.lint import Unreadable, load, read_text
from rollouts.convert import convert_documents

OK, INVALID, UNREADABLE = 0, 1, 2
"""Exit codes: converted (notes or not), a converted manifest is invalid (or --strict and
something was not translated as is), an input could not be read."""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (queries) as literal blocks, as a person would write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(docs: list[dict[str, object]], sources: list[str]) -> str:
    header = (
        "# Converted by `sluice convert` from "
        + ", ".join(sources)
        + ".\n# Review the conversion report before applying: it lists every field not carried over.\n"
    )
    body = "---\n".join(yaml.dump(d, Dumper=_Dumper, sort_keys=False, width=100) for d in docs)
    return header + ("---\n" + body if body else "")


@click.command("convert")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the Sluice manifests here instead of stdout.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the conversion report here instead of stderr.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 when any field was dropped or needs a change by hand, not only when a "
    "converted manifest is invalid.",
)
def convert(
    files: tuple[str, ...], output: Path | None, report_path: Path | None, strict: bool
) -> None:
    """Convert Argo Rollouts and Flagger manifests in FILE... (- for stdin) to Sluice.

    Reads Argo Rollouts Rollout, AnalysisTemplate and ClusterAnalysisTemplate, and Flagger Canary
    and MetricTemplate documents (with the Deployment a Canary targets, whose pod template moves
    into the Rollout). Writes Sluice Rollouts and AnalysisTemplates, and a report of every field
    that was dropped, behaves differently, or needs a change by hand (create a Service Flagger
    used to generate, move credentials into a Secret), with the reason. Example:

    \b
        sluice convert rollout.yaml analysis.yaml -o sluice.yaml
        sluice lint sluice.yaml
    """
    pairs = []
    for path in files:
        try:
            text = read_text(path)
        except Unreadable as e:
            click.echo(str(e), err=True)
            sys.exit(UNREADABLE)
        loaded = load(path, text)
        if not isinstance(loaded, list):
            click.echo("\n".join(loaded.lines()), err=True)
            sys.exit(UNREADABLE)
        pairs += [(d.path, d.body) for d in loaded]
    result = convert_documents(pairs)
    manifests = _dump(result.documents, list(files))
    if output is not None:
        output.write_text(manifests, encoding="utf-8")
    else:
        click.echo(manifests, nl=False)
    counts = Counter(n.severity for n in result.notes)
    lines = [n.line() for n in result.notes]
    lines.append(
        f"{len(result.documents)} manifest(s) written from {len(pairs)} document(s); "
        f"{counts['dropped']} dropped, {counts['changed']} changed, {counts['todo']} to do"
    )
    text = "\n".join(lines) + "\n"
    if report_path is not None:
        report_path.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False, err=True)
    if result.invalid or (strict and (counts["dropped"] or counts["todo"])):
        sys.exit(INVALID)
