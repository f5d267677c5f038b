"""The rules as conditions on ground truth: the breaches a scenario's truth should cause.

This module owns the scenario's reading of the rule semantics (DESIGN.md "Sites, rules and
cues", parameters from `fusion.rules.params` via the sites file) as exact conditions on the
true paths, each with the first time it holds:

- `line_crossing`: the object, having been on the far side, is `hysteresis_m` inside the
  protected side of a line of contact (the rule believes a side only that far from the line);
- `incursion`: inside a site or its buffer; `approach`: the straight-line prediction within
  `horizon_s` enters the buffer before the object does (moving at `min_speed_mps` or more);
- `loiter`: continuously inside the site or its buffer for `dwell_s`;
- `dark_target`: an object without a cooperative identity (or with its transponder off) inside
  a zone that requires one;
- `fire_event`: a located event within `range_m` of a site, or of a line on its far side.

The demo layout times its scripted breaches by these conditions and keeps only background
traffic that meets none of them with a margin, so expected and scripted cues agree.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import Point

from fusion.scenario import oracle
from fusion.scenario.model import Breach, PointEvent, Target
from fusion.scenario.theatre import Feature, Theatre


def line_sign(f: Feature) -> int:
    """+1 when the protected side is left of the line as drawn, -1 when right."""
    return 1 if f.protected_side == "left" else -1


def target_breaches(th: Theatre, tg: Target, *, margin_m: float = 0.0) -> list[Breach]:
    """Every rule condition the target's truth meets, with its first time (scenario s).
    `margin_m` > 0 grows every area and treats coming within it of a line as crossing: the
    test that background traffic stays clear of every rule."""
    out: list[Breach] = []
    traj = tg.traj

    def add(rule: str, f: Feature, t: float | None) -> None:
        if t is not None:
            out.append(Breach(f"{tg.name}:{rule}:{f.id}", rule, f.id, float(t), tg.id))

    for f in th.with_rule("line_crossing"):
        if margin_m > 0:
            near = oracle.min_clearance_m(traj, f.geom) < margin_m
            add("line_crossing", f, float(traj.t_s[0]) if near else None)
        else:
            h = f.param("line_crossing", "hysteresis_m", 150.0)
            add("line_crossing", f, oracle.crossing_time(traj, f.geom, line_sign(f), h))
    for f in th.areas:
        area = f.area.buffer(margin_m) if margin_m > 0 else f.area
        t_in = oracle.entry_time(traj, area) if "incursion" in f.rules else None
        add("incursion", f, t_in)
        if "approach" in f.rules:
            t_ap = oracle.approach_time(
                traj,
                area,
                f.param("approach", "horizon_s", 120.0),
                min_speed_mps=f.param("approach", "min_speed_mps", 1.0),
            )
            t_inside = oracle.entry_time(traj, area)
            if t_ap is not None and (t_inside is None or t_ap < t_inside):
                add("approach", f, t_ap)
        if "loiter" in f.rules:
            # A stay lasts while within the buffer plus the rule's exit margin.
            stay = area.buffer(f.param("loiter", "exit_margin_m", 0.0))
            add("loiter", f, oracle.dwell_time(traj, stay, f.param("loiter", "dwell_s", 600.0)))
        if "dark_target" in f.rules:
            if not tg.ident:
                add("dark_target", f, oracle.entry_time(traj, area))
            else:
                # A cooperative object is dark only while its transponder is off inside.
                for a, b in tg.transponder_off:
                    t_dark = oracle.entry_time(traj, area, t_from=a)
                    if t_dark is not None and t_dark < b:
                        add("dark_target", f, t_dark)
                        break
    return out


def event_breaches(th: Theatre, events: list[PointEvent], name: str = "fire") -> list[Breach]:
    """A `fire_event` per (event, site) with the event within the site's range (a line: on its
    far side)."""
    out = []
    for i, ev in enumerate(events):
        p = Point(ev.pos[0], ev.pos[1])
        for f in th.with_rule("fire_event"):
            rng_m = f.param("fire_event", "range_m", 5000.0)
            if f.geom.distance(p) > rng_m:
                continue
            if f.is_line:
                side = oracle.side_of_line(f.geom, np.array([[p.x, p.y]]))[0]
                if side == line_sign(f):
                    continue
            out.append(Breach(f"{name}{i}:fire_event:{f.id}", "fire_event", f.id, ev.t_s))
    return out


def clear_of_rules(th: Theatre, tg: Target, margin_m: float) -> bool:
    return not target_breaches(th, tg, margin_m=margin_m)


def inside_any(th: Theatre, xy: np.ndarray, margin_m: float = 0.0) -> bool:
    return any(shapely.contains_xy(f.area.buffer(margin_m), xy[0], xy[1]) for f in th.areas)
