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
from fusion.scenario.theatre import Feature, Theatre

APPROACH_HORIZON_S = 120.0  # rule default when a site does not set `horizon_s`


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


def protected_sign(theatre: Theatre, line: Feature) -> int:
    """Which side of the line (+1 left, -1 right) is protected: the file's `protected_side`
    ("left"/"right" of the line's digitised direction), else the side of most sites."""
    side = str(line.props.get("protected_side", "")).lower()
    if side in ("left", "right"):
        return 1 if side == "left" else -1
    centres = np.array([f.centre for f in theatre.areas]) if theatre.areas else np.zeros((0, 2))
    if len(centres) == 0:
        return 1
    return 1 if side_of_line(line.geom, centres).sum() >= 0 else -1


def crossing_time(traj: Trajectory, line: LineString, sign: int) -> float | None:
    """First time the path crosses `line` onto the side `sign`, or None."""
    xy = traj.pos[:, :2]
    near = shapely.distance(shapely.points(xy), line) < 200.0
    if not near.any():
        return None
    s = side_of_line(line, xy)
    for k in np.flatnonzero(near[1:] & (s[1:] == sign) & (s[:-1] != sign)):
        seg = LineString([xy[k], xy[k + 1]])
        if seg.intersects(line):
            # Linear interpolation along the step to the intersection point.
            ip = seg.intersection(line)
            f = np.hypot(*(np.asarray(ip.coords[0]) - xy[k])) / max(seg.length, 1e-9)
            return float(traj.t_s[k] + f * (traj.t_s[k + 1] - traj.t_s[k]))
    return None


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
