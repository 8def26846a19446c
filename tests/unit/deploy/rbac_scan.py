"""Which Kubernetes permissions the code needs, read from its source with ``ast``.

The ClusterRole in ``deploy/base/`` must grant exactly what Sluice calls: a missing verb breaks a
rollout in production only (the emulator has no RBAC), and an extra verb is privilege nobody
reviewed. Reading the calls from the source keeps the two from drifting without anyone having to
remember to update the YAML.

How a call becomes a permission:

* ``kubernetes.client`` API methods: each generated method serialises to an HTTP method and a path
  template (``PATCH /api/v1/namespaces/{namespace}/services/{name}``). The table is read from the
  installed client itself, so every method is known without a hand-written list. The path gives
  the group, the resource, the subresource and whether one object or a collection is addressed;
  the HTTP method plus that gives the RBAC verb.
* Custom objects (``*_custom_object*``): group and plural are arguments. They are resolved from
  literals, module constants (also imported ones), class attributes reached through ``self``
  (including those subclasses override), attributes assigned in methods, local variables, and
  parameters, by following the call sites of the enclosing function.
* kopf handlers (``@kopf.on.*``, ``kopf.timer``, ``kopf.daemon``, ``kopf.index``): kopf lists and
  watches the resource; for every handler but ``on.event`` and ``index`` it also patches the
  object (finalizers, progress and diff-base annotations).

Anything that cannot be resolved is reported, never guessed.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes.client

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True, order=True)
class Permission:
    group: str  # "" for the core group
    resource: str  # "rollouts" or "rollouts/status"
    verb: str

    def __str__(self) -> str:
        return f"{self.group or 'core'}:{self.resource}:{self.verb}"


@dataclass(frozen=True)
class Endpoint:
    api: str  # the client class, e.g. CoreV1Api
    http_method: str
    path: str
    params: tuple[str, ...]  # positional parameter names after self


@dataclass
class Finding:
    """One place in the code that talks to the API server."""

    where: str  # file:line
    what: str  # the call as written
    permissions: set[Permission] = field(default_factory=set)
    problem: str | None = None


# ---------------------------------------------------------------------------------------------
# the kubernetes client's endpoint table
# ---------------------------------------------------------------------------------------------

_SERIALIZE = re.compile(
    r"def _(\w+)_serialize\(.*?method='(\w+)',\s*resource_path='([^']+)'", re.DOTALL
)


@functools.cache
def client_endpoints() -> dict[str, tuple[Endpoint, ...]]:
    """Public method name (and its ``_with_http_info`` twins) -> the endpoints it may hit."""
    table: dict[str, list[Endpoint]] = {}
    for name, cls in inspect.getmembers(kubernetes.client, inspect.isclass):
        if not name.endswith("Api") or cls.__module__.split(".")[-2] != "api":
            continue
        source = Path(inspect.getfile(cls)).read_text()
        for method, http_method, path in _SERIALIZE.findall(source):
            public = getattr(cls, method, None)
            if public is None:
                continue
            params = tuple(
                p.name
                for p in inspect.signature(public).parameters.values()
                if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
            )
            endpoint = Endpoint(name, http_method, path, params)
            for alias in (method, f"{method}_with_http_info", f"{method}_without_preload_content"):
                table.setdefault(alias, []).append(endpoint)
    return {k: tuple(v) for k, v in table.items()}


def endpoint_permissions(
    endpoint: Endpoint, *, targets: set[tuple[str, str]] | None = None, watch: bool = False
) -> set[Permission]:
    """The RBAC (group, resource, verb) a request to ``endpoint`` is checked against.

    ``targets`` are the (group, plural) pairs a custom-object call may address.
    """
    segments = endpoint.path.strip("/").split("/")
    if segments[0] == "api":
        group, rest = "", segments[2:]
    else:  # apis/{group}/{version}/...
        group, rest = segments[1], segments[3:]
    if rest and rest[0] == "watch":
        watch, rest = True, rest[1:]
    if len(rest) > 2 and rest[0] == "namespaces" and rest[1] == "{namespace}":
        rest = rest[2:]
    custom = (group, rest[0]) == ("{group}", "{plural}")
    pairs = (targets or set()) if custom else {(group, rest[0])}
    named = len(rest) > 1 and rest[1] == "{name}"
    sub = "/" + rest[2] if len(rest) > 2 else ""
    verb = {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "GET": "get" if named else ("watch" if watch else "list"),
        "DELETE": "delete" if named else "deletecollection",
    }[endpoint.http_method]
    return {Permission(g, r + sub, verb) for g, r in pairs}


# ---------------------------------------------------------------------------------------------
# the project's source
# ---------------------------------------------------------------------------------------------


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    parents: dict[ast.AST, ast.AST]
    imports: dict[str, str]  # local alias -> "module" or "module.NAME"


class Project:
    """The parsed modules, and the name lookups the resolver needs across them."""

    def __init__(self, modules: Iterable[Module]) -> None:
        self.modules = {m.name: m for m in modules}
        self.classes: dict[str, list[tuple[Module, ast.ClassDef]]] = {}
        self.functions: dict[str, list[tuple[Module, ast.FunctionDef]]] = {}
        for m in self.modules.values():
            for node in ast.walk(m.tree):
                if isinstance(node, ast.ClassDef):
                    self.classes.setdefault(node.name, []).append((m, node))
                elif isinstance(node, ast.FunctionDef):
                    self.functions.setdefault(node.name, []).append((m, node))

    @classmethod
    def from_paths(
        cls, roots: Iterable[Path], base: Path = REPO, exclude: Iterable[Path] = ()
    ) -> Project:
        modules = []
        skipped = tuple(exclude)
        for root in roots:
            for path in sorted(root.rglob("*.py")):
                if any(path.is_relative_to(x) for x in skipped):
                    continue
                rel = path.relative_to(base).with_suffix("")
                name = ".".join(rel.parts).removesuffix(".__init__")
                modules.append(parse_module(name, path.read_text(), path))
        return cls(modules)

    @classmethod
    def from_sources(cls, sources: dict[str, str]) -> Project:
        return cls(
            parse_module(n, s, Path(n.replace(".", "/") + ".py")) for n, s in sources.items()
        )

    def bases(self, cls: ast.ClassDef) -> set[str]:
        names: set[str] = set()
        todo = [cls]
        while todo:
            c = todo.pop()
            for b in c.bases:
                bname = b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None)
                if bname and bname not in names:
                    names.add(bname)
                    todo.extend(node for _, node in self.classes.get(bname, []))
        return names

    def family(self, cls: ast.ClassDef) -> list[tuple[Module, ast.ClassDef]]:
        """The class, its bases and its subclasses: any of them may supply ``self.X``."""
        related = self.bases(cls) | {cls.name}
        out = []
        for entries in self.classes.values():
            for m, c in entries:
                if c.name in related or cls.name in self.bases(c):
                    out.append((m, c))
        return out


def parse_module(name: str, source: str, path: Path) -> Module:
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    imports: dict[str, str] = {}
    package = name.rsplit(".", 1)[0] if "." in name else ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                imports[a.asname or a.name.split(".")[0]] = (
                    a.name if a.asname else a.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, mod] if mod else base)
            for a in node.names:
                imports[a.asname or a.name] = f"{mod}.{a.name}"
    return Module(name, path, tree, parents, imports)


def enclosing(module: Module, node: ast.AST, kind: type[ast.AST]) -> ast.AST | None:
    cur = module.parents.get(node)
    while cur is not None and not isinstance(cur, kind):
        cur = module.parents.get(cur)
    return cur


def enclosing_function(module: Module, node: ast.AST) -> ast.FunctionDef | None:
    f = enclosing(module, node, ast.FunctionDef)
    return f if isinstance(f, ast.FunctionDef) else None


def enclosing_class(module: Module, node: ast.AST) -> ast.ClassDef | None:
    c = enclosing(module, node, ast.ClassDef)
    return c if isinstance(c, ast.ClassDef) else None


# ---------------------------------------------------------------------------------------------
# resolving an expression to the strings it can hold
# ---------------------------------------------------------------------------------------------


class Unresolved(Exception):
    pass


@dataclass(frozen=True, eq=False)
class Built:
    """An instance a call to a project class builds (``Resource("apps", "v1", ...)``)."""

    module: Module
    call: ast.Call
    cls: ast.ClassDef


Value = str | Built


class Resolver:
    """The strings an expression can hold, found by reading the code, or ``Unresolved``.

    Over-approximates where Python is dynamic: ``self.X`` is every value any class in the
    hierarchy assigns to X, and a parameter is every argument any call site passes.
    """

    def __init__(self, project: Project) -> None:
        self.project = project

    def strings(self, module: Module, expr: ast.expr) -> set[str]:
        return self._strings_of(self.values(module, expr, 0), expr)

    def pairs(self, module: Module, first: ast.expr, second: ast.expr) -> set[tuple[str, str]]:
        """Two arguments read together: ``(r.group, r.plural)`` pairs fields of the same ``r``.

        Reading them apart would pair every group with every plural the code knows.
        """
        if (
            isinstance(first, ast.Attribute)
            and isinstance(second, ast.Attribute)
            and ast.unparse(first.value) == ast.unparse(second.value)
        ):
            try:
                owners = self.values(module, first.value, 0)
            except Unresolved:
                owners = set()
            if owners and all(isinstance(o, Built) for o in owners):
                out: set[tuple[str, str]] = set()
                for o in owners:
                    assert isinstance(o, Built)
                    a = self._strings_of(self._field(o, first.attr, 1), first)
                    b = self._strings_of(self._field(o, second.attr, 1), second)
                    out |= {(x, y) for x in a for y in b}
                return out
        a, b = self.strings(module, first), self.strings(module, second)
        return {(x, y) for x in a for y in b}

    def unpacked(self, module: Module, args: list[ast.expr]) -> list[ast.expr]:
        """``f(*resource)`` with ``resource = (GROUP, VERSION, PLURAL)`` assigned nearby."""
        out: list[ast.expr] = []
        for a in args:
            if not isinstance(a, ast.Starred):
                out.append(a)
                continue
            target = a.value
            found: ast.expr | None = None
            if isinstance(target, ast.Name):
                scopes: list[ast.AST] = [module.tree]
                func = enclosing_function(module, a)
                while func is not None:
                    scopes.insert(0, func)
                    func = enclosing_function(module, func)
                for scope in scopes:
                    for n in ast.walk(scope):
                        if isinstance(n, ast.Assign) and any(
                            isinstance(t, ast.Name) and t.id == target.id for t in n.targets
                        ):
                            found = n.value
                            break
                    if found is not None:
                        break
            if not isinstance(found, ast.Tuple | ast.List):
                raise Unresolved(f"cannot read {ast.unparse(a)!r} statically")
            out.extend(found.elts)
        return out

    def _strings_of(self, values: set[Value], expr: ast.expr) -> set[str]:
        if not all(isinstance(v, str) for v in values):
            raise Unresolved(f"{ast.unparse(expr)!r} is not a string")
        return {v for v in values if isinstance(v, str)}

    def values(self, module: Module, expr: ast.expr, depth: int) -> set[Value]:
        if depth > 16:
            raise Unresolved(f"too deep at {ast.unparse(expr)}")
        d = depth + 1
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.IfExp):
            return self.values(module, expr.body, d) | self.values(module, expr.orelse, d)
        if isinstance(expr, ast.Name):
            return self._name(module, expr, d)
        if isinstance(expr, ast.Attribute):
            return self._attribute(module, expr, d)
        if isinstance(expr, ast.Call):
            return self._call(module, expr, d)
        raise Unresolved(f"cannot read {ast.unparse(expr)!r} statically")

    # names ------------------------------------------------------------------------------------

    def _name(self, module: Module, expr: ast.Name, depth: int) -> set[Value]:
        func = enclosing_function(module, expr)
        if func is not None:
            local = [
                n.value
                for n in ast.walk(func)
                if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == expr.id for t in n.targets)
            ]
            local += [
                n.value
                for n in ast.walk(func)
                if isinstance(n, ast.NamedExpr) and n.target.id == expr.id
            ]
            if local:
                return set().union(*(self.values(module, v, depth) for v in local))
            params = [a.arg for a in func.args.posonlyargs + func.args.args + func.args.kwonlyargs]
            if expr.id in params:
                return self._parameter(module, func, expr.id, depth)
        return self._global(module, expr.id, depth)

    def _global(self, module: Module, name: str, depth: int) -> set[Value]:
        for node in module.tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                return self.values(module, node.value, depth)
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id == name
                and node.value is not None
            ):
                return self.values(module, node.value, depth)
        target = module.imports.get(name)
        if target and "." in target:
            mod, _, attr = target.rpartition(".")
            if mod in self.project.modules:
                return self._global(self.project.modules[mod], attr, depth + 1)
        raise Unresolved(f"{name!r} is not a constant in {module.name}")

    def _module_of(self, module: Module, expr: ast.expr) -> Module | None:
        if isinstance(expr, ast.Name):
            return self.project.modules.get(module.imports.get(expr.id, ""))
        return None

    # attributes -------------------------------------------------------------------------------

    def _attribute(self, module: Module, expr: ast.Attribute, depth: int) -> set[Value]:
        owner = expr.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            cls = enclosing_class(module, expr)
            if cls is None:
                raise Unresolved(f"{ast.unparse(expr)} outside a class")
            return self._member(self.project.family(cls), expr.attr, depth)
        target = self._module_of(module, owner)
        if target is not None:
            return self._global(target, expr.attr, depth)
        if isinstance(owner, ast.Name) and owner.id in self.project.classes:
            return self._member(self.project.classes[owner.id], expr.attr, depth)
        values: set[Value] = set()
        for v in self.values(module, owner, depth):
            if isinstance(v, str):
                raise Unresolved(f"{ast.unparse(expr)!r}: attribute of a string")
            values |= self._field(v, expr.attr, depth)
        return values

    def _member(
        self, classes: list[tuple[Module, ast.ClassDef]], attr: str, depth: int
    ) -> set[Value]:
        values: set[Value] = set()
        found = False
        for m, cls in classes:
            for node in ast.walk(cls):
                if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                    continue
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                in_body = node in cls.body  # `X = ...` in the class, `self.X = ...` anywhere in it
                if any(
                    (in_body and isinstance(t, ast.Name) and t.id == attr)
                    or (
                        isinstance(t, ast.Attribute)
                        and isinstance(t.value, ast.Name)
                        and t.value.id == "self"
                        and t.attr == attr
                    )
                    for t in targets
                ):
                    values |= self.values(m, node.value, depth)
                    found = True
        if not found:
            raise Unresolved(f"no assignment to attribute {attr!r} found")
        return values

    def _field(self, built: Built, attr: str, depth: int) -> set[Value]:
        """``Resource(GROUP, "v1", ...).group``: the argument bound to that field."""
        cls = built.cls
        init = next(
            (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
        )
        if init is not None:
            names = [a.arg for a in init.args.posonlyargs + init.args.args][1:]
            names += [a.arg for a in init.args.kwonlyargs]
        else:  # a dataclass (or NamedTuple): the annotated fields, in order
            names = [
                n.target.id
                for n in cls.body
                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
            ]
        if attr not in names:
            raise Unresolved(f"{cls.name}.{attr} is not a constructor field")
        call = built.call
        bound = next((k.value for k in call.keywords if k.arg == attr), None)
        i = names.index(attr)
        if bound is None and i < len(call.args):
            if any(isinstance(a, ast.Starred) for a in call.args[: i + 1]):
                raise Unresolved(f"*args building {cls.name}")
            bound = call.args[i]
        if bound is None:
            raise Unresolved(f"{cls.name}(...) built without {attr!r}")
        return self.values(built.module, bound, depth)

    # calls ------------------------------------------------------------------------------------

    def _call(self, module: Module, call: ast.Call, depth: int) -> set[Value]:
        f = call.func
        target = module
        if isinstance(f, ast.Attribute):
            target = self._module_of(module, f.value) or module
            if target is module:
                raise Unresolved(f"cannot follow the call {ast.unparse(call)!r}")
            name = f.attr
        elif isinstance(f, ast.Name):
            name = f.id
        else:
            raise Unresolved(f"cannot follow the call {ast.unparse(call)!r}")
        defined = self._definition(target, name)
        if isinstance(defined, ast.ClassDef):
            return {Built(module, call, defined)}  # arguments are read where the call is
        if isinstance(defined, ast.FunctionDef):
            home = self._home(defined)
            returns = [n.value for n in ast.walk(defined) if isinstance(n, ast.Return) and n.value]
            if not returns:
                raise Unresolved(f"{name}() returns nothing readable")
            return set().union(*(self.values(home, r, depth) for r in returns))
        raise Unresolved(f"cannot follow the call {ast.unparse(call)!r}")

    def _definition(self, module: Module, name: str) -> ast.ClassDef | ast.FunctionDef | None:
        for node in module.tree.body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name:
                return node
        target = module.imports.get(name, "")
        mod, _, attr = target.rpartition(".")
        if mod in self.project.modules:
            return self._definition(self.project.modules[mod], attr)
        return None

    def _home(self, node: ast.AST) -> Module:
        for m in self.project.modules.values():
            if node in m.parents or any(node is n for n in m.tree.body):
                return m
        raise Unresolved("definition outside the project")

    # parameters -------------------------------------------------------------------------------

    def _parameter(
        self, module: Module, func: ast.FunctionDef, name: str, depth: int
    ) -> set[Value]:
        args = func.args.posonlyargs + func.args.args
        cls = enclosing_class(module, func)
        is_method = cls is not None and bool(args) and args[0].arg in ("self", "cls")
        positional = [a.arg for a in args][1 if is_method else 0 :]
        defaults: dict[str, ast.expr] = {}
        if func.args.defaults:
            defaults.update(
                zip(
                    [a.arg for a in args][-len(func.args.defaults) :],
                    func.args.defaults,
                    strict=True,
                )
            )
        defaults.update(
            {
                a.arg: d
                for a, d in zip(func.args.kwonlyargs, func.args.kw_defaults, strict=True)
                if d
            }
        )
        values: set[Value] = set()
        if name in defaults:
            values |= self.values(module, defaults[name], depth)
        sites = list(self._call_sites(func, cls))
        if not sites and name not in defaults:
            raise Unresolved(f"parameter {name!r} of {func.name}() has no call site to read")
        for m, call in sites:
            bound = next((k.value for k in call.keywords if k.arg == name), None)
            if bound is None and name in positional:
                i = positional.index(name)
                if any(isinstance(a, ast.Starred) for a in call.args[: i + 1]):
                    raise Unresolved(f"*args at {m.path}:{call.lineno}")
                bound = call.args[i] if i < len(call.args) else None
            if bound is None:
                if name in defaults:
                    continue
                if any(k.arg is None for k in call.keywords):
                    raise Unresolved(f"**kwargs at {m.path}:{call.lineno}")
                raise Unresolved(f"{func.name}() called without {name!r} at {m.path}:{call.lineno}")
            values |= self.values(m, bound, depth)
        return values

    def _call_sites(
        self, func: ast.FunctionDef, cls: ast.ClassDef | None
    ) -> Iterator[tuple[Module, ast.Call]]:
        names = {func.name}
        if func.name == "__init__" and cls is not None:
            names = {cls.name} | {
                c.name for _, c in self.project.family(cls) if cls.name in self.project.bases(c)
            }
        for m in self.project.modules.values():
            for node in ast.walk(m.tree):
                if not isinstance(node, ast.Call):
                    continue
                f = node.func
                callee = (
                    f.id
                    if isinstance(f, ast.Name)
                    else f.attr
                    if isinstance(f, ast.Attribute)
                    else None
                )
                if callee in names:
                    yield m, node
                elif (
                    func.name == "__init__"
                    and callee == "__init__"
                    and isinstance(f, ast.Attribute)
                    and isinstance(f.value, ast.Call)
                    and getattr(f.value.func, "id", None) == "super"
                ):
                    sub = enclosing_class(m, node)
                    if sub is not None and cls is not None and cls.name in self.project.bases(sub):
                        yield m, node


# ---------------------------------------------------------------------------------------------
# the scan
# ---------------------------------------------------------------------------------------------

KOPF_WATCH_ONLY = {"event", "index"}
KOPF_ACTIVITIES = {"startup", "cleanup", "login", "probe"}
KOPF_HANDLERS = {"kopf.timer", "kopf.daemon", "kopf.index"}
# resources kopf handlers may name by plural alone; kopf resolves them through discovery
BUILTIN_GROUPS = {
    "deployments": "apps",
    "replicasets": "apps",
    "services": "",
    "pods": "",
    "configmaps": "",
    "secrets": "",
    "ingresses": "networking.k8s.io",
}


def _receiver_types(module: Module) -> dict[str, str]:
    """``self._core`` -> ``CoreV1Api`` when the module assigns or annotates it that way."""
    known = {n for n in dir(kubernetes.client) if n.endswith("Api")}
    types: dict[str, str] = {}

    def api_name(e: ast.expr | None) -> str | None:
        if isinstance(e, ast.Call):
            e = e.func
        if isinstance(e, ast.Constant) and isinstance(e.value, str):
            name: str | None = e.value.rsplit(".", 1)[-1]  # a string annotation
        else:
            name = e.attr if isinstance(e, ast.Attribute) else getattr(e, "id", None)
        return name if name in known else None

    for node in ast.walk(module.tree):
        if isinstance(node, ast.Assign):
            t = api_name(node.value)
            for target in node.targets:
                if t:
                    types[ast.unparse(target)] = t
        elif isinstance(node, ast.AnnAssign):
            t = api_name(node.annotation) or api_name(node.value)
            if t:
                types[ast.unparse(node.target)] = t
        elif isinstance(node, ast.arg) and node.annotation is not None:
            t = api_name(node.annotation)
            if t:
                types[node.arg] = t
    return types


def scan(project: Project) -> list[Finding]:
    resolver = Resolver(project)
    table = client_endpoints()
    findings: list[Finding] = []
    for module in project.modules.values():
        receivers = _receiver_types(module)
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Call):
                continue
            where = f"{module.path.relative_to(REPO) if module.path.is_absolute() else module.path}:{node.lineno}"
            func = node.func
            dotted = ast.unparse(func)
            if dotted.startswith("kopf.on.") or dotted in KOPF_HANDLERS:
                findings.append(_kopf_handler(resolver, module, node, dotted, where))
                continue
            if dotted in ("kopf.event", "kopf.info", "kopf.warn", "kopf.exception"):
                findings.append(Finding(where, dotted, {Permission("", "events", "create")}))
                continue
            if isinstance(func, ast.Attribute) and func.attr in table:
                findings.append(
                    _client_call(resolver, module, receivers, func, node.args, node.keywords, where)
                )
            elif isinstance(func, ast.Attribute) and func.attr == "stream" and node.args:
                target = node.args[0]  # watch.Watch().stream(api.list_..., *args, **kwargs)
                if isinstance(target, ast.Attribute) and target.attr in table:
                    f = _client_call(
                        resolver,
                        module,
                        receivers,
                        target,
                        node.args[1:],
                        node.keywords,
                        where,
                        watch=True,
                    )
                    findings.append(f)
    return findings


def _client_call(
    resolver: Resolver,
    module: Module,
    receivers: dict[str, str],
    func: ast.Attribute,
    args: list[ast.expr],
    keywords: list[ast.keyword],
    where: str,
    watch: bool = False,
) -> Finding:
    what = ast.unparse(func)
    candidates = client_endpoints()[func.attr]
    receiver = receivers.get(ast.unparse(func.value))
    if receiver is not None:
        candidates = tuple(c for c in candidates if c.api == receiver) or candidates
    if len({(c.path, c.http_method) for c in candidates}) > 1:
        apis = sorted({c.api for c in candidates})
        return Finding(where, what, problem=f"{func.attr} exists on {apis}; receiver type unknown")
    endpoint = candidates[0]
    for kw in keywords:
        if kw.arg == "watch" and isinstance(kw.value, ast.Constant) and kw.value.value is True:
            watch = True
    bound: dict[str, ast.expr] = {k.arg: k.value for k in keywords if k.arg}
    hidden = any(isinstance(a, ast.Starred) for a in args) or any(k.arg is None for k in keywords)
    if hidden and "{plural}" in endpoint.path:
        return Finding(where, what, problem="*args/**kwargs hide group/plural")
    bound.update(zip(endpoint.params, args, strict=False))
    targets: set[tuple[str, str]] = set()
    if "{plural}" in endpoint.path:
        try:
            targets = resolver.pairs(module, bound["group"], bound["plural"])
        except (Unresolved, KeyError) as e:
            return Finding(where, what, problem=f"group/plural: {e}")
    perms = endpoint_permissions(endpoint, targets=targets, watch=watch)
    return Finding(where, what, perms)


def _kopf_handler(
    resolver: Resolver, module: Module, call: ast.Call, dotted: str, where: str
) -> Finding:
    kind = dotted.rsplit(".", 1)[1]
    if kind in KOPF_ACTIVITIES:
        return Finding(where, dotted)  # operator-level: no resource of its own
    try:
        pos = [resolver.strings(module, a) for a in resolver.unpacked(module, call.args)]
        kw = {
            k.arg: resolver.strings(module, k.value)
            for k in call.keywords
            if k.arg in ("group", "version", "plural", "kind")
        }
    except Unresolved as e:
        return Finding(where, dotted, problem=f"kopf resource: {e}")
    pairs: set[tuple[str, str]] = set()
    if len(pos) == 3:
        pairs = {(g, p) for g in pos[0] for p in pos[2]}
    elif len(pos) == 2:
        pairs = {(g.split("/")[0], p) for g in pos[0] for p in pos[1]}
    elif len(pos) == 1:
        for spec in pos[0]:
            plural, _, group = spec.partition(".")
            pairs.add((group if group else BUILTIN_GROUPS.get(plural, "?"), plural))
    elif "plural" in kw and "group" in kw:
        pairs = {(g, p) for g in kw["group"] for p in kw["plural"]}
    if not pairs or any(g == "?" for g, _ in pairs):
        return Finding(where, dotted, problem="kopf handler's resource not understood")
    verbs = {"list", "watch"} if kind in KOPF_WATCH_ONLY else {"list", "watch", "patch"}
    return Finding(where, dotted, {Permission(g, p, v) for g, p in pairs for v in verbs})


def rules_to_permissions(rules: list[dict[str, list[str]]]) -> set[Permission]:
    return {
        Permission(g, r, v)
        for rule in rules
        for g in rule.get("apiGroups", [])
        for r in rule.get("resources", [])
        for v in rule.get("verbs", [])
    }
