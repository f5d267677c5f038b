"""The uncertainty kernels of the rules (fusion.kernels.sites.cross_track_sigma, sigma_along)
give the numpy forms they replace bit for bit, on seeded random covariances, including zero
velocities, zero time steps and indefinite matrices."""

from __future__ import annotations

import numpy as np

from fusion.kernels import sites as K


def _cases(seed: int, n: int = 4000, k: int = 3000):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, 6, 6)) * rng.uniform(0.1, 1000.0, (n, 1, 1))
    P = A @ np.swapaxes(A, 1, 2)
    P[::97] = rng.normal(size=(len(P[::97]), 6, 6))  # indefinite: negative variances
    rows = rng.integers(0, n, k)
    dt = rng.uniform(0.0, 300.0, k) * (rng.random(k) < 0.8)
    v = rng.normal(0.0, 100.0, (k, 2))
    v[::50] = 0.0
    return P, rows, dt, v


def test_cross_track_sigma_equals_the_numpy_form():
    for seed in range(3):
        P, rows, dt, v = _cases(seed)
        Pr = P[rows]
        speed = np.maximum(np.hypot(v[:, 0], v[:, 1]), 1e-9)
        w = np.stack([-v[:, 1] / speed, v[:, 0] / speed], axis=1)
        Ppp, Ppv, Pvv = Pr[:, 0:2, 0:2], Pr[:, 0:2, 3:5], Pr[:, 3:5, 3:5]
        Pt = Ppp + dt[:, None, None] * (Ppv + np.swapaxes(Ppv, 1, 2)) + (dt**2)[:, None, None] * Pvv
        ref = np.sqrt(np.maximum(np.einsum("ka,kab,kb->k", w, Pt, w), 0.0))
        out = np.empty(len(rows))
        K.cross_track_sigma(P, rows, dt, v, out)
        assert (ref == 0).sum() > 0 and np.isfinite(ref).all()
        assert np.array_equal(out.view(np.int64), ref.view(np.int64))


def test_sigma_along_equals_the_numpy_form():
    for seed in range(3):
        P, rows, _, v = _cases(seed)
        Pxy = np.ascontiguousarray(P[:, 0:2, 0:2])
        u = v / np.maximum(np.hypot(v[:, 0], v[:, 1]), 1e-9)[:, None]
        ref = np.sqrt(np.maximum(np.einsum("ka,kab,kb->k", u, Pxy[rows], u), 0.0))
        out = np.empty(len(rows))
        K.sigma_along(Pxy, rows, u, out)
        assert np.array_equal(out.view(np.int64), ref.view(np.int64))
        nan = Pxy.copy()
        nan[rows[0]] = np.nan  # a NaN stays NaN, as np.maximum keeps it
        K.sigma_along(nan, rows[:1], u[:1], out[:1])
        assert np.isnan(out[0])
