"""fusion.geo against pymap3d, round trips, and the AER Jacobian against finite differences."""

from __future__ import annotations

import math

import numpy as np
import pymap3d
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion.geo import (
    LocalFrame,
    aer_jacobian,
    aer_of,
    aer_to_enu,
    ecef_to_geodetic,
    enu_to_aer,
    geodetic_to_ecef,
    wrap_angle,
)

MM = 1e-3


def _origin(rng: np.random.Generator) -> tuple[float, float, float]:
    return (
        float(rng.uniform(-88.0, 88.0)),
        float(rng.uniform(-180.0, 180.0)),
        float(rng.uniform(-100.0, 3000.0)),
    )


def _offsets(rng: np.random.Generator, n: int) -> np.ndarray:
    """ENU offsets within 1,000 km horizontally, from below ground to airliner altitude."""
    r = 1.0e6 * np.sqrt(rng.uniform(0.0, 1.0, n))
    th = rng.uniform(0.0, 2 * np.pi, n)
    u = rng.uniform(-500.0, 15000.0, n)
    return np.column_stack([r * np.sin(th), r * np.cos(th), u])


def _ecef_distance(llh_a: np.ndarray, llh_b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(geodetic_to_ecef(llh_a) - geodetic_to_ecef(llh_b), axis=1)


@pytest.mark.parametrize("seed", range(8))
def test_enu_agrees_with_pymap3d(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lat0, lon0, h0 = _origin(rng)
    frame = LocalFrame(lat0, lon0, h0)
    enu = _offsets(rng, 500)
    lat, lon, h = pymap3d.enu2geodetic(enu[:, 0], enu[:, 1], enu[:, 2], lat0, lon0, h0)
    llh_ref = np.column_stack([lat, lon, h])

    # geodetic -> ENU
    e, n, u = pymap3d.geodetic2enu(lat, lon, h, lat0, lon0, h0)
    ours = frame.to_enu(llh_ref)
    assert np.abs(ours - np.column_stack([e, n, u])).max() < MM

    # ENU -> geodetic, compared as a distance in metres
    back = frame.to_geodetic(enu)
    assert _ecef_distance(back, llh_ref).max() < MM
    assert np.abs(back[:, 2] - llh_ref[:, 2]).max() < MM


@pytest.mark.parametrize("seed", range(4))
def test_ecef_agrees_with_pymap3d(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = 1000
    # pymap3d's ecef2geodetic is a non-iterative closed form whose latitude error grows with
    # height (about 7 mm at 1,000 km up), so the comparison stays at surveillance heights; the
    # exactness of ours at any height is checked against the generating points just below.
    llh = np.column_stack(
        [rng.uniform(-90.0, 90.0, n), rng.uniform(-180.0, 180.0, n), rng.uniform(-1e3, 5e4, n)]
    )
    x, y, z = pymap3d.geodetic2ecef(llh[:, 0], llh[:, 1], llh[:, 2])
    xyz_ref = np.column_stack([x, y, z])
    xyz = geodetic_to_ecef(llh)
    assert np.abs(xyz - xyz_ref).max() < MM

    lat, lon, h = pymap3d.ecef2geodetic(xyz_ref[:, 0], xyz_ref[:, 1], xyz_ref[:, 2])
    ours = ecef_to_geodetic(xyz_ref)
    # compare in metres: latitude/longitude differences scaled by the Earth's radius
    dlat_m = np.radians(ours[:, 0] - lat) * 6.4e6
    dlon = (ours[:, 1] - lon + 180.0) % 360.0 - 180.0
    dlon_m = np.radians(dlon) * 6.4e6 * np.cos(np.radians(lat))
    assert np.abs(dlat_m).max() < MM
    assert np.abs(dlon_m).max() < MM
    assert np.abs(ours[:, 2] - h).max() < MM

    high = llh.copy()
    high[:, 2] = rng.uniform(-1e4, 2e6, n)
    back = ecef_to_geodetic(geodetic_to_ecef(high))
    assert _ecef_distance(back, high).max() < 1e-6
    assert np.abs(back[:, 2] - high[:, 2]).max() < 1e-6


@pytest.mark.parametrize("seed", range(4))
def test_aer_agrees_with_pymap3d(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    enu = _offsets(rng, 1000)
    # pymap3d's enu2aer zeroes components under 1 mm in place: hand it copies
    az, el, rng_m = pymap3d.enu2aer(enu[:, 0].copy(), enu[:, 1].copy(), enu[:, 2].copy(), deg=False)
    aer = enu_to_aer(enu)
    assert np.abs(aer[:, 0] - rng_m).max() < MM
    assert np.abs((aer[:, 1] - az) * rng_m).max() < MM
    assert np.abs((aer[:, 2] - el) * rng_m).max() < MM
    assert ((aer[:, 1] >= 0.0) & (aer[:, 1] < 2 * np.pi)).all()

    e, n, u = pymap3d.aer2enu(aer[:, 1], aer[:, 2], aer[:, 0], deg=False)
    assert np.abs(aer_to_enu(aer) - np.column_stack([e, n, u])).max() < MM
    assert np.abs(aer_to_enu(aer) - enu).max() < 1e-6


@pytest.mark.parametrize("seed", range(4))
def test_round_trips_to_micrometre(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    lat0, lon0, h0 = _origin(rng)
    frame = LocalFrame(lat0, lon0, h0)
    enu = _offsets(rng, 2000)
    llh = frame.to_geodetic(enu)
    assert np.abs(frame.to_enu(llh) - enu).max() < 1e-6
    xyz = geodetic_to_ecef(llh)
    assert np.abs(geodetic_to_ecef(ecef_to_geodetic(xyz)) - xyz).max() < 1e-6


def test_poles_and_antimeridian() -> None:
    llh = np.array(
        [[90.0, 0.0, 100.0], [-90.0, 45.0, -20.0], [0.0, 180.0, 0.0], [45.0, -179.999, 10.0]]
    )
    back = ecef_to_geodetic(geodetic_to_ecef(llh))
    assert _ecef_distance(back, llh).max() < 1e-6
    assert np.abs(back[:, 2] - llh[:, 2]).max() < 1e-6
    frame = LocalFrame(89.9, 10.0, 0.0)
    pts = np.array([[89.95, -170.0, 500.0], [89.0, 100.0, 0.0]])
    assert np.abs(frame.to_geodetic(frame.to_enu(pts)) - pts)[:, [0, 2]].max() < 1e-6


@pytest.mark.parametrize("seed", range(4))
def test_sensor_transform_is_exact_rigid_motion(seed: int) -> None:
    rng = np.random.default_rng(400 + seed)
    lat0, lon0, h0 = _origin(rng)
    frame = LocalFrame(lat0, lon0, h0)
    site = frame.to_geodetic(_offsets(rng, 1)[0])
    M, c = frame.sensor_transform(site)
    np.testing.assert_allclose(M @ M.T, np.eye(3), atol=1e-14)
    assert abs(np.linalg.det(M) - 1.0) < 1e-14
    enu = _offsets(rng, 300)
    llh = frame.to_geodetic(enu)
    site_frame = LocalFrame(*site)
    assert np.abs(enu @ M.T + c - site_frame.to_enu(llh)).max() < 1e-6
    # and against pymap3d directly
    e, n, u = pymap3d.geodetic2enu(llh[:, 0], llh[:, 1], llh[:, 2], *site)
    assert np.abs(enu @ M.T + c - np.column_stack([e, n, u])).max() < MM


@pytest.mark.parametrize("seed", range(3))
def test_rotation_at_maps_local_vectors(seed: int) -> None:
    rng = np.random.default_rng(500 + seed)
    lat0, lon0, h0 = _origin(rng)
    frame = LocalFrame(lat0, lon0, h0)
    enu = _offsets(rng, 50)
    llh = frame.to_geodetic(enu)
    Rt = frame.rotation_at(llh)
    v_local = rng.normal(0.0, 10.0, (50, 3))
    v_theatre = np.einsum("nab,nb->na", Rt, v_local)
    # a small step along the local vector, mapped through the exact transforms
    eps_s = 1e-3
    for i in range(50):
        site = LocalFrame(*llh[i])
        moved = site.to_geodetic(v_local[i] * eps_s)
        d = (frame.to_enu(moved) - enu[i]) / eps_s
        np.testing.assert_allclose(d, v_theatre[i], atol=1e-5)
    eye = np.broadcast_to(np.eye(3), Rt.shape)
    np.testing.assert_allclose(np.einsum("nab,ncb->nac", Rt, Rt), eye, atol=1e-14)
    # the sensor transform's rotation is the inverse of rotation_at for the same point
    M, _ = frame.sensor_transform(llh[0])
    np.testing.assert_allclose(M, Rt[0].T, atol=1e-14)


@pytest.mark.parametrize("seed", range(4))
def test_aer_jacobian_matches_finite_differences(seed: int) -> None:
    rng = np.random.default_rng(600 + seed)
    enu = _offsets(rng, 200)
    J = aer_jacobian(enu)
    h = 1e-3
    for i in range(enu.shape[0]):
        num = np.empty((3, 3))
        for k in range(3):
            dp = np.zeros(3)
            dp[k] = h
            plus = np.array(aer_of(*(enu[i] + dp)))
            minus = np.array(aer_of(*(enu[i] - dp)))
            diff = plus - minus
            diff[1] = wrap_angle(diff[1])
            num[:, k] = diff / (2 * h)
        scale = np.abs(J[i]).max(axis=1, keepdims=True)
        np.testing.assert_allclose(J[i] / scale, num / scale, atol=1e-6)


def test_wrap_angle() -> None:
    for a in [0.0, math.pi, -math.pi, 3 * math.pi, -3 * math.pi, 1e-18, -1e-18, 7.0, -7.0]:
        w = wrap_angle(a)
        assert -math.pi <= w < math.pi
        assert abs(math.sin(w) - math.sin(a)) < 1e-12 and abs(math.cos(w) - math.cos(a)) < 1e-12
    assert wrap_angle(math.pi) == -math.pi


def test_bad_input_is_rejected_with_reason() -> None:
    with pytest.raises(ValueError, match="latitude"):
        geodetic_to_ecef(np.array([[91.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        LocalFrame(0.0, 0.0, 0.0).to_enu(np.array([[np.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="shape"):
        enu_to_aer(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="latitude"):
        LocalFrame(-90.5, 0.0, 0.0)


def test_single_point_shapes() -> None:
    frame = LocalFrame(48.0, 37.0, 100.0)
    assert frame.to_enu(np.array([48.0, 37.0, 100.0])).shape == (3,)
    np.testing.assert_allclose(frame.to_enu(np.array([48.0, 37.0, 100.0])), 0.0, atol=1e-9)
    assert aer_jacobian(np.array([1.0, 2.0, 3.0])).shape == (3, 3)


@settings(max_examples=200, deadline=None)
@given(
    lat0=st.floats(-89.0, 89.0),
    lon0=st.floats(-180.0, 180.0),
    h0=st.floats(-400.0, 9000.0),
    e=st.floats(-1e6, 1e6),
    n=st.floats(-1e6, 1e6),
    u=st.floats(-1e3, 5e4),
)
def test_round_trip_property(lat0, lon0, h0, e, n, u) -> None:
    frame = LocalFrame(lat0, lon0, h0)
    enu = np.array([[e, n, u]])
    assert np.abs(frame.to_enu(frame.to_geodetic(enu)) - enu).max() < 1e-6
    aer = enu_to_aer(enu)
    assert np.abs(aer_to_enu(aer) - enu).max() < 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_conversion_is_bit_identical_to_the_frame_methods(seed: int) -> None:
    """`geodetic_batch_into` (one pass, each point's sines and cosines taken once) gives the
    bits of `LocalFrame.to_enu`, `LocalFrame.rotation_at` and a plain loop of Rt C Rt^T."""
    from fusion.kernels.frames import congruence3, geodetic_batch_into

    rng = np.random.default_rng(seed)
    frame = LocalFrame(46.5, 30.7, 12.0)
    n = 300
    llh = np.c_[rng.uniform(-89.9, 89.9, n), rng.uniform(-180, 180, n), rng.normal(0, 800, n)]
    A = rng.normal(size=(n, 3, 3))
    C = A @ A.transpose(0, 2, 1)
    pos, Rt, C_out, tr = np.empty((n, 3)), np.empty((n, 3, 3)), np.empty((n, 3, 3)), np.empty(n)
    assert geodetic_batch_into(llh, C, frame.ecef0, frame.R0, pos, Rt, C_out, tr) == 0
    assert np.array_equal(pos, frame.to_enu(llh))
    assert np.array_equal(Rt, frame.rotation_at(llh))
    ref = np.empty_like(C)
    for k in range(n):  # the obvious sums, each from 0.0 in index order
        AC = np.zeros((3, 3))
        for i in range(3):
            for j in range(3):
                s = 0.0
                for m in range(3):
                    s += Rt[k, i, m] * C[k, m, j]
                AC[i, j] = s
        for i in range(3):
            for j in range(i, 3):
                s = 0.0
                for m in range(3):
                    s += AC[i, m] * Rt[k, j, m]
                ref[k, i, j] = ref[k, j, i] = s
    assert np.array_equal(C_out, ref)
    assert np.array_equal(tr, ref[:, 0, 0] + ref[:, 1, 1] + ref[:, 2, 2])
    assert np.array_equal(congruence3(Rt, C)[0], ref)
    llh[7, 0] = 91.0
    assert geodetic_batch_into(llh, C, frame.ecef0, frame.R0, pos, Rt, C_out, tr) == 1


def test_finite_rows_flags_every_non_finite_value() -> None:
    """The batch check finds an inf or NaN anywhere in a row's t, z or R, and only there."""
    from fusion.kernels.frames import finite_rows

    rng = np.random.default_rng(5)
    for _ in range(200):
        n, m = int(rng.integers(1, 30)), int(rng.integers(1, 7))
        t, z, R = rng.normal(size=n), rng.normal(size=(n, m)) * 1e300, rng.normal(size=(n, m, m))
        for arr in (t, z, R):
            flat = arr.reshape(-1)
            for _ in range(int(rng.integers(0, 3))):
                flat[rng.integers(0, flat.size)] = rng.choice([np.inf, -np.inf, np.nan, -0.0])
        ok = np.empty(n, np.bool_)
        bad, t_max = finite_rows(t, z, R, ok)
        want = np.isfinite(t) & np.isfinite(z).all(axis=1) & np.isfinite(R).all(axis=(1, 2))
        assert np.array_equal(ok, want)
        assert bad == n - int(want.sum())
        if want.all():
            assert t_max == t.max()
