"""Rule evaluation per scan: 10,000 confirmed tracks against 500 sites (target 10 ms).

    .venv/bin/python -m benchmarks.rules [--tracks 10000] [--sites 500] [--scans 60] [--json PATH]

A synthetic theatre 300 km square at lat 46.5, lon 31.0: 5 lines of contact (20 vertices
each), 15 identity zones, 200 polygons (6 to 16 vertices) and 280 Point sites (radius
100-800 m), buffers 0.5-3 km. Tracks are spread over the theatre: 70 % surface/ground at
0-15 m/s, 30 % air at 60-250 m/s, half with a cooperative identity; all confirmed. Each scan
moves every track 1 s and calls RuleEngine.evaluate (every rule, the cue lifecycle and the
bodies of the cues it emits). The first scans (numba compilation, memory warm-up) are not
timed. Reports the median and 95th percentile per scan in wall and CPU time (the machine
is shared, so CPU time is what the target is judged on), the CPU split between geometry,
rules and the cue lifecycle, and the cue events per scan.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from fusion.geo import LocalFrame
from fusion.messages import IDENT_DTYPE
from fusion.picture import TrackPicture
from fusion.rules.engine import RuleEngine
from fusion.sites import parse_sites

ORIGIN = (46.5, 31.0, 0.0)
HALF_M = 150_000.0


def _ll(frame: LocalFrame, xy: np.ndarray) -> list[list[float]]:
    llh = frame.to_geodetic(np.column_stack([xy, np.zeros(len(xy))]))
    return [[float(lon), float(lat)] for lat, lon, _ in llh]


def theatre(n_sites: int, rng: np.random.Generator, frame: LocalFrame) -> dict:
    feats = []

    def add(kind, gtype, coords, **props):
        fid = f"s{len(feats)}"
        feats.append({"type": "Feature",
                      "properties": {"id": fid, "kind": kind, **props},
                      "geometry": {"type": gtype, "coordinates": coords}})  # fmt: skip

    n_lines, n_zones = 5, 15
    n_poly = int(0.4 * n_sites)
    n_disc = n_sites - n_lines - n_zones - n_poly
    for k in range(n_lines):
        x0 = -HALF_M + (k + 0.5) * 2 * HALF_M / n_lines
        y = np.linspace(-0.5 * HALF_M, 0.5 * HALF_M, 20)
        x = x0 + np.cumsum(rng.normal(0, 800, 20))
        add("line_of_contact", "LineString", _ll(frame, np.column_stack([x, y])),
            protected_side="left")  # fmt: skip
    for _ in range(n_zones):
        c = rng.uniform(-HALF_M, HALF_M, 2)
        w, h = rng.uniform(3000, 20000, 2)
        ring = c + np.array([[-w, -h], [w, -h], [w, h], [-w, h], [-w, -h]]) / 2
        add("corridor", "Polygon", [_ll(frame, ring)])
    for _ in range(n_poly):
        c = rng.uniform(-HALF_M, HALF_M, 2)
        m = int(rng.integers(6, 17))
        ang = 2 * np.pi * np.arange(m) / m + rng.uniform(0, np.pi / m, m)
        r = rng.uniform(200, 1500, m)
        ring = c + np.column_stack([r * np.cos(ang), r * np.sin(ang)])
        ring = np.vstack([ring, ring[:1]])
        add("site", "Polygon", [_ll(frame, ring)], buffer_m=float(rng.uniform(500, 3000)),
            priority=int(rng.integers(1, 6)))  # fmt: skip
    for _ in range(n_disc):
        c = rng.uniform(-HALF_M, HALF_M, 2)
        add("depot", "Point", _ll(frame, c[None])[0], radius_m=float(rng.uniform(100, 800)),
            buffer_m=float(rng.uniform(500, 3000)))  # fmt: skip
    return {"type": "FeatureCollection", "features": feats}


def tracks(n: int, rng: np.random.Generator):
    xy = rng.uniform(-HALF_M, HALF_M, (n, 2))
    air = rng.random(n) < 0.3
    speed = np.where(air, rng.uniform(60, 250, n), rng.uniform(0, 15, n))
    heading = rng.uniform(0, 2 * np.pi, n)
    v = np.column_stack([speed * np.sin(heading), speed * np.cos(heading)])
    ident = np.where(rng.random(n) < 0.5, [f"mmsi:{k}".encode() for k in range(n)], b"")
    return xy, v, air, ident.astype(IDENT_DTYPE)


def picture(t_s, xy, v, air, ident) -> TrackPicture:
    n = len(xy)
    x = np.zeros((n, 6))
    x[:, 0:2] = xy
    x[:, 3:5] = v
    P = np.tile(np.diag([900.0, 900.0, 100.0, 4.0, 4.0, 1.0]), (n, 1, 1))
    return TrackPicture(
        t_s=t_s, origin=ORIGIN, id=np.arange(1, n + 1, dtype=np.int64), x=x, P=P,
        t_upd_s=np.full(n, t_s), status=np.full(n, 2, np.uint8), ident=ident,
        cls=np.where(air, 1, 2).astype(np.uint8), n_sensors=np.full(n, 2, np.uint8),
        sensor_kinds=np.full(n, 2, np.uint8), hits=np.full(n, 20, np.int32),
        quality=np.full(n, 0.8),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=10_000)
    ap.add_argument("--sites", type=int, default=500)
    ap.add_argument("--scans", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--half-km", type=float, default=150.0, help="theatre half-width, km")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    frame = LocalFrame(*ORIGIN)
    t0 = time.perf_counter()
    global HALF_M
    HALF_M = 1000.0 * args.half_km
    sites = parse_sites(theatre(args.sites, rng, frame), frame)
    load_s = time.perf_counter() - t0
    engine = RuleEngine(sites)
    xy, v, air, ident = tracks(args.tracks, rng)

    wall, cpu, phase, n_pairs, n_cues = [], [], [], [], []
    t_s = 1.764e9
    for scan in range(args.warmup + args.scans):
        pic = picture(t_s, xy, v, air, ident)
        # RuleEngine.evaluate, step by step so that each phase is timed
        w0 = time.perf_counter()
        c0 = time.process_time()
        ctx = engine.context(pic, [], {}, t_s)
        c1 = time.process_time()
        findings = [rule.evaluate(ctx) for rule in engine.rules]
        c2 = time.process_time()
        out = engine.book.step(findings, ctx)
        c3 = time.process_time()
        w1 = time.perf_counter()
        if scan >= args.warmup:
            wall.append(w1 - w0)
            cpu.append(c3 - c0)
            phase.append((c1 - c0, c2 - c1, c3 - c2))
            n_pairs.append(len(ctx.pairs.i))
            n_cues.append(len(out))
        xy = xy + v
        t_s += 1.0

    ms = 1e3 * np.array(wall)
    ph = 1e3 * np.median(np.array(phase), axis=0)
    res = {
        "tracks": args.tracks,
        "sites": len(sites),
        "theatre_km": 2 * args.half_km,
        "scans": args.scans,
        "median_ms": round(float(np.median(ms)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "cpu_median_ms": round(1e3 * float(np.median(cpu)), 2),
        "cpu_p95_ms": round(1e3 * float(np.percentile(cpu, 95)), 2),
        # CPU medians of the three phases
        "geometry_cpu_ms": round(float(ph[0]), 2),  # predict to now + grid/exact area pairs
        "rules_cpu_ms": round(float(ph[1]), 2),  # the seven rules' findings
        "lifecycle_and_bodies_cpu_ms": round(float(ph[2]), 2),  # cue lifecycle + bodies
        "pairs_per_scan": int(np.median(n_pairs)),
        "cue_events_per_scan_median": int(np.median(n_cues)),
        "open_cues_at_end": engine.open_cues(),
        "site_load_s": round(load_s, 2),
        "target_ms": 10.0,
        "machine": f"{platform.machine()}, Python {platform.python_version()}, 2 shared cores",
    }
    # judged on CPU time: wall time on the shared machine includes other processes' turns
    res["reached"] = res["cpu_median_ms"] <= res["target_ms"]
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
