"""Which rule watches which feature of the theatre, and the breaches a truth would cause.

This module owns the scenario's reading of the rule semantics (DESIGN.md "Sites, rules and
cues") as conditions on ground truth: `incursion` and `approach` at every protected area,
`line_crossing` at every line of contact, `loiter` at areas with a dwell time, `dark_target` in
zones that require identity, `fire_event` for an event within range of a site. The expected
cues of a scenario are these conditions evaluated on its truth (`expected_breaches`), so the
scripted breaches and the background traffic are checked by the same definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion.scenario import oracle
from fusion.scenario.model import Breach, PointEvent, Target
from fusion.scenario.theatre import Feature, Theatre

IDENTITY_KINDS = {"maritime_corridor", "corridor", "air_exclusion", "air_exclusion_zone"}
LINE_KINDS = {"line_of_contact", "line", "contact_line"}
DEFAULT_FIRE_RANGE_M = 5_000.0


@dataclass(frozen=True)
class RuleMap:
    """The theatre's features by the rule that watches them."""

    lines: list[tuple[Feature, int]]  # (line, protected side sign)
    areas: list[Feature]  # protected areas: incursion, approach, fire_event
    loiter: list[Feature]  # areas with a dwell time
    zones: list[Feature]  # identity-required zones: dark_target

    def zone_classes(self, f: Feature) -> tuple[str, ...]:
        """Mover classes a zone requires identity of: vessels in a maritime zone, air
        movers in an air zone, everything otherwise."""
        applies = f.props.get("applies_to") or f.props.get("classes")
        if isinstance(applies, list):
            names = {"surface": "vessel", "air": "aircraft", "ground": "ground"}
            out = {names.get(str(a), str(a)) for a in applies}
            if "aircraft" in out:
                out.add("drone")
            return tuple(sorted(out))
        if "air" in f.kind:
            return ("aircraft", "drone")
        if "maritime" in f.kind or "corridor" in f.kind or "sea" in f.kind:
            return ("vessel",)
        return ("ground", "vessel", "aircraft", "drone")


def _requires_identity(f: Feature) -> bool:
    return bool(f.props.get("requires_identity")) or f.kind in IDENTITY_KINDS


def rule_map(theatre: Theatre) -> RuleMap:
    lines = [
        (f, oracle.protected_sign(theatre, f))
        for f in theatre.lines
        if f.kind in LINE_KINDS or "line" in f.kind
    ]
    zones = [f for f in theatre.areas if _requires_identity(f)]
    areas = [f for f in theatre.areas if not _requires_identity(f)]
    loiter = [f for f in areas if f.param("dwell_s", 0.0) > 0.0]
    return RuleMap(lines=lines, areas=areas, loiter=loiter, zones=zones)


def target_breaches(rm: RuleMap, tg: Target, *, margin_m: float = 0.0) -> list[Breach]:
    """Every rule condition the target's truth meets, with its first time. `margin_m` grows
    the areas (a safety margin when checking that background traffic stays clear)."""
    out: list[Breach] = []
    traj = tg.traj
    for line, sign in rm.lines:
        geom = line.geom if margin_m <= 0 else line.geom
        t = oracle.crossing_time(traj, geom, sign)
        if t is None and margin_m > 0:
            d = oracle.min_clearance_m(traj, line.geom)
            t = float(traj.t_s[0]) if d < margin_m else None
        if t is not None:
            out.append(Breach(f"{tg.name}:line_crossing", "line_crossing", line.id, t, tg.id))
    for f in rm.areas:
        area = f.area.buffer(margin_m) if margin_m > 0 else f.area
        t_in = oracle.entry_time(traj, area)
        if t_in is not None:
            out.append(Breach(f"{tg.name}:incursion:{f.id}", "incursion", f.id, t_in, tg.id))
        horizon = f.param("horizon_s", oracle.APPROACH_HORIZON_S)
        t_ap = oracle.approach_time(traj, area, horizon)
        if t_ap is not None and (t_in is None or t_ap < t_in):
            out.append(Breach(f"{tg.name}:approach:{f.id}", "approach", f.id, t_ap, tg.id))
    for f in rm.loiter:
        area = f.area.buffer(margin_m) if margin_m > 0 else f.area
        t = oracle.dwell_time(traj, area, f.param("dwell_s", 0.0))
        if t is not None:
            out.append(Breach(f"{tg.name}:loiter:{f.id}", "loiter", f.id, t, tg.id))
    for f in rm.zones:
        if tg.kind not in rm.zone_classes(f):
            continue
        area = f.geom.buffer(margin_m) if margin_m > 0 else f.geom
        t_in = oracle.entry_time(traj, area)
        if t_in is None:
            continue
        if tg.ident:
            # A cooperative object is dark only while its transponder is off inside the zone.
            inside = oracle.entry_time
            for a, b in tg.transponder_off:
                t_dark = inside(traj, area, t_from=a)
                if t_dark is not None and t_dark < b:
                    out.append(
                        Breach(f"{tg.name}:dark_target:{f.id}", "dark_target", f.id, t_dark, tg.id)
                    )
                    break
        else:
            out.append(Breach(f"{tg.name}:dark_target:{f.id}", "dark_target", f.id, t_in, tg.id))
    return out


def event_breaches(rm: RuleMap, events: list[PointEvent], name: str = "fire") -> list[Breach]:
    """A `fire_event` at the nearest protected area within its fire range, per event."""
    out = []
    for i, ev in enumerate(events):
        best, best_d = None, np.inf
        for f in rm.areas:
            d = f.area.distance(_pt(ev.pos))
            if d <= f.param("fire_range_m", DEFAULT_FIRE_RANGE_M) and d < best_d:
                best, best_d = f, d
        if best is not None:
            out.append(Breach(f"{name}{i}:fire_event:{best.id}", "fire_event", best.id, ev.t_s))
    return out


def _pt(pos):
    from shapely.geometry import Point

    return Point(pos[0], pos[1])
