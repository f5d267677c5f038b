"""Batched linear Kalman kernels over the TrackTable's arrays: predict, gate, Joseph update.

The batched kernels work in place on the track arrays ``x`` (N, 6) float64 and ``P`` (N, 21)
float64, each row of P a covariance packed as its upper triangle (`fusion.kernels.packed`),
over the rows named by an int64 index array, so the tracker never copies tracks out. The
per-row helpers take a full (6, 6) P; the batched kernels unpack a row into workspace
scratch, run them, and pack the result back (lossless: every helper leaves P exactly
symmetric), except ``predict_update_pos`` (the common position update), which predicts and
updates the packed row where it lies.
Measurements are in theatre ENU (position in m, velocity in m/s). Updates use the Joseph form
``P = (I - K H) P (I - K H)^T + K R K^T`` and mirror the upper triangle, so P stays exactly
symmetric and positive definite. A measurement whose innovation covariance S is not positive
definite, or whose innovation is not finite, is skipped (the track is left untouched) and
reported with ``d2 = inf``.

All public kernels are ``@njit``: call them from Python or from other kernels. The per-row
helpers (``predict_cv_row``, ``joseph_update_row``, ``new_workspace``) are the building blocks
the extended and IMM kernels reuse. This module owns the filter arithmetic, not the track
bookkeeping (status, counters, assignment are the tracker's).
"""

from __future__ import annotations

import math

import numpy as np

from fusion.jit import njit
from fusion.kernels.packed import pack, pack_row_into, tri, unpack_row_into
from fusion.models import ct_predict_into, cv_predict_into

__all__ = [
    "LOG_2PI",
    "PF_SLOT",
    "new_workspace",
    "predict_cv_row",
    "predict_model_row",
    "cv_predict_packed",
    "joseph_update_row",
    "joseph_update_row_any",
    "joseph_select_row",
    "joseph_position_jacobian_row",
    "gate_row",
    "predict",
    "predict_per_row",
    "predict_model",
    "position_d2",
    "position_innovations",
    "update_position",
    "update_position_velocity",
    "update_linear",
    "predict_update_pos",
    "warm_up",
]

LOG_2PI = math.log(2.0 * math.pi)

# Workspace slots of the (11, 6, 6) scratch array (see new_workspace); _PF holds the unpacked
# covariance of the row a batched kernel is working on.
_PHT, _L, _K, _A, _AP, _KR, _H, _R, _VEC, _F, _PF = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
PF_SLOT = _PF  # for the batched kernels of the other modules


@njit
def new_workspace() -> np.ndarray:
    """Scratch (11, 6, 6) float64 for the per-row helpers; one per thread, reused across rows."""
    return np.zeros((11, 6, 6))


# ---------------------------------------------------------------------------------------------
# Per-row building blocks
# ---------------------------------------------------------------------------------------------


@njit
def predict_cv_row(x: np.ndarray, P: np.ndarray, dt_s: float, q_h: float, q_v: float) -> None:
    """CV predict of one track in place: ``x`` (6,), ``P`` (6, 6), ``dt_s`` >= 0 seconds."""
    cv_predict_into(x, P, dt_s, q_h, q_v)


@njit
def predict_model_row(
    x: np.ndarray,
    P: np.ndarray,
    dt_s: float,
    omega_rad_s: float,
    q_h: float,
    q_v: float,
    work: np.ndarray,
) -> None:
    """Predict one track in place with CV (``omega_rad_s == 0``) or CT(omega).

    ``work`` is a workspace from ``new_workspace()`` (slot 9 is used). P becomes ``F P F^T + Q``,
    with the upper triangle computed and mirrored.
    """
    if omega_rad_s == 0.0:
        cv_predict_into(x, P, dt_s, q_h, q_v)
    else:
        ct_predict_into(x, P, dt_s, omega_rad_s, q_h, q_v, work[_F])


@njit
def cv_predict_packed(x: np.ndarray, Pp: np.ndarray, dt_s: float, q_h: float, q_v: float) -> None:
    """``fusion.models.cv_predict_into`` on a packed covariance ``Pp`` (21,): the same
    operations in the same order on the upper triangle it reads and writes, so bit-identical
    to unpacking, predicting and packing, without the copies."""
    for i in range(3):
        x[i] += dt_s * x[i + 3]
    dt2 = dt_s * dt_s
    a = dt2 * dt_s / 3.0
    b = dt2 / 2.0
    # Position block first: it needs the old position-velocity block.
    for i in range(3):
        for j in range(i, 3):
            vv = Pp[tri(i + 3, j + 3)]
            ij = tri(i, j)
            Pp[ij] = Pp[ij] + dt_s * (Pp[tri(j, i + 3)] + Pp[tri(i, j + 3)]) + dt2 * vv
    # Position-velocity block (all of it: it is not symmetric by itself).
    for i in range(3):
        for j in range(3):
            ij = tri(i, j + 3)
            Pp[ij] = Pp[ij] + dt_s * Pp[tri(min(i, j) + 3, max(i, j) + 3)]
    for k in range(3):
        q = q_v if k == 2 else q_h
        Pp[tri(k, k)] += q * a
        Pp[tri(k, k + 3)] += q * b
        Pp[tri(k + 3, k + 3)] += q * dt_s


@njit
def cholesky_in_place(S: np.ndarray, m: int) -> bool:
    """Lower Cholesky factor of the leading (m, m) block of ``S``, in place; False if not PD."""
    for j in range(m):
        d = S[j, j]
        for k in range(j):
            d -= S[j, k] * S[j, k]
        if not d > 0.0:  # also catches NaN
            return False
        d = math.sqrt(d)
        S[j, j] = d
        # One division per column, then products: the divisions were the longest chain of
        # the position update (the m = 3 kernel below does the same, bit for bit).
        inv = 1.0 / d
        for i in range(j + 1, m):
            s = S[i, j]
            for k in range(j):
                s -= S[i, k] * S[j, k]
            S[i, j] = s * inv
        for i in range(j):
            S[i, j] = 0.0
    return True


@njit
def _innovation_cov(
    P: np.ndarray, H: np.ndarray, R: np.ndarray, m: int, work: np.ndarray
) -> tuple[float, bool]:
    """PHt = P H^T into work[_PHT] (6, m); Cholesky of S = H P H^T + R into work[_L].

    Returns (log det S, ok).
    """
    PHt = work[_PHT]
    L = work[_L]
    for i in range(6):
        for j in range(m):
            s = 0.0
            for k in range(6):
                s += P[i, k] * H[j, k]
            PHt[i, j] = s
    for i in range(m):
        for j in range(i, m):
            s = 0.0
            for k in range(6):
                s += H[i, k] * PHt[k, j]
            # S symmetric by construction: average R's two triangles so an R that is symmetric
            # only to rounding does not bias the factor.
            v = s + 0.5 * (R[i, j] + R[j, i])
            L[i, j] = v
            L[j, i] = v
    if not cholesky_in_place(L, m):
        return math.inf, False
    logdet = 0.0
    for i in range(m):
        logdet += 2.0 * math.log(L[i, i])
    return logdet, True


@njit
def mahalanobis_sq(L: np.ndarray, y: np.ndarray, m: int, w: np.ndarray) -> float:
    """y^T S^-1 y given the Cholesky factor L of S; ``w`` (m,) receives L^-1 y."""
    d2 = 0.0
    for i in range(m):
        s = y[i]
        for k in range(i):
            s -= L[i, k] * w[k]
        w[i] = s * (1.0 / L[i, i])
        d2 += w[i] * w[i]
    return d2


@njit
def gate_row(
    P: np.ndarray, H: np.ndarray, y: np.ndarray, R: np.ndarray, m: int, work: np.ndarray
) -> tuple[float, float]:
    """Mahalanobis ``d2`` and ``log det S`` of innovation ``y`` (m,) without updating.

    ``H`` (>= m, 6) and ``R`` (>= m, >= m) use their leading m rows/columns. Returns
    ``(inf, inf)`` when S is not positive definite.
    """
    logdet, ok = _innovation_cov(P, H, R, m, work)
    if not ok:
        return math.inf, math.inf
    return mahalanobis_sq(work[_L], y, m, work[_VEC, 1]), logdet


@njit
def joseph_update_row(
    x: np.ndarray,
    P: np.ndarray,
    H: np.ndarray,
    y: np.ndarray,
    R: np.ndarray,
    m: int,
    work: np.ndarray,
) -> tuple[float, float]:
    """Kalman update of one track in place with innovation ``y`` = z - h(x) (m,), Joseph form.

    ``x`` (6,), ``P`` (6, 6); ``H`` (>= m, 6) the measurement matrix or Jacobian and ``R``
    (>= m, >= m) the measurement covariance, of which the leading m rows/columns are used
    (1 <= m <= 6); ``work`` from ``new_workspace()``. Returns ``(d2, logdet_S)``: the
    innovation's squared Mahalanobis distance and log det S (the measurement log-likelihood
    is ``-0.5 * (d2 + logdet_S + m * LOG_2PI)``). If S is not positive definite or the
    innovation is not finite, nothing changes and ``(inf, inf)`` is returned.
    """
    logdet, ok = _innovation_cov(P, H, R, m, work)
    if not ok:
        return math.inf, math.inf
    PHt = work[_PHT]
    L = work[_L]
    K = work[_K]
    A = work[_A]
    AP = work[_AP]
    KR = work[_KR]
    w = work[_VEC, 1]
    d2 = mahalanobis_sq(L, y, m, w)
    if not d2 < math.inf:  # a NaN or infinite measurement must not poison the track
        return math.inf, math.inf
    # K = PHt S^-1, row by row: solve L L^T k = PHt[i, :].
    inv = work[_VEC, 2]  # 1 / L[j, j]: one division per column, as in the Cholesky
    for j in range(m):
        inv[j] = 1.0 / L[j, j]
    for i in range(6):
        for j in range(m):
            s = PHt[i, j]
            for k in range(j):
                s -= L[j, k] * K[i, k]
            K[i, j] = s * inv[j]
        for j in range(m - 1, -1, -1):
            s = K[i, j]
            for k in range(j + 1, m):
                s -= L[k, j] * K[i, k]
            K[i, j] = s * inv[j]
    for i in range(6):
        s = 0.0
        for j in range(m):
            s += K[i, j] * y[j]
        x[i] += s
    # A = I - K H
    for i in range(6):
        for j in range(6):
            s = 1.0 if i == j else 0.0
            for k in range(m):
                s -= K[i, k] * H[k, j]
            A[i, j] = s
    for i in range(6):
        for j in range(6):
            s = 0.0
            for k in range(6):
                s += A[i, k] * P[k, j]
            AP[i, j] = s
    for i in range(6):
        for j in range(m):
            s = 0.0
            for k in range(m):
                s += K[i, k] * R[k, j]
            KR[i, j] = s
    for i in range(6):
        for j in range(i, 6):
            s = 0.0
            for k in range(6):
                s += AP[i, k] * A[j, k]
            t = 0.0
            for k in range(m):
                t += KR[i, k] * K[j, k]
            P[i, j] = s + t
    for i in range(6):
        for j in range(i):
            P[i, j] = P[j, i]
    return d2, logdet


@njit
def joseph_select_row(
    x: np.ndarray, P: np.ndarray, y: np.ndarray, R: np.ndarray, m: int, work: np.ndarray
) -> tuple[float, float]:
    """``joseph_update_row`` for H = [I_m 0], a measurement of the first m state components.

    m = 3 is a position, m = 6 position and velocity. Same arguments (without H) and result.
    Exploits H's structure: P H^T = P[:, :m], (I - K H) P = P - K P[:m, :] and the Joseph
    product needs only the first m columns, about a third of the general form's work.
    """
    L = work[_L]
    K = work[_K]
    AP = work[_AP]
    KR = work[_KR]
    w = work[_VEC, 1]
    for i in range(m):
        for j in range(i, m):
            v = P[i, j] + 0.5 * (R[i, j] + R[j, i])
            L[i, j] = v
            L[j, i] = v
    if not cholesky_in_place(L, m):
        return math.inf, math.inf
    logdet = 0.0
    for i in range(m):
        logdet += 2.0 * math.log(L[i, i])
    d2 = mahalanobis_sq(L, y, m, w)
    if not d2 < math.inf:  # a NaN or infinite measurement must not poison the track
        return math.inf, math.inf
    inv = work[_VEC, 2]  # 1 / L[j, j]: one division per column, as in the Cholesky
    for j in range(m):
        inv[j] = 1.0 / L[j, j]
    for i in range(6):
        for j in range(m):
            s = P[i, j]
            for k in range(j):
                s -= L[j, k] * K[i, k]
            K[i, j] = s * inv[j]
        for j in range(m - 1, -1, -1):
            s = K[i, j]
            for k in range(j + 1, m):
                s -= L[k, j] * K[i, k]
            K[i, j] = s * inv[j]
    for i in range(6):
        s = 0.0
        for j in range(m):
            s += K[i, j] * y[j]
        x[i] += s
    for i in range(6):
        for j in range(6):
            s = P[i, j]
            for k in range(m):
                s -= K[i, k] * P[k, j]
            AP[i, j] = s
    for i in range(6):
        for j in range(m):
            s = 0.0
            for k in range(m):
                s += K[i, k] * R[k, j]
            # (K R - A P H^T): the Joseph product (A P A^T + K R K^T) is AP + this times K^T.
            KR[i, j] = s - AP[i, j]
    for i in range(6):
        for j in range(i, 6):
            s = AP[i, j]
            for k in range(m):
                s += KR[i, k] * K[j, k]
            P[i, j] = s
    for i in range(6):
        for j in range(i):
            P[i, j] = P[j, i]
    return d2, logdet


@njit
def joseph_position_jacobian_row(
    x: np.ndarray,
    P: np.ndarray,
    H: np.ndarray,
    y: np.ndarray,
    R: np.ndarray,
    m: int,
    work: np.ndarray,
) -> tuple[float, float]:
    """``joseph_update_row`` for an H that does not depend on velocity (H = [Hp 0]).

    Only ``H[:m, :3]`` is read (polar and bearing Jacobians, m <= 3). Uses H P = (P H^T)^T and
    (I - K H) P (I - K H)^T + K R K^T = A P + (K R - A P H^T) K^T with A P = P - K H P, which
    needs about half the work of the general form. Same arguments and result.
    """
    PHt = work[_PHT]
    L = work[_L]
    K = work[_K]
    AP = work[_AP]
    KR = work[_KR]
    w = work[_VEC, 1]
    for i in range(6):
        for a in range(m):
            PHt[i, a] = P[i, 0] * H[a, 0] + P[i, 1] * H[a, 1] + P[i, 2] * H[a, 2]
    for a in range(m):
        for b in range(a, m):
            v = H[a, 0] * PHt[0, b] + H[a, 1] * PHt[1, b] + H[a, 2] * PHt[2, b]
            v += 0.5 * (R[a, b] + R[b, a])
            L[a, b] = v
            L[b, a] = v
    if not cholesky_in_place(L, m):
        return math.inf, math.inf
    logdet = 0.0
    for i in range(m):
        logdet += 2.0 * math.log(L[i, i])
    d2 = mahalanobis_sq(L, y, m, w)
    if not d2 < math.inf:
        return math.inf, math.inf
    inv = work[_VEC, 2]  # 1 / L[j, j]: one division per column, as in the Cholesky
    for j in range(m):
        inv[j] = 1.0 / L[j, j]
    for i in range(6):
        for j in range(m):
            s = PHt[i, j]
            for k in range(j):
                s -= L[j, k] * K[i, k]
            K[i, j] = s * inv[j]
        for j in range(m - 1, -1, -1):
            s = K[i, j]
            for k in range(j + 1, m):
                s -= L[k, j] * K[i, k]
            K[i, j] = s * inv[j]
    for i in range(6):
        s = 0.0
        for j in range(m):
            s += K[i, j] * y[j]
        x[i] += s
    # A P = P - K (H P), with H P = PHt^T since P is symmetric.
    for i in range(6):
        for j in range(6):
            s = P[i, j]
            for a in range(m):
                s -= K[i, a] * PHt[j, a]
            AP[i, j] = s
    for i in range(6):
        for a in range(m):
            s = 0.0
            for k in range(m):
                s += K[i, k] * R[k, a]
            aph = AP[i, 0] * H[a, 0] + AP[i, 1] * H[a, 1] + AP[i, 2] * H[a, 2]
            KR[i, a] = s - aph
    for i in range(6):
        for j in range(i, 6):
            s = AP[i, j]
            for k in range(m):
                s += KR[i, k] * K[j, k]
            P[i, j] = s
    for i in range(6):
        for j in range(i):
            P[i, j] = P[j, i]
    return d2, logdet


@njit
def joseph_update_row_any(
    x: np.ndarray,
    P: np.ndarray,
    H: np.ndarray,
    y: np.ndarray,
    R: np.ndarray,
    m: int,
    work: np.ndarray,
) -> tuple[float, float]:
    """``joseph_update_row`` with m dispatched to a compile-time constant.

    Same arguments and result. With a literal m LLVM unrolls the small loops, which makes the
    common dimensions (1, 2, 3, 6) almost twice as fast as with a run-time m.
    """
    if m == 3:
        return joseph_update_row(x, P, H, y, R, 3, work)
    if m == 6:
        return joseph_update_row(x, P, H, y, R, 6, work)
    if m == 2:
        return joseph_update_row(x, P, H, y, R, 2, work)
    if m == 1:
        return joseph_update_row(x, P, H, y, R, 1, work)
    return joseph_update_row(x, P, H, y, R, m, work)


# ---------------------------------------------------------------------------------------------
# Batched kernels (what the tracker calls)
# ---------------------------------------------------------------------------------------------


@njit
def predict(
    x: np.ndarray, P: np.ndarray, rows: np.ndarray, dt_s: np.ndarray, q_h: float, q_v: float
) -> None:
    """CV predict of the selected tracks, in place.

    x (N, 6) float64, P (N, 21) float64 packed: modified in place at ``rows``.
    rows (k,) int64: track rows to predict. dt_s (k,) float64: seconds to advance each row.
    q_h, q_v: white-acceleration intensities (m^2/s^3), horizontal and vertical.
    """
    for i in range(rows.shape[0]):
        r = rows[i]
        cv_predict_packed(x[r], P[r], dt_s[i], q_h, q_v)


@njit
def predict_per_row(
    x: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    dt_s: np.ndarray,
    q_h: np.ndarray,
    q_v: np.ndarray,
) -> None:
    """As ``predict`` with per-row noise: q_h, q_v (k,) float64 aligned with ``rows``."""
    for i in range(rows.shape[0]):
        r = rows[i]
        cv_predict_packed(x[r], P[r], dt_s[i], q_h[i], q_v[i])


@njit
def predict_model(
    x: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    dt_s: np.ndarray,
    omega_rad_s: float,
    q_h: float,
    q_v: float,
) -> None:
    """Predict the selected tracks in place with CT(omega) (CV when omega is 0).

    Shapes as in ``predict``; omega_rad_s is the turn rate, counter-clockwise positive.
    """
    work = new_workspace()
    Pf = work[_PF]
    for i in range(rows.shape[0]):
        r = rows[i]
        unpack_row_into(P[r], Pf)
        predict_model_row(x[r], Pf, dt_s[i], omega_rad_s, q_h, q_v, work)
        pack_row_into(Pf, P[r])


@njit
def position_d2(
    x: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    d2: np.ndarray,
) -> None:
    """Squared Mahalanobis distance of position measurements to tracks, for gating.

    For each pair k: track ``rows[k]`` (int64 into x (N, 6), P (N, 21) packed) and measurement
    ``cols[k]`` (int64 into z (M, 3) ENU metres and R (M, 3, 3)); writes ``d2[k]`` (float64,
    inf when S = P_pos + R is not positive definite). Reads only; nothing else is written.
    """
    for k in range(rows.shape[0]):
        r = rows[k]
        j = cols[k]
        # S = P[:3, :3] + R, 3x3 Cholesky spelled out: gating runs on many more pairs than
        # updates, so no workspace traffic here.
        s00 = P[r, 0] + R[j, 0, 0]
        s10 = P[r, 1] + 0.5 * (R[j, 1, 0] + R[j, 0, 1])
        s11 = P[r, 6] + R[j, 1, 1]
        s20 = P[r, 2] + 0.5 * (R[j, 2, 0] + R[j, 0, 2])
        s21 = P[r, 7] + 0.5 * (R[j, 2, 1] + R[j, 1, 2])
        s22 = P[r, 11] + R[j, 2, 2]
        y0 = z[j, 0] - x[r, 0]
        y1 = z[j, 1] - x[r, 1]
        y2 = z[j, 2] - x[r, 2]
        if not s00 > 0.0:
            d2[k] = math.inf
            continue
        l00 = math.sqrt(s00)
        l10 = s10 / l00
        l20 = s20 / l00
        t = s11 - l10 * l10
        if not t > 0.0:
            d2[k] = math.inf
            continue
        l11 = math.sqrt(t)
        l21 = (s21 - l20 * l10) / l11
        t = s22 - l20 * l20 - l21 * l21
        if not t > 0.0:
            d2[k] = math.inf
            continue
        l22 = math.sqrt(t)
        w0 = y0 / l00
        w1 = (y1 - l10 * w0) / l11
        w2 = (y2 - l20 * w0 - l21 * w1) / l22
        d2[k] = w0 * w0 + w1 * w1 + w2 * w2


@njit
def position_innovations(
    x: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    y: np.ndarray,
    S: np.ndarray,
    d2: np.ndarray,
) -> None:
    """Innovations of position measurements: y = z - x_pos, S = P_pos + R, d2 = y^T S^-1 y.

    Pairs as in ``position_d2``; writes y (k, 3), S (k, 3, 3) and d2 (k,) (inf if S is not
    positive definite).
    """
    position_d2(x, P, rows, cols, z, R, d2)
    for k in range(rows.shape[0]):
        r = rows[k]
        j = cols[k]
        for a in range(3):
            y[k, a] = z[j, a] - x[r, a]
            for b in range(3):
                S[k, a, b] = P[r, tri(min(a, b), max(a, b))] + R[j, a, b]


@njit
def update_position(
    x: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    d2: np.ndarray,
) -> int:
    """Joseph-form update of tracks with ENU position measurements (H = [I3 0]), in place.

    Pairs k: track ``rows[k]`` (int64 into x (N, 6), P (N, 21) packed) takes measurement
    ``cols[k]`` (int64 into z (M, 3) metres, R (M, 3, 3) m^2). Pairs are applied in order (a
    row listed twice is updated sequentially). Writes ``d2[k]``, the pre-update squared
    Mahalanobis distance (inf: S not positive definite, pair skipped). Returns the number of
    pairs applied.
    """
    work = new_workspace()
    y = work[_VEC, 0]
    Pf = work[_PF]
    applied = 0
    for k in range(rows.shape[0]):
        r = rows[k]
        j = cols[k]
        for a in range(3):
            y[a] = z[j, a] - x[r, a]
        unpack_row_into(P[r], Pf)
        d2[k], _ = joseph_select_row(x[r], Pf, y, R[j], 3, work)
        pack_row_into(Pf, P[r])
        if d2[k] < math.inf:
            applied += 1
    return applied


@njit
def update_position_velocity(
    x: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    d2: np.ndarray,
) -> int:
    """Joseph-form update with position and reported velocity (H = I6), in place.

    As ``update_position`` but z (M, 6) is [e, n, u, ve, vn, vu] (m, m/s) and R (M, 6, 6)
    their joint covariance (block-diagonal when position and velocity errors are independent).
    """
    work = new_workspace()
    y = work[_VEC, 0]
    Pf = work[_PF]
    applied = 0
    for k in range(rows.shape[0]):
        r = rows[k]
        j = cols[k]
        for a in range(6):
            y[a] = z[j, a] - x[r, a]
        unpack_row_into(P[r], Pf)
        d2[k], _ = joseph_select_row(x[r], Pf, y, R[j], 6, work)
        pack_row_into(Pf, P[r])
        if d2[k] < math.inf:
            applied += 1
    return applied


@njit
def update_linear(
    x: np.ndarray,
    P: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    H: np.ndarray,
    d2: np.ndarray,
) -> int:
    """Joseph-form update with any linear measurement z = H x + noise, in place.

    z (M, m), R (M, m, m), H (m, 6) shared by all pairs, 1 <= m <= 6; pairs as in
    ``update_position``. Returns the number of pairs applied.
    """
    m = H.shape[0]
    work = new_workspace()
    Hw = work[_H]
    Pf = work[_PF]
    for a in range(m):
        for b in range(6):
            Hw[a, b] = H[a, b]
    y = work[_VEC, 0]
    applied = 0
    for k in range(rows.shape[0]):
        r = rows[k]
        j = cols[k]
        for a in range(m):
            s = z[j, a]
            for b in range(6):
                s -= Hw[a, b] * x[r, b]
            y[a] = s
        unpack_row_into(P[r], Pf)
        d2[k], _ = joseph_update_row_any(x[r], Pf, Hw, y, R[j], m, work)
        pack_row_into(Pf, P[r])
        if d2[k] < math.inf:
            applied += 1
    return applied


@njit(inline="always")
def _joseph_pos3(x, P, y0, y1, y2, R, K, HP) -> float:
    """``joseph_select_row`` with m = 3 on a packed row, in place: the same operations in the
    same order (its Cholesky, forward and back substitutions spelled out in scalars, with the
    reciprocal of each diagonal), so bit-identical x and P, and no log det. y0, y1, y2: the
    innovation.

    P (21,): the packed covariance, read where it lies and overwritten with the updated one,
    row by row of its upper triangle; A P is computed entry by entry where it is needed
    instead of stored. HP (3, 6) receives a copy of P's first three rows (H P), which every
    entry reads and the first rows' results overwrite. K (6, 3) is scratch. Returns d2 (inf:
    S is not positive definite or d2 not finite; x and P are not written).

    Inlined into its caller: as a call, its arguments and scratch went through memory for
    every pair (about a fifth of the update's time at 200 pairs)."""
    s00 = P[0] + 0.5 * (R[0, 0] + R[0, 0])
    s10 = P[1] + 0.5 * (R[0, 1] + R[1, 0])
    s20 = P[2] + 0.5 * (R[0, 2] + R[2, 0])
    s11 = P[6] + 0.5 * (R[1, 1] + R[1, 1])
    s21 = P[7] + 0.5 * (R[1, 2] + R[2, 1])
    s22 = P[11] + 0.5 * (R[2, 2] + R[2, 2])
    if not s00 > 0.0:
        return math.inf
    l00 = math.sqrt(s00)
    i00 = 1.0 / l00
    l10 = s10 * i00
    l20 = s20 * i00
    d = s11 - l10 * l10
    if not d > 0.0:
        return math.inf
    l11 = math.sqrt(d)
    i11 = 1.0 / l11
    l21 = (s21 - l20 * l10) * i11
    d = s22 - l20 * l20 - l21 * l21
    if not d > 0.0:
        return math.inf
    l22 = math.sqrt(d)
    i22 = 1.0 / l22
    w0 = y0 * i00
    d2 = 0.0
    d2 += w0 * w0
    w1 = (y1 - l10 * w0) * i11
    d2 += w1 * w1
    w2 = (y2 - l20 * w0 - l21 * w1) * i22
    d2 += w2 * w2
    if not d2 < math.inf:
        return math.inf
    for a in range(3):
        for b in range(6):
            HP[a, b] = P[tri(a, b)] if a <= b else P[tri(b, a)]
    for i in range(6):
        a0 = HP[0, i] * i00  # P[i, a] = HP[a, i]: P is symmetric
        a1 = (HP[1, i] - l10 * a0) * i11
        a2 = (HP[2, i] - l20 * a0 - l21 * a1) * i22
        k2 = a2 * i22
        k1 = (a1 - l21 * k2) * i11
        k0 = (a0 - l10 * k1 - l20 * k2) * i00
        K[i, 0] = k0
        K[i, 1] = k1
        K[i, 2] = k2
        s = 0.0
        s += k0 * y0
        s += k1 * y1
        s += k2 * y2
        x[i] += s
    # P+ = A P + (K R - A P H^T) K^T with A P = P - K P[:3, :], upper triangle only; entry
    # (i, j) is P[e], e counting the packed entries in order.
    e = 0
    for i in range(6):
        k0 = K[i, 0]
        k1 = K[i, 1]
        k2 = K[i, 2]
        ap0 = HP[0, i] - k0 * HP[0, 0] - k1 * HP[1, 0] - k2 * HP[2, 0]
        ap1 = HP[1, i] - k0 * HP[0, 1] - k1 * HP[1, 1] - k2 * HP[2, 1]
        ap2 = HP[2, i] - k0 * HP[0, 2] - k1 * HP[1, 2] - k2 * HP[2, 2]
        r0 = k0 * R[0, 0] + k1 * R[1, 0] + k2 * R[2, 0] - ap0
        r1 = k0 * R[0, 1] + k1 * R[1, 1] + k2 * R[2, 1] - ap1
        r2 = k0 * R[0, 2] + k1 * R[1, 2] + k2 * R[2, 2] - ap2
        j0 = i
        if i < 3:
            # (A P)[i, j] for j < 3 is ap_j, the same expression: not computed twice.
            for j in range(i, 3):
                apij = ap0 if j == 0 else (ap1 if j == 1 else ap2)
                P[e] = apij + r0 * K[j, 0] + r1 * K[j, 1] + r2 * K[j, 2]
                e += 1
            j0 = 3
        for j in range(j0, 6):
            apij = P[e] - k0 * HP[0, j] - k1 * HP[1, j] - k2 * HP[2, j]
            P[e] = apij + r0 * K[j, 0] + r1 * K[j, 1] + r2 * K[j, 2]
            e += 1
    return d2


@njit
def predict_update_pos(
    x: np.ndarray,
    P: np.ndarray,
    t_s: np.ndarray,
    cls: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    t: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    q_h: np.ndarray,
    q_v: np.ndarray,
) -> int:
    """CV predict of track ``rows[k]`` to the time ``t[cols[k]]`` of its position measurement
    (dt clamped at 0: a late detection is taken at the state's time), Joseph update there and
    the state time advanced, for every pair in one pass (each row at most once).

    x (N, 6), P (N, 21) packed, t_s (N,), cls (N,) uint8: the table's arrays, changed in place at
    ``rows``; z (M, 3) ENU metres, R (M, 3, 3); q_h, q_v (n_classes,) per class noise. The
    same arithmetic as ``predict_per_row`` then ``update_position`` (bit-identical). Returns
    the number of pairs applied (a pair whose S is not positive definite is only predicted).
    """
    work = new_workspace()
    HP = work[_PF, :3]
    K = work[_K]
    applied = 0
    for k in range(rows.shape[0]):
        r = rows[k]
        j = cols[k]
        dt = max(t[j] - t_s[r], 0.0)
        c = cls[r]
        xr = x[r]
        Pr = P[r]
        # Predict and update in the packed row.
        cv_predict_packed(xr, Pr, dt, q_h[c], q_v[c])
        d2 = _joseph_pos3(xr, Pr, z[j, 0] - xr[0], z[j, 1] - xr[1], z[j, 2] - xr[2], R[j], K, HP)
        if d2 < math.inf:
            applied += 1
        t_s[r] = max(t[j], t_s[r])
    return applied


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel here on tiny arrays of the real dtypes."""
    x = np.zeros((1, 6))
    P = pack(np.eye(6)[None])
    rows = np.zeros(1, dtype=np.int64)
    dt = np.ones(1)
    z3, R3 = np.zeros((1, 3)), np.eye(3)[None].copy()
    z6, R6 = np.zeros((1, 6)), np.eye(6)[None].copy()
    d2 = np.empty(1)
    predict(x, P, rows, dt, 1.0, 1.0)
    predict_per_row(x, P, rows, dt, dt, dt)
    predict_model(x, P, rows, dt, 0.1, 1.0, 1.0)
    position_d2(x, P, rows, rows, z3, R3, d2)
    position_innovations(x, P, rows, rows, z3, R3, np.empty((1, 3)), np.empty((1, 3, 3)), d2)
    update_position(x, P, rows, rows, z3, R3, d2)
    update_position_velocity(x, P, rows, rows, z6, R6, d2)
    update_linear(x, P, rows, rows, z3, R3, np.eye(3, 6), d2)
    predict_update_pos(x, P, np.zeros(1), np.zeros(1, np.uint8), rows, rows, dt, z3, R3, dt, dt)
