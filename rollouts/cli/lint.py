"""``sluice lint FILE...``: check Rollouts and analysis templates offline, before they are applied.

The documents go through the very parsers the controller uses (``parse_rollout``,
``parse_template``), so a problem reads the same here as in the Rollout's ``InvalidSpec``
condition, with the field to fix named: ``spec.strategy.canary.steps[2].setWeight: must be <= 100``.
No cluster is needed and nothing heavier than the models is imported, so it is quick in CI.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from analysis.api import (
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    InvalidAnalysisSpec,
    parse_template,
)
from rollouts.api.rollout import NOTIFICATIONS_OBJECT, AnalysisRef, Rollout
from rollouts.api.validation import InvalidSpec, parse_rollout
from rollouts.cli.documents import NotYaml, load_all
from rollouts.notifications.config import NotificationConfigError, parse_defaults

if TYPE_CHECKING:
    from analysis.lifecycle import TemplateRef

Template = AnalysisTemplate | ClusterAnalysisTemplate

GROUP_PREFIX = "sluice.dev/"
TEMPLATE_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")
SLUICE_KINDS = ("Rollout", *TEMPLATE_KINDS)

OK, INVALID, UNREADABLE = 0, 1, 2
"""Exit codes: all valid, something invalid, a file could not be read (or a usage error)."""


@dataclass
class Finding:
    """The verdict on one document (or on a whole file that is not YAML)."""

    source: str
    """``path: Rollout/web`` — where to look."""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    syntax: bool = False
    """The file is not YAML, or holds no document: one line, ``path:line: not valid YAML: ...``."""
    skipped: bool = False
    """Another API group's document (a Service beside its Rollout): not Sluice's to judge."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> Iterator[str]:
        if self.syntax:
            yield from (f"{self.source}: {p}" for p in self.problems)
            return
        if self.skipped:
            yield f"{self.source}: skipped (not a Sluice kind)"
            return
        if self.ok:
            extra = f" ({len(self.warnings)} warning{'s' * (len(self.warnings) != 1)})"
            yield f"{self.source}: ok" + (extra if self.warnings else "")
        else:
            yield f"{self.source}: invalid"
        for p in self.problems:
            yield f"  {p}"
        for w in self.warnings:
            yield f"  warning: {w}"


@dataclass
class Document:
    path: str
    index: int
    """1-based position in its file."""
    body: Any


class Unreadable(Exception):
    """A file that could not be opened or read: a usage problem, not an invalid document."""


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise Unreadable(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise Unreadable(f"{path}: cannot read: not UTF-8 text") from None


def load(path: str, text: str) -> list[Document] | Finding:
    """The non-empty documents of ``text``, or a Finding saying where the YAML breaks."""
    try:
        bodies = load_all(path, text)
    except NotYaml as e:
        where, _, problem = str(e).partition(": not valid YAML: ")
        return Finding(where, [f"not valid YAML: {problem}"], syntax=True)
    return [Document(path, i, b) for i, b in enumerate(bodies, start=1) if b is not None]


def label(doc: Document) -> str:
    body = doc.body if isinstance(doc.body, dict) else {}
    kind = body.get("kind") or "(no kind)"
    name = (
        (body.get("metadata") or {}).get("name") if isinstance(body.get("metadata"), dict) else None
    )
    return f"{doc.path}: {kind}/{name or f'(document {doc.index})'}"


def analysis_refs(rollout: Rollout) -> Iterator[tuple[str, str, bool]]:
    """(field path, template name, cluster scope) of every template the Rollout refers to."""
    refs: list[tuple[str, AnalysisRef | None]] = []
    if rollout.canary is not None:
        base = "spec.strategy.canary"
        refs += [
            (f"{base}.steps[{i}].analysis", s.analysis) for i, s in enumerate(rollout.canary.steps)
        ]
        refs.append((f"{base}.analysis", rollout.canary.analysis))
    if rollout.blue_green is not None:
        base = "spec.strategy.blueGreen"
        refs.append((f"{base}.prePromotionAnalysis", rollout.blue_green.pre_promotion_analysis))
        refs.append((f"{base}.postPromotionAnalysis", rollout.blue_green.post_promotion_analysis))
    for where, ref in refs:
        if ref is None:
            continue
        for j, t in enumerate(ref.templates):
            yield f"{where}.templates[{j}].templateName", t.template_name, t.cluster_scope


def risky(rollout: Rollout) -> list[str]:
    """Legal but probably not meant: worth a warning from lint and simulate alike."""
    if rollout.canary is not None and not rollout.canary.steps:
        return [
            "spec.strategy.canary.steps: no steps: every new revision goes straight to 100% "
            "with no pause and no analysis step"
        ]
    return []


def defined_templates(docs: Iterable[Document]) -> dict[str, set[str]]:
    """Template names by kind, from every document that declares one (valid or not: an invalid
    template is reported on its own; a reference to it is not also "undefined")."""
    out: dict[str, set[str]] = {k: set() for k in TEMPLATE_KINDS}
    for d in docs:
        if isinstance(d.body, dict) and d.body.get("kind") in TEMPLATE_KINDS:
            name = (d.body.get("metadata") or {}).get("name")
            if isinstance(name, str):
                out[d.body["kind"]].add(name)
    return out


def parsed_templates(docs: Iterable[Document]) -> dict[tuple[str, str], Template]:
    """The valid templates by (kind, name): what a Rollout's error budget is checked against."""
    out: dict[tuple[str, str], Template] = {}
    for d in docs:
        if isinstance(d.body, dict) and d.body.get("kind") in TEMPLATE_KINDS:
            try:
                t = parse_template(d.body)
            except InvalidAnalysisSpec:
                continue  # reported on its own
            out[(t.kind, t.metadata.name)] = t
    return out


def budget(rollout: Rollout, parsed: Mapping[tuple[str, str], Template]) -> str | None:
    """The controller's error-budget check over the templates the files define.

    Imported here, not at the top: it brings the statistics (numpy), which only a Rollout
    with analysis needs."""
    from rollouts.verdicts.analysis_runs import budget_problem

    def lookup(ref: TemplateRef) -> Template | None:
        kind = "ClusterAnalysisTemplate" if ref.cluster_scope else "AnalysisTemplate"
        return parsed.get((kind, ref.name))

    return budget_problem(rollout, lookup)


def check(
    doc: Document,
    templates: dict[str, set[str]],
    strict: bool = False,
    parsed: Mapping[tuple[str, str], Template] | None = None,
) -> Finding:
    """One document through the controller's parser for its kind."""
    finding = Finding(label(doc))
    body = doc.body
    if not isinstance(body, dict):
        finding.problems.append(
            f"document {doc.index} is not a mapping (got {type(body).__name__})"
        )
        return finding
    kind = body.get("kind")
    if kind == "Rollout":
        try:
            rollout = parse_rollout(body)
        except InvalidSpec as e:
            finding.problems += e.problems
            return finding
        finding.warnings += risky(rollout)
        for where, name, cluster in analysis_refs(rollout):
            wanted = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
            if name not in templates[wanted]:
                note = f"{where}: {wanted} {name!r} is not defined in the given files"
                (finding.problems if strict else finding.warnings).append(note)
        if parsed and any(True for _ in analysis_refs(rollout)):
            problem = budget(rollout, parsed)
            if problem is not None:
                finding.problems.append(problem)
    elif kind in TEMPLATE_KINDS:
        try:
            parse_template(body)
        except InvalidAnalysisSpec as e:
            finding.problems += e.problems
    elif kind == "ConfigMap" and _name(body) == NOTIFICATIONS_OBJECT:
        # the namespace's default notification subscriptions, as the controller reads them
        try:
            parse_defaults(body.get("data"))
        except NotificationConfigError as e:
            finding.problems.append(str(e))
    elif kind and not str(body.get("apiVersion") or "").startswith(GROUP_PREFIX):
        finding.skipped = True
    else:
        finding.problems.append(
            f"kind {kind!r} is not a kind lint checks ({', '.join(SLUICE_KINDS)})"
            if kind
            else f"kind is missing: not a Sluice kind ({', '.join(SLUICE_KINDS)})"
        )
    return finding


def _name(body: dict[str, Any]) -> Any:
    meta = body.get("metadata")
    return meta.get("name") if isinstance(meta, dict) else None


def lint_texts(sources: Iterable[tuple[str, str]], strict: bool = False) -> list[Finding]:
    """Findings for ``(path, text)`` pairs; template references resolve across all of them.

    Documents of other API groups (the Services that often share a file with their Rollout, or
    a whole rendered chart) are listed as skipped, not judged: a GitOps repository mixes kinds,
    and lint must pass on it. A ``sluice.dev`` document of a kind lint does not check (a typo,
    an AnalysisRun) is a problem."""
    loaded = [(path, load(path, text)) for path, text in sources]
    every = [d for _, docs in loaded if isinstance(docs, list) for d in docs]
    templates = defined_templates(every)
    parsed = parsed_templates(every)
    out: list[Finding] = []
    for path, docs in loaded:
        if isinstance(docs, Finding):
            out.append(docs)
        elif not docs:  # an empty file, helm rendering nothing: nothing was checked, so no "ok"
            out.append(Finding(path, ["no YAML documents: nothing to check"], syntax=True))
        else:
            out += [check(d, templates, strict, parsed) for d in docs]
    return out


@click.command("lint")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--strict",
    is_flag=True,
    help="Treat analysis templates a Rollout refers to but the files do not define as errors "
    "(by default a warning: they may already be in the cluster).",
)
def lint(files: tuple[str, ...], strict: bool) -> None:
    """Validate Rollouts and (Cluster)AnalysisTemplates in FILE... offline.

    Every document of every file (multi-document YAML; - reads stdin) is checked by the
    controller's own models, with the same messages its InvalidSpec condition would show. A
    Rollout's references to analysis templates that none of the files define are warnings
    (errors with --strict), and so is a canary with no steps. The explicit compare.alpha of the
    templates a Rollout uses must fit its error budget (0.05), as the controller checks when an
    analysis starts. A ConfigMap named sluice-notifications (a namespace's default
    notification subscriptions) is checked as the controller reads it. Documents of other API
    groups (Services, Deployments...) are listed as skipped; a sluice.dev document of another kind is an error, and so is a file with no document
    at all (nothing was checked).

    \b
    Exit codes:
      0  every document is valid
      1  some document is invalid (or a file is not valid YAML, or holds no document)
      2  a file could not be read, or a usage error

    \b
    Example:
      sluice lint deploy/rollout.yaml deploy/templates/*.yaml
      helm template . | sluice lint -
    """
    sources: list[tuple[str, str]] = []
    unreadable: list[str] = []
    for path in files:
        try:
            sources.append(("<stdin>" if path == "-" else path, read_text(path)))
        except Unreadable as e:
            unreadable.append(str(e))
    findings = lint_texts(sources, strict)
    for f in findings:
        for line in f.lines():
            click.echo(line)
    for problem in unreadable:
        click.echo(f"Error: {problem}", err=True)
    if unreadable:
        raise SystemExit(UNREADABLE)
    raise SystemExit(INVALID if any(not f.ok for f in findings) else OK)
