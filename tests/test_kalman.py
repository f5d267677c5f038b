"""Linear Kalman kernels against filterpy 2.0 and plain numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import KalmanFilter

from fusion.kernels import kalman
from fusion.kernels.kalman import LOG_2PI, joseph_update_row, new_workspace
from fusion.models import ImmModelSet, ct_F, cv_F, cv_Q, model_F
from tests.packedkit import symmetric, via_packed

# The batched kernels take the table's packed covariances; these take (n, 6, 6) ones.
position_d2 = via_packed(kalman.position_d2, 1)
position_innovations = via_packed(kalman.position_innovations, 1)
predict = via_packed(kalman.predict, 1)
predict_model = via_packed(kalman.predict_model, 1)
predict_per_row = via_packed(kalman.predict_per_row, 1)
predict_update_pos = via_packed(kalman.predict_update_pos, 1)
update_linear = via_packed(kalman.update_linear, 1)
update_position = via_packed(kalman.update_position, 1)
update_position_velocity = via_packed(kalman.update_position_velocity, 1)

TOL = 1e-9


def _spd(rng: np.random.Generator, n: int, scale: np.ndarray) -> np.ndarray:
    A = rng.normal(size=(n, n))
    P = A @ A.T + 0.1 * np.eye(n)
    s = np.sqrt(scale)
    return symmetric(s[:, None] * P * s[None, :])


def _tracks(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.column_stack([rng.normal(0, 5e4, (n, 3)), rng.normal(0, 100, (n, 3))])
    scale = np.array([400.0, 400.0, 900.0, 25.0, 25.0, 4.0])
    P = np.stack([_spd(rng, 6, scale) for _ in range(n)])
    return x, P


def _close(a: np.ndarray, b: np.ndarray) -> None:
    """Agreement to 1e-9 relative to the magnitude of the reference."""
    scale = max(1.0, float(np.abs(b).max()))
    assert np.abs(a - b).max() <= TOL * scale, np.abs(a - b).max() / scale


def _kf(x: np.ndarray, P: np.ndarray, dim_z: int) -> KalmanFilter:
    kf = KalmanFilter(dim_x=6, dim_z=dim_z)
    kf.x = x.copy()
    kf.P = P.copy()
    return kf


def test_cv_matrices_match_the_textbook() -> None:
    dt, qh, qv = 2.5, 3.0, 0.5
    F = np.eye(6)
    F[:3, 3:] = dt * np.eye(3)
    np.testing.assert_array_equal(cv_F(dt), F)
    Q = cv_Q(dt, qh, qv)
    for axis, q in ((0, qh), (1, qh), (2, qv)):
        idx = [axis, axis + 3]
        ref = Q_continuous_white_noise(dim=2, dt=dt, spectral_density=q)
        np.testing.assert_allclose(Q[np.ix_(idx, idx)], ref, rtol=1e-15)
    assert np.count_nonzero(Q) == 12


@pytest.mark.parametrize("omega", [0.05, -0.2, 1e-3, 1.5])
def test_ct_transition_is_the_matrix_exponential(omega: float) -> None:
    dt = 3.7
    A = np.zeros((6, 6))
    A[:3, 3:] = np.eye(3)
    A[3, 4] = -omega
    A[4, 3] = omega
    np.testing.assert_allclose(ct_F(dt, omega), scipy.linalg.expm(A * dt), atol=1e-12)
    # speed is preserved by the turn and the turn is counter-clockwise for positive omega
    v = np.array([0, 0, 0, 100.0, 0.0, 0])
    v2 = ct_F(dt, omega) @ v
    assert abs(np.hypot(v2[3], v2[4]) - 100.0) < 1e-9
    assert np.sign((ct_F(0.5 / abs(omega), omega) @ v)[4]) == np.sign(omega)
    np.testing.assert_array_equal(model_F(dt, 0.0), cv_F(dt))
    np.testing.assert_allclose(ct_F(dt, 1e-14), cv_F(dt), atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_predict_matches_filterpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 20
    x, P = _tracks(rng, n)
    rows = rng.permutation(n)[:12].astype(np.int64)
    dt = rng.uniform(0.0, 20.0, rows.shape[0])
    qh, qv = 2.0, 0.3
    x1, P1 = x.copy(), P.copy()
    predict(x1, P1, rows, dt, qh, qv)
    untouched = np.setdiff1d(np.arange(n), rows)
    np.testing.assert_array_equal(x1[untouched], x[untouched])
    np.testing.assert_array_equal(P1[untouched], P[untouched])
    for k, r in enumerate(rows):
        kf = _kf(x[r], P[r], 3)
        kf.F = cv_F(dt[k])
        kf.Q = cv_Q(dt[k], qh, qv)
        kf.predict()
        _close(x1[r], kf.x)
        _close(P1[r], kf.P)
        np.testing.assert_array_equal(P1[r], P1[r].T)

    # per-row noise and the generic model path agree with the same reference
    qh_r = rng.uniform(0.1, 10.0, rows.shape[0])
    qv_r = rng.uniform(0.01, 1.0, rows.shape[0])
    x2, P2 = x.copy(), P.copy()
    predict_per_row(x2, P2, rows, dt, qh_r, qv_r)
    x3, P3 = x.copy(), P.copy()
    predict_model(x3, P3, rows, dt, 0.08, qh, qv)
    for k, r in enumerate(rows):
        F = cv_F(dt[k])
        _close(x2[r], F @ x[r])
        _close(P2[r], F @ P[r] @ F.T + cv_Q(dt[k], qh_r[k], qv_r[k]))
        Fc = ct_F(dt[k], 0.08)
        _close(x3[r], Fc @ x[r])
        _close(P3[r], Fc @ P[r] @ Fc.T + cv_Q(dt[k], qh, qv))
        np.testing.assert_array_equal(P3[r], P3[r].T)


def _joseph_reference(x, P, H, z, R):
    y = z - H @ x
    S = H @ P @ H.T + R
    K = P @ H.T @ np.linalg.inv(S)
    A = np.eye(6) - K @ H
    return x + K @ y, A @ P @ A.T + K @ R @ K.T, float(y @ np.linalg.solve(S, y)), S


@pytest.mark.parametrize("seed", range(5))
def test_position_update_matches_filterpy_and_numpy(seed: int) -> None:
    rng = np.random.default_rng(10 + seed)
    n, m = 15, 10
    x, P = _tracks(rng, n)
    rows = rng.choice(n, m, replace=False).astype(np.int64)
    cols = rng.permutation(m).astype(np.int64)
    z = x[rows[np.argsort(cols)], :3] + rng.normal(0, 30.0, (m, 3))
    R = np.stack([_spd(rng, 3, np.array([100.0, 100.0, 400.0])) for _ in range(m)])
    x1, P1 = x.copy(), P.copy()
    d2 = np.empty(m)
    assert update_position(x1, P1, rows, cols, z, R, d2) == m
    H = np.hstack([np.eye(3), np.zeros((3, 3))])
    for k in range(m):
        r, j = rows[k], cols[k]
        kf = _kf(x[r], P[r], 3)
        kf.H = H
        kf.R = R[j]
        kf.update(z[j])
        _close(x1[r], kf.x)
        _close(P1[r], kf.P)
        assert abs(d2[k] - kf.mahalanobis**2) <= 1e-9 * max(1.0, d2[k])
        xr, Pr, d2r, _ = _joseph_reference(x[r], P[r], H, z[j], R[j])
        _close(x1[r], xr)
        _close(P1[r], Pr)
        np.testing.assert_array_equal(P1[r], P1[r].T)


@pytest.mark.parametrize("seed", range(4))
def test_position_velocity_update_matches_filterpy(seed: int) -> None:
    rng = np.random.default_rng(20 + seed)
    n = 8
    x, P = _tracks(rng, n)
    rows = np.arange(n, dtype=np.int64)
    z = x + np.column_stack([rng.normal(0, 20, (n, 3)), rng.normal(0, 2, (n, 3))])
    R = np.stack([_spd(rng, 6, np.array([100, 100, 400, 1, 1, 4.0])) for _ in range(n)])
    x1, P1 = x.copy(), P.copy()
    d2 = np.empty(n)
    assert update_position_velocity(x1, P1, rows, rows, z, R, d2) == n
    for r in range(n):
        kf = _kf(x[r], P[r], 6)
        kf.H = np.eye(6)
        kf.R = R[r]
        kf.update(z[r])
        _close(x1[r], kf.x)
        _close(P1[r], kf.P)
        assert abs(d2[r] - kf.mahalanobis**2) <= 1e-9 * max(1.0, d2[r])


@pytest.mark.parametrize("m", [1, 2, 4])
def test_generic_linear_update_and_likelihood(m: int) -> None:
    rng = np.random.default_rng(30 + m)
    n = 6
    x, P = _tracks(rng, n)
    H = rng.normal(size=(m, 6))
    rows = np.arange(n, dtype=np.int64)
    z = x @ H.T + rng.normal(0, 10, (n, m))
    R = np.stack([_spd(rng, m, np.full(m, 50.0)) for _ in range(n)])
    x1, P1 = x.copy(), P.copy()
    d2 = np.empty(n)
    update_linear(x1, P1, rows, rows, z, R, H, d2)
    work = new_workspace()
    for r in range(n):
        kf = _kf(x[r], P[r], m)
        kf.H = H
        kf.R = R[r]
        kf.update(z[r])
        _close(x1[r], kf.x)
        _close(P1[r], kf.P)
        xr, Pr = x[r].copy(), P[r].copy()
        Hw = np.zeros((6, 6))
        Hw[:m] = H
        Rw = np.zeros((6, 6))
        Rw[:m, :m] = R[r]
        d2r, logdet = joseph_update_row(xr, Pr, Hw, z[r] - H @ x[r], Rw, m, work)
        loglik = -0.5 * (d2r + logdet + m * LOG_2PI)
        assert abs(loglik - kf.log_likelihood) < 1e-9 * max(1.0, abs(loglik))


def test_gating_innovations_match_numpy() -> None:
    rng = np.random.default_rng(40)
    n, m = 10, 7
    x, P = _tracks(rng, n)
    z = rng.normal(0, 5e4, (m, 3))
    R = np.stack([_spd(rng, 3, np.full(3, 200.0)) for _ in range(m)])
    rows, cols = (a.ravel().astype(np.int64) for a in np.meshgrid(np.arange(n), np.arange(m)))
    k = rows.shape[0]
    y, S, d2 = np.empty((k, 3)), np.empty((k, 3, 3)), np.empty(k)
    d2_only = np.empty(k)
    position_innovations(x, P, rows, cols, z, R, y, S, d2)
    position_d2(x, P, rows, cols, z, R, d2_only)
    np.testing.assert_array_equal(d2, d2_only)
    for i in range(k):
        yr = z[cols[i]] - x[rows[i], :3]
        Sr = P[rows[i], :3, :3] + R[cols[i]]
        np.testing.assert_allclose(y[i], yr, rtol=1e-15)
        np.testing.assert_allclose(S[i], Sr, rtol=1e-15)
        assert abs(d2[i] - yr @ np.linalg.solve(Sr, yr)) <= 1e-9 * d2[i]


def test_non_positive_definite_innovation_is_skipped() -> None:
    rng = np.random.default_rng(50)
    x, P = _tracks(rng, 2)
    R = np.stack([-1e9 * np.eye(3), 100.0 * np.eye(3)])
    z = x[:, :3] + 10.0
    rows = np.array([0, 1], dtype=np.int64)
    x1, P1 = x.copy(), P.copy()
    d2 = np.empty(2)
    assert update_position(x1, P1, rows, rows, z, R, d2) == 1
    assert d2[0] == np.inf and np.isfinite(d2[1])
    np.testing.assert_array_equal(x1[0], x[0])
    np.testing.assert_array_equal(P1[0], P[0])
    g = np.empty(2)
    position_d2(x, P, rows, rows, z, R, g)
    assert g[0] == np.inf


def test_non_finite_measurement_is_skipped() -> None:
    rng = np.random.default_rng(55)
    x, P = _tracks(rng, 3)
    z = x[:, :3] + 5.0
    z[0, 1] = np.nan
    z[1, 2] = np.inf
    R = np.broadcast_to(np.eye(3) * 100.0, (3, 3, 3)).copy()
    rows = np.arange(3, dtype=np.int64)
    x1, P1 = x.copy(), P.copy()
    d2 = np.empty(3)
    assert update_position(x1, P1, rows, rows, z, R, d2) == 1
    assert d2[0] == np.inf and d2[1] == np.inf and np.isfinite(d2[2])
    np.testing.assert_array_equal(x1[:2], x[:2])
    np.testing.assert_array_equal(P1[:2], P[:2])
    R[2, 0, 0] = np.nan
    x2, P2 = x.copy(), P.copy()
    assert update_position(x2, P2, rows[2:], rows[2:], z, R, d2) == 0
    np.testing.assert_array_equal(x2, x)


def test_covariance_stays_spd_over_a_long_run() -> None:
    rng = np.random.default_rng(60)
    x, P = _tracks(rng, 3)
    rows = np.arange(3, dtype=np.int64)
    d2 = np.empty(3)
    imm = ImmModelSet.cv_ct()
    truth = x.copy()
    for step in range(10_000):
        dt = rng.uniform(0.01, 30.0, 3)
        if step % 3 == 0:
            predict_model(x, P, rows, dt, imm.omega_rad_s[1 + step % 2], 5.0, 0.5)
        else:
            predict(x, P, rows, dt, 5.0, 0.5)
        truth[:, :3] += dt[:, None] * truth[:, 3:]
        # measurements from very precise to very poor, some with velocity
        sig = 10.0 ** rng.uniform(-2, 4, 3)
        R = np.stack([np.diag(np.full(3, s * s)) for s in sig])
        z = truth[:, :3] + rng.normal(size=(3, 3)) * sig[:, None]
        if step % 5 == 0:
            R6 = np.zeros((3, 6, 6))
            R6[:, :3, :3] = R
            R6[:, 3:, 3:] = np.eye(3) * 0.01
            z6 = np.hstack([z, truth[:, 3:]])
            update_position_velocity(x, P, rows, rows, z6, R6, d2)
        else:
            update_position(x, P, rows, rows, z, R, d2)
        assert np.isfinite(d2).all()
        if step % 500 == 0 or step == 9_999:
            for r in range(3):
                np.testing.assert_array_equal(P[r], P[r].T)
                assert np.linalg.eigvalsh(P[r]).min() > 0.0
    assert np.abs(x[:, :3] - truth[:, :3]).max() < 1e4


def test_deterministic_bit_for_bit() -> None:
    rng = np.random.default_rng(70)
    x, P = _tracks(rng, 50)
    rows = np.arange(50, dtype=np.int64)
    dt = rng.uniform(0, 5, 50)
    z = x[:, :3] + rng.normal(0, 10, (50, 3))
    R = np.broadcast_to(np.eye(3) * 100.0, (50, 3, 3)).copy()
    outs = []
    for _ in range(2):
        xa, Pa = x.copy(), P.copy()
        predict(xa, Pa, rows, dt, 1.0, 0.1)
        update_position(xa, Pa, rows, rows, z, R, np.empty(50))
        outs.append((xa, Pa))
    assert outs[0][0].tobytes() == outs[1][0].tobytes()
    assert outs[0][1].tobytes() == outs[1][1].tobytes()


def test_sequential_updates_of_one_row() -> None:
    rng = np.random.default_rng(80)
    x, P = _tracks(rng, 1)
    z = x[0, :3] + rng.normal(0, 10, (2, 3))
    R = np.stack([np.eye(3) * 100.0, np.eye(3) * 50.0])
    x1, P1 = x.copy(), P.copy()
    update_position(x1, P1, np.array([0, 0]), np.array([0, 1]), z, R, np.empty(2))
    H = np.hstack([np.eye(3), np.zeros((3, 3))])
    xr, Pr, _, _ = _joseph_reference(x[0], P[0], H, z[0], R[0])
    xr, Pr, _, _ = _joseph_reference(xr, Pr, H, z[1], R[1])
    _close(x1[0], xr)
    _close(P1[0], Pr)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_predict_update_is_bit_identical_to_predict_then_update(seed: int) -> None:
    """predict_update_pos (the tracker's fused path) = predict_per_row then update_position,
    bit for bit, including late detections (dt clamped at 0) and a skipped pair."""
    rng = np.random.default_rng(seed)
    n, k = 40, 25
    x, P = _tracks(rng, n)
    t_s = rng.uniform(0.0, 3.0, n)
    cls = rng.integers(0, 4, n).astype(np.uint8)
    q_h, q_v = np.array([1.0, 4.0, 0.01, 0.5]), np.array([0.1, 1.0, 1e-4, 0.01])
    rows = np.sort(rng.choice(n, k, replace=False)).astype(np.int64)
    cols = rng.permutation(k).astype(np.int64)
    t = rng.uniform(1.0, 4.0, k)  # some earlier than their track's state: taken at dt = 0
    z = x[rows][np.argsort(cols)][:, :3] + rng.normal(0, 30, (k, 3))
    R = np.stack([_spd(rng, 3, np.full(3, 400.0)) for _ in range(k)])
    R[cols[3]] = -np.eye(3) * 1e9  # S not positive definite: predicted, not updated
    xa, Pa, ta = x.copy(), P.copy(), t_s.copy()
    applied = predict_update_pos(xa, Pa, ta, cls, rows, cols, t, z, R, q_h, q_v)
    xb, Pb = x.copy(), P.copy()
    dt = np.maximum(t[cols] - t_s[rows], 0.0)
    predict_per_row(xb, Pb, rows, dt, q_h[cls[rows]], q_v[cls[rows]])
    d2 = np.empty(k)
    assert update_position(xb, Pb, rows, cols, z, R, d2) == applied == k - 1
    assert np.array_equal(xa, xb) and np.array_equal(Pa, Pb)
    tb = t_s.copy()
    tb[rows] = np.maximum(t[cols], t_s[rows])
    assert np.array_equal(ta, tb)


@pytest.mark.parametrize("seed", range(3))
def test_packed_cv_predict_is_bit_identical_to_the_full_one(seed: int) -> None:
    from fusion.kernels.kalman import cv_predict_packed
    from fusion.kernels.packed import pack
    from fusion.models import cv_predict_into

    rng = np.random.default_rng(seed)
    x, P = _tracks(rng, 10)
    for r in range(10):
        dt, qh, qv = rng.uniform(0, 30), rng.uniform(0.1, 10), rng.uniform(0.01, 1)
        xa, Pa = x[r].copy(), P[r].copy()
        cv_predict_into(xa, Pa, dt, qh, qv)
        xb, Pb = x[r].copy(), pack(P[r])
        cv_predict_packed(xb, Pb, dt, qh, qv)
        assert xa.tobytes() == xb.tobytes() and pack(Pa).tobytes() == Pb.tobytes()
