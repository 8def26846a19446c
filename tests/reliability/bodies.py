"""Bad Rollout and AnalysisTemplate bodies, generated from valid ones by random mutation.

Each body is a valid document with one to three mutations inside ``spec``: a value replaced by
one of the wrong type or out of range, a key removed, an unknown key added, a mapping swapped
for a list. Metadata stays valid (a real API server validates it before any controller sees the
object). The bodies are applied raw, with no schema validation in between (kmock's emulator has
none), so they stand for objects applied before the CRD was installed, under an older schema, or
by a client that bypassed validation. A mutation may leave the body valid (an image replaced by
another string); the suite then checks only that the object got a status.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PathItem = str | int

BAD_VALUES: tuple[Any, ...] = (
    None,
    "",
    "x" * 300,
    "🙂 ünïcode",
    "{{args.nope}}",
    -1,
    0,
    10**12,
    1.5,
    float("1e308"),
    True,
    [],
    {},
    [1, "a", None],
    {"unexpected": {"deep": [1]}},
    "100%",
    "-5s",
    "1h1h",
)


@dataclass(frozen=True)
class Body:
    kind: str  # "Rollout" or "AnalysisTemplate"
    name: str
    doc: dict[str, Any]
    mutations: tuple[str, ...]
    """Each mutation as ``op path``, e.g. ``replace spec.strategy.canary.steps[0].setWeight``."""


def path_text(path: tuple[PathItem, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _paths(node: Any, path: tuple[PathItem, ...]) -> Iterator[tuple[PathItem, ...]]:
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def _get(doc: Any, path: tuple[PathItem, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _mutate(doc: dict[str, Any], rng: random.Random) -> str:
    paths = [p for p in _paths(doc["spec"], ("spec",)) if len(p) > 1]
    path = rng.choice(paths)
    parent = _get(doc, path[:-1])
    key = path[-1]
    op = rng.choice(("replace", "replace", "replace", "delete", "add", "swap"))
    if op == "replace":
        parent[key] = copy.deepcopy(rng.choice(BAD_VALUES))
    elif op == "delete":
        if isinstance(parent, dict):
            del parent[key]
        else:
            assert isinstance(key, int)
            parent.pop(key)
    elif op == "add":
        target = parent if isinstance(parent, dict) else _get(doc, path[:-2])
        if not isinstance(target, dict):
            parent[key] = None
            return f"replace {path_text(path)}"
        target[rng.choice(("bogus", "Weight", "setweight", "x-extra"))] = rng.choice(BAD_VALUES)
        return f"add {path_text(path[:-1])}"
    else:
        value = parent[key]
        if isinstance(value, dict):
            parent[key] = [value]
        elif isinstance(value, list):
            parent[key] = {"0": value}
        else:
            parent[key] = {"value": value}
    return f"{op} {path_text(path)}"


# ------------------------------------------------------------------------------ valid seeds

HEADER_ROUTE: dict[str, Any] = {
    "match": [{"headerName": "x-canary", "headerValue": {"exact": "always"}}],
    "cookie": {"name": "canary", "value": "always"},
}


def rollout_seeds(name: str, template: str) -> list[dict[str, Any]]:
    """Valid Rollouts covering every strategy and router kind the mutations can reach."""
    base: dict[str, Any] = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"{name}:1",
                            "ports": [{"containerPort": 8080}],
                            "resources": {"requests": {"cpu": "10m"}},
                        }
                    ]
                },
            },
        },
    }
    canary = copy.deepcopy(base)
    canary["spec"]["strategy"] = {
        "canary": {
            "stableService": name,
            "canaryService": f"{name}-canary",
            "maxSurge": "25%",
            "steps": [
                {"setWeight": 20},
                {"pause": {"duration": "1s"}},
                {"analysis": {"templates": [{"templateName": template}]}},
                {"setWeight": 60},
                {"pause": {}},
            ],
            "trafficRouting": {"istio": {"virtualService": {"name": name, "routes": ["primary"]}}},
            "analysis": {
                "templates": [{"templateName": template}],
                "startingStep": 1,
                "args": [{"name": "service", "value": name}],
            },
        }
    }
    gateway = copy.deepcopy(base)
    gateway["spec"]["strategy"] = {
        "canary": {
            "stableService": name,
            "canaryService": f"{name}-canary",
            "steps": [
                {"setHeaderRoute": HEADER_ROUTE},
                {"setWeight": 50},
                {"setHeaderRoute": {}},
            ],
            "trafficRouting": {"gatewayAPI": {"httpRoute": {"name": name}}},
        }
    }
    blue_green = copy.deepcopy(base)
    blue_green["spec"]["strategy"] = {
        "blueGreen": {
            "activeService": name,
            "previewService": f"{name}-preview",
            "autoPromotionEnabled": True,
            "autoPromotionSeconds": 5,
            "scaleDownDelaySeconds": 30,
            "prePromotionAnalysis": {"templates": [{"templateName": template}]},
        }
    }
    return [canary, gateway, blue_green]


def template_seed(name: str) -> dict[str, Any]:
    window = "{{window}}"
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "args": [{"name": "service", "value": "web"}],
            "metrics": [
                {
                    "name": "error-rate",
                    "kind": "counts",
                    "interval": "10s",
                    "count": 5,
                    "provider": {
                        "prometheus": {
                            "address": "http://127.0.0.1:9",
                            "canary": {
                                "events": f"sum(increase(errors{{svc={{{{args.service}}}}}}[{window}]))",
                                "total": f"sum(increase(requests{{svc={{{{args.service}}}}}}[{window}]))",
                            },
                            "baseline": {
                                "events": f"sum(increase(errors[{window}]))",
                                "total": f"sum(increase(requests[{window}]))",
                            },
                        }
                    },
                    "compare": {"direction": "increase", "tolerance": 1.2},
                },
                {
                    "name": "p99",
                    "kind": "value",
                    "interval": "10s",
                    "provider": {"prometheus": {"query": "vector(0.1)"}},
                    "threshold": {"max": 0.5, "failureLimit": 1},
                },
            ],
        },
    }


# -------------------------------------------------------------------------------- generator


def bodies(kind: str, count: int, seed: int, prefix: str = "f") -> Iterator[Body]:
    """``count`` mutated bodies of ``kind``; the same seed gives the same bodies."""
    rng = random.Random(seed)
    for i in range(count):
        name = f"{prefix}{i}"
        if kind == "Rollout":
            doc = copy.deepcopy(rng.choice(rollout_seeds(name, f"{name}-t")))
        else:
            doc = template_seed(name)
        muts = tuple(_mutate(doc, rng) for _ in range(rng.choice((1, 1, 2, 3))))
        yield Body(kind, name, doc, muts)
