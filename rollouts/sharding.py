"""Which Rollouts a controller replica owns when the fleet is split into shards (``--shard I/N``).

A Rollout belongs to shard ``sha256("namespace/name") mod N``: stable across restarts, Python
versions and machines (``hash()`` is salted per process), and spread evenly. Every replica computes
the same answer from the name alone, so replicas need not talk to agree, and a Rollout's
Deployments, annotations and router objects are touched only by the replica of its shard (the
kopf handlers filter on ``owns``). Each shard has its own kopf peering (``peering_name``), so
standby replicas of one shard take over when its active one dies, without touching other shards.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(ValueError):
    """A shard written wrong (the message says the expected form)."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ShardError(f"shard {self.index}/{self.count}: expected 0 <= I < N, N >= 1")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` (e.g. ``2/4``)."""
        found = _SHARD.match(text)
        if found is None:
            raise ShardError(f"{text!r}: expected I/N, the shard index from 0 and the count")
        return cls(int(found.group(1)), int(found.group(2)))

    def owns(self, namespace: str | None, name: str | None) -> bool:
        return shard_of(namespace or "", name or "", self.count) == self.index

    def peering_name(self, base: str) -> str:
        """One kopf peering per shard: its replicas elect one active among themselves only."""
        return base if self.count == 1 else f"{base}-shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(namespace: str, name: str, count: int) -> int:
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count
