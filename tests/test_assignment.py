"""The assignment solver against scipy's linear_sum_assignment, and GNN over clusters."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from fusion.kernels.assignment import cluster_pairs, gnn_clusters, solve_assignment


@pytest.mark.parametrize("seed", range(40))
def test_rectangular_matches_scipy_on_cost(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 25, size=2)
    cost = rng.uniform(0.0, 100.0, size=(n, m))
    if seed % 3 == 0:
        cost = np.round(cost / 10.0)  # many ties
    rows, cols = solve_assignment(cost)
    r_ref, c_ref = linear_sum_assignment(cost)
    assert len(rows) == min(n, m)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert cost[rows, cols].sum() == pytest.approx(cost[r_ref, c_ref].sum(), abs=1e-9)


@pytest.mark.parametrize("seed", range(40))
def test_forbidden_pairs_match_scipy(seed):
    rng = np.random.default_rng(1000 + seed)
    n, m = rng.integers(1, 20, size=2)
    cost = rng.uniform(0.0, 10.0, size=(n, m))
    cost[rng.random((n, m)) < 0.5] = np.inf
    try:
        r_ref, c_ref = linear_sum_assignment(cost)
    except ValueError:
        with pytest.raises(ValueError, match="infeasible"):
            solve_assignment(cost)
        return
    rows, cols = solve_assignment(cost)
    assert np.all(np.isfinite(cost[rows, cols]))
    assert cost[rows, cols].sum() == pytest.approx(cost[r_ref, c_ref].sum(), abs=1e-9)


def test_small_case_by_enumeration():
    rng = np.random.default_rng(7)
    cost = rng.uniform(0, 1, size=(4, 6))
    best = min(sum(cost[i, p[i]] for i in range(4)) for p in itertools.permutations(range(6), 4))
    rows, cols = solve_assignment(cost)
    assert cost[rows, cols].sum() == pytest.approx(best, abs=1e-12)


def test_empty_and_bad_input():
    r, c = solve_assignment(np.zeros((0, 3)))
    assert r.shape == (0,) and c.shape == (0,)
    with pytest.raises(ValueError):
        solve_assignment(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError):
        solve_assignment(np.zeros(3))


def _gnn_reference(n_t, n_d, pt, pd, pc, miss):
    """Dense formulation solved by scipy: tracks x (detections + one miss column per track)."""
    big = 1e12
    cost = np.full((n_t, n_d + n_t), big)
    cost[pt, pd] = pc
    cost[np.arange(n_t), n_d + np.arange(n_t)] = miss
    r, c = linear_sum_assignment(cost)
    return cost[r, c].sum()


@pytest.mark.parametrize("seed", range(30))
def test_gnn_clusters_optimal_against_dense_scipy(seed):
    rng = np.random.default_rng(500 + seed)
    n_t, n_d = int(rng.integers(1, 30)), int(rng.integers(1, 30))
    mask = rng.random((n_t, n_d)) < 0.12
    pt, pd = np.nonzero(mask)
    pt, pd = pt.astype(np.int64), pd.astype(np.int64)
    pc = rng.uniform(0, 16, size=pt.shape[0])
    miss = np.full(n_t, 12.0)
    perm = rng.permutation(pt.shape[0])
    det_of_track = np.empty(n_t, np.int64)
    track_of_det = np.empty(n_d, np.int64)
    gnn_clusters(n_t, n_d, pt[perm], pd[perm], pc[perm], miss, det_of_track, track_of_det)
    # Consistency of the two views.
    for i, j in enumerate(det_of_track):
        if j >= 0:
            assert track_of_det[j] == i and mask[i, j]
    assert np.sum(det_of_track >= 0) == np.sum(track_of_det >= 0)
    lookup = {(a, b): c for a, b, c in zip(pt, pd, pc, strict=True)}
    total = sum(lookup[(i, j)] if j >= 0 else miss[i] for i, j in enumerate(det_of_track))
    assert total == pytest.approx(_gnn_reference(n_t, n_d, pt, pd, pc, miss), abs=1e-9)
    # Independent of the order of the pairs.
    d2 = np.empty(n_t, np.int64)
    t2 = np.empty(n_d, np.int64)
    gnn_clusters(n_t, n_d, pt, pd, pc, miss, d2, t2)
    assert np.array_equal(d2, det_of_track) and np.array_equal(t2, track_of_det)


def test_clusters_union_find():
    # Tracks 0-1 share detection 0; track 2 alone with detection 2; track 3 with 3 and 4.
    pt = np.array([0, 1, 2, 3, 3], np.int64)
    pd = np.array([0, 0, 2, 3, 4], np.int64)
    label = cluster_pairs(4, 5, pt, pd)
    assert label[0] == label[1] != label[2]
    assert label[3] == label[4] != label[0]
    assert len(set(label.tolist())) == 3
