"""Interacting Multiple Model (IMM) kernels, batched over tracks.

Each IMM track carries r mode-conditioned estimates ``xm[s, j]`` (6,), ``Pm[s, j]`` (21,) in
a side table (row ``s`` of it), mode probabilities ``mu[t]`` (r,) and the combined
(moment-matched) estimate ``x[t]``, ``P[t]`` in the main track arrays (row ``t``), which is what
gating, the picture and the rules read. ``rows`` index the track arrays and ``mrows`` the side
table, pair by pair, so the tracker can keep the side table only for the tracks that need it.

The models are those of ``fusion.models.ImmModelSet``: per model a turn rate ``omega_rad_s``
(0 = CV) and white-acceleration intensities ``q_h``, ``q_v``; ``trans[i, j]`` is the probability
of switching from model i to model j at one step (a predict).

Cycle (Blom and Bar-Shalom): ``imm_predict`` mixes (predicted mode probabilities
``cbar = trans^T mu``, mixing weights ``trans[i, j] mu[i] / cbar[j]``), predicts each model,
stores ``cbar`` as ``mu`` and the combination as ``x``, ``P``; ``imm_update`` updates every
model with the same measurement (any kind of ``fusion.kernels.extended``), sets
``mu ∝ mu * likelihood`` (in log space, so tiny likelihoods do not underflow to a 0/0) and
recombines. Every covariance written is exactly symmetric, and every covariance array here is
packed as its upper triangle (`fusion.kernels.packed`): ``P`` (N, 21), ``Pm`` (K, r, 21).
"""

from __future__ import annotations

import math

import numpy as np

from fusion.jit import njit
from fusion.kernels.extended import linearize_row, update_row
from fusion.kernels.kalman import LOG_2PI, PF_SLOT, gate_row, new_workspace, predict_model_row
from fusion.kernels.packed import pack, pack_row_into, unpack_row_into

__all__ = ["imm_init", "imm_predict", "imm_update", "imm_combine_row", "warm_up"]

_H_SLOT, _Y_SLOT = 6, 7


@njit
def imm_combine_row(
    mu: np.ndarray, xm: np.ndarray, Pm: np.ndarray, x: np.ndarray, P: np.ndarray
) -> None:
    """Moment-matched combination of one track's modes: x = sum mu_j x_j, P = sum mu_j (P_j +
    (x_j - x)(x_j - x)^T). mu (r,), xm (r, 6), Pm (r, 21) packed in; x (6,), P (21,) packed
    written."""
    r = mu.shape[0]
    for a in range(6):
        s = 0.0
        for j in range(r):
            s += mu[j] * xm[j, a]
        x[a] = s
    k = 0
    for a in range(6):
        for b in range(a, 6):
            s = 0.0
            for j in range(r):
                s += mu[j] * (Pm[j, k] + (xm[j, a] - x[a]) * (xm[j, b] - x[b]))
            P[k] = s
            k += 1


@njit
def imm_init(
    x: np.ndarray,
    P: np.ndarray,
    mu: np.ndarray,
    xm: np.ndarray,
    Pm: np.ndarray,
    rows: np.ndarray,
    mrows: np.ndarray,
    mu0: np.ndarray,
) -> None:
    """Start the IMM of new tracks: every mode takes the track's x, P; mu takes ``mu0``.

    x (N, 6), P (N, 21), mu (N, r) at ``rows`` (k,) int64; xm (K, r, 6), Pm (K, r, 21) at
    ``mrows`` (k,) int64; mu0 (r,). x and P are not changed (the combination of identical
    modes is the track itself).
    """
    r = mu.shape[1]
    for i in range(rows.shape[0]):
        t = rows[i]
        s = mrows[i]
        for j in range(r):
            mu[t, j] = mu0[j]
            for a in range(6):
                xm[s, j, a] = x[t, a]
            for a in range(P.shape[1]):
                Pm[s, j, a] = P[t, a]


@njit
def imm_predict(
    x: np.ndarray,
    P: np.ndarray,
    mu: np.ndarray,
    xm: np.ndarray,
    Pm: np.ndarray,
    rows: np.ndarray,
    mrows: np.ndarray,
    dt_s: np.ndarray,
    omega_rad_s: np.ndarray,
    q_h: np.ndarray,
    q_v: np.ndarray,
    trans: np.ndarray,
) -> None:
    """IMM mixing and prediction of the selected tracks, in place.

    Track arrays x (N, 6), P (N, 21), mu (N, r) float64 at ``rows`` (k,) int64; mode
    arrays xm (K, r, 6), Pm (K, r, 21) float64 at ``mrows`` (k,) int64; dt_s (k,) seconds.
    Models: omega_rad_s, q_h, q_v (r,) float64; trans (r, r) float64, rows summing to 1.
    Writes the predicted modes into xm, Pm, the predicted mode probabilities into mu and their
    combination into x, P. One call is one Markov step, whatever dt_s is.
    """
    r = mu.shape[1]
    work = new_workspace()
    Pf = work[PF_SLOT]
    cbar = np.empty(r)
    w = np.empty((r, r))
    xmix = np.empty((r, 6))
    Pmix = np.empty((r, 21))
    for i in range(rows.shape[0]):
        t = rows[i]
        s = mrows[i]
        for j in range(r):
            c = 0.0
            for a in range(r):
                c += trans[a, j] * mu[t, a]
            cbar[j] = c
        for j in range(r):
            if cbar[j] > 0.0:
                for a in range(r):
                    w[a, j] = trans[a, j] * mu[t, a] / cbar[j]
            else:
                # No probability flows into mode j: keep its own estimate (its weight is 0).
                for a in range(r):
                    w[a, j] = 1.0 if a == j else 0.0
        # Mixed initial condition of each mode j.
        for j in range(r):
            for a in range(6):
                v = 0.0
                for k in range(r):
                    v += w[k, j] * xm[s, k, a]
                xmix[j, a] = v
            e = 0
            for a in range(6):
                for b in range(a, 6):
                    v = 0.0
                    for k in range(r):
                        v += w[k, j] * (
                            Pm[s, k, e] + (xm[s, k, a] - xmix[j, a]) * (xm[s, k, b] - xmix[j, b])
                        )
                    Pmix[j, e] = v
                    e += 1
        for j in range(r):
            for a in range(6):
                xm[s, j, a] = xmix[j, a]
            unpack_row_into(Pmix[j], Pf)
            predict_model_row(xm[s, j], Pf, dt_s[i], omega_rad_s[j], q_h[j], q_v[j], work)
            pack_row_into(Pf, Pm[s, j])
        for j in range(r):
            mu[t, j] = cbar[j]
        imm_combine_row(mu[t], xm[s], Pm[s], x[t], P[t])


@njit
def imm_update(
    kind: int,
    x: np.ndarray,
    P: np.ndarray,
    mu: np.ndarray,
    xm: np.ndarray,
    Pm: np.ndarray,
    rows: np.ndarray,
    mrows: np.ndarray,
    cols: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    M: np.ndarray,
    c: np.ndarray,
    d2: np.ndarray,
) -> int:
    """IMM update of the selected tracks with measurements of one kind, in place.

    ``kind`` is a ``fusion.kernels.extended.MEAS_*`` code; z (Mz, m), R (Mz, m, m) in its
    units; M (3, 3), c (3,) the sensor transform (identity and zeros for linear kinds).
    Pairs k: track ``rows[k]`` / side-table row ``mrows[k]`` takes measurement ``cols[k]``.
    Each mode gets a Joseph-form (extended) update; mu becomes mu * likelihood normalised;
    x, P the new combination. Writes d2[k], the squared Mahalanobis distance of the
    measurement from the combined prior x, P (inf: skipped, because z has the wrong width or
    no mode had a positive definite innovation covariance). Returns the pairs applied.
    """
    r = mu.shape[1]
    work = new_workspace()
    Pf = work[PF_SLOT]
    H = work[_H_SLOT]
    y = work[_Y_SLOT, 0]
    loglik = np.empty(r)
    applied = 0
    for i in range(rows.shape[0]):
        t = rows[i]
        s = mrows[i]
        j_meas = cols[i]
        m = linearize_row(kind, x[t], z[j_meas], M, c, H, y)
        if m < 0:
            d2[i] = math.inf
            continue
        unpack_row_into(P[t], Pf)
        d2_comb, _ = gate_row(Pf, H, y, R[j_meas], m, work)
        best = -math.inf
        for j in range(r):
            unpack_row_into(Pm[s, j], Pf)
            d2j, logdet, _ = update_row(kind, xm[s, j], Pf, z[j_meas], R[j_meas], M, c, work)
            pack_row_into(Pf, Pm[s, j])
            if d2j < math.inf:
                loglik[j] = -0.5 * (d2j + logdet + m * LOG_2PI)
            else:
                loglik[j] = -math.inf
            if loglik[j] > best:
                best = loglik[j]
        if best == -math.inf:
            d2[i] = math.inf
            continue
        total = 0.0
        for j in range(r):
            v = mu[t, j] * math.exp(loglik[j] - best)
            loglik[j] = v  # reused as the unnormalised posterior
            total += v
        if total > 0.0:
            for j in range(r):
                mu[t, j] = loglik[j] / total
        imm_combine_row(mu[t], xm[s], Pm[s], x[t], P[t])
        d2[i] = d2_comb
        applied += 1
    return applied


def warm_up(r: int = 3) -> None:
    """Compile (or load from numba's cache) the IMM kernels on tiny arrays of the real dtypes."""
    from fusion.kernels.extended import MEAS_BEARING, MEAS_POLAR, MEAS_POS, MEAS_POS_VEL

    x = np.array([[1000.0, 1000.0, 100.0, 0.0, 0.0, 0.0]])
    P = pack(np.eye(6)[None])
    mu = np.zeros((1, r))
    xm, Pm = np.zeros((1, r, 6)), np.zeros((1, r, 21))
    rows = np.zeros(1, dtype=np.int64)
    mu0 = np.full(r, 1.0 / r)
    imm_init(x, P, mu, xm, Pm, rows, rows, mu0)
    omega = np.linspace(-0.05, 0.05, r)
    trans = np.full((r, r), 1.0 / r)
    imm_predict(x, P, mu, xm, Pm, rows, rows, np.ones(1), omega, mu0, mu0, trans)
    M, c = np.eye(3), np.zeros(3)
    d2 = np.empty(1)
    for kind, m in ((MEAS_POS, 3), (MEAS_POS_VEL, 6), (MEAS_POLAR, 3), (MEAS_BEARING, 1)):
        z = np.zeros((1, m))
        imm_update(kind, x, P, mu, xm, Pm, rows, rows, rows, z, np.eye(m)[None].copy(), M, c, d2)
