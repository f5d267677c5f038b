"""Evaluation: cues on the demo scenario, stripped-identity tracking of real recordings, GOSPA
against Stone Soup's GNN tracker on the same simulated detections.

    python -m benchmarks.evaluation [--only demo,ais,adsb,gospa] [--seeds 7,8,9] [--json PATH]
        [--plots DIR]

- demo: the demo scenario (fusion.scenario.build_demo) through the simulated sensors, replayed
  in-process (fusion.replay) with the demo site file; cue recall, false cues, breach-to-cue
  latency (scenario time), and track scores, per seed.
- ais / adsb: the Solent AIS CSV and the Paris ADS-B JSON.gz (../shared/data, or
  $FUSION_DATA_DIR) decoded by sensors.ais / sensors.adsb, batched per second, identities
  stripped before tracking and kept for scoring (association purity, identity switches per
  object-hour, fragmentation, completeness).
- gospa: the demo scenario's radar plots, converted to ENU positions with their covariances,
  given to this tracker (as `pos` reports without identity) and to Stone Soup 1.9.1's
  MultiTargetTracker (GNN, Kalman CV, same gate, M-of-N-like initiation); GOSPA (c = 250 m,
  p = 1) every second against the truth of the objects inside radar coverage.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from fusion.evaluate import gospa, score_identities
from fusion.messages import CLS_SURFACE, KIND_POS, Detections
from sensors.batching import window_batches

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FUSION_DATA_DIR", ROOT.parent / "shared" / "data"))
GOSPA_C_M = 250.0


# --------------------------------------------------------------------------- demo scenario
def run_demo(seed: int, plots: Path | None = None) -> dict:
    from fusion.evaluate_run import evaluate_scenario
    from fusion.replay import replay_messages
    from fusion.scenario import DEMO_SITES, build_demo
    from sensors.sim import SimSensors

    sc = build_demo(DEMO_SITES, seed=seed)
    msgs = list(SimSensors(sc).messages())
    t0 = time.perf_counter()
    res = replay_messages(msgs, sites=DEMO_SITES)
    elapsed = time.perf_counter() - t0
    truth = sc.truth_table()
    truth["origin"] = np.asarray(sc.origin)
    tracks = dict(res.tracks, origin=np.asarray(res.origin))
    ts, cs = evaluate_scenario(res.cues, tracks, truth, sc.breaches, sc.t0_s)
    if plots is not None:
        from fusion.plots import plot_gospa, plot_run

        plot_run(DEMO_SITES, tracks, res.cues, plots / f"demo_map_seed{seed}.png", truth=truth,
                 title=f"demo scenario, seed {seed}: truth (grey), tracks, cues")  # fmt: skip
        plot_gospa(ts.times - ts.times[0], ts.gospa_t, plots / f"demo_gospa_seed{seed}.png",
                   c_m=GOSPA_C_M)  # fmt: skip
    return {
        "seed": seed,
        "objects": len(sc.targets),
        "detections": res.detections,
        "replay_s": round(elapsed, 2),
        "breaches": cs.n_breaches,
        "cued": cs.n_detected,
        "recall": cs.recall,
        "false_cues": cs.n_false,
        "duplicates": cs.n_duplicate,
        "false_per_target_hour": cs.false_per_target_hour,
        "latency_median_s": cs.latency_median_s,
        "latency_max_s": cs.latency_max_s,
        "latency_s": [round(x, 2) for x in cs.latency_s],
        "missed": cs.missed,
        "false": [
            f"{f['rule']}@{f['site']} t+{f['t_s'] - sc.t0_s:.1f}s: {f['text']}" for f in cs.false
        ],
        "tracks": {k: v for k, v in ts.summary().items() if k not in ("gospa_c_m", "gospa_p")},
    }


# --------------------------------------------------------------------------- real recordings
def _score_stripped(batches: list[Detections], origin: tuple[float, float, float]) -> dict:
    """Tracks the batches with identities stripped (fusion.replay), scores against them.
    The receiver declares no coverage, so the tracker counts no misses for its reports."""
    from fusion.replay import Replayer

    r = Replayer(origin=origin, track_dt_s=0.0, strip_ident=True)
    t0 = time.perf_counter()
    for b in batches:
        r.message(b)
    res = r.finish()
    elapsed = time.perf_counter() - t0
    ids = res.idents
    s = score_identities(ids["t_s"], ids["ident"], ids["track"])
    out = s.summary()
    out["replay_s"] = round(elapsed, 2)
    out["batches"] = len(batches)
    return out


def run_ais() -> dict:
    from sensors.ais import AisDecoder, decode_csv
    from sensors.sources import file_lines

    path = DATA / "ais" / "solent_ais_20160112.csv"
    dec = AisDecoder()
    meas = list(decode_csv(file_lines(path), dec))
    batches = window_batches(meas, "ais-solent")
    lat0, lon0 = np.median([m.z[0] for m in meas]), np.median([m.z[1] for m in meas])
    out = _score_stripped(batches, (round(float(lat0), 2), round(float(lon0), 2), 0.0))
    out["rows_decoded"] = len(meas)
    out["decoder_stats"] = {k: v for k, v in dict(dec.stats).items() if v}
    return out


def run_adsb() -> dict:
    from sensors.adsb import AdsbDecoder, decode_opensky_json

    path = DATA / "adsb" / "opensky_paris_20211007.json.gz"
    dec = AdsbDecoder()
    meas = list(decode_opensky_json(path, dec))
    batches = window_batches(meas, "adsb-paris")
    out = _score_stripped(batches, (48.86, 2.35, 0.0))
    out["rows_decoded"] = len(meas)
    out["decoder_stats"] = {k: v for k, v in dict(dec.stats).items() if v}
    # The same recording without the aircraft on the ground: taxiing aircraft at the
    # airports stand tens of metres apart, without altitude, under a 50 m position sigma.
    import gzip

    with gzip.open(path, "rt") as fh:
        ground = {
            (f"icao:{r['icao24']}".encode(), r["timestamp"] / 1000.0)
            for r in json.load(fh)
            if r.get("onground")
        }
    air = [m for m in meas if (m.ident, m.t_s) not in ground]
    out["airborne_only"] = _score_stripped(window_batches(air, "adsb-paris"), (48.86, 2.35, 0.0))
    out["airborne_only"]["rows"] = len(air)
    return out


# --------------------------------------------------------------------------- GOSPA vs Stone Soup
def _radar_positions(sc, duration_s: float) -> list:
    """The demo's radar scans as they are sent (one batch per radar scan), each plot converted
    exactly from (range, az, el) to theatre ENU with its covariance J^-1 R J^-T; and the
    radars' heartbeats (their coverage). Items: ("det", sensor, site, t (n,), p (n, 3),
    R (n, 3, 3), cls (n,) or None) or ("hb", Heartbeat). The class labels of the site radars
    go to this tracker too (part of the detections); Stone Soup has no use for them."""
    from fusion.geo import aer_jacobian, aer_to_enu
    from fusion.messages import Heartbeat
    from sensors.sim import SimSensors

    frame = sc.theatre.frame
    radars = {s.id for s in sc.sensors if s.kind == "radar"}
    out = []
    for m in SimSensors(sc).timed():
        d = m.msg
        if d.sensor not in radars or m.meas_t_s - sc.t0_s > duration_s:
            continue
        if isinstance(d, Heartbeat):
            out.append(("hb", d))
            continue
        M, c = frame.sensor_transform(np.asarray(d.site))
        local = aer_to_enu(d.z)  # radar-local ENU
        Jinv = np.linalg.inv(aer_jacobian(local))  # d(local ENU) / d(range, az, el)
        Rloc = Jinv @ d.R @ np.swapaxes(Jinv, 1, 2)
        Minv = np.linalg.inv(M)
        p = (local - c) @ Minv.T
        out.append(("det", d.sensor, d.site, d.t, p, Minv @ Rloc @ Minv.T, d.cls))
    return out


def _covered_truth(sc, t_rel: float) -> np.ndarray:
    ids, pos, _ = sc.truth_at(t_rel)
    keep = np.zeros(len(ids), bool)
    for spec in sc.sensors:
        if spec.kind != "radar":
            continue
        pd = np.array([spec.pd.get(sc.target(i).kind, 0.9) for i in ids])
        d = np.hypot(pos[:, 0] - spec.site[0], pos[:, 1] - spec.site[1])
        keep |= (d <= spec.max_range_m) & (pd > 0)
    return pos[keep]


def run_gospa(seed: int = 7, duration_s: float = 150.0, plots: Path | None = None) -> dict:
    from fusion.replay import Replayer
    from fusion.scenario import DEMO_SITES, build_demo

    sc = build_demo(DEMO_SITES, seed=seed)
    items = _radar_positions(sc, duration_s)
    frame = sc.theatre.frame
    eval_t = np.arange(1.0, duration_s, 1.0)

    # This tracker: each radar scan as a `pos` batch without identity, WGS84 positions.
    r = Replayer(origin=sc.origin, track_dt_s=1.0)
    t0 = time.perf_counter()
    seq = 0
    n_plots = 0
    for it in items:
        if it[0] == "hb":
            r.message(it[1])
            continue
        _, sensor, site, t, p, R, cls = it
        seq += 1
        n_plots += len(t)
        llh = frame.to_geodetic(p)
        r.message(Detections(sensor, seq, KIND_POS, t, llh, R, site=site, cls=cls))
    res = r.finish()
    ours_s = time.perf_counter() - t0
    tr = res.tracks
    ours, ours_h = [], []
    for t in eval_t:
        m = np.abs(tr["t_s"] - (sc.t0_s + t)) < 1e-6
        Y = _covered_truth(sc, t)
        ours.append(gospa(tr["pos"][m], Y, c=GOSPA_C_M, p=1).distance)
        ours_h.append(gospa(tr["pos"][m][:, :2], Y[:, :2], c=GOSPA_C_M, p=1).distance)

    (ss, ss_h), ss_s = _stonesoup_gospa(sc, [it for it in items if it[0] == "det"], eval_t)
    if plots is not None:
        from fusion.plots import plot_gospa

        plot_gospa(eval_t, np.array(ours), plots / "gospa_vs_stonesoup.png",
                   peers={"Stone Soup GNN": (eval_t, np.array(ss))}, c_m=GOSPA_C_M)  # fmt: skip
    return {
        "seed": seed,
        "duration_s": duration_s,
        "plots": n_plots,
        "gospa_mean_ours_m": float(np.mean(ours)),
        "gospa_mean_stonesoup_m": float(np.mean(ss)),
        "gospa_median_ours_m": float(np.median(ours)),
        "gospa_median_stonesoup_m": float(np.median(ss)),
        "gospa_horizontal_mean_ours_m": float(np.mean(ours_h)),
        "gospa_horizontal_mean_stonesoup_m": float(np.mean(ss_h)),
        "seconds_ours": round(ours_s, 2),
        "seconds_stonesoup": round(ss_s, 2),
    }


def _stonesoup_gospa(sc, scans_in: list, eval_t: np.ndarray) -> tuple[tuple, float]:
    from datetime import datetime, timedelta

    from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
    from stonesoup.deleter.time import UpdateTimeDeleter
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

    # The same choices as this tracker's "unknown" class: white-acceleration density 1 m^2/s^3
    # horizontally, 0.1 vertically, a 99.9 % chi-square gate in 3-D, 100 m/s velocity prior,
    # confirmation after 4 plots, deletion after 6 s without an update.
    transition = CombinedLinearGaussianTransitionModel(
        [ConstantVelocity(1.0), ConstantVelocity(1.0), ConstantVelocity(0.1)]
    )
    base = LinearGaussian(ndim_state=6, mapping=(0, 2, 4), noise_covar=np.eye(3) * 100.0)
    predictor = KalmanPredictor(transition)
    updater = KalmanUpdater(base)
    gate = math.sqrt(16.27)  # chi2(3) at 99.9 %
    hyp = DistanceHypothesiser(predictor, updater, Mahalanobis(), missed_distance=gate)
    assoc = GNNWith2DAssignment(hyp)
    # Velocity prior as this tracker's: 100 m/s per horizontal axis, a fifth of it vertically.
    prior = GaussianState(np.zeros((6, 1)), np.diag([0, 100.0**2, 0, 100.0**2, 0, 20.0**2]))
    initiator = MultiMeasurementInitiator(
        prior, UpdateTimeDeleter(timedelta(seconds=3)), assoc, updater, base, min_points=4
    )
    deleter = UpdateTimeDeleter(timedelta(seconds=6))
    start = datetime(2026, 9, 21, 13, 33, 20)
    scans = []
    for _, _sensor, _site, t, p, R, _cls in scans_in:
        dets = set()
        for k in range(len(t)):
            ts = start + timedelta(seconds=float(t[k]) - sc.t0_s)
            mm = LinearGaussian(ndim_state=6, mapping=(0, 2, 4), noise_covar=R[k])
            dets.add(Detection(p[k].reshape(3, 1), timestamp=ts, measurement_model=mm))
        scans.append((start + timedelta(seconds=float(t.max()) - sc.t0_s), dets))

    class _Feed:
        def __iter__(self):
            return iter(scans)

    tracker = MultiTargetTracker(initiator, deleter, _Feed(), assoc, updater)
    out, out_h = [], []
    k_eval = 0
    t0 = time.perf_counter()
    for ts, tracks in tracker:
        t_rel = (ts - start).total_seconds()
        while k_eval < len(eval_t) and eval_t[k_eval] <= t_rel:
            te = eval_t[k_eval]
            est = []
            for trk in tracks:
                st = trk.state
                dt = te - (st.timestamp - start).total_seconds()
                sv = st.state_vector[:, 0].astype(float)
                est.append([sv[0] + sv[1] * dt, sv[2] + sv[3] * dt, sv[4] + sv[5] * dt])
            est = np.array(est, dtype=float).reshape(-1, 3)
            Y = _covered_truth(sc, te)
            out.append(gospa(est, Y, c=GOSPA_C_M, p=1).distance)
            out_h.append(gospa(est[:, :2], Y[:, :2], c=GOSPA_C_M, p=1).distance)
            k_eval += 1
    elapsed = time.perf_counter() - t0
    while len(out) < len(eval_t):
        out.append(out[-1] if out else 0.0)
        out_h.append(out_h[-1] if out_h else 0.0)
    return (out, out_h), elapsed


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="demo,ais,adsb,gospa")
    p.add_argument("--seeds", default="7,8,9")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--plots",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "evaluation",
        help="directory for the PNG plots",
    )
    args = p.parse_args(argv)
    only = set(args.only.split(","))
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    if "demo" in only:
        seeds = [int(x) for x in args.seeds.split(",")]
        out["demo"] = {
            f"seed{s}": run_demo(s, args.plots if i == 0 else None) for i, s in enumerate(seeds)
        }
        for d in out["demo"].values():
            print(json.dumps({k: v for k, v in d.items() if k != "tracks"}))
            print("   tracks", json.dumps(d["tracks"]))
    for name, fn in (("ais", run_ais), ("adsb", run_adsb)):
        if name in only:
            if not DATA.is_dir():
                print(f"{name}: recorded feeds not found at {DATA}; skipped")
                continue
            out[name] = fn()
            print(name, json.dumps(out[name]))
    if "gospa" in only:
        out["gospa"] = run_gospa(plots=args.plots)
        print("gospa", json.dumps(out["gospa"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["run_demo", "run_ais", "run_adsb", "run_gospa", "CLS_SURFACE"]
