"""Pruning kernels: tracks the per-scan lifecycle cannot remove by itself.

This module owns two rules that `fusion.kernels.lifecycle` (misses, coast time, covariance)
does not cover, both applied by `fusion.tracker.Tracker.step`:

- Duplicates. Two firm tracks of one target (a second track started while the first was
  coasting, or from two reports of one target in one batch) both keep being updated when
  the target's reports alternate between them; with sensors whose silence says nothing
  (position reports without a declared coverage) neither ever misses. `duplicate_pairs`
  finds the pairs of firm tracks whose whole states (position and velocity), predicted to a
  common time, differ by less than a chi-square threshold under the sum of their
  covariances: a difference that says nothing. The tracker deletes one of a pair (the
  younger) once the pair has been found on several consecutive checks, so two targets that
  merely cross (different velocities) or pass close once are never merged.
- Tentative tracks seen only by such silent sensors: with no scored scans they cannot fail
  M-of-N, so `tentative_timeouts` deletes them after their class's `tentative_coast_s`
  without an update.
"""

from __future__ import annotations

import math

import numpy as np

from fusion.jit import njit
from fusion.kernels.kalman import cholesky_in_place, mahalanobis_sq
from fusion.kernels.lifecycle import COASTING, CONFIRMED, FREE, TENTATIVE, deletion_mask
from fusion.kernels.packed import unpack_row_into
from fusion.models import cv_predict_into


@njit
def _cell(v_m, cell_m):
    return min(max(int(math.floor(v_m / cell_m)) + (1 << 20), 0), (1 << 21) - 1)


@njit
def _d2_sum(xa, Pa, xb, Pb, S, y):
    """(xa - xb)^T (Pa + Pb)^-1 (xa - xb) over the 6 state components (inf if not PD);
    S (6, 6) and y (6,) are scratch."""
    for i in range(6):
        y[i] = xa[i] - xb[i]
        for j in range(6):
            S[i, j] = Pa[i, j] + Pb[i, j]
    if not cholesky_in_place(S, 6):
        return np.inf
    return mahalanobis_sq(S, y, 6, y)


@njit
def duplicate_pairs(
    rows, t_ref_s, x, P, t_s, cls, ident_words, q_h, q_v, d2_max, sep_max_m, min_speed_mps
):
    """Pairs (a, b) of table rows among `rows` (ascending) that look like one target.

    x (N, 6), P (N, 21) packed: the table's states. Each track is predicted (CV, its class's
    process noise; nothing written back) to
    t_ref_s (or kept at its own time if later); a pair qualifies when the horizontal distance
    is under sep_max_m and the 6-D state difference's Mahalanobis square under the sum of the
    two covariances is under d2_max. Both tracks must move (horizontal speed of at least
    min_speed_mps): two stationary targets side by side (moored vessels, parked aircraft) are
    common and their tracks alike; two moving targets with one state are one target. Tracks
    holding two different cooperative identities (ident_words (N, 3) uint64, all zero =
    none) never pair. Returns (a, b, d2) with a < b,
    sorted by (a, b): deterministic for the same table.
    """
    n = rows.shape[0]
    # Predicted positions first (x + dt v, as cv_predict_into computes them); the whole
    # predicted state and covariance only for the tracks that have a neighbour within reach
    # (few, often none: the arrays are allocated on first need).
    xs = np.empty((0, 6))
    Ps = np.empty((0, 6, 6))
    # One allocation per dtype, rows as views: this runs on every check, mostly on few tracks.
    fw = np.empty((3, n))
    dts, pe, pn = fw[0], fw[1], fw[2]
    iw = np.empty((2, n), np.int64)
    keys, order = iw[0], iw[1]
    bw = np.zeros((2, n), np.bool_)
    done, moving = bw[0], bw[1]
    kx_lo = (1 << 21) - 1
    kx_hi = 0
    ky_lo = (1 << 21) - 1
    ky_hi = 0
    for k in range(n):
        r = rows[k]
        dt = max(t_ref_s - t_s[r], 0.0)
        dts[k] = dt
        pe[k] = x[r, 0] + dt * x[r, 3]
        pn[k] = x[r, 1] + dt * x[r, 4]
        kx = _cell(pe[k], sep_max_m)
        ky = _cell(pn[k], sep_max_m)
        keys[k] = (kx << 21) | ky
        kx_lo = min(kx_lo, kx)
        kx_hi = max(kx_hi, kx)
        ky_lo = min(ky_lo, ky)
        ky_hi = max(ky_hi, ky)
    nx = kx_hi - kx_lo + 1
    ny = ky_hi - ky_lo + 1
    if n and nx + ny <= 4 * n + 256:
        # Two stable counting sorts (by ky, then by kx) of a few columns and rows of cells:
        # the stable order of the keys, as the sorts below give it, without their n log n.
        tmp = np.empty(n, np.int64)
        cnt = np.zeros(max(nx, ny) + 1, np.int64)
        for k in range(n):
            cnt[(keys[k] & ((1 << 21) - 1)) - ky_lo + 1] += 1
        for c in range(ny):
            cnt[c + 1] += cnt[c]
        for k in range(n):
            c = (keys[k] & ((1 << 21) - 1)) - ky_lo
            tmp[cnt[c]] = k
            cnt[c] += 1
        cnt[: nx + 1] = 0
        for k in range(n):
            cnt[(keys[k] >> 21) - kx_lo + 1] += 1
        for c in range(nx):
            cnt[c + 1] += cnt[c]
        for v in range(n):
            k = tmp[v]
            c = (keys[k] >> 21) - kx_lo
            order[cnt[c]] = k
            cnt[c] += 1
    elif n < (1 << 21):
        # Keys are below 2^42 (_cell): key * 2^21 + index is unique, so any sort of it gives
        # the stable order of the keys; a quicksort of it is about twice a merge sort's speed.
        comp = np.empty(n, np.int64)
        for k in range(n):
            comp[k] = (keys[k] << 21) | k
        comp.sort()
        for k in range(n):
            order[k] = comp[k] & ((1 << 21) - 1)
    else:
        order = np.argsort(keys, kind="mergesort")
    sk = keys[order]
    cap = 16
    pa = np.empty(cap, np.int64)
    pb = np.empty(cap, np.int64)
    pd = np.empty(cap, np.float64)
    m = 0
    Sy = np.empty((7, 6))
    S, y = Sy[:6], Sy[6]
    sep2 = sep_max_m * sep_max_m
    v2_min = min_speed_mps * min_speed_mps
    for k in range(n):
        moving[k] = not x[rows[k], 3] ** 2 + x[rows[k], 4] ** 2 < v2_min
    # Tracks visited in key order; each pair is looked at once, from the first of the two in
    # that order: the rest of its own cell and the cell above it in its column (one run of
    # the sorted keys from the next position), and the three cells (kx + 1, ky - 1 .. ky + 1)
    # of the next column (one run too, with bounds that only move forward).
    lo1 = 0
    hi1 = 0
    for v in range(n):
        k = order[v]
        if not moving[k]:
            continue
        kx = sk[v] >> 21
        ky = sk[v] & ((1 << 21) - 1)
        base1 = (kx + 1) << 21
        while lo1 < n and sk[lo1] < base1 + ky - 1:
            lo1 += 1
        hi1 = max(hi1, lo1)
        while hi1 < n and sk[hi1] <= base1 + ky + 1:
            hi1 += 1
        hi0 = v + 1
        while hi0 < n and sk[hi0] <= sk[v] + 1:
            hi0 += 1
        for run in range(2):
            q0, q1 = (v + 1, hi0) if run == 0 else (lo1, hi1)
            for q in range(q0, q1):
                j = order[q]
                if not moving[j]:
                    continue
                de = pe[k] - pe[j]
                dn = pn[k] - pn[j]
                if de * de + dn * dn > sep2:
                    continue
                u0, u1 = (k, j) if k < j else (j, k)  # (lower row, higher row)
                ra, rb = rows[u0], rows[u1]
                ia = ident_words[ra, 0] | ident_words[ra, 1] | ident_words[ra, 2]
                ib = ident_words[rb, 0] | ident_words[rb, 1] | ident_words[rb, 2]
                if ia != 0 and ib != 0:
                    same = True
                    for w in range(3):
                        if ident_words[ra, w] != ident_words[rb, w]:
                            same = False
                    if not same:
                        continue
                if xs.shape[0] == 0:
                    xs = np.empty((n, 6))
                    Ps = np.empty((n, 6, 6))
                for u in (u0, u1):
                    if not done[u]:
                        ru = rows[u]
                        for i in range(6):
                            xs[u, i] = x[ru, i]
                        unpack_row_into(P[ru], Ps[u])
                        c = cls[ru]
                        cv_predict_into(xs[u], Ps[u], dts[u], q_h[c], q_v[c])
                        done[u] = True
                d2 = _d2_sum(xs[u0], Ps[u0], xs[u1], Ps[u1], S, y)
                if d2 < d2_max:
                    if m == cap:
                        cap *= 2
                        pa2 = np.empty(cap, np.int64)
                        pb2 = np.empty(cap, np.int64)
                        pd2 = np.empty(cap, np.float64)
                        pa2[:m] = pa[:m]
                        pb2[:m] = pb[:m]
                        pd2[:m] = pd[:m]
                        pa, pb, pd = pa2, pb2, pd2
                    pa[m] = ra
                    pb[m] = rb
                    pd[m] = d2
                    m += 1
    if m == 0:  # the common case
        return pa[:0], pb[:0], pd[:0]
    # a is the lower row of each pair: sort by (a, b).
    big = np.int64(x.shape[0])
    o = np.argsort(pa[:m] * big + pb[:m], kind="mergesort")
    return pa[:m][o], pb[:m][o], pd[:m][o]


@njit
def tentative_timeouts(rows, t_now_s, t_s, status, sensors, scored_mask, cls, coast_s, out):
    """out[k] |= the tentative track at rows[k] was only seen by sensors outside scored_mask
    (sensor bits of the sensors that have counted misses) and has had no update for longer
    than its class's coast_s (0: rule off for the class)."""
    for k in range(rows.shape[0]):
        r = rows[k]
        if status[r] != TENTATIVE or (sensors[r] & scored_mask) != 0:
            continue
        c = cls[r]
        if coast_s[c] > 0.0 and t_now_s - t_s[r] > coast_s[c]:
            out[k] = True


@njit
def deleted_slots(
    t_now_s,
    x,
    P,
    t_s,
    status,
    hist,
    nscan,
    misses,
    cls,
    sensors,
    scored_mask,
    confirm_m,
    confirm_n,
    max_misses,
    max_coast_s,
    max_pos_sigma_m,
    q_h,
    q_v,
    coast_s,
):
    """Step 8's deletions in one call: the active slots (ascending) that
    `fusion.kernels.lifecycle.deletion_mask` or `tentative_timeouts` delete at t_now_s (the
    same two kernels on the same rows; one dispatch instead of four numpy calls and two)."""
    n = 0
    for r in range(status.shape[0]):
        if status[r] != FREE:
            n += 1
    active = np.empty(n, np.int64)
    k = 0
    for r in range(status.shape[0]):
        if status[r] != FREE:
            active[k] = r
            k += 1
    dead = np.zeros(n, np.bool_)
    deletion_mask(
        active, t_now_s, x, P, t_s, status, hist, nscan, misses, cls, confirm_m, confirm_n,
        max_misses, max_coast_s, max_pos_sigma_m, q_h, q_v, dead,
    )  # fmt: skip
    tentative_timeouts(active, t_now_s, t_s, status, sensors, scored_mask, cls, coast_s, dead)
    return active[dead]


@njit
def firm_duplicate_pairs(
    status, t_ref_s, x, P, t_s, cls, ident_words, q_h, q_v, d2_max, sep_max_m, min_speed_mps,
    still,
):  # fmt: skip
    """`duplicate_pairs` over the firm (confirmed or coasting) slots, ascending; no pairs
    when there are fewer than two.

    still (n_classes,) bool: the classes whose stationary duplicates merge too
    (`ClassParams.merge_stationary`). When no firm track is of such a class (the common
    case), the speed floor min_speed_mps is applied inside `duplicate_pairs`; otherwise every
    pair comes back from it and a pair is kept when both tracks are of such classes or both
    move at min_speed_mps (the per-class rule, in one pass here rather than a numpy pass over
    the table per check)."""
    rows = np.empty(status.shape[0], np.int64)
    n = 0
    any_still = False
    for r in range(status.shape[0]):
        if status[r] == CONFIRMED or status[r] == COASTING:
            rows[n] = r
            n += 1
            if still[cls[r]]:
                any_still = True
    rows = rows[: n if n >= 2 else 0]
    a, b, d2 = duplicate_pairs(
        rows, t_ref_s, x, P, t_s, cls, ident_words, q_h, q_v, d2_max, sep_max_m,
        0.0 if any_still else min_speed_mps,
    )  # fmt: skip
    if not any_still or a.shape[0] == 0:
        return a, b, d2
    v2_min = min_speed_mps * min_speed_mps
    keep = np.empty(a.shape[0], np.bool_)
    for k in range(a.shape[0]):
        ra = a[k]
        rb = b[k]
        both_still = still[cls[ra]] and still[cls[rb]]
        fast_a = x[ra, 3] * x[ra, 3] + x[ra, 4] * x[ra, 4] >= v2_min
        fast_b = x[rb, 3] * x[rb, 3] + x[rb, 4] * x[rb, 4] >= v2_min
        keep[k] = both_still or (fast_a and fast_b)
    return a[keep], b[keep], d2[keep]
