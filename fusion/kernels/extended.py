"""Extended Kalman updates for sensor-frame measurements: polar and bearing-only.

A polar sensor reports (range_m, az_rad, el_rad) of a target from its own site, a bearing
sensor (az_rad,) or (az_rad, el_rad); azimuth is clockwise from north in the sensor's own ENU
frame, elevation above its horizontal plane. The sensor frame is reached from the theatre frame
by the exact rigid transform ``q = M p + c`` of ``fusion.geo.LocalFrame.sensor_transform``, so
the measurement function is ``h(x) = aer(M x[:3] + c)`` and its exact Jacobian is
``J_aer(q) @ M`` on the position columns and zero on the velocity columns. Azimuth innovations
are wrapped to [-pi, pi) so a track near north is not pulled around the circle.

The update itself is the Joseph form of ``fusion.kernels.kalman`` (its variants for H = [I 0]
and for H = [Hp 0]); this module only linearises. ``linearize_row`` covers every measurement
kind by a code shared with the gating kernels (``MEAS_POS``, ``MEAS_POLAR``, ``MEAS_BEARING``
as ``MODE_*`` in ``fusion.kernels.gating``, plus ``MEAS_POS_VEL``); ``update_row`` is the
one-measurement update that the batched and IMM kernels share.
"""

from __future__ import annotations

import math

import numpy as np

from fusion.geo import aer_jacobian_into, aer_of, wrap_angle
from fusion.jit import njit
from fusion.kernels.kalman import (
    PF_SLOT,
    joseph_position_jacobian_row,
    joseph_select_row,
    new_workspace,
)
from fusion.kernels.packed import pack, pack_row_into, unpack_row_into

__all__ = [
    "MEAS_POS",
    "MEAS_POLAR",
    "MEAS_BEARING",
    "MEAS_POS_VEL",
    "measurement_dim",
    "linearize_row",
    "update_row",
    "update_polar",
    "update_bearing",
    "update_measurements",
    "warm_up",
]

MEAS_POS, MEAS_POLAR, MEAS_BEARING, MEAS_POS_VEL = 0, 1, 2, 3

# Workspace slots used here (kalman.py uses 0-5 and 8-9 inside its helpers and 10, PF_SLOT, for a
# batched kernel's unpacked covariance; 6 and 7 are free for the caller's H and y).
_H_SLOT, _Y_SLOT = 6, 7


@njit
def measurement_dim(kind: int, z_cols: int) -> int:
    """Measurement dimension m of a kind given the number of columns of z (-1 if invalid)."""
    if kind == MEAS_POS or kind == MEAS_POLAR:
        return 3 if z_cols == 3 else -1
    if kind == MEAS_POS_VEL:
        return 6 if z_cols == 6 else -1
    if kind == MEAS_BEARING:
        return z_cols if (z_cols == 1 or z_cols == 2) else -1
    return -1


@njit
def linearize_row(
    kind: int,
    x: np.ndarray,
    z: np.ndarray,
    M: np.ndarray,
    c: np.ndarray,
    H: np.ndarray,
    y: np.ndarray,
) -> int:
    """Measurement matrix/Jacobian and innovation of one measurement at state ``x`` (6,).

    ``z`` (m,) the measurement; ``M`` (3, 3), ``c`` (3,) the theatre -> sensor transform (unused
    for MEAS_POS and MEAS_POS_VEL). Writes ``H[:m, :6]`` and ``y[:m]`` (azimuth wrapped to
    [-pi, pi)); ``H`` must be (6, 6) (for polar and bearing its rows 3-5 serve as scratch and are
    left zero in the position columns), ``y`` at least (m,). Returns m, or -1 for an unknown
    kind or a z of the wrong length.
    """
    m = measurement_dim(kind, z.shape[0])
    if m < 0:
        return -1
    for a in range(m):
        for b in range(6):
            H[a, b] = 0.0
    if kind == MEAS_POS or kind == MEAS_POS_VEL:
        for a in range(m):
            H[a, a] = 1.0
            y[a] = z[a] - x[a]
        return m
    # Sensor-frame position of the state.
    q0 = M[0, 0] * x[0] + M[0, 1] * x[1] + M[0, 2] * x[2] + c[0]
    q1 = M[1, 0] * x[0] + M[1, 1] * x[1] + M[1, 2] * x[2] + c[1]
    q2 = M[2, 0] * x[0] + M[2, 1] * x[1] + M[2, 2] * x[2] + c[2]
    range_m, az, el = aer_of(q0, q1, q2)
    # Rows 3-5 of H are unused for m <= 3: they hold the AER Jacobian, so nothing is allocated.
    J = H[3:6, 0:3]
    aer_jacobian_into(q0, q1, q2, J)
    if kind == MEAS_POLAR:
        y[0] = z[0] - range_m
        y[1] = wrap_angle(z[1] - az)
        y[2] = z[2] - el
        first = 0
    else:
        y[0] = wrap_angle(z[0] - az)
        if m == 2:
            y[1] = z[1] - el
        first = 1  # bearing rows are the az (and el) rows of the AER Jacobian
    for a in range(m):
        ja = first + a
        for b in range(3):
            H[a, b] = J[ja, 0] * M[0, b] + J[ja, 1] * M[1, b] + J[ja, 2] * M[2, b]
    for a in range(3, 6):
        for b in range(3):
            H[a, b] = 0.0
    return m


@njit
def update_row(
    kind: int,
    x: np.ndarray,
    P: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    M: np.ndarray,
    c: np.ndarray,
    work: np.ndarray,
) -> tuple[float, float, int]:
    """Update one track ``x`` (6,), ``P`` (6, 6) in place with one measurement ``z`` (m,) of
    covariance ``R`` (m, m), Joseph form. ``work`` from ``new_workspace()`` (slots 6 and 7 are
    used here for H and y). Returns ``(d2, logdet_S, m)``; ``m == -1`` for a z of the wrong
    width or an unknown kind, ``d2 == inf`` when S is not positive definite (nothing changes
    in either case).
    """
    y = work[_Y_SLOT, 0]
    if kind == MEAS_POS or kind == MEAS_POS_VEL:
        m = measurement_dim(kind, z.shape[0])
        if m < 0:
            return math.inf, math.inf, -1
        for a in range(m):
            y[a] = z[a] - x[a]
        if m == 3:
            d2, logdet = joseph_select_row(x, P, y, R, 3, work)
        else:
            d2, logdet = joseph_select_row(x, P, y, R, 6, work)
        return d2, logdet, m
    H = work[_H_SLOT]
    m = linearize_row(kind, x, z, M, c, H, y)
    if m < 0:
        return math.inf, math.inf, -1
    # Polar and bearing Jacobians have no velocity columns; m is made a literal so the small
    # loops unroll.
    if m == 3:
        d2, logdet = joseph_position_jacobian_row(x, P, H, y, R, 3, work)
    elif m == 2:
        d2, logdet = joseph_position_jacobian_row(x, P, H, y, R, 2, work)
    else:
        d2, logdet = joseph_position_jacobian_row(x, P, H, y, R, 1, work)
    return d2, logdet, m


@njit
def update_measurements(
    kind: int,
    x: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    M: np.ndarray,
    c: np.ndarray,
    d2: np.ndarray,
) -> int:
    """(Extended) Kalman update, Joseph form, of track rows with measurements of one kind.

    x (N, 6), P (N, 21) float64 (packed, `fusion.kernels.packed`): updated in place at
    ``rows``.
    rows (k,) int64 track rows; cols (k,) int64 measurement indices into z (M, m) and
    R (M, m, m): the kind's units (MEAS_POS: ENU m; MEAS_POS_VEL: ENU m and m/s; MEAS_POLAR:
    range_m, az_rad, el_rad; MEAS_BEARING: az_rad or az_rad, el_rad). M (3, 3), c (3,): the
    sensor transform of the batch's site (pass identity and zeros for the linear kinds).
    Pairs are applied in order. Writes d2[k], the pre-update squared Mahalanobis distance (inf
    when the pair was skipped: S not positive definite or z of the wrong width). Returns the
    number of pairs applied.
    """
    work = new_workspace()
    Pf = work[PF_SLOT]
    applied = 0
    for k in range(rows.shape[0]):
        r = rows[k]
        j = cols[k]
        unpack_row_into(P[r], Pf)
        d2[k], _, _ = update_row(kind, x[r], Pf, z[j], R[j], M, c, work)
        pack_row_into(Pf, P[r])
        if d2[k] < math.inf:
            applied += 1
    return applied


@njit
def update_polar(
    x: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    M: np.ndarray,
    c: np.ndarray,
    d2: np.ndarray,
) -> int:
    """EKF update with (range_m, az_rad, el_rad) measurements: z (M, 3), R (M, 3, 3).

    See ``update_measurements`` for the arrays and effects.
    """
    return update_measurements(MEAS_POLAR, x, P, rows, cols, z, R, M, c, d2)


@njit
def update_bearing(
    x: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    M: np.ndarray,
    c: np.ndarray,
    d2: np.ndarray,
) -> int:
    """EKF update with bearings: z (M, 1) az_rad or (M, 2) az_rad, el_rad; R (M, m, m).

    See ``update_measurements`` for the arrays and effects.
    """
    return update_measurements(MEAS_BEARING, x, P, rows, cols, z, R, M, c, d2)


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel here on tiny arrays of the real dtypes."""
    x = np.array([[1000.0, 1000.0, 100.0, 0.0, 0.0, 0.0]])
    P = pack(np.eye(6)[None])
    rows = np.zeros(1, dtype=np.int64)
    M, c = np.eye(3), np.zeros(3)
    d2 = np.empty(1)
    for kind, m in ((MEAS_POS, 3), (MEAS_POS_VEL, 6), (MEAS_POLAR, 3), (MEAS_BEARING, 2)):
        z = np.zeros((1, m))
        if kind == MEAS_POLAR:
            z[0, 0] = 1400.0
        update_measurements(kind, x, P, rows, rows, z, np.eye(m)[None].copy(), M, c, d2)
    update_polar(x, P, rows, rows, np.array([[1400.0, 0.7, 0.0]]), np.eye(3)[None].copy(), M, c, d2)
    update_bearing(x, P, rows, rows, np.array([[0.7]]), np.eye(1)[None].copy(), M, c, d2)
