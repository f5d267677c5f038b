"""Batched covariance transforms for the tracker's conversion of a batch into the theatre frame.

This module owns two small jobs of that conversion: C_out = A C A^T for many 3x3 matrices at
once, with the trace of each result (the gating grid's measure of a detection's spread), and
the finiteness check of a batch's rows. numpy's stacked matmul
spends most of its time in per-matrix dispatch at this size; a plain loop does not.
"""

from __future__ import annotations

import math

import numpy as np

from fusion.geo import ecef_of, enu_rotation_into
from fusion.jit import njit


@njit(inline="always")
def _congruence3_at(
    A: np.ndarray, C: np.ndarray, k: int, AC: np.ndarray, out: np.ndarray, tr: np.ndarray
) -> None:
    """Row k of `congruence3_into`: out[k] = A[k] C[k] A[k]^T, tr[k] its trace; AC (3, 3) is
    scratch. Shared with `geodetic_batch_into` so both stay bit-identical; inlined in numba IR
    (a plain call doubled `congruence3_into`'s time)."""
    for i in range(3):
        for j in range(3):
            s = 0.0
            for m in range(3):
                s += A[k, i, m] * C[k, m, j]
            AC[i, j] = s
    t = 0.0
    for i in range(3):
        for j in range(i, 3):
            s = 0.0
            for m in range(3):
                s += AC[i, m] * A[k, j, m]
            out[k, i, j] = s
            out[k, j, i] = s
        t += out[k, i, i]
    tr[k] = t


@njit
def congruence3_into(A: np.ndarray, C: np.ndarray, out: np.ndarray, tr: np.ndarray) -> None:
    """out[k] = A[k] C[k] A[k]^T (exactly symmetric: upper triangle mirrored), tr[k] = trace.

    A, C, out (n, 3, 3) float64; tr (n,) float64.
    """
    AC = np.empty((3, 3))
    for k in range(A.shape[0]):
        _congruence3_at(A, C, k, AC, out, tr)


def congruence3(A: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A C A^T (n, 3, 3), its traces (n,)) for stacks A, C of shape (n, 3, 3)."""
    A = np.ascontiguousarray(A, dtype=np.float64)
    C = np.ascontiguousarray(C, dtype=np.float64)
    if A.shape != C.shape or A.ndim != 3 or A.shape[1:] != (3, 3):
        raise ValueError(f"need two (n, 3, 3) stacks, got {A.shape} and {C.shape}")
    out = np.empty_like(C)
    tr = np.empty(C.shape[0])
    congruence3_into(A, C, out, tr)
    return out, tr


@njit
def finite_rows(t: np.ndarray, z: np.ndarray, R: np.ndarray, out: np.ndarray) -> tuple[int, float]:
    """out[k] = t[k], z[k] and R[k] are all finite; returns how many rows are not, and the
    largest t (meaningful when every row is finite: the batch's time, without a numpy call).

    t (n,), z (n, m), R (n, m, m) float64, n >= 1; one pass instead of numpy's three and their
    temporaries (this runs on every batch).
    """
    bad = 0
    t_max = t[0]
    for k in range(t.shape[0]):
        t_max = max(t_max, t[k])
        ok = math.isfinite(t[k])
        for a in range(z.shape[1]):
            ok = ok and math.isfinite(z[k, a])
            for b in range(R.shape[2]):
                ok = ok and math.isfinite(R[k, a, b])
        out[k] = ok
        if not ok:
            bad += 1
    return bad, t_max


@njit
def geodetic_batch_into(
    llh: np.ndarray,
    C: np.ndarray,
    ecef0: np.ndarray,
    R0: np.ndarray,
    pos: np.ndarray,
    Rt: np.ndarray,
    C_out: np.ndarray,
    tr: np.ndarray,
) -> int:
    """A `pos` batch into the theatre frame in one pass: pos[k] = ENU of llh[k] (deg, deg, m)
    in the frame (ecef0, R0), Rt[k] the rotation from the local ENU frame at the point into the
    theatre frame, C_out[k] = Rt[k] C[k] Rt[k]^T and tr[k] its trace.

    The same operations as `LocalFrame.to_enu`, `LocalFrame.rotation_at` and
    `congruence3_into` (bit-identical results) without their three passes and temporaries.
    Returns the number of rows whose latitude is outside [-90, 90] (nothing is written for
    those; the caller refuses the batch).
    """
    deg = math.pi / 180.0
    Rp = np.empty((3, 3))
    AC = np.empty((3, 3))
    bad = 0
    for k in range(llh.shape[0]):
        if abs(llh[k, 0]) > 90.0:
            bad += 1
            continue
        lat = llh[k, 0] * deg
        lon = llh[k, 1] * deg
        x, y, z = ecef_of(lat, lon, llh[k, 2])
        dx = x - ecef0[0]
        dy = y - ecef0[1]
        dz = z - ecef0[2]
        for a in range(3):
            pos[k, a] = R0[a, 0] * dx + R0[a, 1] * dy + R0[a, 2] * dz
        enu_rotation_into(lat, lon, Rp)
        for a in range(3):
            for b in range(3):
                Rt[k, a, b] = R0[a, 0] * Rp[b, 0] + R0[a, 1] * Rp[b, 1] + R0[a, 2] * Rp[b, 2]
        _congruence3_at(Rt, C, k, AC, C_out, tr)
    return bad
