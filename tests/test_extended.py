"""Extended updates (polar, bearing) against finite differences and a slow numpy EKF."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.geo import LocalFrame
from fusion.kernels import extended, kalman
from fusion.kernels.extended import (
    MEAS_BEARING,
    MEAS_POLAR,
    MEAS_POS,
    MEAS_POS_VEL,
    linearize_row,
)
from tests.packedkit import symmetric, via_packed

# The batched kernels take the table's packed covariances; these take (n, 6, 6) ones.
update_bearing = via_packed(extended.update_bearing, 1)
update_measurements = via_packed(extended.update_measurements, 2)
update_polar = via_packed(extended.update_polar, 1)
update_position = via_packed(kalman.update_position, 1)
update_position_velocity = via_packed(kalman.update_position_velocity, 1)
predict = via_packed(kalman.predict, 1)


def _spd(rng: np.random.Generator, n: int, scale: np.ndarray) -> np.ndarray:
    A = rng.normal(size=(n, n))
    s = np.sqrt(scale)
    return symmetric(s[:, None] * (A @ A.T + 0.1 * np.eye(n)) * s[None, :])


def _case(seed: int, n: int = 10):
    """A theatre, a sensor site in it, tracks 5-150 km from the site, their M and c."""
    rng = np.random.default_rng(seed)
    frame = LocalFrame(float(rng.uniform(-60, 60)), float(rng.uniform(-180, 180)), 50.0)
    site_enu = np.array([*rng.normal(0, 5e4, 2), rng.uniform(0, 300)])
    site = frame.to_geodetic(site_enu)
    M, c = frame.sensor_transform(site)
    rg = rng.uniform(5e3, 1.5e5, n)
    th = rng.uniform(0, 2 * np.pi, n)
    pos = site_enu + np.column_stack([rg * np.sin(th), rg * np.cos(th), rng.uniform(50, 1e4, n)])
    x = np.column_stack([pos, rng.normal(0, 150, (n, 3))])
    P = np.stack([_spd(rng, 6, np.array([900, 900, 2500, 100, 100, 25.0])) for _ in range(n)])
    return rng, M, c, x, P


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def _h(x, M, c):
    """Slow reference: (range, az in [0, 2pi), el) of a state from the sensor."""
    q = M @ x[:3] + c
    return np.array(
        [
            np.linalg.norm(q),
            math.atan2(q[0], q[1]) % (2 * np.pi),
            math.atan2(q[2], math.hypot(q[0], q[1])),
        ]
    )


def _jac_reference(x, M, c):
    """Analytic Jacobian written independently in numpy (chain rule through q = M p + c)."""
    e, n, u = M @ x[:3] + c
    rho2 = e * e + n * n
    rho = math.sqrt(rho2)
    r2 = rho2 + u * u
    r = math.sqrt(r2)
    Jq = np.array(
        [
            [e / r, n / r, u / r],
            [n / rho2, -e / rho2, 0.0],
            [-u * e / (r2 * rho), -u * n / (r2 * rho), rho / r2],
        ]
    )
    H = np.zeros((3, 6))
    H[:, :3] = Jq @ M
    return H


def _ekf_reference(x, P, z, R, M, c, rows_of_h):
    """Textbook EKF with the Joseph form, in plain numpy."""
    H = _jac_reference(x, M, c)[rows_of_h]
    y = z - _h(x, M, c)[rows_of_h]
    if rows_of_h[0] == 1:
        y[0] = _wrap(y[0])
    elif len(rows_of_h) == 3:
        y[1] = _wrap(y[1])
    S = H @ P @ H.T + R
    K = P @ H.T @ np.linalg.inv(S)
    A = np.eye(6) - K @ H
    return x + K @ y, A @ P @ A.T + K @ R @ K.T, float(y @ np.linalg.solve(S, y))


def _close(a, b, tol=1e-9):
    scale = max(1.0, float(np.abs(b).max()))
    assert np.abs(a - b).max() <= tol * scale, np.abs(a - b).max() / scale


@pytest.mark.parametrize("seed", range(4))
def test_polar_and_bearing_jacobians_match_finite_differences(seed: int) -> None:
    _, M, c, x, _ = _case(seed)
    H = np.zeros((6, 6))
    y = np.zeros(6)
    for i in range(x.shape[0]):
        z3 = _h(x[i], M, c)
        assert linearize_row(MEAS_POLAR, x[i], z3, M, c, H, y) == 3
        np.testing.assert_allclose(y[:3], 0.0, atol=1e-9)
        num = np.zeros((3, 6))
        step = 0.5
        for k in range(6):
            d = np.zeros(6)
            d[k] = step
            diff = _h(x[i] + d, M, c) - _h(x[i] - d, M, c)
            diff[1] = _wrap(diff[1])
            num[:, k] = diff / (2 * step)
        for a in range(3):
            scale = np.abs(num[a]).max()
            np.testing.assert_allclose(H[a] / scale, num[a] / scale, atol=1e-7)
        Hp = H[:3].copy()
        assert linearize_row(MEAS_BEARING, x[i], z3[1:], M, c, H, y) == 2
        np.testing.assert_allclose(H[:2], Hp[1:], rtol=1e-15)
        assert linearize_row(MEAS_BEARING, x[i], z3[1:2], M, c, H, y) == 1
        np.testing.assert_allclose(H[:1], Hp[1:2], rtol=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_polar_update_matches_numpy_ekf(seed: int) -> None:
    rng, M, c, x, P = _case(10 + seed)
    n = x.shape[0]
    truth = np.stack([_h(x[i], M, c) for i in range(n)])
    z = truth + rng.normal(0, 1, (n, 3)) * np.array([50.0, 0.01, 0.01])
    z[:, 1] %= 2 * np.pi
    R = np.stack([np.diag([50.0**2, 0.01**2, 0.01**2]) for _ in range(n)])
    rows = rng.permutation(n).astype(np.int64)
    cols = np.arange(n, dtype=np.int64)
    x1, P1 = x.copy(), P.copy()
    d2 = np.empty(n)
    assert update_polar(x1, P1, rows, cols, z, R, M, c, d2) == n
    for k in range(n):
        r = rows[k]
        xr, Pr, d2r = _ekf_reference(x[r], P[r], z[k], R[k], M, c, [0, 1, 2])
        _close(x1[r], xr)
        _close(P1[r], Pr)
        np.testing.assert_array_equal(P1[r], P1[r].T)
        assert abs(d2[k] - d2r) <= 1e-8 * max(1.0, d2r)


@pytest.mark.parametrize("m", [1, 2])
def test_bearing_update_matches_numpy_ekf(m: int) -> None:
    rng, M, c, x, P = _case(20 + m)
    n = x.shape[0]
    truth = np.stack([_h(x[i], M, c)[1 : 1 + m] for i in range(n)])
    z = truth + rng.normal(0, 0.005, (n, m))
    R = np.stack([np.eye(m) * 0.005**2 for _ in range(n)])
    rows = np.arange(n, dtype=np.int64)
    x1, P1 = x.copy(), P.copy()
    d2 = np.empty(n)
    assert update_bearing(x1, P1, rows, rows, z, R, M, c, d2) == n
    for r in range(n):
        xr, Pr, d2r = _ekf_reference(x[r], P[r], z[r], R[r], M, c, list(range(1, 1 + m)))
        _close(x1[r], xr)
        _close(P1[r], Pr)
        assert abs(d2[r] - d2r) <= 1e-8 * max(1.0, d2r)


@pytest.mark.parametrize("az_true", [1e-4, 2 * np.pi - 1e-4])
@pytest.mark.parametrize("az_meas", [-2e-4, 2e-4, 2 * np.pi - 2e-4])
def test_azimuth_innovation_wraps_across_north(az_true: float, az_meas: float) -> None:
    M, c = np.eye(3), np.zeros(3)
    rg = 20_000.0
    x = np.array([[rg * math.sin(az_true), rg * math.cos(az_true), 0.0, 0.0, 0.0, 0.0]])
    P = np.diag([100.0**2, 100.0**2, 100.0**2, 10.0, 10.0, 10.0])[None].copy()
    z = np.array([[rg, az_meas, 0.0]])
    R = np.diag([10.0**2, 0.001**2, 0.001**2])[None].copy()
    d2 = np.empty(1)
    rows = np.zeros(1, dtype=np.int64)
    x1, P1 = x.copy(), P.copy()
    update_polar(x1, P1, rows, rows, z, R, M, c, d2)
    dz = _wrap(az_meas - az_true)
    # a small innovation across north, never one of ~2 pi
    assert abs(d2[0] - (dz / math.sqrt(0.001**2 + (100.0 / rg) ** 2)) ** 2) < 1e-3 * max(1, d2[0])
    east_expected = rg * math.sin(az_meas)
    assert abs(x1[0, 0] - east_expected) < abs(x[0, 0] - east_expected) + 1e-9
    assert abs(x1[0, 1] - rg) < 5.0
    # the same with a bearing-only measurement
    x2, P2 = x.copy(), P.copy()
    update_bearing(x2, P2, rows, rows, z[:, 1:2], R[:, 1:2, 1:2], M, c, d2)
    assert d2[0] < 10.0
    assert abs(x2[0, 0] - east_expected) < abs(x[0, 0] - east_expected) + 1e-9


def test_linear_kinds_agree_with_the_linear_kernels() -> None:
    rng, M, c, x, P = _case(30)
    n = x.shape[0]
    rows = np.arange(n, dtype=np.int64)
    z6 = x + rng.normal(0, 10, (n, 6))
    R6 = np.stack([_spd(rng, 6, np.array([100, 100, 100, 1, 1, 1.0])) for _ in range(n)])
    R3 = np.ascontiguousarray(R6[:, :3, :3])
    z3 = np.ascontiguousarray(z6[:, :3])
    for kind, z, R, fn in (
        (MEAS_POS, z3, R3, update_position),
        (MEAS_POS_VEL, z6, R6, update_position_velocity),
    ):
        xa, Pa, xb, Pb = x.copy(), P.copy(), x.copy(), P.copy()
        da, db = np.empty(n), np.empty(n)
        update_measurements(kind, xa, Pa, rows, rows, z, R, M, c, da)
        fn(xb, Pb, rows, rows, z, R, db)
        assert xa.tobytes() == xb.tobytes() and Pa.tobytes() == Pb.tobytes()
        np.testing.assert_array_equal(da, db)


def test_wrong_width_is_skipped() -> None:
    _, M, c, x, P = _case(40, 2)
    rows = np.arange(2, dtype=np.int64)
    z = np.zeros((2, 4))
    R = np.broadcast_to(np.eye(4), (2, 4, 4)).copy()
    x1, P1 = x.copy(), P.copy()
    d2 = np.empty(2)
    assert update_measurements(MEAS_POLAR, x1, P1, rows, rows, z, R, M, c, d2) == 0
    assert (d2 == np.inf).all()
    np.testing.assert_array_equal(x1, x)
    np.testing.assert_array_equal(P1, P)


def test_polar_filter_converges_and_stays_spd() -> None:
    """A radar tracking a crossing target: error falls well below the raw cross-range error."""
    rng = np.random.default_rng(50)
    M, c = np.eye(3), np.zeros(3)
    truth = np.array([-30_000.0, 40_000.0, 3_000.0, 200.0, -20.0, 0.0])
    x = truth + np.array([300.0, -300.0, 100.0, 30.0, -30.0, 5.0])
    x = x[None].copy()
    P = np.diag([500.0**2, 500.0**2, 300.0**2, 50.0**2, 50.0**2, 10.0**2])[None].copy()
    R = np.diag([30.0**2, 0.002**2, 0.002**2])[None].copy()
    rows = np.zeros(1, dtype=np.int64)
    d2 = np.empty(1)
    errs = []
    for _ in range(300):
        truth[:3] += 2.0 * truth[3:]
        predict(x, P, rows, np.array([2.0]), 0.05, 0.01)
        z = _h(truth, M, c) + rng.normal(0, 1, 3) * np.array([30.0, 0.002, 0.002])
        update_polar(x, P, rows, rows, z[None], R, M, c, d2)
        errs.append(np.linalg.norm(x[0, :3] - truth[:3]))
        np.testing.assert_array_equal(P[0], P[0].T)
        assert np.linalg.eigvalsh(P[0]).min() > 0
    # raw cross-range error at ~50-60 km with 2 mrad is ~100 m
    assert np.mean(errs[-100:]) < 60.0
