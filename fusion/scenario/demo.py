"""The demo scenario: traffic and scripted breaches placed relative to the theatre's sites.

This module owns the demo's layout: where the sensors stand, which objects move where, and the
five scripted breaches (a ground vehicle crossing the line of contact, a drone approaching a
site and turning away, a drone loitering at a site, a dark vessel entering the maritime
corridor, an artillery impact at a site). Background traffic is drawn from the seed and kept
only if, by `fusion.scenario.rules`, it stays clear of every rule with a margin; the breaches
the scenario expects are then computed from the truth by the same rules.
"""

from __future__ import annotations

import math

import numpy as np
from shapely.geometry import LineString, Point

from fusion.scenario.model import Breach, PointEvent, Scenario, SensorSpec, Target
from fusion.scenario.motion import DYNAMICS, Leg, Trajectory, fly
from fusion.scenario.rules import RuleMap, event_breaches, rule_map, target_breaches
from fusion.scenario.theatre import DEMO_SITES, Theatre, load_theatre

T0_S = 1_790_000_000.0  # 2026-09-21 13:33:20 UTC: a fixed epoch keeps feeds reproducible
CLEAR_MARGIN_M = 1_500.0  # background traffic stays this far from any rule's condition


def build_demo(
    sites_path=DEMO_SITES,
    *,
    seed: int = 7,
    t0_s: float = T0_S,
    duration_s: float = 300.0,
    n_background: int = 18,
) -> Scenario:
    """The demo scenario on the sites file `sites_path`, deterministic for a given seed."""
    th = load_theatre(sites_path)
    rm = rule_map(th)
    rng = np.random.default_rng([seed, 2026])
    lay = _Layout(th, rm, rng, duration_s)
    lay.scripted()
    lay.background(n_background)
    lay.sensors()
    breaches = []
    for tg in lay.targets:
        breaches += [b for b in target_breaches(rm, tg) if b.t_s <= duration_s]
    breaches += event_breaches(rm, lay.events)
    breaches.sort(key=lambda b: (b.t_s, b.name))
    return Scenario(
        name="demo",
        seed=seed,
        t0_s=t0_s,
        duration_s=duration_s,
        theatre=th,
        targets=lay.targets,
        sensors=lay.sensor_specs,
        events=lay.events,
        breaches=breaches,
    )


class _Layout:
    def __init__(self, th: Theatre, rm: RuleMap, rng: np.random.Generator, dur: float) -> None:
        self.th, self.rm, self.rng, self.dur = th, rm, rng, dur
        self.targets: list[Target] = []
        self.events: list[PointEvent] = []
        self.sensor_specs: list[SensorSpec] = []
        self.scripted_names: list[str] = []
        if not rm.lines:
            raise ValueError("the demo needs a line of contact in the sites file")
        if not rm.areas:
            raise ValueError("the demo needs at least one protected area in the sites file")
        self.line, self.sign = rm.lines[0]
        land = [f for f in rm.areas if not _is_sea(f)]
        self.land = land or rm.areas
        # The loiter site has a dwell time; the fire site is a plant if there is one; the
        # approach site is another protected area, nearest the loiter site's neighbourhood.
        self.loiter_site = rm.loiter[0] if rm.loiter else self.land[0]
        plants = [f for f in self.land if "plant" in f.kind or "power" in f.kind]
        self.fire_site = plants[0] if plants else self.land[-1]
        others = [f for f in self.land if f not in (self.loiter_site, self.fire_site)]
        self.approach_site = others[0] if others else self.fire_site
        self.centre = np.mean([f.centre for f in self.land], axis=0)

    # ------------------------------------------------------------------ helpers
    def _add(self, name: str, kind: str, traj: Trajectory, ident: str = "", **kw) -> Target:
        tg = Target(id=len(self.targets) + 1, name=name, kind=kind, traj=traj, ident=ident, **kw)
        self.targets.append(tg)
        return tg

    def _protected_dir(self, p: np.ndarray) -> np.ndarray:
        """Unit normal of the line at its point nearest p, pointing to the protected side."""
        line: LineString = self.line.geom
        s = line.project(Point(p))
        a = np.asarray(line.interpolate(max(s - 50.0, 0.0)).coords[0])
        b = np.asarray(line.interpolate(min(s + 50.0, line.length)).coords[0])
        d = (b - a) / np.linalg.norm(b - a)
        left = np.array([-d[1], d[0]])
        return left * self.sign

    def _on_protected_side(self, xy: np.ndarray) -> bool:
        from fusion.scenario.oracle import side_of_line

        return bool(side_of_line(self.line.geom, xy[None, :2])[0] == self.sign)

    def _clear(self, tg: Target) -> bool:
        return not target_breaches(self.rm, tg, margin_m=CLEAR_MARGIN_M)

    # ------------------------------------------------------------------ scripted breaches
    def scripted(self) -> None:
        self._line_crossing(t_cross_s=45.0)
        self._approach(t_turn_s=170.0)
        self._fire(t_s=80.0)
        self._dark_vessel(t_entry_s=140.0)
        self._loiter(t_entry_s=150.0)

    def _line_crossing(self, t_cross_s: float) -> None:
        # Cross where the line is farthest from every protected area (within 25 km of them),
        # so the crossing cues the line and nothing else.
        line: LineString = self.line.geom
        best, best_d = None, -1.0
        for s in np.linspace(0.05, 0.95, 91) * line.length:
            p = np.asarray(line.interpolate(s).coords[0])
            d_sites = min(f.area.distance(Point(p)) for f in self.rm.areas)
            d_centre = np.linalg.norm(p - self.centre)
            if d_centre < 25_000 and d_sites > best_d and d_sites < 15_000:
                best, best_d = p, d_sites
        if best is None:
            best = np.asarray(line.interpolate(0.5 * line.length).coords[0])
        n = self._protected_dir(best)
        speed = 12.0
        start = best - n * speed * t_cross_s
        end = best + n * 900.0
        traj = fly(
            (start[0], start[1], 0.0),
            math.degrees(math.atan2(n[0], n[1])),
            speed,
            [Leg((end[0], end[1], 0.0), speed), Leg((end[0], end[1], 0.0), 0.0, hold_s=1e6)],
            DYNAMICS["ground"],
            end_s=self.dur,
        )
        self._add("crossing-vehicle", "ground", traj, rcs_m2=10.0)
        self.crossing_point = best

    def _approach(self, t_turn_s: float) -> None:
        # A non-cooperative drone flies at the site from the protected interior, then turns
        # away short of the buffer: the approach rule must warn before any incursion.
        f = self.approach_site
        c = f.centre
        # Come from the side away from the line so the drone never nears it.
        away = self._protected_dir(c)
        radius = _radius(f)
        speed = 25.0
        turn_at = c + away * (radius + 900.0)
        start = turn_at + away * speed * t_turn_s
        side = np.array([-away[1], away[0]])
        exit_pt = turn_at + side * 6000.0 + away * 2000.0
        traj = fly(
            (start[0], start[1], 120.0),
            math.degrees(math.atan2(-away[0], -away[1])),
            speed,
            [
                Leg((turn_at[0], turn_at[1], 120.0), speed),
                Leg((exit_pt[0], exit_pt[1], 120.0), speed),
            ],
            DYNAMICS["drone"],
            end_s=self.dur,
            arrive_m=10.0,
        )
        self._add("approach-drone", "drone", traj, rcs_m2=0.05)

    def _loiter(self, t_entry_s: float) -> None:
        f = self.loiter_site
        c = f.centre
        radius = _radius(f)
        dwell = f.param("dwell_s", 60.0)
        speed = 15.0
        d_in = self._protected_dir(c)
        start = c + d_in * (radius + speed * t_entry_s)
        orbit_r = max(150.0, 0.4 * radius)
        traj = fly(
            (start[0], start[1], 150.0),
            math.degrees(math.atan2(-d_in[0], -d_in[1])),
            speed,
            [Leg((c[0], c[1], 150.0), speed, orbit_s=dwell + 400.0, radius_m=orbit_r)],
            DYNAMICS["drone"],
            end_s=self.dur,
        )
        self._add("loiter-drone", "drone", traj, rcs_m2=0.05)

    def _dark_vessel(self, t_entry_s: float) -> None:
        zones = [z for z in self.rm.zones if "vessel" in self.rm.zone_classes(z)]
        if not zones:
            return
        z = zones[0]
        poly = z.geom
        c = np.asarray(poly.centroid.coords[0])
        # Enter across the boundary nearest the coast (the protected areas), heading out to sea.
        b = poly.exterior
        q = np.asarray(b.interpolate(b.project(Point(self.centre))).coords[0])
        d = (c - q) / np.linalg.norm(c - q)
        speed = 6.0
        start = q - d * speed * t_entry_s
        end = c + d * 20_000.0
        traj = fly(
            (start[0], start[1], 0.0),
            math.degrees(math.atan2(d[0], d[1])),
            speed,
            [Leg((end[0], end[1], 0.0), speed)],
            DYNAMICS["vessel"],
            end_s=self.dur,
        )
        self._add("dark-vessel", "vessel", traj, rcs_m2=200.0)
        self.corridor = z

    def _fire(self, t_s: float) -> None:
        f = self.fire_site
        c = f.centre
        n = self._protected_dir(c)
        # The impact lands on the far side of the site from the line, inside its radius.
        p = c + n * 0.3 * _radius(f)
        self.events.append(PointEvent(t_s=t_s, pos=(p[0], p[1], 0.0), event="impact"))

    # ------------------------------------------------------------------ background traffic
    def background(self, n: int) -> None:
        mix = ["ground", "ground", "vessel", "aircraft", "drone", "vessel"]
        k = 0
        attempts = 0
        while k < n and attempts < 60 * n:
            attempts += 1
            kind = mix[k % len(mix)]
            tg = self._random_mover(kind, k)
            if tg is None or not self._clear(tg):
                continue
            self.targets.append(tg)
            k += 1

    def _random_mover(self, kind: str, k: int) -> Target | None:
        rng = self.rng
        dyn = DYNAMICS[kind]
        tid = len(self.targets) + 1
        span = 30_000.0
        if kind == "vessel":
            zones = [z for z in self.rm.zones if "vessel" in self.rm.zone_classes(z)]
            if zones and rng.uniform() < 0.6:
                z = zones[0].geom
                minx, miny, maxx, maxy = z.bounds
                p = np.array([rng.uniform(minx, maxx), rng.uniform(miny, maxy)])
                if not z.contains(Point(p)):
                    return None
            else:
                p = self.centre + rng.uniform(-span, span, 2)
            speed = float(rng.uniform(3.0, 9.0))
            alt = 0.0
        elif kind == "ground":
            p = self.centre + rng.uniform(-span * 0.6, span * 0.6, 2)
            speed = float(rng.uniform(6.0, 20.0))
            alt = 0.0
        elif kind == "aircraft":
            p = self.centre + rng.uniform(-span, span, 2)
            speed = float(rng.uniform(90.0, 150.0))
            alt = float(rng.uniform(3000.0, 8000.0))
        else:
            p = self.centre + rng.uniform(-span * 0.6, span * 0.6, 2)
            speed = float(rng.uniform(10.0, 20.0))
            alt = float(rng.uniform(80.0, 300.0))
        # Surface movers must be on water, land movers on land: stand-in rule, the sea is
        # where the identity zones for vessels are, or beyond the protected sea areas.
        if not self._on_protected_side(p) and kind != "ground":
            return None
        hdg = float(rng.uniform(0.0, 360.0))
        legs = []
        q = p.copy()
        for _ in range(3):
            hdg += float(rng.uniform(-60.0, 60.0))
            L = speed * float(rng.uniform(60.0, 150.0))
            q = q + L * np.array([math.sin(math.radians(hdg)), math.cos(math.radians(hdg))])
            legs.append(Leg((q[0], q[1], alt), speed))
        traj = fly((p[0], p[1], alt), hdg, speed, legs, dyn, end_s=self.dur)
        ident = ""
        if kind == "vessel":
            ident = f"mmsi:{int(rng.integers(211_000_000, 279_999_999))}"
        elif kind == "aircraft":
            ident = f"icao:{int(rng.integers(0x400000, 0x50FFFF)):06x}"
        off: list[tuple[float, float]] = []
        if kind == "vessel" and k % 5 == 2:
            a = float(rng.uniform(60.0, 150.0))
            off = [(a, a + 90.0)]  # an AIS switched off for a while, away from any zone
        name = f"{kind}-{tid}"
        return Target(id=tid, name=name, kind=kind, traj=traj, ident=ident, transponder_off=off)

    # ------------------------------------------------------------------ sensors
    def sensors(self) -> None:
        sites = [self.loiter_site.centre, self.approach_site.centre, self.fire_site.centre]
        pts = np.array(sites + [self.crossing_point])
        ground_site = pts.mean(axis=0)
        reach = float(np.max(np.linalg.norm(pts - ground_site, axis=1)))
        radar_range = max(25_000.0, reach + 10_000.0)
        pd = {"ground": 0.9, "vessel": 0.95, "aircraft": 0.97, "drone": 0.85}
        self.sensor_specs.append(
            SensorSpec(
                id="radar-1",
                kind="radar",
                site=(ground_site[0], ground_site[1], 30.0),
                max_range_m=radar_range,
                latency_s=0.2,
                period_s=1.0,
                sigma_range_m=15.0,
                sigma_az_rad=0.003,
                sigma_el_rad=0.01,
                pd=pd,
                clutter_per_scan=2.0,
                min_el_rad=-0.1,
            )
        )
        corridor = getattr(self, "corridor", None)
        if corridor is not None:
            b = corridor.geom.exterior
            q = np.asarray(b.interpolate(b.project(Point(self.centre))).coords[0])
            towards = self.centre - q
            coast = q + towards / np.linalg.norm(towards) * 3_000.0
            far = max(np.linalg.norm(np.asarray(c) - coast) for c in corridor.geom.exterior.coords)
            self.sensor_specs.append(
                SensorSpec(
                    id="radar-coast",
                    kind="radar",
                    site=(coast[0], coast[1], 40.0),
                    max_range_m=min(max(far, 30_000.0), 60_000.0),
                    latency_s=0.3,
                    period_s=2.0,
                    sigma_range_m=25.0,
                    sigma_az_rad=0.004,
                    sigma_el_rad=0.02,
                    pd={"vessel": 0.95, "ground": 0.0, "aircraft": 0.9, "drone": 0.5},
                    clutter_per_scan=3.0,
                    min_el_rad=-0.1,
                )
            )
            ais_site = coast
        else:
            ais_site = ground_site
        self.sensor_specs.append(
            SensorSpec(
                id="ais-1",
                kind="ais",
                site=(ais_site[0], ais_site[1], 20.0),
                max_range_m=80_000.0,
                latency_s=0.5,
                classes=("vessel",),
                interval_s=6.0,
                sigma_pos_m=10.0,
                sigma_alt_m=5.0,
                sigma_vel_mps=0.3,
            )
        )
        self.sensor_specs.append(
            SensorSpec(
                id="adsb-1",
                kind="adsb",
                site=(ground_site[0], ground_site[1], 20.0),
                max_range_m=250_000.0,
                latency_s=0.3,
                classes=("aircraft",),
                interval_s=1.0,
                sigma_pos_m=30.0,
                sigma_alt_m=15.0,
                sigma_vel_mps=1.0,
            )
        )
        fc = self.fire_site.centre
        self.sensor_specs.append(
            SensorSpec(
                id="acoustic-1",
                kind="acoustic",
                site=(fc[0] + 1500.0, fc[1], 5.0),
                max_range_m=15_000.0,
                latency_s=0.2,
            )
        )


def _radius(f) -> float:
    """Radius of the site with its buffer, as seen from its centre (largest extent)."""
    a = f.area
    c = Point(f.centre)
    return float(a.exterior.hausdorff_distance(c)) if hasattr(a, "exterior") else 500.0


def _is_sea(f) -> bool:
    return any(w in f.kind for w in ("sea", "maritime", "corridor", "anchorage"))


__all__ = ["build_demo", "T0_S", "Breach"]
