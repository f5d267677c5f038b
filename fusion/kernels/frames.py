"""Batched covariance transforms for the tracker's conversion of a batch into the theatre frame.

This module owns two small jobs of that conversion: C_out = A C A^T for many 3x3 matrices at
once, with the trace of each result (the gating grid's measure of a detection's spread), and
the finiteness check of a batch's rows. numpy's stacked matmul
spends most of its time in per-matrix dispatch at this size; a plain loop does not.
"""

from __future__ import annotations

import math

import numpy as np

from fusion.geo import WGS84_A_M, WGS84_E2
from fusion.jit import njit


@njit(inline="always")
def _congruence3_regs(A: np.ndarray, C: np.ndarray, k: int, out: np.ndarray, tr: np.ndarray):
    """out[k] = A[k] C[k] A[k]^T (upper triangle mirrored), tr[k] its trace; shared with
    `geodetic_batch_into` so both stay bit-identical. A[k] C[k] is held in scalars, not in a
    scratch array; each sum is the loop's (started from 0.0, terms in index order), so the
    results, even the sign of a zero, are those of the plain triple loop."""
    a00, a01, a02 = A[k, 0, 0], A[k, 0, 1], A[k, 0, 2]
    a10, a11, a12 = A[k, 1, 0], A[k, 1, 1], A[k, 1, 2]
    a20, a21, a22 = A[k, 2, 0], A[k, 2, 1], A[k, 2, 2]
    c00, c01, c02 = C[k, 0, 0], C[k, 0, 1], C[k, 0, 2]
    c10, c11, c12 = C[k, 1, 0], C[k, 1, 1], C[k, 1, 2]
    c20, c21, c22 = C[k, 2, 0], C[k, 2, 1], C[k, 2, 2]
    m00 = 0.0 + a00 * c00 + a01 * c10 + a02 * c20
    m01 = 0.0 + a00 * c01 + a01 * c11 + a02 * c21
    m02 = 0.0 + a00 * c02 + a01 * c12 + a02 * c22
    m10 = 0.0 + a10 * c00 + a11 * c10 + a12 * c20
    m11 = 0.0 + a10 * c01 + a11 * c11 + a12 * c21
    m12 = 0.0 + a10 * c02 + a11 * c12 + a12 * c22
    m20 = 0.0 + a20 * c00 + a21 * c10 + a22 * c20
    m21 = 0.0 + a20 * c01 + a21 * c11 + a22 * c21
    m22 = 0.0 + a20 * c02 + a21 * c12 + a22 * c22
    s00 = 0.0 + m00 * a00 + m01 * a01 + m02 * a02
    s01 = 0.0 + m00 * a10 + m01 * a11 + m02 * a12
    s02 = 0.0 + m00 * a20 + m01 * a21 + m02 * a22
    s11 = 0.0 + m10 * a10 + m11 * a11 + m12 * a12
    s12 = 0.0 + m10 * a20 + m11 * a21 + m12 * a22
    s22 = 0.0 + m20 * a20 + m21 * a21 + m22 * a22
    out[k, 0, 0] = s00
    out[k, 0, 1] = s01
    out[k, 1, 0] = s01
    out[k, 0, 2] = s02
    out[k, 2, 0] = s02
    out[k, 1, 1] = s11
    out[k, 1, 2] = s12
    out[k, 2, 1] = s12
    out[k, 2, 2] = s22
    tr[k] = 0.0 + s00 + s11 + s22


@njit
def congruence3_into(A: np.ndarray, C: np.ndarray, out: np.ndarray, tr: np.ndarray) -> None:
    """out[k] = A[k] C[k] A[k]^T (exactly symmetric: upper triangle mirrored), tr[k] = trace.

    A, C, out (n, 3, 3) float64; tr (n,) float64.
    """
    for k in range(A.shape[0]):
        _congruence3_regs(A, C, k, out, tr)


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
        # v * 0.0 is 0.0 for a finite v and NaN for an infinite or NaN one, and a NaN stays in
        # a sum: the row is finite exactly when the sum is 0.0. No branch per value.
        acc = t[k] * 0.0
        for a in range(z.shape[1]):
            acc += z[k, a] * 0.0
            for b in range(R.shape[2]):
                acc += R[k, a, b] * 0.0
        ok = acc == 0.0
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

    The same operations in the same order as `LocalFrame.to_enu`, `LocalFrame.rotation_at` and
    `congruence3_into` (bit-identical results), with the sines and cosines of a point computed
    once (`ecef_of` and `enu_rotation_into` each take their own) and the 3x3 products in
    registers instead of scratch arrays: this runs on every batch.
    Returns the number of rows whose latitude is outside [-90, 90] (nothing is written for
    those; the caller refuses the batch).
    """
    deg = math.pi / 180.0
    e2 = WGS84_E2
    a_m = WGS84_A_M
    bad = 0
    for k in range(llh.shape[0]):
        if abs(llh[k, 0]) > 90.0:
            bad += 1
            continue
        lat = llh[k, 0] * deg
        lon = llh[k, 1] * deg
        alt = llh[k, 2]
        sl = math.sin(lat)
        cl = math.cos(lat)
        so = math.sin(lon)
        co = math.cos(lon)
        # ecef_of, term for term
        n_m = a_m / math.sqrt(1.0 - e2 * sl * sl)
        dx = (n_m + alt) * cl * co - ecef0[0]
        dy = (n_m + alt) * cl * so - ecef0[1]
        dz = (n_m * (1.0 - e2) + alt) * sl - ecef0[2]
        # rows of enu_rotation_into: east, north, up in ECEF
        p00, p01, p02 = -so, co, 0.0
        p10, p11, p12 = -sl * co, -sl * so, cl
        p20, p21, p22 = cl * co, cl * so, sl
        for a in range(3):
            r0 = R0[a, 0]
            r1 = R0[a, 1]
            r2 = R0[a, 2]
            pos[k, a] = r0 * dx + r1 * dy + r2 * dz
            Rt[k, a, 0] = r0 * p00 + r1 * p01 + r2 * p02
            Rt[k, a, 1] = r0 * p10 + r1 * p11 + r2 * p12
            Rt[k, a, 2] = r0 * p20 + r1 * p21 + r2 * p22
        _congruence3_regs(Rt, C, k, C_out, tr)
    return bad
