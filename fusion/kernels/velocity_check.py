"""Validation of a reported velocity against the track it is about to update.

This module owns one rule of the position + velocity update (`MEAS_POS_VEL`, reports such as
AIS and ADS-B that carry the target's own velocity): a detection is gated on its position
alone, but its velocity enters the update with the sensor's stated covariance. A report whose
velocity is not refreshed with its position (a state vector repeating the last known ground
speed and track while the target decelerates after landing, a vessel's stale course) then
drags the track's velocity far from its positions, the next positions fall outside the gate,
and the target gets a new track. `discount_stale_velocity` tests, for each assigned pair, the
reported velocity against the track's predicted velocity (chi-square on the 3 velocity
components, the track's velocity covariance plus the report's); a velocity that fails it is
not used (its covariance is inflated so that the update takes the position alone).
"""

from __future__ import annotations

import numpy as np

from fusion.jit import njit
from fusion.kernels.kalman import cholesky_in_place, mahalanobis_sq
from fusion.kernels.packed import tri

IGNORED_VEL_VAR = 1e12  # (m/s)^2: a velocity with this variance carries no information


@njit
def discount_stale_velocity(rows, cols, t, x, P, t_s, cls, q_h, q_v, z, R, d2_max):
    """For each pair (rows[k], cols[k]): if the reported velocity z[j, 3:6] (covariance
    R[j, 3:6, 3:6]) differs from the track's velocity (x (N, 6), P (N, 21) packed) predicted
    to t[j] by a Mahalanobis
    square above d2_max, R[j, 3:6, 3:6] becomes IGNORED_VEL_VAR * I (in place). The track's
    velocity covariance is predicted with its class's white-acceleration noise (q * dt per
    axis), which is exact for the velocity block of the CV model. Returns the count."""
    n_out = 0
    S = np.empty((3, 3))
    y = np.empty(3)
    for k in range(rows.shape[0]):
        r = rows[k]
        j = cols[k]
        c = cls[r]
        dt = max(t[j] - t_s[r], 0.0)
        for a in range(3):
            y[a] = z[j, 3 + a] - x[r, 3 + a]
            for b in range(3):
                S[a, b] = P[r, tri(3 + min(a, b), 3 + max(a, b))] + R[j, 3 + a, 3 + b]
        S[0, 0] += q_h[c] * dt
        S[1, 1] += q_h[c] * dt
        S[2, 2] += q_v[c] * dt
        ok = cholesky_in_place(S, 3)
        d2 = mahalanobis_sq(S, y, 3, y) if ok else 0.0
        if not ok or d2 > d2_max:
            for a in range(3):
                for b in range(3):
                    R[j, 3 + a, 3 + b] = IGNORED_VEL_VAR if a == b else 0.0
            n_out += 1
    return n_out
