"""Throughput of the geodesy and filter kernels (fusion.geo, fusion.kernels.kalman/extended/imm).

Geodesy: geodetic -> theatre ENU and back, in points per second, against pymap3d's vectorised
numpy functions on the same points. Filters: CV predict, the position gate distance, the
Joseph-form position, polar and IMM updates, in tracks (or pairs) per second on one core,
against a per-track loop of filterpy's KalmanFilter on the same states. Timing covers the
kernels only (compilation is done, or loaded from the cache, before the clock starts).

    python -m benchmarks.geo [--points 200000] [--tracks 20000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from fusion.geo import LocalFrame
from fusion.kernels.extended import MEAS_POS, update_polar
from fusion.kernels.imm import imm_init, imm_predict, imm_update
from fusion.kernels.kalman import position_d2, predict, update_position
from fusion.kernels.packed import pack
from fusion.models import ImmModelSet, cv_F, cv_Q


def _best(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _tracks(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.column_stack([rng.normal(0, 5e4, (n, 3)), rng.normal(0, 100, (n, 3))])
    x[:, 2] = np.abs(x[:, 2]) + 500.0
    P = np.broadcast_to(np.diag([900.0, 900.0, 2500.0, 100.0, 100.0, 25.0]), (n, 6, 6)).copy()
    return x, P


def bench_geo(n: int, seed: int = 0) -> dict:
    import pymap3d

    rng = np.random.default_rng(seed)
    frame = LocalFrame(47.0, 33.0, 100.0)
    enu = np.column_stack(
        [rng.uniform(-5e5, 5e5, n), rng.uniform(-5e5, 5e5, n), rng.uniform(0, 1e4, n)]
    )
    llh = frame.to_geodetic(enu)
    frame.to_enu(llh[:10])
    to_enu_s = _best(lambda: frame.to_enu(llh))
    to_geo_s = _best(lambda: frame.to_geodetic(enu))
    m = max(1, n // 4)
    ref_to_enu_s = _best(
        lambda: pymap3d.geodetic2enu(llh[:m, 0], llh[:m, 1], llh[:m, 2], 47.0, 33.0, 100.0), 1
    )
    ref_to_geo_s = _best(
        lambda: pymap3d.enu2geodetic(enu[:m, 0], enu[:m, 1], enu[:m, 2], 47.0, 33.0, 100.0), 1
    )
    return {
        "points": n,
        "to_enu_points_per_s": n / to_enu_s,
        "to_geodetic_points_per_s": n / to_geo_s,
        "pymap3d_to_enu_points_per_s": m / ref_to_enu_s,
        "pymap3d_to_geodetic_points_per_s": m / ref_to_geo_s,
    }


def bench_filters(n: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    x0, P0 = _tracks(rng, n)
    P0_packed = pack(P0)  # the kernels take the TrackTable's packed covariances
    rows = np.arange(n, dtype=np.int64)
    dt = np.full(n, 1.0)
    z = x0[:, :3] + rng.normal(0, 30, (n, 3))
    R = np.broadcast_to(np.diag([900.0, 900.0, 900.0]), (n, 3, 3)).copy()
    d2 = np.empty(n)

    def fresh():
        return x0.copy(), P0_packed.copy()

    # warm up every kernel on the real dtypes
    x, P = fresh()
    predict(x[:2], P[:2], rows[:2], dt[:2], 1.0, 0.1)
    position_d2(x, P, rows[:2], rows[:2], z, R, d2)
    update_position(x, P, rows[:2], rows[:2], z, R, d2)

    x, P = fresh()
    predict_s = _best(lambda: predict(x, P, rows, dt, 1.0, 0.1))
    d2_s = _best(lambda: position_d2(x, P, rows, rows, z, R, d2))
    x, P = fresh()
    upd_s = _best(lambda: update_position(x, P, rows, rows, z, R, d2))

    # polar: a sensor at the theatre origin
    M, c = np.eye(3), np.zeros(3)
    q = x0[:, :3]
    zp = np.column_stack(
        [
            np.linalg.norm(q, axis=1),
            np.arctan2(q[:, 0], q[:, 1]) % (2 * np.pi),
            np.arctan2(q[:, 2], np.hypot(q[:, 0], q[:, 1])),
        ]
    )
    Rp = np.broadcast_to(np.diag([900.0, 1e-6, 1e-6]), (n, 3, 3)).copy()
    x, P = fresh()
    update_polar(x[:2], P[:2], rows[:2], rows[:2], zp, Rp, M, c, d2)
    x, P = fresh()
    polar_s = _best(lambda: update_polar(x, P, rows, rows, zp, Rp, M, c, d2))

    # IMM of CV + CT(+w) + CT(-w): one predict and one position update per track
    ms = ImmModelSet.cv_ct()
    mu = np.zeros((n, 3))
    xm, Pm = np.zeros((n, 3, 6)), np.zeros((n, 3, 21))
    x, P = fresh()
    imm_init(x, P, mu, xm, Pm, rows, rows, ms.mu0)

    def imm_cycle():
        imm_predict(x, P, mu, xm, Pm, rows, rows, dt, ms.omega_rad_s, ms.q_h, ms.q_v,
                    ms.transition)  # fmt: skip
        imm_update(MEAS_POS, x, P, mu, xm, Pm, rows, rows, rows, z, R, M, c, d2)

    imm_cycle()
    imm_s = _best(imm_cycle)

    # peer: filterpy KalmanFilter, one object per track, predict + update
    from filterpy.kalman import KalmanFilter

    m = max(1, n // 20)
    kfs = []
    for i in range(m):
        kf = KalmanFilter(dim_x=6, dim_z=3)
        kf.x = x0[i].copy()
        kf.P = P0[i].copy()
        kf.F = cv_F(1.0)
        kf.Q = cv_Q(1.0, 1.0, 0.1)
        kf.H = np.hstack([np.eye(3), np.zeros((3, 3))])
        kf.R = R[i]
        kfs.append(kf)

    def filterpy_cycle():
        for i, kf in enumerate(kfs):
            kf.predict()
            kf.update(z[i])

    fp_s = _best(filterpy_cycle, 1)
    ours_cycle = n / (predict_s + upd_s)
    return {
        "tracks": n,
        "predict_tracks_per_s": n / predict_s,
        "gate_d2_pairs_per_s": n / d2_s,
        "update_position_per_s": n / upd_s,
        "update_polar_per_s": n / polar_s,
        "predict_plus_update_per_s": ours_cycle,
        "imm3_predict_plus_update_per_s": n / imm_s,
        "ns_per_update_position": 1e9 * upd_s / n,
        "peers": {
            "filterpy_loop": {
                "predict_plus_update_per_s": m / fp_s,
                "ratio": ours_cycle / (m / fp_s),
            }
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--tracks", type=int, default=20_000)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    out = {"geodesy": bench_geo(args.points), "filters": bench_filters(args.tracks)}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
