"""The Kubernetes client's API methods without pydantic's check of their arguments.

The generated API classes of ``kubernetes`` 37 wrap every method in pydantic's ``validate_call``:
each call checks every argument against its annotation before it builds the request. Sluice's
calls are typed (``mypy --strict``) and their arguments built by its own code, so the check finds
nothing, and it cost a fifth of the client's CPU per call: 1.34 ms against 1.10 ms without it for
a status PATCH against the test emulator (500 calls each), with seven calls per Rollout step.

:func:`install` points each wrapped method of two API classes at the function pydantic wraps
(its ``raw_function``), for this process: the request each method builds and sends is the same.
Those two carry only bodies Sluice builds itself (status and router patches, Events, Service
selectors). The Deployment and Job classes keep the check: their bodies carry the user's pod
template, and the client's refusal names the bad field before anything is sent
(``rollouts.rejection``: Stalled, naming ``spec.template...``). ``rollouts.operator.run``
installs it; the CLI does not need it. Only these classes, too, because the client imports its
modules lazily: touching all 66 API classes loaded 834 model modules (3.6 s of CPU and 80 MB).
"""

from __future__ import annotations

import kubernetes.client

_INSTALLED = "_sluice_unvalidated"
CLASSES = (kubernetes.client.CoreV1Api, kubernetes.client.CustomObjectsApi)


def install() -> int:
    """Unwrap the methods of ``CLASSES`` (once); returns how many were unwrapped."""
    count = 0
    for cls in CLASSES:
        if getattr(cls, _INSTALLED, False):
            continue
        for attr, value in list(vars(cls).items()):
            raw = getattr(value, "raw_function", None)
            if callable(raw):
                setattr(cls, attr, raw)
                count += 1
        setattr(cls, _INSTALLED, True)
    return count
