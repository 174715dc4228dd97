"""The changes a deployment goes through: create, canary, shadow, A/B, promote, rollback and delete. Each
plans the next revision from the one in force and refuses what conflicts with it.

One experiment at a time: a canary, a shadow or an A/B test starts from a single primary. The exceptions
keep a flow moving: a canary may change its weight, a shadow may be replaced or graduate into a canary
of the same version, an A/B test may be re-weighted. Anything else is a conflict; finish the experiment
in force first (promote, rollback, `shadow --off`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from shipyard.context import Context
from shipyard.deployments.records import ROLES, Deployment, Revision, Route
from shipyard.deployments.revisions import NothingToDo, Plan, change, find_revision
from shipyard.errors import ConflictError, NotFoundError, ValidationError

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,31}$")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_KIND = {"canary": "a canary", "shadow": "a shadow", "ab": "an A/B test"}


def _version(conn: Connection, ref: str) -> tuple[str, int]:
    """The model and version number `ref` names now: an alias is resolved once, so the revision does not
    drift when the alias moves."""
    from shipyard.models.registry import find_version

    found = find_version(conn, ref)
    return found.model, found.version


def check_percent(percent: object) -> int:
    if isinstance(percent, bool) or not isinstance(percent, int | float) or percent != int(percent) \
            or not 0 < percent <= 100:
        raise ValidationError(
            f"Invalid canary percent {percent!r}: give a whole number above 0 and at most 100 (e.g. 10); 100 "
            "promotes the canary, and `shipyard deploy rollback` removes it.", percent=percent,
        )
    return int(percent)


def check_sticky_by(sticky_by: object) -> str | None:
    if sticky_by is not None and (not isinstance(sticky_by, str) or not _KEY.match(sticky_by)):
        raise ValidationError(
            f"Invalid sticky key {sticky_by!r}: name a request header or an input field (letters, digits, '_', "
            "'-' or '.'), e.g. X-Customer-Id or customer_id.", sticky_by=sticky_by,
        )
    return sticky_by


def _serving(current: Deployment) -> str:
    shown = ", ".join(f"{r.label} {r.version_id}" + (f" {r.weight}%" if r.role != "shadow" else "")
                      for r in current.routes)
    return f"revision {current.revision}, {current.strategy}: {shown}"


def _conflict(name: str, current: Deployment, wanted: str) -> ConflictError:
    finish = {"canary": f"promote it (`shipyard deploy promote {name}`) or roll it back (`shipyard deploy rollback "
                        f"{name}`)",
              "shadow": f"remove the shadow (`shipyard deploy shadow {name} --off`)",
              "ab": f"promote a variant (`shipyard deploy promote {name} --variant LABEL`) or roll back"}
    return ConflictError(
        f"Deployment '{name}' has {_KIND.get(current.strategy, current.strategy)} in force ({_serving(current)}), "
        f"so it cannot start {wanted}: "
        f"one experiment at a time. Finish it first: {finish.get(current.strategy, 'promote or roll back')}.",
        deployment=name, strategy=current.strategy,
    )


def expect(name: str, current: Deployment | None, expect_revision: int | None = None) -> Deployment:
    """The deployment in force; with `expect_revision`, a ConflictError unless that revision is still in force
    (an automated decision must act on the revision it judged)."""
    if current is None:
        raise NotFoundError(f"No deployment named '{name}'.", deployment=name)
    if expect_revision is not None and current.revision != expect_revision:
        raise ConflictError(
            f"Deployment '{name}' changed to revision {current.revision} after revision {expect_revision} was "
            "judged; nothing was changed. Judge the revision in force again.", deployment=name,
            revision=current.revision, expected=expect_revision,
        )
    return current


def _primary(current: Deployment) -> Route:
    primary = current.current.primary
    assert primary is not None, "single, canary and shadow revisions have a primary"
    return primary


# -- the changes -------------------------------------------------------------------------------


def create(ctx: Context, name: str, ref: str, *, reason: str | None = None) -> Revision:
    """A new deployment whose single route (the primary) takes every request to `ref`."""

    def plan(conn: Connection, current: Deployment | None) -> Plan:
        if current is not None:
            raise ConflictError(
                f"Deployment '{name}' exists ({_serving(current)}). Change it with `shipyard deploy canary`, "
                f"`shadow` or `ab`, or delete it first (`shipyard deploy delete {name}`).", deployment=name,
            )
        model, version = _version(conn, ref)
        return Plan("single", [Route("primary", "primary", model, version, 100)],
                    reason or f"created serving {model}/{version}")

    return change(ctx, name, "deployment.create", plan, create=True)


def replace(ctx: Context, name: str, ref: str, *, reason: str | None = None) -> Revision:
    """Serve `ref` as the single primary right away (no canary): what `deploy apply` does for strategy single."""

    def plan(conn: Connection, current: Deployment | None) -> Plan:
        current = expect(name, current)
        model, version = _version(conn, ref)
        if current.strategy != "single":
            raise _conflict(name, current, f"serving {model}/{version} alone")
        if _primary(current).version_id == f"{model}/{version}":
            raise NothingToDo
        return Plan("single", [Route("primary", "primary", model, version, 100)],
                    reason or f"primary replaced by {model}/{version}")

    return change(ctx, name, "deployment.replace", plan)


def canary(ctx: Context, name: str, ref: str, percent: int, *, sticky_by: str | None = None,
           reason: str | None = None, analysis: dict[str, Any] | None = None,
           expect_revision: int | None = None) -> Revision:
    """Send `percent` of the requests to `ref` (the rest to the primary); 100 promotes it. Sticky by a
    request header or input field when `sticky_by` is given, else random per request."""
    percent = check_percent(percent)
    sticky_by = check_sticky_by(sticky_by)

    def plan(conn: Connection, current: Deployment | None) -> Plan:
        current = expect(name, current, expect_revision)
        model, version = _version(conn, ref)
        wanted = f"{model}/{version}"
        if current.strategy in ("ab", "deleted"):
            raise _conflict(name, current, f"a canary of {wanted}")
        primary = _primary(current)
        running = current.current.canary or current.current.shadow
        if running is not None and running.version_id != wanted:
            raise _conflict(name, current, f"a canary of {wanted}")
        if primary.version_id == wanted:
            raise ValidationError(f"{wanted} is already the primary of deployment '{name}'; a canary takes another "
                                  "version.", deployment=name, version=wanted)
        if percent == 100:
            return Plan("single", [Route("primary", "primary", model, version, 100)],
                        reason or f"canary {wanted} at 100%: promoted", analysis=analysis)
        keep = sticky_by if sticky_by is not None else current.current.sticky_by if current.strategy == "canary" else None
        routes = [Route("primary", "primary", primary.model, primary.version, 100 - percent),
                  Route("canary", "canary", model, version, percent)]
        if current.strategy == "canary" and current.current.canary is not None \
                and current.current.canary.weight == percent and current.current.sticky_by == keep and analysis is None:
            raise NothingToDo
        return Plan("canary", routes, reason or f"canary {wanted} at {percent}%", sticky_by=keep, analysis=analysis)

    return change(ctx, name, "deployment.canary", plan)


def shadow(ctx: Context, name: str, ref: str, *, reason: str | None = None) -> Revision:
    """Send a copy of every request to `ref`, whose answers are logged and never returned. Any registered,
    active version may be a shadow: its gates are not checked."""

    def plan(conn: Connection, current: Deployment | None) -> Plan:
        current = expect(name, current)
        model, version = _version(conn, ref)
        wanted = f"{model}/{version}"
        if current.strategy not in ("single", "shadow"):
            raise _conflict(name, current, f"a shadow of {wanted}")
        primary = _primary(current)
        if primary.version_id == wanted:
            raise ValidationError(f"{wanted} is already the primary of deployment '{name}'; a shadow takes another "
                                  "version.", deployment=name, version=wanted)
        existing = current.current.shadow
        if existing is not None and existing.version_id == wanted:
            raise NothingToDo
        return Plan("shadow", [primary, Route("shadow", "shadow", model, version, 0)],
                    reason or f"shadow {wanted}" + (f" instead of {existing.version_id}" if existing else ""))

    return change(ctx, name, "deployment.shadow", plan)


def unshadow(ctx: Context, name: str, *, reason: str | None = None) -> Revision:
    """Remove the shadow: the primary alone serves again."""

    def plan(conn: Connection, current: Deployment | None) -> Plan:
        current = expect(name, current)
        existing = current.current.shadow
        if existing is None:
            raise ConflictError(f"Deployment '{name}' has no shadow to remove ({_serving(current)}).", deployment=name)
        return Plan("single", [_primary(current)], reason or f"shadow {existing.version_id} removed")

    return change(ctx, name, "deployment.unshadow", plan)


def ab(ctx: Context, name: str, variants: Mapping[str, tuple[str, int]], *, sticky_by: str | None = None,
       reason: str | None = None) -> Revision:
    """Split the requests between labelled variants {label: (ref, weight)} whose weights sum to 100."""
    sticky_by = check_sticky_by(sticky_by)
    checked = check_variants(variants)

    def plan(conn: Connection, current: Deployment | None) -> Plan:
        current = expect(name, current)
        routes = []
        for label, (ref, weight) in checked.items():
            model, version = _version(conn, ref)
            routes.append(Route("variant", label, model, version, weight))
        shown = ", ".join(f"{r.label}={r.version_id}:{r.weight}" for r in routes)
        if current.strategy not in ("single", "ab"):
            raise _conflict(name, current, f"an A/B test ({shown})")
        seen: dict[str, str] = {}
        for route in routes:
            if route.version_id in seen:
                raise ValidationError(f"Variants '{seen[route.version_id]}' and '{route.label}' both route to "
                                      f"{route.version_id}; give each variant its own version.", deployment=name)
            seen[route.version_id] = route.label
        if current.strategy == "ab" and current.routes == routes and current.current.sticky_by == sticky_by:
            raise NothingToDo
        return Plan("ab", routes, reason or f"A/B test {shown}", sticky_by=sticky_by)

    return change(ctx, name, "deployment.ab", plan)


def check_variants(variants: Mapping[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """Labels are names (not a role's), at least two, each with a whole weight from 1 to 99, summing to 100."""
    if not isinstance(variants, Mapping) or len(variants) < 2:
        raise ValidationError(f"An A/B test needs at least two variants, got {len(variants) if isinstance(variants, Mapping) else variants!r}"
                              ": e.g. a=credit/3:50 and b=credit/4:50.")
    checked: dict[str, tuple[str, int]] = {}
    for label, value in variants.items():
        if not isinstance(label, str) or not _LABEL.match(label) or label in ROLES:
            raise ValidationError(
                f"Invalid variant label {label!r}: use 1-32 letters, digits, '_' or '-' (e.g. a, b, control), not "
                f"one of {', '.join(ROLES)}.", label=label,
            )
        ref, weight = value
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 99:
            raise ValidationError(f"Invalid weight {weight!r} of variant '{label}': give a whole number from 1 to 99.",
                                  label=label, weight=weight)
        checked[label] = (ref, weight)
    total = sum(w for _, w in checked.values())
    if total != 100:
        shown = " + ".join(f"{label} {w}" for label, (_, w) in checked.items())
        raise ValidationError(f"The variants' weights sum to {total} ({shown}); they must sum to 100.", total=total)
    return checked


def promote(ctx: Context, name: str, *, variant: str | None = None, reason: str | None = None,
            analysis: dict[str, Any] | None = None, expect_revision: int | None = None) -> Revision:
    """The canary (or the named A/B variant) becomes the single primary."""

    def plan(conn: Connection, current: Deployment | None) -> Plan:
        current = expect(name, current, expect_revision)
        if current.strategy == "canary":
            if variant is not None:
                raise ValidationError(f"Deployment '{name}' runs a canary, not an A/B test; promote it without "
                                      f"--variant (got {variant!r}).", deployment=name)
            chosen = current.current.canary
        elif current.strategy == "ab":
            labels = [r.label for r in current.current.variants]
            if variant is None:
                raise ValidationError(f"Deployment '{name}' runs an A/B test: name the variant to promote with "
                                      f"--variant ({', '.join(labels)}).", deployment=name)
            chosen = next((r for r in current.current.variants if r.label == variant), None)
            if chosen is None:
                raise ValidationError(f"Deployment '{name}' has no variant {variant!r}; its variants: "
                                      f"{', '.join(labels)}.", deployment=name, variant=variant)
        else:
            raise ConflictError(
                f"Deployment '{name}' has no canary to promote ({_serving(current)}). Start one with "
                f"`shipyard deploy canary {name} --model NAME/VERSION --percent 10`.", deployment=name,
            )
        assert chosen is not None
        return Plan("single", [Route("primary", "primary", chosen.model, chosen.version, 100)],
                    reason or f"{chosen.label} {chosen.version_id} promoted", analysis=analysis)

    return change(ctx, name, "deployment.promote", plan)


def rollback(ctx: Context, name: str, *, reason: str | None = None, analysis: dict[str, Any] | None = None,
             expect_revision: int | None = None) -> Revision:
    """Back to the routes of the revision before the one in force (before the one a rollback restored, so
    rolling back twice goes two steps back). Its gates are not checked again: it served before."""

    def plan(conn: Connection, current: Deployment | None) -> Plan:
        current = expect(name, current, expect_revision)
        base = current.current.restores or current.revision
        target = find_revision(conn, name, base - 1) if base > 1 else None
        if target is None or target.strategy == "deleted":
            raise ConflictError(
                f"Deployment '{name}' has no earlier revision to roll back to: revision {base} is its first"
                f"{' since it was re-created' if target is not None else ''} ({_serving(current)}).",
                deployment=name,
            )
        return Plan(target.strategy, target.routes, reason or f"rolled back to revision {target.revision}",
                    sticky_by=target.sticky_by, restores=target.revision, analysis=analysis, check_gates=False)

    return change(ctx, name, "deployment.rollback", plan)


def delete(ctx: Context, name: str, *, reason: str | None = None) -> Revision:
    """Stop routing: the deployment gets a last revision without routes; its history stays."""

    def plan(conn: Connection, current: Deployment | None) -> Plan:
        expect(name, current)
        return Plan("deleted", [], reason or "deleted")

    return change(ctx, name, "deployment.delete", plan)
