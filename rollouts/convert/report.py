"""What a conversion could not carry over, one line per field, so a migration can be reviewed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["dropped", "changed", "todo"]
"""``dropped``: the field has no Sluice equivalent and was left out; ``changed``: translated, but
Sluice behaves differently in a way worth knowing; ``todo``: something the user must do (create a
Service, move credentials into a Secret) before the converted manifests work."""


OUTPUT = "(output)"
"""The field of a note about a converted manifest that would not be accepted as it is."""


@dataclass(frozen=True)
class Note:
    source: str
    """``file: Kind/name``: the input document."""
    field: str
    """The input field, as a path: ``spec.strategy.canary.steps[2].experiment``."""
    severity: Severity
    reason: str

    def line(self) -> str:
        return f"{self.source}: {self.field}: {self.severity}: {self.reason}"
