"""One scan of a position batch in one kernel: gate, assign, predict + update, score.

This module owns the fused form of steps 4 to 6 of `fusion.tracker.Tracker.step` for the
common batch: ENU positions (no reported velocity), no cooperative identity in the batch and
no IMM track in the table. It runs exactly what the general path runs, in the same order and
with the same kernels (`gate_pairs_pos`, `gnn_clusters`, `predict_update_pos`, `score_scan`),
so the tracks come out bit-identical; it only saves the Python and numpy glue between them
(about thirty small array operations per scan, most of the cost of a scan of a few hundred
detections). For a batch whose detections carry no class, `scan_step_pos` also runs steps 7
and 8 (births, deletions) and finds the duplicate pairs of a due duplicate check
(`fusion.kernels.prune.firm_duplicate_pairs`; `fusion.tracker_prune` merges them).
"""

from __future__ import annotations

import numpy as np

from fusion.jit import njit
from fusion.kernels.assignment import gnn_clusters
from fusion.kernels.gating import gate_pairs_pos
from fusion.kernels.kalman import predict_update_pos
from fusion.kernels.lifecycle import confirm_new, free_slots, initiate, score_scan
from fusion.kernels.prune import deleted_slots, firm_duplicate_pairs

CONFIRMED, COASTING = 2, 3


@njit
def _gate_assign(
    gate_rows, gate_dets, nd_all, x, P, t_s, cls, tw, z, R, t, gate2_cls, q_h_cls, q_v_cls,
    cell_cls, out_rows, out_cols, n_out,
):  # fmt: skip
    """Gate `gate_rows` against `gate_dets` (indices into the batch) and solve GNN per cluster;
    appends the assigned (row, detection) pairs to out_rows/out_cols from n_out. Returns
    (n_out, pairs, clusters)."""
    nt = gate_rows.shape[0]
    nd = gate_dets.shape[0]
    n_cls = gate2_cls.shape[0]
    gate2 = np.empty(nt)
    q_h = np.empty(nt)
    q_v = np.empty(nt)
    counts = np.zeros(n_cls, np.int64)
    for i in range(nt):
        c = cls[gate_rows[i]]
        gate2[i] = gate2_cls[c]
        q_h[i] = q_h_cls[c]
        q_v[i] = q_v_cls[c]
        counts[c] += 1
    best = 0  # the most common class (the first of equals, as np.argmax) sets the grid cell
    for c in range(n_cls):
        if counts[c] > counts[best]:
            best = c
    cell_m = cell_cls[best]
    if nd == nd_all:
        zg, Rg, tg = z, R, t
    else:
        zg = np.empty((nd, 3))
        Rg = np.empty((nd, 3, 3))
        tg = np.empty(nd)
        for q in range(nd):
            j = gate_dets[q]
            tg[q] = t[j]
            for a in range(3):
                zg[q, a] = z[j, a]
                for b in range(3):
                    Rg[q, a, b] = R[j, a, b]
    dw = np.zeros((nd, 3), np.uint64)
    cap = max(64, 4 * (nt + nd))
    while True:
        pt = np.empty(cap, np.int64)
        pd = np.empty(cap, np.int64)
        d2 = np.empty(cap, np.float64)
        n = gate_pairs_pos(
            gate_rows, x, P, t_s, q_h, q_v, gate2, zg, Rg, tg, tw, dw, cell_m, pt, pd, d2
        )
        if n <= cap:
            break
        cap = n
    det_of_track = np.empty(nt, np.int64)
    track_of_det = np.empty(nd, np.int64)
    clusters = gnn_clusters(nt, nd, pt[:n], pd[:n], d2[:n], gate2, det_of_track, track_of_det)
    for i in range(nt):
        if det_of_track[i] >= 0:
            out_rows[n_out] = gate_rows[i]
            out_cols[n_out] = gate_dets[det_of_track[i]]
            n_out += 1
    return n_out, n, clusters


@njit
def scan_pos(
    has_site, site_enu, range2_m2, t_batch, usable, x, P, t_s, status, cls, hist, nscan,
    misses, hits, sensors, kinds, tw,
    z, R, t, det_tr, dcls, cls_unknown, kind_bits, sensor_bit, count_miss, gate2_cls,
    q_h_cls, q_v_cls, cell_cls, confirm_m, confirm_n, adopted, stats,
):  # fmt: skip
    """Gate, assign, update and score one position batch; returns (rows, cols) of the
    updates, sorted by table row.

    Coverage: with has_site, the tracks whose (east, north) predicted to t_batch lies within
    sqrt(range2_m2) of site_enu (3,); else every active track. usable (n,) bool: the
    detections free to assign (cleared here for the assigned ones). Table arrays as in
    `fusion.tracks`; tw (N, 3) uint64 the table's identity words. z (n, 3), R (n, 3, 3),
    t (n,), det_tr (n,): the batch in theatre ENU. Per-class arrays indexed by class code.
    Confirmed and coasting tracks are gated and assigned first, tentative ones then with the
    detections left. dcls (n,) uint8: the detections' classes, adopted by updated tracks of
    class cls_unknown, whose rows go to adopted (n,) int64. stats (5,) int64 receives pairs,
    clusters, late detections, confirmed, adopted.
    """
    nd_all = z.shape[0]
    # Coverage: the active tracks (ascending rows), and with a site only those predicted
    # (east, north) within range of it at the batch's time, as the general path computes it.
    nk = 0
    in_cov = np.empty(status.shape[0], np.int64)
    for r in range(status.shape[0]):
        if status[r] == 0:
            continue
        if has_site:
            dt = max(t_batch - t_s[r], 0.0)
            e = x[r, 0] + dt * x[r, 3] - site_enu[0]
            nn = x[r, 1] + dt * x[r, 4] - site_enu[1]
            if not e * e + nn * nn <= range2_m2:
                continue
        in_cov[nk] = r
        nk += 1
    n_firm = 0
    for k in range(nk):
        s = status[in_cov[k]]
        if s == CONFIRMED or s == COASTING:
            n_firm += 1
    firm = np.empty(n_firm, np.int64)
    young = np.empty(nk - n_firm, np.int64)
    a = 0
    b = 0
    for k in range(nk):
        r = in_cov[k]
        s = status[r]
        if s == CONFIRMED or s == COASTING:
            firm[a] = r
            a += 1
        else:
            young[b] = r
            b += 1
    out_rows = np.empty(min(nk, nd_all), np.int64)
    out_cols = np.empty(min(nk, nd_all), np.int64)
    n_out = 0
    n_firm_out = 0  # pairs of the first pass: out_rows[:n_firm_out] and the rest each ascend
    pairs = 0
    clusters = 0
    for pass_ in range(2):
        gate_rows = firm if pass_ == 0 else young
        n_use = 0
        for j in range(nd_all):
            if usable[j]:
                n_use += 1
        if gate_rows.shape[0] == 0 or n_use == 0:
            continue
        gate_dets = np.empty(n_use, np.int64)
        q = 0
        for j in range(nd_all):
            if usable[j]:
                gate_dets[q] = j
                q += 1
        n0 = n_out
        n_out, p_, c_ = _gate_assign(
            gate_rows, gate_dets, nd_all, x, P, t_s, cls, tw, z, R, t, gate2_cls,
            q_h_cls, q_v_cls, cell_cls, out_rows, out_cols, n_out,
        )  # fmt: skip
        pairs += p_
        clusters += c_
        if pass_ == 0:
            n_firm_out = n_out
        for k in range(n0, n_out):
            usable[out_cols[k]] = False
    # Updates in table-row order (each row at most once): each pass appended its pairs in
    # ascending row order, so the two runs are merged rather than sorted.
    rows = np.empty(n_out, np.int64)
    cols = np.empty(n_out, np.int64)
    a = 0
    b = n_firm_out
    late = 0
    for k in range(n_out):
        if b >= n_out or (a < n_firm_out and out_rows[a] < out_rows[b]):
            q = a
            a += 1
        else:
            q = b
            b += 1
        rows[k] = out_rows[q]
        cols[k] = out_cols[q]
        if t[cols[k]] < t_s[rows[k]]:
            late += 1
    predict_update_pos(x, P, t_s, cls, rows, cols, t, z, R, q_h_cls, q_v_cls)
    n_adopt = 0
    for k in range(n_out):
        r = rows[k]
        sensors[r] |= sensor_bit
        kinds[r] |= kind_bits[cols[k]]
        # A track of unknown class takes its detection's class; the caller starts the IMM of
        # the rows listed in adopted when their new class runs one.
        if cls[r] == cls_unknown and dcls[cols[k]] != cls_unknown:
            cls[r] = dcls[cols[k]]
            adopted[n_adopt] = r
            n_adopt += 1
    # Score the tracks in coverage and the updated ones, in row order.
    mark = np.zeros(status.shape[0], np.uint8)
    for k in range(nk):
        mark[in_cov[k]] = 1
    for k in range(n_out):
        mark[rows[k]] = 2
    n_sc = 0
    for r in range(mark.shape[0]):
        if mark[r]:
            n_sc += 1
    scored = np.empty(n_sc, np.int64)
    hit = np.empty(n_sc, np.bool_)
    q = 0
    for r in range(mark.shape[0]):
        if mark[r]:
            scored[q] = r
            hit[q] = mark[r] == 2
            q += 1
    confirmed = score_scan(
        scored, hit, count_miss, status, hist, nscan, misses, hits, cls, confirm_m, confirm_n
    )
    stats[0] = pairs
    stats[1] = clusters
    stats[2] = late
    stats[3] = confirmed
    stats[4] = n_adopt
    return rows, cols


@njit
def spatial_order(xy, cell_m):
    """The stable order of points xy (n, >= 2: east, north in m) by their grid cell of edge
    cell_m, column by column (east index major, north index minor).

    The tracker keeps its table, and each large batch, in this order: gating walks the tracks
    in table order and reads, for each, a few columns of cells of the detections; with both in
    this order those reads move up a few columns together, so every array is read nearly in
    sequence (at 100,000 targets the arrays are far larger than the cache and a random read is
    a miss). A counting sort over the cells' bounding box when it is not much larger than n;
    else a merge sort of the cell keys.
    """
    n = xy.shape[0]
    cx = np.empty(n, np.int64)
    cy = np.empty(n, np.int64)
    for j in range(n):
        cx[j] = min(max(int(np.floor(xy[j, 0] / cell_m)), -(1 << 30)), 1 << 30)
        cy[j] = min(max(int(np.floor(xy[j, 1] / cell_m)), -(1 << 30)), 1 << 30)
    if n == 0:
        return np.empty(0, np.int64)
    x0 = cx.min()
    y0 = cy.min()
    nx = cx.max() - x0 + 1
    ny = cy.max() - y0 + 1
    if nx * ny <= 4 * n + 4096:
        start = np.zeros(nx * ny + 1, np.int64)
        for j in range(n):
            start[(cx[j] - x0) * ny + (cy[j] - y0) + 1] += 1
        for c in range(nx * ny):
            start[c + 1] += start[c]
        order = np.empty(n, np.int64)
        for j in range(n):
            c = (cx[j] - x0) * ny + (cy[j] - y0)
            order[start[c]] = j
            start[c] += 1
        return order
    keys = np.empty(n, np.int64)
    for j in range(n):
        keys[j] = (cx[j] - x0) * (1 << 31) + (cy[j] - y0)
    return np.argsort(keys, kind="mergesort")


@njit
def new_track_dets(usable, det_tr, pos, cell_m):
    """The detections that start tracks (usable, with a finite position covariance), in
    `spatial_order` (ties keep batch order).

    New tracks take free slots in this order, so tracks near each other sit near each other in
    the table from birth: a batch arrives in any order (a radar sweep, a shuffled feed), and
    tracks in batch order would make every later gate and update a cache miss once the table
    outgrows the cache.
    """
    n = 0
    for j in range(usable.shape[0]):
        if usable[j] and np.isfinite(det_tr[j]):
            n += 1
    dets = np.empty(n, np.int64)
    xy = np.empty((n, 2))
    q = 0
    for j in range(usable.shape[0]):
        if usable[j] and np.isfinite(det_tr[j]):
            xy[q, 0] = pos[j, 0]
            xy[q, 1] = pos[j, 1]
            dets[q] = j
            q += 1
    return dets[spatial_order(xy, cell_m)]


@njit
def order_batch(pos, R, t, det_tr, cls, kind_bits, usable, cell_m):
    """A position batch reordered in `spatial_order`, as new arrays (pos, R, t, det_tr, cls,
    kind_bits, usable): with the table in the same order, its gating and updates read the
    batch nearly in sequence instead of at random."""
    n = pos.shape[0]
    order = spatial_order(pos, cell_m)
    pos2 = np.empty((n, 3))
    R2 = np.empty((n, 3, 3))
    t2 = np.empty(n)
    tr2 = np.empty(n)
    cls2 = np.empty(n, cls.dtype)
    kb2 = np.empty(n, kind_bits.dtype)
    us2 = np.empty(n, np.bool_)
    for q in range(n):
        j = order[q]
        for a in range(3):
            pos2[q, a] = pos[j, a]
            for b in range(3):
                R2[q, a, b] = R[j, a, b]
        t2[q] = t[j]
        tr2[q] = det_tr[j]
        cls2[q] = cls[j]
        kb2[q] = kind_bits[j]
        us2[q] = usable[j]
    return pos2, R2, t2, tr2, cls2, kb2, us2


@njit
def birth_pos(
    dets, pos, R_pos, t, dcls, kind_bits, sensor_bit, init_vel_sigma, confirm_m, first_id,
    id_, x, P, t_s, t0_s, status, hist, nscan, misses, hits, cls, sensors, kinds, slots,
):  # fmt: skip
    """Tentative tracks from detections `dets` of a position batch without reported velocity
    or identities, in the lowest free slots (the caller has grown the table to hold them),
    with ids first_id, first_id + 1, ... in slot order: `TrackTable.alloc`, then
    `lifecycle.initiate`, the sensor and kind bits and `lifecycle.confirm_new`, in one call.
    Writes the slots to `slots` (len(dets),); returns the number confirmed at birth."""
    k = dets.shape[0]
    q = 0
    r = 0
    while q < k:
        if status[r] == 0:
            slots[q] = r
            id_[r] = first_id + q
            status[r] = 1
            q += 1
        r += 1
    initiate(
        slots, dets, pos, R_pos, pos, R_pos, False, t, dcls, init_vel_sigma, x, P, t_s, t0_s,
        status, hist, nscan, misses, hits, cls,
    )  # fmt: skip
    for q in range(k):
        sensors[slots[q]] = sensor_bit
        kinds[slots[q]] = kind_bits[dets[q]]
    return confirm_new(slots, status, cls, confirm_m)


@njit
def birth_and_delete_pos(
    usable, det_tr, pos, R_pos, t, dcls, kind_bits, sensor_bit, cell_m, init_vel_sigma,
    confirm_m, first_id, n_free, t_now_s, scored_mask, confirm_n, max_misses, max_coast_s,
    max_pos_sigma_m, q_h, q_v, coast_s, id_, x, P, t_s, t0_s, status, cls, hist, nscan, misses,
    hits, ident_words, sensors, kinds, imm_slot, imm_used,
):  # fmt: skip
    """Steps 7 and 8 of a position batch of the fused path (no velocity, identity or IMM
    class) in one call: `new_track_dets`, `birth_pos`, `fusion.kernels.prune.deleted_slots`
    and `free_slots` (`TrackTable.free`), the same kernels in the same order as the general
    path's separate calls.

    n_free: the table's free slots. When the births need more, nothing is changed and
    (-k, 0, empty, empty) comes back, k the births: the caller grows the table to hold them
    and calls again. Otherwise returns (births, confirmed at birth, ids of the deleted
    tracks, their slots, now free)."""
    dets = new_track_dets(usable, det_tr, pos, cell_m)
    k = dets.shape[0]
    if k > n_free:
        return -k, 0, np.empty(0, np.int64), np.empty(0, np.int64)
    confirmed = 0
    if k:
        slots = np.empty(k, np.int64)
        confirmed = birth_pos(
            dets, pos, R_pos, t, dcls, kind_bits, sensor_bit, init_vel_sigma, confirm_m,
            first_id, id_, x, P, t_s, t0_s, status, hist, nscan, misses, hits, cls, sensors,
            kinds, slots,
        )  # fmt: skip
    gone = deleted_slots(
        t_now_s, x, P, t_s, status, hist, nscan, misses, cls, sensors, scored_mask, confirm_m,
        confirm_n, max_misses, max_coast_s, max_pos_sigma_m, q_h, q_v, coast_s,
    )  # fmt: skip
    ids = np.empty(gone.shape[0], np.int64)
    for q in range(gone.shape[0]):
        ids[q] = id_[gone[q]]
    free_slots(
        gone, id_, x, P, t_s, t0_s, status, cls, hist, nscan, misses, hits, ident_words, sensors,
        kinds, imm_slot, imm_used,
    )  # fmt: skip
    return k, confirmed, ids, gone


@njit
def scan_step_pos(
    has_site, site_enu, range2_m2, t_batch, usable, z, R, t, det_tr, dcls, kind_bits,
    sensor_bit, count_miss, cls_unknown, gate2_cls, q_h_cls, q_v_cls, cell_cls, confirm_m,
    confirm_n, init_vel_sigma, order_cell_m, first_id, n_free, t_now_s, scored_mask,
    max_misses, max_coast_s, max_pos_sigma_m, coast_s, id_, x, P, t_s, t0_s, status, cls, hist,
    nscan, misses, hits, tw, sensors, kinds, imm_slot, imm_used, adopted, stats, dup_due,
    dup_d2, dup_sep_m, dup_min_speed_mps, dup_still, dup_a, dup_b,
):  # fmt: skip
    """Steps 3 to 8 of a position batch of the fused path whose detections carry no class
    (so no track adopts one), in one call: `scan_pos`, then `birth_and_delete_pos` (z, R are
    the batch's theatre positions and covariances, used for both), then, when dup_due, the
    duplicate pairs of `fusion.kernels.prune.firm_duplicate_pairs` at t_now_s (thresholds
    dup_*, the class noises q_h_cls, q_v_cls and identity words tw, as
    `fusion.tracker_prune.DuplicatePruner.check` passes them), written to dup_a, dup_b when
    they fit. Returns (updates, births, confirmed at birth, ids of the deleted tracks, their
    slots, duplicate pairs: -1 when not looked for); births < 0 as in
    `birth_and_delete_pos`: the scan is done, the caller grows the table and runs
    `birth_and_delete_pos` itself (and the duplicate check)."""
    rows, _ = scan_pos(
        has_site, site_enu, range2_m2, t_batch, usable, x, P, t_s, status, cls, hist, nscan,
        misses, hits, sensors, kinds, tw, z, R, t, det_tr, dcls, cls_unknown, kind_bits,
        sensor_bit, count_miss, gate2_cls, q_h_cls, q_v_cls, cell_cls, confirm_m, confirm_n,
        adopted, stats,
    )  # fmt: skip
    k, confirmed, ids, gone = birth_and_delete_pos(
        usable, det_tr, z, R, t, dcls, kind_bits, sensor_bit, order_cell_m, init_vel_sigma,
        confirm_m, first_id, n_free, t_now_s, scored_mask, confirm_n, max_misses, max_coast_s,
        max_pos_sigma_m, q_h_cls, q_v_cls, coast_s, id_, x, P, t_s, t0_s, status, cls, hist,
        nscan, misses, hits, tw, sensors, kinds, imm_slot, imm_used,
    )  # fmt: skip
    n_pairs = -1
    if dup_due and k >= 0:
        a, b, _ = firm_duplicate_pairs(
            status, t_now_s, x, P, t_s, cls, tw, q_h_cls, q_v_cls, dup_d2, dup_sep_m,
            dup_min_speed_mps, dup_still,
        )  # fmt: skip
        n_pairs = a.shape[0]
        if n_pairs <= dup_a.shape[0]:
            dup_a[:n_pairs] = a
            dup_b[:n_pairs] = b
    return rows.shape[0], k, confirmed, ids, gone, n_pairs
