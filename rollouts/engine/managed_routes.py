"""Header and mirror routes: which ones the completed steps asked for, and asserting them.

They follow the steps like the weight does: the last ``setHeaderRoute`` and the last
``setMirrorRoute`` before the current step hold until a later one changes them, and abort,
promotion and a superseded revision remove them. The router is idempotent, so the wanted set is
asserted on every reconcile of a Rollout that uses them: a route edited away by hand or by a GitOps
sync comes back, and one left behind goes.
"""

from __future__ import annotations

import re

from rollouts.api.rollout import CanaryStrategy, SetHeaderRoute
from rollouts.engine.context import Ctx
from rollouts.engine.plan import HeaderMatch, ManagedRoutes, SetManagedRoutes

NONE = ManagedRoutes()


def uses_managed_routes(c: CanaryStrategy) -> bool:
    return any(s.set_header_route is not None or s.set_mirror_route is not None for s in c.steps)


def header_matches(route: SetHeaderRoute) -> tuple[HeaderMatch, ...]:
    """The route's headers, the cookie as a ``Cookie`` header regex (how meshes match cookies)."""
    out = []
    for m in route.match:
        v = m.header_value
        if v.exact is not None:
            out.append(HeaderMatch(m.header_name, v.exact, "exact"))
        elif v.prefix is not None:
            out.append(HeaderMatch(m.header_name, v.prefix, "prefix"))
        else:
            assert v.regex is not None
            out.append(HeaderMatch(m.header_name, v.regex, "regex"))
    if route.cookie is not None:
        pair = re.escape(f"{route.cookie.name}={route.cookie.value}")
        out.append(
            HeaderMatch("cookie", f"^(.*?;\\s*)?{pair}(;.*)?$", "regex", cookie=route.cookie.name)
        )
    return tuple(out)


def wanted(c: CanaryStrategy, step_index: int) -> ManagedRoutes:
    """The routes the steps before ``step_index`` leave in place."""
    headers: tuple[HeaderMatch, ...] = ()
    mirror = 0
    for step in c.steps[:step_index]:
        if step.set_header_route is not None:
            headers = header_matches(step.set_header_route)
        if step.set_mirror_route is not None:
            mirror = step.set_mirror_route.percentage
    return ManagedRoutes(headers, mirror)


def assert_routes(ctx: Ctx, c: CanaryStrategy, routes: ManagedRoutes) -> None:
    """Ask for ``routes``; a later call in the same reconcile replaces an earlier one."""
    if not uses_managed_routes(c):
        return
    ctx.actions[:] = [a for a in ctx.actions if not isinstance(a, SetManagedRoutes)]
    ctx.actions.append(SetManagedRoutes(routes))
