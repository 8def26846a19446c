"""A mapping that remembers which keys were read, so unread ones can be reported.

Translators read input through :class:`Fields`; a key is *handled* once it is read (translated)
or explicitly reported. :meth:`Fields.unhandled` then lists every key nobody looked at, which the
converter reports as unknown: a field added upstream after this converter was written shows up in
the report instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from rollouts.convert.report import Note, Severity


class Fields:
    def __init__(self, data: Any, path: str, source: str, notes: list[Note]) -> None:
        self.data: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        self.path = path
        self.source = source
        self.notes = notes
        self._handled: set[str] = set()
        self._children: list[Fields] = []
        if data is not None and not isinstance(data, Mapping):
            self.note(None, "dropped", f"expected a mapping, got {type(data).__name__}")

    def where(self, key: str | None) -> str:
        if key is None:
            return self.path or "."
        return f"{self.path}.{key}" if self.path else key

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        """The value (marking the key handled)."""
        self._handled.add(key)
        return self.data.get(key, default)

    def sub(self, key: str) -> Fields:
        """The mapping under ``key`` as Fields of its own (empty when absent)."""
        self._handled.add(key)
        child = Fields(self.data.get(key), self.where(key), self.source, self.notes)
        self._children.append(child)
        return child

    def items(self, key: str) -> Iterator[Fields]:
        """Each mapping of the list under ``key``."""
        self._handled.add(key)
        value = self.data.get(key) or []
        if not isinstance(value, list):
            self.note(key, "dropped", f"expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            child = Fields(item, f"{self.where(key)}[{i}]", self.source, self.notes)
            self._children.append(child)
            yield child

    def note(self, key: str | None, severity: Severity, reason: str) -> None:
        if key is not None:
            self._handled.add(key)
        self.notes.append(Note(self.source, self.where(key), severity, reason))

    def drop(self, key: str, reason: str) -> None:
        """Report ``key`` as not translated, if it is present."""
        self._handled.add(key)
        if key in self.data:
            self.note(key, "dropped", reason)

    def ignore(self, *keys: str) -> None:
        """Keys that carry nothing to translate (server-set metadata, status)."""
        self._handled.update(keys)

    def rest(self, reason: str) -> None:
        """Report every key not handled yet with the same reason."""
        for key in self.data:
            if key not in self._handled:
                self.drop(key, reason)

    def unhandled(self) -> Iterator[str]:
        for key in self.data:
            if key not in self._handled:
                yield self.where(key)
        for child in self._children:
            yield from child.unhandled()

    def finish(self) -> None:
        """Report every key nobody read as unknown to the converter."""
        for where in self.unhandled():
            self.notes.append(
                Note(self.source, where, "dropped", "unknown to sluice convert: not translated")
            )
