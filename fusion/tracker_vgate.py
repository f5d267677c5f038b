"""A gate on the reported velocity: a report whose velocity is far from a track's is not
its object's, however close its position.

This module owns one rule of the association step, for batches that carry reported
velocities (AIS SOG and COG, ADS-B ground speed and track). The position gate alone lets a
track at rest take the report of a vessel passing 20 m away at 6 m/s, or a ferry's track
take the report of the ferry moored at the berth it leaves: their positions agree within
the gate, their velocities do not. A gated pair (track, report) of a class with
`ClassParams.vel_gate_mps` > 0 is dropped when the horizontal difference between the
report's velocity and the track's exceeds `vel_gate_mps` plus three standard deviations of
the track's velocity (the mean of its two horizontal variances). A report whose velocity
sigma is itself over `vel_gate_mps` (a report without a velocity travels with a huge
variance) is never dropped. The margin is in m/s, not a
Mahalanobis test, because a turning or docking vessel's reported velocity leads or lags its
track's by a metre or two per second, a lag the small surface process noise would call
impossible, while objects that differ by more than the margin are different objects. The
rule reads the track's state and the report only: deterministic.
"""

from __future__ import annotations

import numpy as np

from fusion.tracks import TrackTable


def velocity_gate(
    tab: TrackTable,
    rows: np.ndarray,
    pair_t: np.ndarray,
    pair_d: np.ndarray,
    d2: np.ndarray,
    det_vel: np.ndarray,
    det_vel_R: np.ndarray,
    p: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gated pairs (`pair_t` indexes `rows`, `pair_d` indexes `det_vel`, (nd, >=2) ENU
    m/s, and `det_vel_R`, (nd, >=2, >=2) its covariance) without those whose velocities
    disagree (module docstring)."""
    if pair_t.shape[0] == 0:
        return pair_t, pair_d, d2
    slots = rows[pair_t]
    margin = p["vel_gate_mps"][tab.cls[slots]]
    on = margin > 0.0
    if not on.any():
        return pair_t, pair_d, d2
    idx = np.flatnonzero(on)
    s = slots[idx]
    P = tab.covariance(s)
    d = pair_d[idx]
    var_r = 0.5 * (det_vel_R[d, 0, 0] + det_vel_R[d, 1, 1])
    sigma = np.sqrt(0.5 * (P[:, 3, 3] + P[:, 4, 4]))
    dv = np.hypot(det_vel[d, 0] - tab.x[s, 3], det_vel[d, 1] - tab.x[s, 4])
    keep = np.ones(pair_t.shape[0], dtype=np.bool_)
    keep[idx] = (dv <= margin[idx] + 3.0 * sigma) | (var_r > margin[idx] ** 2)
    if keep.all():
        return pair_t, pair_d, d2
    return pair_t[keep], pair_d[keep], d2[keep]
