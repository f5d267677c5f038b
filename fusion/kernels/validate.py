"""Validation kernels for the protocol: one pass over a stack of covariance matrices.

The protocol module owns what is valid; this file only makes the covariance test cheap, since it
runs on every detection of every batch the service receives.
"""

from __future__ import annotations

import numpy as np

from fusion.jit import njit

SPD_OK, SPD_NON_FINITE, SPD_ASYMMETRIC, SPD_NOT_POSITIVE = 0, 1, 2, 3


@njit
def spd_status(A: np.ndarray, rtol: float) -> int:
    """Status of a stack of matrices A (n, m, m): SPD_OK when every one is finite, symmetric to
    `rtol` of its largest diagonal entry, and positive definite (its Cholesky factor exists)."""
    n, m = A.shape[0], A.shape[1]
    L = np.empty((m, m))
    for k in range(n):
        scale = 0.0
        for i in range(m):
            for j in range(m):
                if not np.isfinite(A[k, i, j]):
                    return SPD_NON_FINITE
            scale = max(scale, abs(A[k, i, i]))
        for i in range(m):
            for j in range(i + 1, m):
                if abs(A[k, i, j] - A[k, j, i]) > rtol * scale:
                    return SPD_ASYMMETRIC
        for j in range(m):
            s = A[k, j, j]
            for p in range(j):
                s -= L[j, p] * L[j, p]
            if not s > 0.0:
                return SPD_NOT_POSITIVE
            L[j, j] = np.sqrt(s)
            for i in range(j + 1, m):
                s = A[k, i, j]
                for p in range(j):
                    s -= L[i, p] * L[j, p]
                L[i, j] = s / L[j, j]
    return SPD_OK
