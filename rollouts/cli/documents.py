"""Reading YAML files for the offline commands: one way to say where a file stops being YAML.

``sluice lint`` and ``sluice simulate`` both read a user's manifests; a syntax error must read the
same in both, as one ``file:line: not valid YAML: what`` line an editor can jump to, not PyYAML's
eight lines with a caret.
"""

from __future__ import annotations

from typing import Any

import yaml


class NotYaml(ValueError):
    """The text is not YAML; ``str()`` is the one line to print (``path:line: not valid YAML: ...``)."""


def yaml_problem(path: str, error: yaml.YAMLError) -> str:
    """``path:line: not valid YAML: what`` (``path: ...`` when PyYAML knows no line)."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        what = " ".join(str(error.problem or error.context or "syntax error").split())
        return f"{where}: not valid YAML: {what}"
    return f"{path}: not valid YAML: {' '.join(str(error).split())}"


def load_all(path: str, text: str) -> list[Any]:
    """Every document of ``text``, empty ones included (callers count positions)."""
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise NotYaml(yaml_problem(path, e)) from None
