"""Breach conditions evaluated on ground truth: what a perfect tracker and rule set would cue.

This module owns the scenario's geometric definition of when a breach starts. The demo layout
uses it to time its scripted breaches and to check that background traffic stays clear of
every rule, so the expected cues and the scripted ones agree by construction. It works on the
theatre's shapely geometry in ENU metres and does not use the rule engine.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString

from fusion.scenario.motion import Trajectory


def side_of_line(line: LineString, xy: np.ndarray) -> np.ndarray:
    """+1 left of the line's direction, -1 right, per point (n, 2), from the nearest segment."""
    c = np.asarray(line.coords)[:, :2]
    a, b = c[:-1], c[1:]  # (s, 2)
    p = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    ab = b - a
    L2 = (ab**2).sum(1)
    t = np.clip(((p[:, None, :] - a[None]) * ab[None]).sum(-1) / L2[None], 0.0, 1.0)  # (n, s)
    q = a[None] + t[..., None] * ab[None]
    d2 = ((p[:, None, :] - q) ** 2).sum(-1)
    k = np.argmin(d2, axis=1)
    ab_k, ap = ab[k], p - a[k]
    cross = ab_k[:, 0] * ap[:, 1] - ab_k[:, 1] * ap[:, 0]
    return np.where(cross >= 0, 1, -1)


def crossing_time(
    traj: Trajectory, line: LineString, sign: int, hysteresis_m: float = 0.0
) -> float | None:
    """First time the path, having been at least `hysteresis_m` on the far side of `line`, is
    `hysteresis_m` inside the side `sign`, or None."""
    xy = traj.pos[:, :2]
    d = shapely.distance(shapely.points(xy), line) * side_of_line(line, xy) * sign  # signed
    far = np.flatnonzero(d <= -max(hysteresis_m, 1e-9))
    if not len(far):
        return None
    inside = np.flatnonzero((d >= hysteresis_m) & (np.arange(len(d)) > far[0]))
    return float(traj.t_s[inside[0]]) if len(inside) else None


def entry_time(traj: Trajectory, area, t_from: float = -np.inf) -> float | None:
    """First time at or after `t_from` the path is inside `area`, or None."""
    inside = shapely.contains_xy(area, traj.pos[:, 0], traj.pos[:, 1]) & (traj.t_s >= t_from)
    k = np.flatnonzero(inside)
    return float(traj.t_s[k[0]]) if len(k) else None


def approach_time(
    traj: Trajectory, area, horizon_s: float, step_s: float = 0.5, min_speed_mps: float = 1.0
) -> float | None:
    """First time the straight-line extrapolation of the path enters `area` within
    `horizon_s` (the closest point of approach falls inside), or None."""
    taus = np.arange(0.0, horizon_s + 1e-9, 2.0)
    k_step = max(1, int(round(step_s / (traj.t_s[1] - traj.t_s[0]))))
    pos, vel, ts = traj.pos[::k_step, :2], traj.vel[::k_step, :2], traj.t_s[::k_step]
    moving = np.hypot(vel[:, 0], vel[:, 1]) >= min_speed_mps
    pred = pos[:, None, :] + vel[:, None, :] * taus[None, :, None]  # (k, tau, 2)
    hit = shapely.contains_xy(area, pred[..., 0], pred[..., 1]).any(axis=1) & moving
    k = np.flatnonzero(hit)
    return float(ts[k[0]]) if len(k) else None


def dwell_time(traj: Trajectory, area, dwell_s: float) -> float | None:
    """First time the path has been continuously inside `area` for `dwell_s`, or None."""
    inside = shapely.contains_xy(area, traj.pos[:, 0], traj.pos[:, 1])
    start = None
    for k, ins in enumerate(inside):
        if ins and start is None:
            start = traj.t_s[k]
        elif not ins:
            start = None
        if start is not None and traj.t_s[k] - start >= dwell_s:
            return float(traj.t_s[k])
    return None


def min_clearance_m(traj: Trajectory, area) -> float:
    """Smallest horizontal distance from the path to `area` (0 when it enters)."""
    return float(shapely.distance(area, shapely.points(traj.pos[::5, :2])).min())
