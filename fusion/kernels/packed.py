"""Packed symmetric 6x6 covariances: the storage layout of every track covariance.

This module owns the layout, nothing else. A covariance P (6, 6) is kept exactly symmetric by
every kernel that writes it (each computes the upper triangle and mirrors it), so its 21
upper-triangle values, row by row, hold all of it: 168 bytes instead of 288, lossless. The
TrackTable's `P` (N, 21) and the IMM side table's `imm_P` (K, r, 21) use this layout;
the kernels unpack a track's covariance into 6x6 scratch where full-matrix arithmetic is
simpler (the Joseph and EKF updates, the turn model), and read or write the packed values
directly where only a few are needed (gating, deletion, the CV predict and position update).

Element (a, b) with a <= b is at ``a * (11 - a) // 2 + b``:

    row 0:  0  1  2  3  4  5
    row 1:     6  7  8  9 10
    row 2:       11 12 13 14
    row 3:          15 16 17
    row 4:             18 19
    row 5:                20
"""

from __future__ import annotations

import numpy as np

from fusion.jit import njit

N_PACKED = 21

# TRI[a, b]: the packed index of element (a, b) (symmetric).
TRI = np.empty((6, 6), np.int64)
for _a in range(6):
    for _b in range(_a, 6):
        TRI[_a, _b] = TRI[_b, _a] = _a * (11 - _a) // 2 + _b
del _a, _b


@njit(inline="always")
def tri(a, b):
    """Packed index of element (a, b), a <= b (constant-folded for literal arguments)."""
    return a * (11 - a) // 2 + b


@njit
def unpack_row_into(Pp, P):
    """The full symmetric (6, 6) matrix of packed row Pp (21,), written into P (6, 6)."""
    k = 0
    for a in range(6):
        P[a, a] = Pp[k]
        k += 1
        for b in range(a + 1, 6):
            v = Pp[k]
            P[a, b] = v
            P[b, a] = v
            k += 1


@njit
def pack_row_into(P, Pp):
    """The upper triangle of P (6, 6) into packed row Pp (21,)."""
    k = 0
    for a in range(6):
        for b in range(a, 6):
            Pp[k] = P[a, b]
            k += 1


@njit
def _unpack_all(Pp, out):
    for i in range(Pp.shape[0]):
        unpack_row_into(Pp[i], out[i])


@njit
def _pack_all(P, out):
    for i in range(P.shape[0]):
        pack_row_into(P[i], out[i])


def unpack(Pp: np.ndarray) -> np.ndarray:
    """(..., 21) packed covariances -> (..., 6, 6) full symmetric matrices (a new array)."""
    Pp = np.ascontiguousarray(Pp, dtype=np.float64)
    if Pp.shape[-1:] != (N_PACKED,):
        raise ValueError(f"packed covariances need a last axis of 21, got shape {Pp.shape}")
    lead = Pp.shape[:-1]
    out = np.empty((*lead, 6, 6))
    _unpack_all(Pp.reshape(-1, N_PACKED), out.reshape(-1, 6, 6))
    return out


def pack(P: np.ndarray, check_symmetric: bool = False) -> np.ndarray:
    """(..., 6, 6) covariances -> (..., 21) packed upper triangles (a new array).

    With check_symmetric, a matrix that is not exactly symmetric raises ValueError (its lower
    triangle would be lost); the tracker's own covariances always are."""
    P = np.ascontiguousarray(P, dtype=np.float64)
    if P.shape[-2:] != (6, 6):
        raise ValueError(f"covariances need trailing axes (6, 6), got shape {P.shape}")
    if check_symmetric and not np.array_equal(P, np.swapaxes(P, -1, -2)):
        raise ValueError("a covariance to pack is not exactly symmetric")
    lead = P.shape[:-2]
    out = np.empty((*lead, N_PACKED))
    _pack_all(P.reshape(-1, 6, 6), out.reshape(-1, N_PACKED))
    return out


def warm_up() -> None:
    """Compile (or load from numba's cache) the packing kernels on tiny arrays."""
    unpack(pack(np.eye(6)[None]))
