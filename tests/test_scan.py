"""The fused position-batch kernels' spatial order against a numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.kernels.scan import new_track_dets, order_batch, spatial_order


@pytest.mark.parametrize("spread_m", [5e3, 5e7])  # counting sort; merge sort of keys
def test_spatial_order_is_a_stable_sort_by_cell_column_then_row(spread_m: float) -> None:
    rng = np.random.default_rng(4)
    xy = rng.uniform(-spread_m, spread_m, (3000, 2))
    xy[100:200] = xy[0]  # ties keep their order
    cell = 1000.0
    ix, iy = np.floor(xy[:, 0] / cell), np.floor(xy[:, 1] / cell)
    expect = np.lexsort((np.arange(xy.shape[0]), iy, ix))
    assert np.array_equal(spatial_order(xy, cell), expect)


def test_new_track_dets_and_order_batch_follow_the_spatial_order() -> None:
    rng = np.random.default_rng(5)
    n = 500
    pos = np.c_[rng.uniform(-2e4, 2e4, (n, 2)), np.zeros(n)]
    usable = rng.random(n) < 0.7
    det_tr = np.full(n, 1200.0)
    det_tr[7] = np.inf  # a position without a finite covariance starts no track
    usable[7] = True
    got = new_track_dets(usable, det_tr, pos, 1000.0)
    cand = np.flatnonzero(usable & np.isfinite(det_tr))
    assert np.array_equal(got, cand[spatial_order(pos[cand], 1000.0)])
    R = rng.normal(size=(n, 3, 3))
    t = rng.uniform(0, 2, n)
    cls = rng.integers(0, 4, n).astype(np.uint8)
    kb = rng.integers(0, 16, n).astype(np.uint8)
    o = spatial_order(pos, 1000.0)
    out = order_batch(pos, R, t, det_tr, cls, kb, usable, 1000.0)
    for a, b in zip(out, (pos, R, t, det_tr, cls, kb, usable), strict=True):
        assert np.array_equal(a, b[o])
