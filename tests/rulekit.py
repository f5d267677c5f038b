"""Test helpers for the rule tests: a small theatre and TrackPicture builders.

The theatre (ENU metres at lat 46.5, lon 31.0):
- `disc`: a depot, Point at (0, 0), radius 200 m, buffer 1000 m;
- `plant`: a power plant, square of side 1000 m centred at (10000, 0), buffer 2000 m;
- `zone`: a corridor requiring identity, the square (-20000..-10000, -20000..-10000);
- `loc`: a line of contact along x = 20000 drawn south to north, protected side left (west).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fusion.geo import LocalFrame
from fusion.messages import CLS_SURFACE, IDENT_DTYPE
from fusion.picture import TrackPicture
from fusion.rules.engine import RuleEngine
from fusion.sites import parse_sites

ORIGIN = (46.5, 31.0, 0.0)
FRAME = LocalFrame(*ORIGIN)


def ll(pts_m) -> list[list[float]]:
    e = np.array([[x, y, 0.0] for x, y in pts_m], dtype=np.float64)
    g = FRAME.to_geodetic(e)
    return [[float(lon), float(lat)] for lat, lon, _ in g]


def llh(x_m: float, y_m: float, alt_m: float = 0.0) -> list[float]:
    g = FRAME.to_geodetic(np.array([[x_m, y_m, alt_m]]))[0]
    return [float(g[0]), float(g[1]), float(g[2])]


def square(cx, cy, half):
    return [ll([(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half),
                (cx - half, cy + half), (cx - half, cy - half)])]  # fmt: skip


def feature(fid, kind, gtype, coords, **props):
    return {
        "type": "Feature",
        "properties": {"id": fid, "name": fid.capitalize(), "kind": kind, **props},
        "geometry": {"type": gtype, "coordinates": coords},
    }


def theatre(rules: dict[str, dict] | None = None):
    """The test theatre; `rules` {site_id: rules property} overrides rule parameters."""
    rules = rules or {}
    zone = [ll([(-20000, -20000), (-10000, -20000), (-10000, -10000), (-20000, -10000),
                (-20000, -20000)])]  # fmt: skip
    feats = [
        feature("disc", "depot", "Point", ll([(0, 0)])[0], radius_m=200, buffer_m=1000,
                priority=3, rules=rules.get("disc", {})),
        feature("plant", "power_plant", "Polygon", square(10000, 0, 500), buffer_m=2000,
                priority=5, rules=rules.get("plant", {})),
        feature("zone", "corridor", "Polygon", zone, priority=3, rules=rules.get("zone", {})),
        feature("loc", "line_of_contact", "LineString", ll([(20000, -30000), (20000, 30000)]),
                protected_side="left", priority=4, rules=rules.get("loc", {})),
    ]  # fmt: skip
    return parse_sites({"type": "FeatureCollection", "features": feats}, FRAME)


def engine(rules=None, config=None) -> RuleEngine:
    return RuleEngine(theatre(rules), config)


def picture(
    t_s: float,
    tracks: Iterable[dict],
) -> TrackPicture:
    """tracks: dicts with id, xy (2,), v (2,), and optionally sigma_m (position std, 30),
    sigma_v (velocity std, 1), ident (str), status (2), hits (10), n_sensors (2),
    kinds (2 = radar), quality (0.8), cls (surface), t_upd_s (t_s)."""
    tracks = list(tracks)
    n = len(tracks)
    x = np.zeros((n, 6))
    P = np.zeros((n, 6, 6))
    for k, tr in enumerate(tracks):
        x[k, 0:2] = tr["xy"]
        x[k, 3:5] = tr.get("v", (0.0, 0.0))
        sp = tr.get("sigma_m", 30.0)
        sv = tr.get("sigma_v", 1.0)
        P[k] = np.diag([sp**2, sp**2, 100.0, sv**2, sv**2, 1.0])
    return TrackPicture(
        t_s=t_s,
        origin=ORIGIN,
        id=np.array([tr["id"] for tr in tracks], dtype=np.int64),
        x=x,
        P=P,
        t_upd_s=np.array([tr.get("t_upd_s", t_s) for tr in tracks], dtype=np.float64),
        status=np.array([tr.get("status", 2) for tr in tracks], dtype=np.uint8),
        ident=np.array([tr.get("ident", "").encode() for tr in tracks], dtype=IDENT_DTYPE),
        cls=np.array([tr.get("cls", CLS_SURFACE) for tr in tracks], dtype=np.uint8),
        n_sensors=np.array([tr.get("n_sensors", 2) for tr in tracks], dtype=np.uint8),
        sensor_kinds=np.array([tr.get("kinds", 2) for tr in tracks], dtype=np.uint8),
        hits=np.array([tr.get("hits", 10) for tr in tracks], dtype=np.int32),
        quality=np.array([tr.get("quality", 0.8) for tr in tracks], dtype=np.float64),
    )


def run(eng: RuleEngine, script, t0=0.0, t1=600.0, dt=1.0, events=None, states=None):
    """Step the engine at each time in [t0, t1) with `script(t) -> list of track dicts`;
    `events(t)` and `states(t)` give the scan's events and sensor states.
    Returns [(t, body)] of every cue event."""
    out = []
    for t in np.arange(t0, t1, dt):
        t = float(t)
        pic = picture(t, script(t))
        ev = events(t) if events else []
        st = states(t) if states else {}
        for body in eng.evaluate(pic, ev, st, t):
            out.append((t, body))
    return out


def of(cues, rule=None, state=None, site=None):
    return [
        (t, b)
        for t, b in cues
        if (rule is None or b["rule"] == rule)
        and (state is None or b["state"] == state)
        and (site is None or b["site"] == site)
    ]
