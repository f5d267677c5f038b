"""Scoring a replay output directory: the glue between `fusion replay` outputs, scenario truth
and `fusion.evaluate`. Used by `fusion evaluate` and the evaluation benchmark.

It owns only the reading of the files and the mapping of a cue's track to the truth it was
following at that time; every measure is computed in fusion.evaluate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fusion.evaluate import TrackScore, score_cues, score_identities, score_tracks


def read_run(run_dir: str | Path) -> tuple[list[dict], dict[str, np.ndarray], dict[str, Any]]:
    """(cue bodies, flat ENU track samples, summary) of a replay output directory."""
    p = Path(run_dir)
    if not (p / "tracks.npz").is_file():
        raise FileNotFoundError(f"{p}: no tracks.npz (is it a `fusion replay` output?)")
    cues = []
    if (p / "cues.jsonl").is_file():
        cues = [json.loads(x) for x in (p / "cues.jsonl").read_text().splitlines() if x.strip()]
    with np.load(p / "tracks.npz") as z:
        tracks = {k: z[k] for k in z.files}
    summary = json.loads((p / "summary.json").read_text()) if (p / "summary.json").is_file() else {}
    return cues, tracks, summary


def track_truth_lookup(
    score: TrackScore,
    tracks: dict[str, np.ndarray] | None = None,
    truth: dict[str, np.ndarray] | None = None,
    *,
    ahead_s: float = 10.0,
    near_m: float = 250.0,
) -> Callable:
    """`f(track_id, t_s) -> truth id | None`: which object a cue's track was about.

    The truth the track was assigned to at the first sample instant at or after t_s (within
    `ahead_s`: a new track is paired once sampled); failing that, with the sampled tables,
    the nearest truth within `near_m` (a duplicate track of an object that already has its
    track is not assigned, but its cue is still about that object)."""
    by_track: dict[tuple[int, float], int] = {(k, t): a for (a, t), k in score.assignment.items()}
    times = score.times

    def lookup(track_id: int, t_s: float) -> int | None:
        i0 = int(np.searchsorted(times, t_s - 1e-6))
        i = i0
        while i < len(times) and times[i] <= t_s + ahead_s:
            a = by_track.get((int(track_id), float(times[i])))
            if a is not None:
                return a
            i += 1
        if tracks is None or truth is None:
            return None
        i = i0
        while i < len(times) and times[i] <= t_s + ahead_s:
            t = times[i]
            k = (tracks["id"] == track_id) & (np.abs(tracks["t_s"] - t) < 1e-6)
            if k.any():
                m = np.abs(truth["t_s"] - t) < 1e-6
                if m.any():
                    d = np.linalg.norm(truth["pos"][m] - tracks["pos"][k][0], axis=1)
                    j = int(np.argmin(d))
                    return int(truth["id"][m][j]) if d[j] <= near_m else None
            i += 1
        return None

    return lookup


def to_frame(pos: np.ndarray, origin_from, origin_to) -> np.ndarray:
    """ENU positions from one theatre origin to another (via WGS84)."""
    if np.allclose(origin_from, origin_to):
        return pos
    from fusion.geo import LocalFrame

    llh = LocalFrame(*origin_from).to_geodetic(pos)
    return LocalFrame(*origin_to).to_enu(llh)


def evaluate_scenario(
    cues: list[dict],
    tracks: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    breaches: list,
    t0_s: float,
    *,
    assoc_m: float = 250.0,
) -> tuple[TrackScore, Any]:
    tr = dict(tracks)
    if "origin" in tracks and "origin" in truth:
        tr["pos"] = to_frame(tracks["pos"], tracks["origin"], truth["origin"])
    ts = score_tracks(truth, tr, assoc_m=assoc_m, gospa_c_m=assoc_m)
    cs = score_cues(
        cues,
        breaches,
        target_hours=ts.target_hours,
        t0_s=t0_s,
        track_to_truth=track_truth_lookup(ts, tr, truth, near_m=assoc_m),
    )
    return ts, cs


def evaluate_run(
    run_dir: str | Path,
    *,
    truth_dir: str | Path | None = None,
    assoc_m: float = 250.0,
    plots: bool = False,
    sites: str | Path | None = None,
) -> dict[str, Any]:
    """Every score that applies to the run, as a JSON-ready dict."""
    run = Path(run_dir)
    cues, tracks, summary = read_run(run)
    report: dict[str, Any] = {"run": {"dir": str(run), **{k: summary.get(k) for k in (
        "detections", "batches", "tracks_confirmed", "cue_events", "duration_s")}}}  # fmt: skip
    if truth_dir is not None:
        from fusion.scenario.files import read_truth

        truth, breaches, meta = read_truth(truth_dir)
        ts, cs = evaluate_scenario(
            cues, tracks, truth, breaches, float(meta.get("t0_s", 0.0)), assoc_m=assoc_m
        )
        report["tracks"] = ts.summary()
        report["cues"] = cs.summary()
        if plots:
            from fusion.plots import plot_gospa, plot_run

            plot_gospa(ts.times - ts.times[0], ts.gospa_t, run / "gospa.png")
            plot_run(
                sites or summary.get("sites") or meta.get("sites"),
                tracks,
                cues,
                run / "map.png",
                truth=truth,
            )
    elif plots:
        from fusion.plots import plot_run

        plot_run(sites or summary.get("sites"), tracks, cues, run / "map.png")
    if (run / "idents.npz").is_file():
        with np.load(run / "idents.npz") as z:
            ids = score_identities(z["t_s"], z["ident"], z["track"])
        report["identities"] = ids.summary()
    for sec in report.values():
        for k, v in list(sec.items()):
            if isinstance(v, float) and not math.isfinite(v):
                sec[k] = None
    return report
