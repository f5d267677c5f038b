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
from fusion.scenario.oracle import side_of_line
from fusion.scenario.rules import event_breaches, line_sign, target_breaches
from fusion.scenario.theatre import DEMO_SITES, Feature, Theatre, load_theatre

T0_S = 1_790_000_000.0  # 2026-09-21 13:33:20 UTC: a fixed epoch keeps feeds reproducible
# Background traffic stays this far from any rule's condition: a young track's velocity is
# uncertain by some 10 m/s, which over a 2-minute approach horizon moves a prediction ~1 km.
CLEAR_MARGIN_M = 4_000.0


def build_demo(
    sites_path=DEMO_SITES,
    *,
    seed: int = 7,
    t0_s: float = T0_S,
    duration_s: float = 600.0,
    n_background: int = 18,
) -> Scenario:
    """The demo scenario on the sites file `sites_path`, deterministic for a given seed."""
    th = load_theatre(sites_path)
    rng = np.random.default_rng([seed, 2026])
    lay = _Layout(th, rng, duration_s)
    lay.scripted()
    lay.sensors()
    lay.background(n_background)
    breaches = []
    for tg in lay.targets:
        breaches += [b for b in target_breaches(th, tg) if b.t_s <= duration_s]
    breaches += event_breaches(th, lay.events)
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
    def __init__(self, th: Theatre, rng: np.random.Generator, dur: float) -> None:
        self.th, self.rng, self.dur = th, rng, dur
        self.targets: list[Target] = []
        self.events: list[PointEvent] = []
        self.sensor_specs: list[SensorSpec] = []
        lines = th.with_rule("line_crossing")
        if not lines:
            raise ValueError("the demo needs a line of contact in the sites file")
        self.line = lines[0]
        self.sign = line_sign(self.line)
        self.zones = [f for f in th.areas if "dark_target" in f.rules]
        ports = [f for f in th.areas if f.kind == "port"]
        # The coast runs east-west through the port (the demo theatre's sea is south of it);
        # without a port there is no sea and no vessel traffic.
        self.coast_n = float(ports[0].centre[1]) if ports else None
        land = [
            f
            for f in th.areas
            if "incursion" in f.rules and not f.requires_ident and f.kind != "port"
        ]
        if len(land) < 2:
            raise ValueError("the demo needs at least two protected land sites")
        # The loiter site is the one with the shortest dwell; the fire site the one nearest
        # the line (within artillery range of it); the approach site the farthest from it.
        self.loiter_site = min(land, key=lambda f: f.param("loiter", "dwell_s", 1e9))
        rest = [f for f in land if f is not self.loiter_site]
        self.fire_site = min(rest, key=lambda f: f.geom.distance(self.line.geom))
        rest = [f for f in rest if f is not self.fire_site] or [self.fire_site]
        self.approach_site = max(rest, key=lambda f: f.geom.distance(self.line.geom))
        self.centre = np.mean([f.centre for f in land], axis=0)

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
        return np.array([-d[1], d[0]]) * self.sign

    def _protected(self, xy: np.ndarray) -> bool:
        return bool(side_of_line(self.line.geom, np.asarray(xy)[None, :2])[0] == self.sign)

    def _at_sea(self, xy: np.ndarray, margin_m: float = 2_000.0) -> bool:
        return self.coast_n is not None and xy[1] < self.coast_n - margin_m

    def _on_land(self, xy: np.ndarray, margin_m: float = 2_000.0) -> bool:
        return self.coast_n is None or xy[1] > self.coast_n + margin_m

    # ------------------------------------------------------------------ scripted breaches
    def scripted(self) -> None:
        # Approaching movers start several kilometres along their tangent, so that a young
        # track's velocity error (tens of degrees in its first seconds) cannot bring the
        # approach warning forward: the warnings come minutes into the run.
        self._line_crossing(t_cross_s=50.0)
        self._approach(t_turn_s=240.0)
        self._fire(t_s=100.0)
        self._dark_vessel(t_entry_s=150.0)
        self._loiter(t_turn_s=150.0)

    def _line_crossing(self, t_cross_s: float) -> None:
        # Cross on land where the line is at least 8 km from every protected area and nearest
        # the middle of the sites, so the crossing cues the line and nothing else.
        line: LineString = self.line.geom
        best, best_key = None, np.inf
        for s in np.linspace(0.02, 0.98, 97) * line.length:
            p = np.asarray(line.interpolate(s).coords[0])
            d_sites = min(f.area.distance(Point(p)) for f in self.th.areas)
            if d_sites < 8_000.0 or not self._on_land(p, 8_000.0):
                continue
            key = float(np.linalg.norm(p - self.centre))
            if key < best_key:
                best, best_key = p, key
        if best is None:
            best = np.asarray(line.interpolate(0.5 * line.length).coords[0])
        n = self._protected_dir(best)
        speed = 12.0
        start = best - n * speed * t_cross_s
        end = best + n * 900.0
        traj = fly(
            (start[0], start[1], 0.0),
            _hdg(n),
            speed,
            [Leg((end[0], end[1], 0.0), speed), Leg((end[0], end[1], 0.0), 0.0, hold_s=1e6)],
            DYNAMICS["ground"],
            end_s=self.dur,
        )
        self._add("crossing-vehicle", "ground", traj, rcs_m2=10.0)
        self.crossing_point = best

    def _turn_in_legs(
        self, f: Feature, t_turn_s: float, speed: float, alt: float, pass_m: float = 2_000.0
    ) -> tuple[np.ndarray, float, Leg]:
        """A drone passes the site `pass_m` outside its buffer on a tangent, then at
        `t_turn_s` turns straight at it. The tangent keeps the approach rule quiet however
        young the track (its cross-track margin is the rule's slack and more); the turn makes
        the approach certain at a known instant, when the track is well established.
        Returns the start point, its heading and the leg to the turn point."""
        c = f.centre
        away = self._protected_dir(c)  # the turn point lies on the site's protected side
        turn_at = c + away * (_radius(f) + pass_m)
        along = np.array([-away[1], away[0]])
        if not self._on_land(turn_at - along * speed * t_turn_s):
            along = -along
        start = turn_at - along * speed * t_turn_s
        return start, _hdg(along), Leg((turn_at[0], turn_at[1], alt), speed)

    def _approach(self, t_turn_s: float) -> None:
        # A non-cooperative drone turns at the site, closes 1 km, then turns away 1 km short
        # of the buffer: the approach rule must warn, incursion must not.
        f = self.approach_site
        c = f.centre
        speed, alt = 25.0, 120.0
        start, hdg, to_turn = self._turn_in_legs(f, t_turn_s, speed, alt)
        turn_at = np.asarray(to_turn.to[:2])
        inward = (c - turn_at) / np.linalg.norm(c - turn_at)
        close = turn_at + inward * 1_000.0
        side = np.array([-inward[1], inward[0]])
        if not self._on_land(close + side * 6_000.0):
            side = -side
        exit_pt = close + side * 8_000.0 - inward * 3_000.0
        traj = fly(
            (start[0], start[1], alt),
            hdg,
            speed,
            [
                to_turn,
                Leg((close[0], close[1], alt), speed),
                Leg((exit_pt[0], exit_pt[1], alt), speed),
            ],
            DYNAMICS["drone"],
            end_s=self.dur,
            arrive_m=10.0,
        )
        self._add("approach-drone", "drone", traj, rcs_m2=0.05)

    def _loiter(self, t_turn_s: float) -> None:
        # A drone turns in at the site, enters its buffer and circles over it past its dwell.
        f = self.loiter_site
        c = f.centre
        dwell = f.param("loiter", "dwell_s", 300.0)
        speed, alt = 20.0, 150.0
        start, hdg, to_turn = self._turn_in_legs(f, t_turn_s, speed, alt)
        orbit_r = max(200.0, 0.35 * _radius(f))
        traj = fly(
            (start[0], start[1], alt),
            hdg,
            speed,
            [to_turn, Leg((c[0], c[1], alt), speed, orbit_s=dwell + 600.0, radius_m=orbit_r)],
            DYNAMICS["drone"],
            end_s=self.dur,
            arrive_m=10.0,
        )
        self._add("loiter-drone", "drone", traj, rcs_m2=0.05)

    def _dark_vessel(self, t_entry_s: float) -> None:
        zones = [z for z in self.zones if self._at_sea(np.asarray(z.centre), 0.0)]
        if not zones:
            return
        z = zones[0]
        poly = z.geom
        # Cross into the zone at its middle from its seaward (southern-eastern) side, then
        # follow it away from the port at a slow drift: a dark vessel inside the corridor.
        cx, cy = z.centre
        b = poly.exterior
        coords = np.asarray(b.coords)[:-1]
        # The zone's axis: the direction of its longest edge.
        edges = np.roll(coords, -1, axis=0) - coords
        k = int(np.argmax(np.hypot(edges[:, 0], edges[:, 1])))
        axis = edges[k] / np.linalg.norm(edges[k])
        normal = np.array([axis[1], -axis[0]])
        if normal[1] > 0:  # seaward is southwards
            normal = -normal
        q = np.asarray(z.centre)
        # Boundary point on the seaward side along the normal through the centre.
        far = LineString([q, q + normal * 50_000.0])
        ip = far.intersection(b)
        entry = np.asarray(ip.coords[0]) if not ip.is_empty and ip.geom_type == "Point" else q
        speed = 12.0  # a fast boat running dark
        start = entry + normal * speed * t_entry_s
        inside = entry - normal * 600.0
        if self.coast_n is not None and axis[1] > 0:
            axis = -axis  # away from the coast
        drift = inside + axis * 20_000.0
        traj = fly(
            (start[0], start[1], 0.0),
            _hdg(-normal),
            speed,
            [Leg((inside[0], inside[1], 0.0), speed), Leg((drift[0], drift[1], 0.0), 4.0)],
            DYNAMICS["vessel"],
            end_s=self.dur,
        )
        self._add("dark-vessel", "vessel", traj, rcs_m2=200.0)
        self.corridor = z

    def _fire(self, t_s: float) -> None:
        # An artillery round lands inside the fire site, on its far side from the line.
        f = self.fire_site
        c = f.centre
        n = self._protected_dir(c)
        p = c + n * 0.3 * _radius(f)
        self.events.append(PointEvent(t_s=t_s, pos=(p[0], p[1], 0.0), event="impact"))

    # ------------------------------------------------------------------ background traffic
    def background(self, n: int) -> None:
        """Ordinary traffic that must raise no cue: drawn from the seed and kept only if it
        stays `CLEAR_MARGIN_M` clear of every rule's condition."""
        mix = ["ground", "vessel", "ground", "aircraft", "vessel", "drone"]
        if self.coast_n is None:
            mix = [m for m in mix if m != "vessel"]
        k = attempts = 0
        while k < n and attempts < 200 * n:
            attempts += 1
            kind = mix[k % len(mix)]
            tg = self._random_mover(kind, k)
            if tg is None or target_breaches(self.th, tg, margin_m=CLEAR_MARGIN_M):
                continue
            self.targets.append(tg)
            k += 1

    def _random_mover(self, kind: str, k: int) -> Target | None:
        rng = self.rng
        tid = len(self.targets) + 1
        # Somewhere a radar sees (vessels: near the coastal radar), up to 12 km from it.
        radars = [x for x in self.sensor_specs if x.kind == "radar"]
        if kind == "vessel":
            radars = [x for x in radars if x.id == "radar-coast"] or radars
        r = radars[int(rng.integers(len(radars)))]
        rho, phi = 12_000.0 * math.sqrt(float(rng.uniform())), float(rng.uniform(0, 2 * math.pi))
        p = np.array([r.site[0] + rho * math.sin(phi), r.site[1] + rho * math.cos(phi)])
        if kind == "vessel":
            speed, alt = float(rng.uniform(3.0, 9.0)), 0.0
        elif kind == "ground":
            speed, alt = float(rng.uniform(6.0, 20.0)), 0.0
        elif kind == "aircraft":
            speed, alt = float(rng.uniform(60.0, 110.0)), float(rng.uniform(2000.0, 6000.0))
        else:
            speed, alt = float(rng.uniform(10.0, 20.0)), float(rng.uniform(80.0, 300.0))
        hdg = float(rng.uniform(0.0, 360.0))
        legs = []
        q = p.copy()
        pts = [p]
        for _ in range(3):
            hdg += float(rng.uniform(-60.0, 60.0))
            L = speed * float(rng.uniform(80.0, 200.0))
            q = q + L * np.array([math.sin(math.radians(hdg)), math.cos(math.radians(hdg))])
            legs.append(Leg((q[0], q[1], alt), speed))
            pts.append(q)
        # Vessels stay at sea, land vehicles on land; everything but some ground vehicles on
        # the protected side (those stay on the far side, never crossing).
        if kind == "vessel" and not all(self._at_sea(x) for x in pts):
            return None
        if kind == "ground" and not all(self._on_land(x) for x in pts):
            return None
        if kind != "ground" and not all(self._protected(x) for x in pts):
            return None
        # A cheap test of the waypoints' polyline first: most rejected draws stop here,
        # before the path is integrated and checked rule by rule.
        poly = LineString(pts)
        if any(poly.distance(f.geom) < CLEAR_MARGIN_M + f.buffer_m for f in self.th.features):
            return None
        traj = fly((p[0], p[1], alt), hdg, speed, legs, DYNAMICS[kind], end_s=self.dur)
        ident = ""
        if kind == "vessel":
            ident = f"mmsi:{int(rng.integers(211_000_000, 279_999_999))}"
        elif kind == "aircraft":
            ident = f"icao:{int(rng.integers(0x400000, 0x50FFFF)):06x}"
        off: list[tuple[float, float]] = []
        if kind == "vessel" and k % 4 == 1:
            a = float(rng.uniform(60.0, 200.0))
            off = [(a, a + 120.0)]  # an AIS switched off for a while, away from any zone
        return Target(
            id=tid, name=f"{kind}-{tid}", kind=kind, traj=traj, ident=ident, transponder_off=off
        )

    # ------------------------------------------------------------------ sensors
    def sensors(self) -> None:
        """A short-range radar at each protected site of the script and behind the crossing
        point, a coastal radar over the corridor, AIS and ADS-B receivers, an acoustic array
        at the fire site."""
        pd = {"ground": 0.9, "vessel": 0.95, "aircraft": 0.97, "drone": 0.9}
        posts = [(f"radar-{f.id}", f.centre) for f in self._script_sites()]
        behind = self.crossing_point + self._protected_dir(self.crossing_point) * 4_000.0
        posts.append(("radar-line", behind))
        for sid, xy in posts:
            self.sensor_specs.append(
                SensorSpec(
                    id=sid,
                    kind="radar",
                    site=(xy[0] + 300.0, xy[1] + 300.0, 25.0),
                    max_range_m=15_000.0,
                    latency_s=0.2,
                    period_s=1.0,
                    sigma_range_m=10.0,
                    sigma_az_rad=0.002,
                    sigma_el_rad=0.01,
                    pd=pd,
                    clutter_per_scan=1.0,
                    min_el_rad=-0.1,
                    # Short-range site radars tell drones and aircraft apart by their Doppler
                    # signature; ground and surface plots stay unclassified.
                    options={"classify": {"drone": 0.95, "aircraft": 0.95}},
                )
            )
        corridor = getattr(self, "corridor", None)
        ais_site = posts[0][1]
        if corridor is not None:
            # A coastal radar on the shore nearest the corridor, reaching its far end.
            cs = np.asarray(corridor.geom.exterior.coords)
            q = cs[np.argmax(cs[:, 1])]
            coast = np.array([q[0], (self.coast_n or q[1]) + 1_000.0])
            far = float(np.max(np.linalg.norm(cs - coast, axis=1)))
            self.sensor_specs.append(
                SensorSpec(
                    id="radar-coast",
                    kind="radar",
                    site=(coast[0], coast[1], 40.0),
                    max_range_m=min(far + 5_000.0, 80_000.0),
                    latency_s=0.3,
                    period_s=2.0,
                    sigma_range_m=15.0,
                    sigma_az_rad=0.002,
                    sigma_el_rad=0.02,
                    pd={"vessel": 0.95, "ground": 0.0, "aircraft": 0.9, "drone": 0.5},
                    clutter_per_scan=2.0,
                    min_el_rad=-0.1,
                )
            )
            ais_site = coast
        self.sensor_specs.append(
            SensorSpec(
                id="ais-1",
                kind="ais",
                site=(ais_site[0], ais_site[1], 20.0),
                max_range_m=100_000.0,
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
                site=(posts[0][1][0], posts[0][1][1], 20.0),
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
                site=(fc[0] - 300.0, fc[1], 5.0),
                max_range_m=20_000.0,
                latency_s=0.2,
            )
        )

    def _script_sites(self) -> list[Feature]:
        out: list[Feature] = []
        for f in (self.loiter_site, self.approach_site, self.fire_site):
            if f not in out:
                out.append(f)
        return out


def _hdg(d: np.ndarray) -> float:
    return math.degrees(math.atan2(d[0], d[1])) % 360.0


def _radius(f: Feature) -> float:
    """Largest distance from the site's centre to the edge of its buffer."""
    return float(f.area.exterior.hausdorff_distance(Point(f.centre)))


__all__ = ["build_demo", "T0_S", "Breach"]
