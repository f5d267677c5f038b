"""Assignment: a Jonker-Volgenant shortest-augmenting-path solver, and GNN over clusters.

This module owns the optimal assignment and nothing else: it receives sparse gated pairs
(track, detection, cost) and returns which detection each track takes. Gating and clustering of
the pairs happen in `fusion.kernels.gating`; filtering in the Kalman kernels.

The solver is the augmentation phase of Jonker and Volgenant (1987): rows are added one at a
time, each by a Dijkstra search for the cheapest augmenting path in the reduced costs, with dual
variables u (rows) and v (columns) keeping reduced costs non-negative. It works directly on a
rectangular matrix with rows <= columns (the caller transposes otherwise) and treats an infinite
cost as a forbidden pair. Ties are broken toward unassigned columns and then the lowest column
index, so the result is deterministic.

GNN with a non-assignment cost (`gnn_clusters`): for a cluster with nt tracks and nd detections
the matrix is nt x (nd + nt): column j < nd is detection j with its cost, column nd + i is "track
i takes nothing" at cost `miss_cost[i]` (forbidden for other rows). A pair is then taken only
when it beats leaving its track unassigned, and each cluster is solved independently.
"""

from __future__ import annotations

import numpy as np

from fusion.jit import njit


@njit
def _augment(cost, cur, u, v, spc, path, row4col, SR, SC, remaining):
    """One Dijkstra search from row `cur`; returns (sink column or -1, min reduced cost)."""
    nr, nc = cost.shape
    num_rem = nc
    for it in range(nc):
        remaining[it] = nc - it - 1
    for i in range(nr):
        SR[i] = False
    for j in range(nc):
        SC[j] = False
        spc[j] = np.inf
    min_val = 0.0
    sink = -1
    i = cur
    while sink == -1:
        index = -1
        lowest = np.inf
        SR[i] = True
        for it in range(num_rem):
            j = remaining[it]
            r = min_val + cost[i, j] - u[i] - v[j]
            if r < spc[j]:
                path[j] = i
                spc[j] = r
            if spc[j] < lowest or (spc[j] == lowest and row4col[j] == -1):
                lowest = spc[j]
                index = it
        min_val = lowest
        if min_val == np.inf:
            return -1, min_val
        j = remaining[index]
        if row4col[j] == -1:
            sink = j
        else:
            i = row4col[j]
        SC[j] = True
        num_rem -= 1
        remaining[index] = remaining[num_rem]
    return sink, min_val


@njit
def _solve_rect(cost, col4row):
    """Min-cost assignment of every row of `cost` (nr <= nc); writes col4row; returns feasible."""
    nc = cost.shape[1]
    return _solve_rect_into(
        cost, col4row, np.empty(cost.shape[0]), np.empty(nc), np.empty(nc),
        np.empty(nc, np.int64), np.empty(nc, np.int64), np.empty(cost.shape[0], np.bool_),
        np.empty(nc, np.bool_), np.empty(nc, np.int64),
    )  # fmt: skip


@njit
def _solve_rect_into(cost, col4row, u, v, spc, path, row4col, SR, SC, remaining):
    """`_solve_rect` with its work arrays passed in (at least nr, resp. nc long; their
    contents are reset here), so that a caller solving many small problems allocates once."""
    nr, nc = cost.shape
    for i in range(nr):
        u[i] = 0.0
        SR[i] = False
    for j in range(nc):
        v[j] = 0.0
        path[j] = -1
        row4col[j] = -1
    for i in range(nr):
        col4row[i] = -1
    for cur in range(nr):
        sink, min_val = _augment(cost, cur, u, v, spc, path, row4col, SR, SC, remaining)
        if sink < 0:
            return False
        u[cur] += min_val
        for i in range(nr):
            if SR[i] and i != cur:
                u[i] += min_val - spc[col4row[i]]
        for j in range(nc):
            if SC[j]:
                v[j] -= min_val - spc[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            nxt = col4row[i]
            col4row[i] = j
            j = nxt
            if i == cur:
                break
    return True


def solve_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a rectangular cost matrix, like scipy's linear_sum_assignment.

    `cost` (n, m) float64, np.inf for forbidden pairs. Returns (rows, cols), sorted by row, of
    the min(n, m) assigned pairs. Raises ValueError when no complete assignment exists.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {cost.shape}")
    if np.isnan(cost).any() or np.isneginf(cost).any():
        raise ValueError("cost holds NaN or -inf")
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    transposed = n > m
    c = np.ascontiguousarray(cost.T if transposed else cost)
    col4row = np.empty(c.shape[0], np.int64)
    if not _solve_rect(c, col4row):
        raise ValueError("cost matrix is infeasible")
    rows = np.arange(c.shape[0], dtype=np.int64)
    if transposed:
        order = np.argsort(col4row, kind="stable")
        return col4row[order], rows[order]
    return rows, col4row


@njit
def _find(parent, a):
    root = a
    while parent[root] != root:
        root = parent[root]
    while parent[a] != root:  # path compression
        nxt = parent[a]
        parent[a] = root
        a = nxt
    return root


@njit
def cluster_pairs(n_tracks, n_dets, pair_t, pair_d):
    """Union-find over gated pairs; returns the cluster label (smallest member node) per pair.

    Nodes 0..n_tracks-1 are tracks, n_tracks.. are detections. The label of a cluster is its
    smallest node, so labels do not depend on the order of the pairs.
    """
    parent = np.arange(n_tracks + n_dets)
    for k in range(pair_t.shape[0]):
        a = _find(parent, pair_t[k])
        b = _find(parent, n_tracks + pair_d[k])
        if a != b:
            if a < b:
                parent[b] = a
            else:
                parent[a] = b
    label = np.empty(pair_t.shape[0], np.int64)
    for k in range(pair_t.shape[0]):
        label[k] = _find(parent, pair_t[k])
    return label


@njit
def _insertion_sort(a, n):
    """a[:n] sorted ascending in place (distinct values; a cluster's few members)."""
    for i in range(1, n):
        x = a[i]
        j = i - 1
        while j >= 0 and a[j] > x:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = x


@njit
def _stable_order(label, n_labels):
    """np.argsort(label, kind="mergesort") for labels in [0, n_labels): a counting sort,
    stable, so the same permutation; linear instead of a merge sort per scan."""
    start = np.zeros(n_labels + 1, np.int64)
    for k in range(label.shape[0]):
        start[label[k] + 1] += 1
    for c in range(n_labels):
        start[c + 1] += start[c]
    order = np.empty(label.shape[0], np.int64)
    for k in range(label.shape[0]):
        order[start[label[k]]] = k
        start[label[k]] += 1
    return order


@njit
def gnn_clusters(
    n_tracks, n_dets, pair_t, pair_d, pair_cost, miss_cost, det_of_track, track_of_det
):
    """Global nearest neighbour over sparse pairs, solved cluster by cluster.

    pair_t, pair_d (k,) int64: track and detection index of each gated pair; pair_cost (k,):
    its cost (e.g. squared Mahalanobis distance); miss_cost (n_tracks,): cost of leaving a track
    unassigned. Writes det_of_track (n_tracks,) and track_of_det (n_dets,), -1 when unassigned.
    Returns the number of clusters.
    """
    for i in range(n_tracks):
        det_of_track[i] = -1
    for j in range(n_dets):
        track_of_det[j] = -1
    k = pair_t.shape[0]
    if k == 0:
        return 0
    label = cluster_pairs(n_tracks, n_dets, pair_t, pair_d)
    order = _stable_order(label, n_tracks + n_dets)  # labels are roots: track indices
    local_t = np.full(n_tracks, -1, np.int64)
    local_d = np.full(n_dets, -1, np.int64)
    # Work arrays of the clusters solved as assignment problems, allocated once per call: a
    # cluster has at most k tracks and k detections (one pair each), so k + k columns.
    tracks = np.empty(k, np.int64)
    dets = np.empty(k, np.int64)
    col4row = np.empty(k, np.int64)
    u = np.empty(k)
    SR = np.empty(k, np.bool_)
    v = np.empty(2 * k)
    spc = np.empty(2 * k)
    path = np.empty(2 * k, np.int64)
    row4col = np.empty(2 * k, np.int64)
    SC = np.empty(2 * k, np.bool_)
    remaining = np.empty(2 * k, np.int64)
    cost_buf = np.empty(0)
    n_clusters = 0
    s = 0
    while s < k:
        e = s
        while e < k and label[order[e]] == label[order[s]]:
            e += 1
        n_clusters += 1
        # A cluster with one track (or one detection) is solved by its best pair: every pair
        # of it conflicts with every other. Ties go to the first pair in `order`, which
        # is deterministic (mergesort of the labels keeps the pairs' given order).
        one_track = True
        one_det = True
        for q in range(s + 1, e):
            if pair_t[order[q]] != pair_t[order[s]]:
                one_track = False
            if pair_d[order[q]] != pair_d[order[s]]:
                one_det = False
        if one_track or one_det:
            # Minimise (pair cost - its track's miss cost): the saving over leaving it out.
            best = order[s]
            for q in range(s + 1, e):
                pq = order[q]
                if (
                    pair_cost[pq] - miss_cost[pair_t[pq]]
                    < pair_cost[best] - miss_cost[pair_t[best]]
                ):
                    best = pq
            if pair_cost[best] < miss_cost[pair_t[best]]:
                det_of_track[pair_t[best]] = pair_d[best]
                track_of_det[pair_d[best]] = pair_t[best]
            s = e
            continue
        # Local numbering in ascending global index, so the matrix does not depend on pair order:
        # the cluster's distinct tracks and detections (marked in local_t / local_d), sorted.
        nt = 0
        nd = 0
        for q in range(s, e):
            p = order[q]
            if local_t[pair_t[p]] < 0:
                local_t[pair_t[p]] = 0
                tracks[nt] = pair_t[p]
                nt += 1
            if local_d[pair_d[p]] < 0:
                local_d[pair_d[p]] = 0
                dets[nd] = pair_d[p]
                nd += 1
        _insertion_sort(tracks, nt)
        _insertion_sort(dets, nd)
        for a in range(nt):
            local_t[tracks[a]] = a
        for b in range(nd):
            local_d[dets[b]] = b
        nc = nd + nt
        if cost_buf.shape[0] < nt * nc:  # scratch for the largest cluster so far
            cost_buf = np.empty(2 * nt * nc)
        cost = cost_buf[: nt * nc].reshape(nt, nc)
        cost[:, :] = np.inf
        for q in range(s, e):
            p = order[q]
            cost[local_t[pair_t[p]], local_d[pair_d[p]]] = pair_cost[p]
        for a in range(nt):
            cost[a, nd + a] = miss_cost[tracks[a]]
        # always feasible: every row has its own miss column
        _solve_rect_into(cost, col4row, u, v, spc, path, row4col, SR, SC, remaining)
        for a in range(nt):
            c = col4row[a]
            if c < nd:
                det_of_track[tracks[a]] = dets[c]
                track_of_det[dets[c]] = tracks[a]
        for a in range(nt):  # unmarked for the next clusters
            local_t[tracks[a]] = -1
        for b in range(nd):
            local_d[dets[b]] = -1
        s = e
    return n_clusters
