"""Tracker benchmark: the numba tracker against Stone Soup and a filterpy loop, same detections.

    python -m benchmarks.tracker --targets N --scans S [--peers stonesoup,filterpy] [--json PATH]
    fusion bench tracker ...   (the same)

Standard scenario (constant density, so the area grows with N):
- N targets in a square of side 2 km * sqrt(N) (one target per 4 km^2) around the theatre
  origin (46.5 N, 30.7 E), at 0 m, nearly-constant velocity: each horizontal velocity
  component N(0, 10 m/s), no manoeuvre; one scan every 2 s.
- Detections: position (WGS84 to the trackers that take it, the same points in ENU to the
  peers), noise 20 m standard deviation on each ENU axis, detection probability 0.9, plus
  clutter of 10 % of N per scan, uniform over the square (altitude N(0, 20 m)).
- Models: CV with white acceleration q = 1 m^2/s^3 horizontal, 0.1 vertical (the tracker's
  `unknown` class), position measurement with R = 20^2 I; new tracks at the detection with
  zero velocity and 100 m/s per axis (20 m/s vertical); chi-square gate at 99.9 %.
- Our tracker confirms 4-of-6 and deletes after 4 misses (its `unknown` defaults); the
  sensor declares its coverage (`Tracker.set_coverage`: the whole square around the origin).
  Stone Soup: MultiTargetTracker with KalmanPredictor, KalmanUpdater, DistanceHypothesiser
  (Mahalanobis, missed distance = the same gate), GNNWith2DAssignment,
  MultiMeasurementInitiator (4 points) and UpdateTimeStepsDeleter (4 scans). filterpy: one
  KalmanFilter per track in a Python loop, a dense Mahalanobis cost matrix and scipy's
  linear_sum_assignment, 4-of-6 and 4 misses.

Only the tracking is timed, in CPU seconds of the process (the benchmark machine is shared;
every tracker here runs on one thread), (for ours: `Tracker.step`, which includes the WGS84 -> ENU
conversion; for the peers: their predict/associate/update/initiate/delete loop); simulation,
pictures and scoring are not. GOSPA (c = 100 m, p = 1, alpha = 2; 3-D positions of the
confirmed tracks extrapolated to the scan time) is averaged over all scans. Each tracker runs
in its own forked process so `peak_rss_mb` (ru_maxrss) is its own (it includes the scenario,
shared from the parent).

Memory per track (printed by every run): the TrackTable's bytes per slot of a CV track and of
an IMM track of three models (slot plus side-table rows), from `TrackTable.nbytes()` of full
tables without growth slack; and the bytes per live track of the run's own table, slack
included.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

ORIGIN = (46.5, 30.7, 0.0)
DT_S = 2.0
SIGMA_M = 20.0
PD = 0.9
CLUTTER_FRACTION = 0.1
SPACING_M = 2000.0
SPEED_SIGMA_MPS = 10.0
Q_H, Q_V = 1.0, 0.1
INIT_VEL_SIGMA = 100.0
GATE2 = 16.266236196238129  # chi2.ppf(0.999, 3)
CONFIRM_M, CONFIRM_N, MAX_MISSES = 4, 6, 4
GOSPA_C, GOSPA_P = 100.0, 1.0
T0 = 1.7e9
KEYS = (
    "targets",
    "scans",
    "detections",
    "seconds",
    "detections_per_s",
    "ms_per_scan",
    "gospa_mean",
    "peak_rss_mb",
)


@dataclass
class Scenario:
    n_targets: int
    n_scans: int
    truth: np.ndarray  # (S, N, 3) ENU
    det_enu: list[np.ndarray]  # per scan (n_k, 3)
    det_llh: list[np.ndarray]  # per scan (n_k, 3)
    times: np.ndarray  # (S,)

    @property
    def detections(self) -> int:
        return int(sum(d.shape[0] for d in self.det_enu))


def make_scenario(n_targets: int, n_scans: int, seed: int = 1) -> Scenario:
    from fusion.geo import LocalFrame

    rng = np.random.default_rng(seed)
    side = SPACING_M * math.sqrt(n_targets)
    p0 = np.zeros((n_targets, 3))
    p0[:, :2] = rng.uniform(-side / 2, side / 2, size=(n_targets, 2))
    v = np.zeros((n_targets, 3))
    v[:, :2] = rng.normal(0, SPEED_SIGMA_MPS, size=(n_targets, 2))
    frame = LocalFrame(*ORIGIN)
    truth, det_enu, det_llh = [], [], []
    n_clutter = int(round(CLUTTER_FRACTION * n_targets))
    for k in range(n_scans):
        pk = p0 + v * (k * DT_S)
        truth.append(pk)
        seen = rng.random(n_targets) < PD
        z = pk[seen] + rng.normal(0, SIGMA_M, size=(int(seen.sum()), 3))
        clutter = np.c_[
            rng.uniform(-side / 2, side / 2, size=(n_clutter, 2)), rng.normal(0, 20, n_clutter)
        ]
        z = np.vstack([z, clutter])
        z = z[rng.permutation(z.shape[0])]
        det_enu.append(z)
        det_llh.append(frame.to_geodetic(z))
    times = T0 + DT_S * np.arange(n_scans)
    return Scenario(n_targets, n_scans, np.array(truth), det_enu, det_llh, times)


# ------------------------------------------------------------------------------- GOSPA
def gospa_sparse(X: np.ndarray, Y: np.ndarray, c: float = GOSPA_C, p: float = GOSPA_P) -> float:
    """GOSPA (alpha = 2) of estimates X (m, 3) against truth Y (n, 3), exact, in O(pairs).

    Only pairs closer than c can lower the cost (a pair costs d^p instead of the c^p of leaving
    both out), so the optimal assignment is taken over the pairs a k-d tree finds within c,
    cluster by cluster with the tracker's own GNN solver; equal to fusion.evaluate.gospa
    (dense) on small cases.
    """
    from fusion.kernels.assignment import gnn_clusters

    m, n = X.shape[0], Y.shape[0]
    half = c**p / 2.0
    if m == 0 or n == 0:
        return (half * (m + n)) ** (1.0 / p)
    sdm = cKDTree(X).sparse_distance_matrix(cKDTree(Y), c, output_type="coo_matrix")
    keep = sdm.data < c
    pt = sdm.row[keep].astype(np.int64)
    pd = sdm.col[keep].astype(np.int64)
    d = sdm.data[keep]
    # Exact zero distances are dropped by the sparse matrix; they do not occur with noise.
    det_of = np.empty(m, np.int64)
    tr_of = np.empty(n, np.int64)
    gnn_clusters(m, n, pt, pd, d**p, np.full(m, c**p), det_of, tr_of)
    ok = det_of >= 0
    loc = float((np.linalg.norm(X[ok] - Y[det_of[ok]], axis=1) ** p).sum())
    k = int(ok.sum())
    return (loc + half * (m - k) + half * (n - k)) ** (1.0 / p)


def _estimates(pos: np.ndarray, vel: np.ndarray, t_upd: np.ndarray, t: float) -> np.ndarray:
    return pos + vel * (t - t_upd)[:, None]


# ------------------------------------------------------------------------------- trackers
def run_fusion(sc: Scenario) -> tuple[float, list[float]]:
    from fusion.messages import Detections
    from fusion.tracker import Tracker
    from fusion.tracker_config import TrackerConfig

    _warm_up()
    tr = Tracker(TrackerConfig(), ORIGIN)
    # The sensor declares its coverage (as a radar's heartbeat does): the whole square, so a
    # track it does not detect scores a miss, as in the peers.
    tr.set_coverage("bench", max_range_m=SPACING_M * math.sqrt(sc.n_targets), site=ORIGIN)
    R1 = np.eye(3) * SIGMA_M**2
    batches = [
        Detections(
            sensor="bench",
            seq=k,
            kind="pos",
            t=np.full(z.shape[0], sc.times[k]),
            z=z,
            R=np.broadcast_to(R1, (z.shape[0], 3, 3)).copy(),
        )
        for k, z in enumerate(sc.det_llh)
    ]
    seconds = 0.0
    gospas = []
    per_scan = []
    for k, b in enumerate(batches):
        t0 = _clock()
        tr.step(b)
        per_scan.append(_clock() - t0)
        seconds += per_scan[-1]
        pic = tr.picture()
        est = _estimates(pic.x[:, :3], pic.x[:, 3:], pic.t_upd_s, sc.times[k])
        gospas.append(gospa_sparse(est, sc.truth[k]))
    # Steady state: the second half of the scans, once tracks are confirmed and the first
    # scans' burst of tentative tracks has died (printed, not part of the JSON).
    half = len(batches) // 2
    n_late = sum(len(b) for b in batches[half:])
    _LAST["steady_detections_per_s"] = n_late / max(sum(per_scan[half:]), 1e-12)
    _LAST["steady_ms_per_scan"] = 1000.0 * sum(per_scan[half:]) / max(len(batches) - half, 1)
    _LAST["bytes_per_track"] = tr.table.nbytes() / max(len(tr), 1)
    _LAST["tracks"] = len(tr)
    return seconds, gospas


_LAST: dict[str, float] = {}


def _clock() -> float:
    """CPU seconds of this process: the machine is shared, so wall time would also count the
    other processes' turns on the cores. Every tracker here is single-threaded."""
    return time.process_time()


def _warm_up() -> None:
    """Compile (or load from cache) every kernel on a tiny case, outside the timing."""
    from dataclasses import replace

    from fusion.messages import Detections
    from fusion.tracker import Tracker
    from fusion.tracker_config import TrackerConfig

    # Six scans, so tracks confirm and the periodic checks run; order_min_batch=1 so the
    # reordering of large batches (>= 4,096 detections by default) is compiled here too, and
    # an 8-slot table so that the births of a full table (the path that grows it) are too.
    small = make_scenario(20, 6, seed=99)
    _warm_up_merge()
    tr = Tracker(replace(TrackerConfig(), order_min_batch=1, initial_capacity=8), ORIGIN)
    tr.set_coverage("w", max_range_m=SPACING_M * math.sqrt(20), site=ORIGIN)
    for k, z in enumerate(small.det_llh):
        tr.step(
            Detections(
                "w",
                k,
                "pos",
                np.full(z.shape[0], small.times[k]),
                z,
                np.tile(np.eye(3) * SIGMA_M**2, (z.shape[0], 1, 1)),
            )
        )
        tr.picture()


def _warm_up_merge() -> int:
    """Two reports of one moving target per scan: its two tracks are merged as duplicates,
    so the merge's own calls (deleting the younger track) are compiled too. Returns the
    tracks deleted (1 when the merge happened)."""
    from fusion.geo import LocalFrame
    from fusion.messages import Detections
    from fusion.tracker import Tracker
    from fusion.tracker_config import TrackerConfig

    frame = LocalFrame(*ORIGIN)
    tr = Tracker(TrackerConfig(), ORIGIN)
    tr.set_coverage("m", max_range_m=50_000.0, site=ORIGIN)
    deleted = 0
    for k in range(16):
        p = np.array([[150.0 * DT_S * k, 0.0, 0.0], [150.0 * DT_S * k + 5.0, 0.0, 0.0]])
        b = Detections("m", k, "pos", np.full(2, T0 + DT_S * k), frame.to_geodetic(p),
                       np.tile(np.eye(3) * SIGMA_M**2, (2, 1, 1)))  # fmt: skip
        deleted += tr.step(b).deleted
    return deleted


def _cv_matrices(dt: float) -> tuple[np.ndarray, np.ndarray]:
    from fusion.models import cv_F, cv_Q

    return cv_F(dt), cv_Q(dt, Q_H, Q_V)


def run_filterpy(sc: Scenario) -> tuple[float, list[float]]:
    """One filterpy KalmanFilter per track, a dense cost matrix, scipy's assignment."""
    from filterpy.kalman import KalmanFilter
    from scipy.optimize import linear_sum_assignment

    F, Q = _cv_matrices(DT_S)
    H = np.hstack([np.eye(3), np.zeros((3, 3))])
    R = np.eye(3) * SIGMA_M**2
    P0 = np.diag([SIGMA_M**2] * 3 + [INIT_VEL_SIGMA**2] * 2 + [(0.2 * INIT_VEL_SIGMA) ** 2])
    tracks: list[dict] = []
    seconds = 0.0
    gospas = []
    for k, Z in enumerate(sc.det_enu):
        t0 = _clock()
        for tr in tracks:
            tr["kf"].predict()
        n_t, n_d = len(tracks), Z.shape[0]
        cost = np.full((n_t, n_d), 1e9)
        for i, tr in enumerate(tracks):
            kf = tr["kf"]
            S = H @ kf.P @ H.T + R
            y = Z - (H @ kf.x).ravel()
            d2 = np.einsum("ij,jk,ik->i", y, np.linalg.inv(S), y)
            cost[i] = np.where(d2 <= GATE2, d2, 1e9)
        assigned = np.zeros(n_d, dtype=bool)
        hit = np.zeros(n_t, dtype=bool)
        if n_t and n_d:
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols, strict=True):
                if cost[i, j] < 1e9:
                    tracks[i]["kf"].update(Z[j].reshape(3, 1))
                    hit[i] = True
                    assigned[j] = True
        survivors = []
        for i, tr in enumerate(tracks):
            tr["hist"] = ((tr["hist"] << 1) | int(hit[i])) & ((1 << CONFIRM_N) - 1)
            tr["nscan"] += 1
            tr["misses"] = 0 if hit[i] else tr["misses"] + 1
            if not tr["confirmed"] and bin(tr["hist"]).count("1") >= CONFIRM_M:
                tr["confirmed"] = True
            left = max(CONFIRM_N - tr["nscan"], 0)
            dead = tr["misses"] >= MAX_MISSES or (
                not tr["confirmed"] and bin(tr["hist"]).count("1") + left < CONFIRM_M
            )
            if not dead:
                survivors.append(tr)
        tracks = survivors
        for j in np.flatnonzero(~assigned):
            kf = KalmanFilter(dim_x=6, dim_z=3)
            kf.F, kf.Q, kf.H, kf.R = F, Q, H, R
            kf.x = np.r_[Z[j], np.zeros(3)].reshape(6, 1)
            kf.P = P0.copy()
            tracks.append({"kf": kf, "hist": 1, "nscan": 1, "misses": 0, "confirmed": False})
        seconds += _clock() - t0
        conf = [tr["kf"].x[:3, 0] for tr in tracks if tr["confirmed"]]
        est = np.array(conf).reshape(-1, 3)
        gospas.append(gospa_sparse(est, sc.truth[k]))
    return seconds, gospas


def run_stonesoup(sc: Scenario) -> tuple[float, list[float]]:
    """Stone Soup's MultiTargetTracker on the same detections (ENU, its x, y, z order)."""
    from datetime import datetime, timedelta

    from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
    from stonesoup.deleter.time import UpdateTimeStepsDeleter
    from stonesoup.hypothesiser.distance import DistanceHypothesiser
    from stonesoup.initiator.simple import MultiMeasurementInitiator
    from stonesoup.measures import Mahalanobis
    from stonesoup.models.measurement.linear import LinearGaussian
    from stonesoup.models.transition.linear import (
        CombinedLinearGaussianTransitionModel,
        ConstantVelocity,
    )
    from stonesoup.predictor.kalman import KalmanPredictor
    from stonesoup.tracker.simple import MultiTargetTracker
    from stonesoup.types.detection import Detection
    from stonesoup.types.state import GaussianState
    from stonesoup.updater.kalman import KalmanUpdater

    transition = CombinedLinearGaussianTransitionModel(
        [ConstantVelocity(Q_H), ConstantVelocity(Q_H), ConstantVelocity(Q_V)]
    )
    meas = LinearGaussian(ndim_state=6, mapping=(0, 2, 4), noise_covar=np.eye(3) * SIGMA_M**2)
    predictor = KalmanPredictor(transition)
    updater = KalmanUpdater(meas)
    hyp = DistanceHypothesiser(predictor, updater, Mahalanobis(), missed_distance=math.sqrt(GATE2))
    assoc = GNNWith2DAssignment(hyp)
    prior = GaussianState(
        np.zeros((6, 1)),
        np.diag([0, INIT_VEL_SIGMA**2, 0, INIT_VEL_SIGMA**2, 0, (0.2 * INIT_VEL_SIGMA) ** 2]),
    )
    deleter = UpdateTimeStepsDeleter(MAX_MISSES)
    initiator = MultiMeasurementInitiator(
        prior, UpdateTimeStepsDeleter(2), assoc, updater, meas, min_points=CONFIRM_M
    )
    start = datetime(2023, 11, 14, 22, 13, 20)
    scans = []
    for k, Z in enumerate(sc.det_enu):
        t = start + timedelta(seconds=DT_S * k)
        scans.append(
            (t, {Detection(z.reshape(3, 1), timestamp=t, measurement_model=meas) for z in Z})
        )

    class _Feed:
        def __iter__(self):
            return iter(scans)

    tracker = MultiTargetTracker(initiator, deleter, _Feed(), assoc, updater)
    it = iter(tracker)
    seconds = 0.0
    gospas = []
    for k in range(len(scans)):
        t0 = _clock()
        _, tracks = next(it)
        seconds += _clock() - t0
        est = np.array([tr.state_vector[[0, 2, 4], 0] for tr in tracks], dtype=float)
        est = est.reshape(-1, 3)
        gospas.append(gospa_sparse(est, sc.truth[k]))
    return seconds, gospas


RUNNERS = {"fusion": run_fusion, "filterpy": run_filterpy, "stonesoup": run_stonesoup}
_SCENARIO: Scenario | None = None


def _child(name: str, q) -> None:
    try:
        seconds, gospas = RUNNERS[name](_SCENARIO)
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        q.put((name, seconds, gospas, rss_kb / 1024.0, dict(_LAST), None))
    except Exception as e:  # reported, not swallowed: the parent prints it
        q.put((name, 0.0, [], 0.0, {}, f"{type(e).__name__}: {e}"))


def measure(name: str, sc: Scenario) -> dict:
    """Run one tracker in a forked child; its figures under the JSON keys."""
    global _SCENARIO
    _SCENARIO = sc
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(name, q))
    p.start()
    name, seconds, gospas, rss_mb, extra, err = q.get()
    p.join()
    if err:
        raise RuntimeError(f"{name} failed: {err}")
    n = sc.detections
    out = {
        "targets": sc.n_targets,
        "scans": sc.n_scans,
        "detections": n,
        "seconds": seconds,
        "detections_per_s": n / seconds if seconds > 0 else float("inf"),
        "ms_per_scan": 1000.0 * seconds / sc.n_scans,
        "gospa_mean": float(np.mean(gospas)) if gospas else float("nan"),
        "peak_rss_mb": rss_mb,
    }
    return out, extra


def run(targets: int, scans: int, peers: list[str], seed: int = 1) -> dict:
    for p in peers:
        if p not in ("stonesoup", "filterpy"):
            raise ValueError(f"unknown peer {p!r} (stonesoup, filterpy)")
    sc = make_scenario(targets, scans, seed)
    result, extra = measure("fusion", sc)
    result["peers"] = {p: measure(p, sc)[0] for p in peers}
    _LAST.update(extra)
    return result


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="benchmarks.tracker", description=__doc__)
    p.add_argument("--targets", type=int, default=1000, help="number of targets N")
    p.add_argument("--scans", type=int, default=20, help="number of scans")
    p.add_argument("--peers", default="", help="comma-separated: stonesoup,filterpy")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    return p


def main(args: argparse.Namespace) -> int:
    if args.targets < 1 or args.scans < 1:
        print("--targets and --scans must be >= 1", file=sys.stderr)
        return 2
    peers = [s.strip() for s in args.peers.split(",") if s.strip()]
    res = run(args.targets, args.scans, peers, args.seed)
    extra = dict(_LAST)
    lines = [f"tracker  {_fmt(res)}"] + [f"{k:9s}{_fmt(v)}" for k, v in res["peers"].items()]
    for k, v in res["peers"].items():
        lines.append(f"speed-up over {k}: {res['detections_per_s'] / v['detections_per_s']:.0f}x")
    if "steady_detections_per_s" in extra:
        lines.append(
            f"tracker steady state (second half of the scans): "
            f"{extra['steady_detections_per_s']:,.0f} det/s, "
            f"{extra['steady_ms_per_scan']:.2f} ms/scan"
        )
    if "bytes_per_track" in extra:
        lines.append(
            f"table bytes per live track: {extra['bytes_per_track']:.0f} "
            f"({extra['tracks']} tracks); machine: {platform.machine()}, {os.cpu_count()} cores"
        )
    cv_b, imm_b = memory_per_track()
    lines.append(
        f"memory per track (table without slack): CV {cv_b:.0f} B, IMM of 3 models {imm_b:.0f} B"
    )
    print("\n".join(lines))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0


def memory_per_track(n: int = 4096, imm_modes: int = 3) -> tuple[float, float]:
    """Bytes per track of a TrackTable of n slots, all CV tracks, then all IMM tracks (their
    side table exactly full): `nbytes()` over n, no growth slack."""
    from fusion.tracks import TrackTable

    cv = TrackTable(n, imm_modes=imm_modes)
    cv.alloc(n)
    imm = TrackTable(n, imm_modes=imm_modes)
    imm.alloc_imm(imm.alloc(n))
    return cv.nbytes() / n, imm.nbytes() / n


def _fmt(r: dict) -> str:
    return (
        f"N={r['targets']} scans={r['scans']} dets={r['detections']} {r['seconds']:.3f} s "
        f"{r['detections_per_s']:,.0f} det/s {r['ms_per_scan']:.2f} ms/scan "
        f"GOSPA {r['gospa_mean']:.1f} RSS {r['peak_rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
