"""Gating: spatial-grid candidates, then the chi-square Mahalanobis gate, as sparse pairs.

This module owns the question "which detection may belong to which track" and nothing else:
it reads track states and detections, never writes a track. Assignment of the pairs lives in
`fusion.kernels.assignment`, filtering in the Kalman kernels.

Each track is predicted in position only, exactly under the nearly-constant-velocity model of
`fusion.models` (continuous white acceleration), from the time of its state to the time of
each candidate detection: p = p0 + dt v0, P_pp = P_pp + dt (P_pv + P_vp) + dt^2 P_vv +
q |dt|^3 / 3. So detections of one batch taken at different times are gated at their own
times, and nothing is written back.

Candidates: detections are hashed into square cells of the east-north plane (key = column,
row), sorted by key; each track looks up the cells within its search radius (a bound on the
gate's extent over the batch's time span, below), one binary search per column of cells. A
track whose search would visit more cells than there are detections scans them all instead.
The search radius is sqrt(gamma * tr(S_max)) + |v_h| * half_span, where tr(S_max) bounds the
trace of the innovation covariance over the batch's time span (the trace is convex in dt, so
its maximum is at an end) and of any detection's covariance; since d2 <= gamma implies
|y|^2 <= gamma * lambda_max(S) <= gamma * tr(S), no pair inside the gate is ever missed
(`tests/test_gating.py` checks it against brute force). The position-only kernel
`gate_pairs_pos` searches a box of half-widths sqrt(gamma * S_aa,max) + |v_a| * half_span per
axis instead (d2 <= gamma implies y_a^2 <= gamma * S_aa, the extent of the gate's ellipsoid
along axis a), half the area of the trace's square for a new track, whose vertical variance
is small.

Measurement kinds (`mode`): MODE_POS, z is a theatre ENU position (m); MODE_POLAR, z is
(range_m, az_rad, el_rad) from a sensor whose frame is `p_s = M p + c`; MODE_BEARING, z is
(az_rad,) or (az_rad, el_rad). Polar and bearing residuals use the exact Jacobian of
`fusion.geo.aer_jacobian_into`, azimuth residuals wrapped to [-pi, pi). For the grid, polar
detections carry their converted ENU position; bearing detections have none, so a bearing batch
is gated against every track in coverage (brute force; bearing batches are small).

Cooperative identity: a detection and a track that both carry an identity (three uint64 words
of the S24 bytes, all zero = none) and differ never form a pair.
"""

from __future__ import annotations

import math

import numpy as np

from fusion.geo import aer_jacobian_into, aer_of, wrap_angle
from fusion.jit import njit
from fusion.kernels.packed import tri

MODE_POS, MODE_POLAR, MODE_BEARING = 0, 1, 2

_KEY_OFFSET = 1 << 30
_KEY_ROW = 1 << 31
# Relative slack of the exact bounds that skip work (the per-axis test of `_d2_pos`, the search
# box of `gate_pairs_pos`): they must never drop a pair the full test keeps, rounding included.
_BOUND_SLACK = 1.0 + 1e-9


def ident_words(ident: np.ndarray) -> np.ndarray:
    """(n, 3) uint64 view of an (n,) S24 identity array (a copy if it is not contiguous)."""
    a = np.ascontiguousarray(ident, dtype="S24")
    return a.view(np.uint64).reshape(a.shape[0], 3)


@njit(inline="always")
def _ident_forbidden(tw, i, dw, j):
    t_has = tw[i, 0] != 0 or tw[i, 1] != 0 or tw[i, 2] != 0
    d_has = dw[j, 0] != 0 or dw[j, 1] != 0 or dw[j, 2] != 0
    if not (t_has and d_has):
        return False
    return tw[i, 0] != dw[j, 0] or tw[i, 1] != dw[j, 1] or tw[i, 2] != dw[j, 2]


@njit
def predict_pos_into(x, P, i, dt_s, q_h, q_v, p, Pp):
    """Position (3,) and its covariance (3, 3) of track row i (P (N, 21) packed), dt_s after
    its state time."""
    adt = abs(dt_s)
    q3 = adt * adt * adt / 3.0
    for a in range(3):
        p[a] = x[i, a] + dt_s * x[i, 3 + a]
        for b in range(3):
            Pp[a, b] = _pp(P, i, a, b, dt_s)
    Pp[0, 0] += q_h * q3
    Pp[1, 1] += q_h * q3
    Pp[2, 2] += q_v * q3


@njit
def pos_trace(P, i, dt_s, q_h, q_v):
    """Trace of the position block of track row i's covariance (P (N, 21) packed) predicted
    dt_s ahead (CV), as `predict_pos_into` would give it, in scalars."""
    t_pp = P[i, 0] + P[i, 6] + P[i, 11]
    # The two position-velocity blocks are each other's transpose: the same three values twice.
    t_pv = P[i, 3] + P[i, 9] + P[i, 14] + P[i, 3] + P[i, 9] + P[i, 14]
    t_vv = P[i, 15] + P[i, 18] + P[i, 20]
    adt = abs(dt_s)
    return t_pp + dt_s * t_pv + dt_s * dt_s * t_vv + (2.0 * q_h + q_v) * adt * adt * adt / 3.0


@njit
def _chol_d2(S, y, m, L):
    """y' S^-1 y for the leading m x m block by Cholesky; -1 when S is not positive definite."""
    for a in range(m):
        for b in range(a + 1):
            s = S[a, b]
            for k in range(b):
                s -= L[a, k] * L[b, k]
            if a == b:
                if s <= 0.0:
                    return -1.0
                L[a, a] = math.sqrt(s)
            else:
                L[a, b] = s / L[b, b]
    # Forward substitution L w = y in scalars (no allocation per pair).
    d2 = 0.0
    w0 = w1 = 0.0
    for a in range(m):
        s = y[a]
        if a >= 1:
            s -= L[a, 0] * w0
        if a >= 2:
            s -= L[a, 1] * w1
        wa = s / L[a, a]
        if a == 0:
            w0 = wa
        elif a == 1:
            w1 = wa
        d2 += wa * wa
    return d2


@njit
def mahalanobis2(mode, p, Pp, z, R, j, m, M, c, y, S, H, J, L):
    """Squared Mahalanobis distance of detection j from a predicted position (p, Pp).

    Scratch arrays y (3,), S (3, 3), H (3, 3), J (3, 3), L (3, 3) are passed in so the hot loop
    allocates nothing. Returns -1 when the innovation covariance is not positive definite.
    """
    if mode == MODE_POS:
        for a in range(3):
            y[a] = z[j, a] - p[a]
            for b in range(3):
                S[a, b] = Pp[a, b] + R[j, a, b]
        return _chol_d2(S, y, 3, L)
    # Sensor-frame position and the Jacobian of (range, az, el) in theatre coordinates.
    s0 = M[0, 0] * p[0] + M[0, 1] * p[1] + M[0, 2] * p[2] + c[0]
    s1 = M[1, 0] * p[0] + M[1, 1] * p[1] + M[1, 2] * p[2] + c[1]
    s2 = M[2, 0] * p[0] + M[2, 1] * p[1] + M[2, 2] * p[2] + c[2]
    rng, az, el = aer_of(s0, s1, s2)
    aer_jacobian_into(s0, s1, s2, J)
    first = 0 if mode == MODE_POLAR else 1  # bearing rows are (az[, el])
    h = (rng, az, el)
    for a in range(m):
        ra = first + a
        for b in range(3):
            H[a, b] = J[ra, 0] * M[0, b] + J[ra, 1] * M[1, b] + J[ra, 2] * M[2, b]
        resid = z[j, a] - h[ra]
        y[a] = wrap_angle(resid) if ra == 1 else resid
    for a in range(m):
        for b in range(m):
            acc = R[j, a, b]
            for k in range(3):
                hk = 0.0
                for l2 in range(3):
                    hk += Pp[k, l2] * H[b, l2]
                acc += H[a, k] * hk
            S[a, b] = acc
    return _chol_d2(S, y, m, L)


@njit
def _lower_bound(a, v):
    """First index of sorted `a` whose value is >= v."""
    lo = 0
    hi = a.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit
def _d2_state(i, si, mode, xs, Ps, ts, q_h, q_v, z, R, det_t, m, M, c, j, w):
    """Squared distance of detection j from state row si of xs/Ps/ts (-1: S not PD)."""
    # A detection older than the track's state is taken at the state's time (see tracker).
    dt = max(det_t[j] - ts[si], 0.0)
    if mode == MODE_POS:
        return _d2_pos(xs, Ps, si, dt, q_h[i], q_v[i], z, R, j, math.inf)
    p, Pp, y, S, H, J, L = w
    predict_pos_into(xs, Ps, si, dt, q_h[i], q_v[i], p, Pp)
    return mahalanobis2(mode, p, Pp, z, R, j, m, M, c, y, S, H, J, L)


@njit(inline="always")
def _pp(P, r, a, b, dt):
    """Element (a, b) of the position block of packed row r's covariance predicted dt ahead
    (without the process noise): P_ab + dt (P_a,3+b + P_3+a,b) + dt^2 P_3+a,3+b."""
    lo = min(a, b)
    hi = max(a, b)
    return (
        P[r, tri(lo, hi)]
        + dt * (P[r, tri(a, 3 + b)] + P[r, tri(b, 3 + a)])
        + dt * dt * P[r, tri(3 + lo, 3 + hi)]
    )


@njit(inline="always")
def _d2_pos(x, P, r, dt, q_h, q_v, z, R, j, gate2):
    """The position case of `mahalanobis2` after `predict_pos_into`, in scalars: it runs on
    every candidate pair, so no scratch arrays and a 3x3 Cholesky spelled out (and inlined
    into the loops that call it).

    A pair that cannot be inside the gate gate2 (pass inf for none) returns inf without the
    Cholesky: d2 >= y_a^2 / S_aa for each axis a (Cauchy-Schwarz in the S^-1 inner product),
    so y_a^2 > gate2 S_aa on any axis means d2 > gate2 (with a relative margin of 1e-9
    against rounding, so no pair the full computation would keep is ever dropped). Never
    weaker than the trace bound |y|^2 > gate2 tr(S) it replaces (the largest of the three
    ratios is at least the ratio of the sums). Most candidates of a wide gate end here."""
    q3 = dt * dt * dt / 3.0
    s00 = _pp(P, r, 0, 0, dt) + q_h * q3 + R[j, 0, 0]
    s11 = _pp(P, r, 1, 1, dt) + q_h * q3 + R[j, 1, 1]
    s22 = _pp(P, r, 2, 2, dt) + q_v * q3 + R[j, 2, 2]
    y0 = z[j, 0] - (x[r, 0] + dt * x[r, 3])
    y1 = z[j, 1] - (x[r, 1] + dt * x[r, 4])
    y2 = z[j, 2] - (x[r, 2] + dt * x[r, 5])
    g = gate2 * _BOUND_SLACK
    if gate2 < math.inf and (y0 * y0 > g * s00 or y1 * y1 > g * s11 or y2 * y2 > g * s22):
        return math.inf
    s10 = _pp(P, r, 1, 0, dt) + R[j, 1, 0]
    s20 = _pp(P, r, 2, 0, dt) + R[j, 2, 0]
    s21 = _pp(P, r, 2, 1, dt) + R[j, 2, 1]
    if s00 <= 0.0:
        return -1.0
    l00 = math.sqrt(s00)
    l10 = s10 / l00
    l20 = s20 / l00
    t = s11 - l10 * l10
    if t <= 0.0:
        return -1.0
    l11 = math.sqrt(t)
    l21 = (s21 - l20 * l10) / l11
    t = s22 - l20 * l20 - l21 * l21
    if t <= 0.0:
        return -1.0
    l22 = math.sqrt(t)
    w0 = y0 / l00
    w1 = (y1 - l10 * w0) / l11
    w2 = (y2 - l20 * w0 - l21 * w1) / l22
    return w0 * w0 + w1 * w1 + w2 * w2


@njit
def _gate_one(
    i,
    ti,
    mode,
    x,
    P,
    t_s,
    alt0,
    altn,
    xa,
    Pa,
    ta,
    q_h,
    q_v,
    gate2,
    z,
    R,
    det_t,
    m,
    M,
    c,
    tw,
    dw,
    j,
    out,
    n,
    w,
):
    """Gate track i (table row ti) against detection j; an IMM track is gated from each of
    its mode predictions and keeps the smallest distance."""
    if _ident_forbidden(tw, ti, dw, j):
        return n
    if altn[i] == 0:
        d2 = _d2_state(i, ti, mode, x, P, t_s, q_h, q_v, z, R, det_t, m, M, c, j, w)
    else:
        d2 = -1.0
        for k in range(alt0[i], alt0[i] + altn[i]):
            dk = _d2_state(i, k, mode, xa, Pa, ta, q_h, q_v, z, R, det_t, m, M, c, j, w)
            if dk >= 0.0 and (d2 < 0.0 or dk < d2):
                d2 = dk
    if d2 >= 0.0 and d2 <= gate2[i]:
        out_t, out_d, out_c = out
        if n < out_t.shape[0]:
            out_t[n] = i
            out_d[n] = j
            out_c[n] = d2
        n += 1
    return n


@njit
def gate_pairs(
    mode,
    rows,
    x,
    P,
    t_s,
    alt0,
    altn,
    xa,
    Pa,
    ta,
    q_h,
    q_v,
    gate2,
    z,
    R,
    det_t,
    det_pos,
    det_tr,
    M,
    c,
    tw,
    dw,
    cell_m,
    out_t,
    out_d,
    out_c,
):
    """Gated (track, detection) pairs of one batch; returns the number of pairs found.

    rows (nt,) int64: table rows of the tracks to gate; x, P (N, 21) packed, t_s: the table's
    arrays.
    alt0, altn (nt,) int64: when altn[i] > 0, track i is gated from rows alt0[i] ..
    alt0[i] + altn[i] - 1 of xa (k, 6), Pa (k, 21) packed, ta (k,) instead of the table (an IMM
    track's mode predictions), with the smallest distance kept. q_h, q_v, gate2 (nt,):
    per-track process noise and chi-square threshold for this measurement's dimension.
    z (nd, m), R (nd, m, m), det_t (nd,): the detections as measured; det_pos (nd, 3): their
    theatre ENU positions for the grid (ignored for bearings); det_tr (nd,): trace of their
    position covariance in ENU (m^2). M, c: sensor transform (polar, bearing). tw (N, 3),
    dw (nd, 3): identity words. Pairs are written to out_t (index into rows), out_d, out_c
    (squared distance) up to their capacity; a return value above the capacity means the
    caller must retry with larger arrays. Pairs come out by track, then by detection key: a
    deterministic order.
    """
    nt = rows.shape[0]
    nd = z.shape[0]
    m = z.shape[1]
    n = 0
    if nt == 0 or nd == 0:
        return 0
    w = (
        np.empty(3),
        np.empty((3, 3)),
        np.empty(3),
        np.empty((3, 3)),
        np.empty((3, 3)),
        np.empty((3, 3)),
        np.zeros((3, 3)),
    )
    out = (out_t, out_d, out_c)
    p, Pp = w[0], w[1]
    if mode == MODE_BEARING:
        for i in range(nt):
            for j in range(nd):
                n = _gate_one(
                    i,
                    rows[i],
                    mode,
                    x,
                    P,
                    t_s,
                    alt0,
                    altn,
                    xa,
                    Pa,
                    ta,
                    q_h,
                    q_v,
                    gate2,
                    z,
                    R,
                    det_t,
                    m,
                    M,
                    c,
                    tw,
                    dw,
                    j,
                    out,
                    n,
                    w,
                )
        return n
    # Grid of detections: key = (column + offset) * ROW + (row + offset), sorted.
    keys = np.empty(nd, np.int64)
    t_lo = det_t[0]
    t_hi = det_t[0]
    tr_max = 0.0
    for j in range(nd):
        ix = int(math.floor(det_pos[j, 0] / cell_m))
        iy = int(math.floor(det_pos[j, 1] / cell_m))
        keys[j] = (ix + _KEY_OFFSET) * _KEY_ROW + (iy + _KEY_OFFSET)
        t_lo = min(t_lo, det_t[j])
        t_hi = max(t_hi, det_t[j])
        tr_max = max(tr_max, det_tr[j])
    order = np.argsort(keys, kind="mergesort")
    skeys = keys[order]
    for i in range(nt):
        ti = rows[i]
        # The box that holds the gate of every state the track is gated from, over the
        # batch's span (dt clamped like the pairs' own).
        e_lo = np.inf
        e_hi = -np.inf
        n_lo = np.inf
        n_hi = -np.inf
        n_states = max(altn[i], 1)
        for k in range(n_states):
            if altn[i] == 0:
                xs, Ps, ts, si = x, P, t_s, ti
            else:
                xs, Ps, ts, si = xa, Pa, ta, alt0[i] + k
            dt_a = max(t_lo - ts[si], 0.0)
            dt_b = max(t_hi - ts[si], 0.0)
            tr_pp = 0.0
            for dt in (dt_a, dt_b):
                predict_pos_into(xs, Ps, si, dt, q_h[i], q_v[i], p, Pp)
                tr_pp = max(tr_pp, Pp[0, 0] + Pp[1, 1] + Pp[2, 2])
            vh = math.hypot(xs[si, 3], xs[si, 4])
            radius = math.sqrt(gate2[i] * (tr_pp + tr_max)) + vh * 0.5 * (dt_b - dt_a)
            dt_mid = 0.5 * (dt_a + dt_b)
            e0 = xs[si, 0] + dt_mid * xs[si, 3]
            n0 = xs[si, 1] + dt_mid * xs[si, 4]
            e_lo = min(e_lo, e0 - radius)
            e_hi = max(e_hi, e0 + radius)
            n_lo = min(n_lo, n0 - radius)
            n_hi = max(n_hi, n0 + radius)
        ix_lo = int(math.floor(e_lo / cell_m))
        ix_hi = int(math.floor(e_hi / cell_m))
        iy_lo = int(math.floor(n_lo / cell_m))
        iy_hi = int(math.floor(n_hi / cell_m))
        n_cols = ix_hi - ix_lo + 1
        if n_cols > nd or n_cols * (iy_hi - iy_lo + 1) > nd:
            for q in range(nd):
                n = _gate_one(
                    i,
                    ti,
                    mode,
                    x,
                    P,
                    t_s,
                    alt0,
                    altn,
                    xa,
                    Pa,
                    ta,
                    q_h,
                    q_v,
                    gate2,
                    z,
                    R,
                    det_t,
                    m,
                    M,
                    c,
                    tw,
                    dw,
                    order[q],
                    out,
                    n,
                    w,
                )
            continue
        for ix in range(ix_lo, ix_hi + 1):
            k_lo = (ix + _KEY_OFFSET) * _KEY_ROW + (iy_lo + _KEY_OFFSET)
            k_hi = (ix + _KEY_OFFSET) * _KEY_ROW + (iy_hi + _KEY_OFFSET)
            a = _lower_bound(skeys, k_lo)
            b = _lower_bound(skeys, k_hi + 1)
            for q in range(a, b):
                n = _gate_one(
                    i,
                    ti,
                    mode,
                    x,
                    P,
                    t_s,
                    alt0,
                    altn,
                    xa,
                    Pa,
                    ta,
                    q_h,
                    q_v,
                    gate2,
                    z,
                    R,
                    det_t,
                    m,
                    M,
                    c,
                    tw,
                    dw,
                    order[q],
                    out,
                    n,
                    w,
                )
    return n


@njit
def gate_pairs_pos(
    rows, x, P, t_s, q_h, q_v, gate2, z, R, det_t, tw, dw, cell_m, out_t, out_d, out_c
):
    """`gate_pairs` for the common case, specialised: position measurements (z in theatre
    ENU, also the grid positions) and every track gated from the table. The same pairs (in
    another, also deterministic, order: tracks in the order of `rows`); about four times
    faster, since nothing but scalars crosses a call in the inner loop."""
    nt = rows.shape[0]
    nd = z.shape[0]
    n = 0
    cap = out_t.shape[0]
    if nt == 0 or nd == 0:
        return 0
    # Cells of the detections, and their bounding box of cells.
    cx = np.empty(nd, np.int64)
    cy = np.empty(nd, np.int64)
    t_lo = det_t[0]
    t_hi = det_t[0]
    r_e_max = 0.0  # the largest east and north variances of the detections
    r_n_max = 0.0
    for j in range(nd):
        cx[j] = int(math.floor(z[j, 0] / cell_m))
        cy[j] = int(math.floor(z[j, 1] / cell_m))
        t_lo = min(t_lo, det_t[j])
        t_hi = max(t_hi, det_t[j])
        r_e_max = max(r_e_max, R[j, 0, 0])
        r_n_max = max(r_n_max, R[j, 1, 1])
    x0 = cx.min()
    y0 = cy.min()
    nx = cx.max() - x0 + 1
    ny = cy.max() - y0 + 1
    # A dense cell index (CSR: the detections of cell (ix, iy) are start[c] .. start[c + 1]
    # with c = (ix - x0) * ny + (iy - y0), so a column of cells is one contiguous run) when
    # the box is not much larger than the batch; else sorted keys and binary searches.
    dense = nx * ny <= 4 * nd + 4096
    if dense:
        cell = (cx - x0) * ny + (cy - y0)
        start = np.zeros(nx * ny + 1, np.int64)
        for j in range(nd):
            start[cell[j] + 1] += 1
        for c in range(nx * ny):
            start[c + 1] += start[c]
        fill = start[:-1].copy()
        order = np.empty(nd, np.int64)
        for j in range(nd):  # counting sort: stable, so deterministic
            order[fill[cell[j]]] = j
            fill[cell[j]] += 1
        skeys = np.empty(0, np.int64)
    else:
        keys = np.empty(nd, np.int64)
        for j in range(nd):
            keys[j] = (cx[j] + _KEY_OFFSET) * _KEY_ROW + (cy[j] + _KEY_OFFSET)
        order = np.argsort(keys, kind="mergesort")
        skeys = keys[order]
        start = np.empty(0, np.int64)
    # Detections copied into cell order: the candidates of one track are then contiguous in
    # memory, and the next track's are close by.
    zs = np.empty((nd, 3))
    Rs = np.empty((nd, 3, 3))
    ts_d = np.empty(nd)
    dws = np.empty((nd, 3), np.uint64)
    for q in range(nd):
        j = order[q]
        ts_d[q] = det_t[j]
        for a in range(3):
            zs[q, a] = z[j, a]
            dws[q, a] = dw[j, a]
            for b in range(3):
                Rs[q, a, b] = R[j, a, b]
    # Tracks are visited in table order: the tracker keeps its table in spatial order (new
    # tracks are born in `fusion.kernels.scan.spatial_order`, the table is repacked in it), so
    # table order is already a walk through neighbouring cells, and the table's rows, the
    # largest data here, are read sequentially.
    for i in range(nt):
        ti = rows[i]
        dt_a = max(t_lo - t_s[ti], 0.0)
        dt_b = max(t_hi - t_s[ti], 0.0)
        # Every pair in the gate lies within rad_e of e0 east and rad_n of n0 north: on each
        # axis |y_a| <= sqrt(gate2 S_aa) (see `_d2_pos`), S_aa at most the predicted variance
        # at an end of the batch's time span (it is convex in dt) plus the largest detection
        # variance, and the prediction moves by |v_a| dt from the span's middle. Candidates
        # of the cells' corners, or of a brute-force scan, outside the box are skipped before
        # any arithmetic.
        q3 = dt_a * dt_a * dt_a / 3.0
        v_e = _pp(P, ti, 0, 0, dt_a) + q_h[i] * q3
        v_n = _pp(P, ti, 1, 1, dt_a) + q_h[i] * q3
        if dt_b != dt_a:  # a batch of one time (a scan) needs one
            q3 = dt_b * dt_b * dt_b / 3.0
            v_e = max(v_e, _pp(P, ti, 0, 0, dt_b) + q_h[i] * q3)
            v_n = max(v_n, _pp(P, ti, 1, 1, dt_b) + q_h[i] * q3)
        half_s = 0.5 * (dt_b - dt_a)
        rad_e = math.sqrt(gate2[i] * (v_e + r_e_max)) + abs(x[ti, 3]) * half_s
        rad_n = math.sqrt(gate2[i] * (v_n + r_n_max)) + abs(x[ti, 4]) * half_s
        dt_mid = 0.5 * (dt_a + dt_b)
        e0 = x[ti, 0] + dt_mid * x[ti, 3]
        n0 = x[ti, 1] + dt_mid * x[ti, 4]
        box_e = rad_e * _BOUND_SLACK + 1e-6
        box_n = rad_n * _BOUND_SLACK + 1e-6
        ix_lo = int(math.floor((e0 - box_e) / cell_m))
        ix_hi = int(math.floor((e0 + box_e) / cell_m))
        iy_lo = int(math.floor((n0 - box_n) / cell_m))
        iy_hi = int(math.floor((n0 + box_n) / cell_m))
        if dense:
            ix_lo = max(ix_lo, x0)
            ix_hi = min(ix_hi, x0 + nx - 1)
            iy_lo = max(iy_lo, y0)
            iy_hi = min(iy_hi, y0 + ny - 1)
            if iy_lo > iy_hi:
                continue
        n_cols = ix_hi - ix_lo + 1
        brute = n_cols > nd or n_cols * (iy_hi - iy_lo + 1) > nd
        for ix in range(ix_lo, ix_hi + 1):
            if brute:
                a, b = 0, nd
            elif dense:
                c0 = (ix - x0) * ny - y0
                a = start[c0 + iy_lo]
                b = start[c0 + iy_hi + 1]
            else:
                base = (ix + _KEY_OFFSET) * _KEY_ROW + _KEY_OFFSET
                a = _lower_bound(skeys, base + iy_lo)
                b = _lower_bound(skeys, base + iy_hi + 1)
            for q in range(a, b):
                if abs(zs[q, 0] - e0) > box_e or abs(zs[q, 1] - n0) > box_n:
                    continue
                if _ident_forbidden(tw, ti, dws, q):
                    continue
                dt = max(ts_d[q] - t_s[ti], 0.0)
                d2 = _d2_pos(x, P, ti, dt, q_h[i], q_v[i], zs, Rs, q, gate2[i])
                if d2 >= 0.0 and d2 <= gate2[i]:
                    if n < cap:
                        out_t[n] = i
                        out_d[n] = order[q]
                        out_c[n] = d2
                    n += 1
            if brute:
                break
    return n


def gate(
    mode: int,
    rows: np.ndarray,
    x: np.ndarray,
    P: np.ndarray,
    t_s: np.ndarray,
    q_h: np.ndarray,
    q_v: np.ndarray,
    gate2: np.ndarray,
    z: np.ndarray,
    R: np.ndarray,
    det_t: np.ndarray,
    det_pos: np.ndarray,
    det_tr: np.ndarray,
    M: np.ndarray,
    c: np.ndarray,
    track_ident_words: np.ndarray,
    det_ident_words: np.ndarray,
    cell_m: float,
    alt: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run `gate_pairs`, growing the output until it fits; returns (pair_t, pair_d, d2).

    `alt` = (alt0 (nt,), altn (nt,), xa (k, 6), Pa (k, 21), ta (k,)): states to gate some
    tracks from instead of the table's (see `gate_pairs`); None gates every track from the
    table.
    """
    if cell_m <= 0:
        raise ValueError(f"cell_m must be > 0, got {cell_m}")
    if alt is None:
        none = np.zeros(rows.shape[0], np.int64)
        alt = (none, none, np.zeros((0, 6)), np.zeros((0, 21)), np.zeros(0))
    cap = max(64, 4 * (rows.shape[0] + z.shape[0]))
    fast = mode == MODE_POS and not np.any(alt[1])
    while True:
        out_t = np.empty(cap, np.int64)
        out_d = np.empty(cap, np.int64)
        out_c = np.empty(cap, np.float64)
        if fast:
            n = gate_pairs_pos(
                rows,
                x,
                P,
                t_s,
                q_h,
                q_v,
                gate2,
                z,
                R,
                det_t,
                track_ident_words,
                det_ident_words,
                float(cell_m),
                out_t,
                out_d,
                out_c,
            )
            if n <= cap:
                return out_t[:n], out_d[:n], out_c[:n]
            cap = n
            continue
        n = gate_pairs(
            mode,
            rows,
            x,
            P,
            t_s,
            *alt,
            q_h,
            q_v,
            gate2,
            z,
            R,
            det_t,
            det_pos,
            det_tr,
            M,
            c,
            track_ident_words,
            det_ident_words,
            float(cell_m),
            out_t,
            out_d,
            out_c,
        )
        if n <= cap:
            return out_t[:n], out_d[:n], out_c[:n]
        cap = n
