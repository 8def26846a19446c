"""Revision identity: a short hash of the pod template.

Two specs with the same template are the same revision whatever else changed (replicas, steps),
which is what lets a revert in Git to the stable template finish instantly.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def template_hash(template: dict[str, Any]) -> str:
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]
