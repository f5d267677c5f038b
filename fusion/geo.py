"""WGS84 geodesy for the tracker: geodetic <-> ECEF <-> local ENU, and ENU <-> range/az/el.

This module owns every coordinate transform in the project. Positions on the wire are WGS84
latitude/longitude in degrees and height above the ellipsoid in metres; inside the tracker they
are East-North-Up metres in the theatre's ``LocalFrame``. Angles of sensor measurements are
radians, azimuth clockwise from north (``atan2(e, n)``, in [0, 2*pi)), elevation above the local
horizontal plane.

Layout: private batched ``@njit`` kernels that write into arrays passed in, plain-Python public
wrappers that check shapes and values and allocate results, and public ``@njit`` scalar helpers
(``ecef_of``, ``enu_rotation_into``, ``aer_of``, ``aer_jacobian_into``, ``enu_of_aer``,
``wrap_angle``) that other kernels call directly. Nothing here knows about tracks.
"""

from __future__ import annotations

import math

import numpy as np

from fusion.jit import njit

__all__ = [
    "WGS84_A_M",
    "WGS84_F",
    "WGS84_E2",
    "LocalFrame",
    "geodetic_to_ecef",
    "ecef_to_geodetic",
    "enu_to_aer",
    "aer_to_enu",
    "aer_jacobian",
    "ecef_of",
    "geodetic_of",
    "enu_rotation_into",
    "aer_of",
    "aer_jacobian_into",
    "enu_of_aer",
    "wrap_angle",
    "warm_up",
]

WGS84_A_M = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_B_M = WGS84_A_M * (1.0 - WGS84_F)
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)  # first eccentricity squared
WGS84_EP2 = WGS84_E2 / (1.0 - WGS84_E2)  # second eccentricity squared

# Below this horizontal distance (m) the azimuth of a target is undefined (straight overhead);
# the Jacobian uses this floor instead of dividing by zero.
_RHO_FLOOR_M = 1e-9
# Latitude iterations stop when a round moves the latitude by less than this (about 0.6 um);
# the round that follows such a step is already at the rounding floor.
_LAT_TOL_RAD = 1e-13


# ---------------------------------------------------------------------------------------------
# @njit scalar helpers (public: other kernels call them)
# ---------------------------------------------------------------------------------------------


@njit
def ecef_of(lat_rad: float, lon_rad: float, alt_m: float) -> tuple[float, float, float]:
    """ECEF (x, y, z) in metres of one geodetic point given in radians and metres."""
    sl = math.sin(lat_rad)
    cl = math.cos(lat_rad)
    n_m = WGS84_A_M / math.sqrt(1.0 - WGS84_E2 * sl * sl)
    return (
        (n_m + alt_m) * cl * math.cos(lon_rad),
        (n_m + alt_m) * cl * math.sin(lon_rad),
        (n_m * (1.0 - WGS84_E2) + alt_m) * sl,
    )


@njit
def _latitude_by_angles(p: float, z_m: float) -> float:
    """Bowring's iteration on angles; valid everywhere, used where the tangent form is not."""
    beta = math.atan2(z_m, (1.0 - WGS84_F) * p)
    lat = 0.0
    for i in range(12):
        sb = math.sin(beta)
        cb = math.cos(beta)
        new_lat = math.atan2(
            z_m + WGS84_EP2 * WGS84_B_M * sb * sb * sb,
            p - WGS84_E2 * WGS84_A_M * cb * cb * cb,
        )
        done = i > 0 and abs(new_lat - lat) < _LAT_TOL_RAD
        lat = new_lat
        if done:
            break
        beta = math.atan2((1.0 - WGS84_F) * math.sin(lat), math.cos(lat))
    return lat


@njit
def geodetic_of(x_m: float, y_m: float, z_m: float) -> tuple[float, float, float]:
    """Geodetic (lat_rad, lon_rad, alt_m) of one ECEF point.

    Bowring's iteration on the parametric latitude, run until the latitude moves by less than
    1e-13 rad (each round gains several orders of magnitude: two or three rounds reach double
    precision at any height above a few km below the surface). It is written on tangents
    (square roots instead of trigonometric calls); points near the axis deep inside the Earth
    use the angle form instead. The height uses ``p cos(lat) + z sin(lat) - a sqrt(1 - e2
    sin^2 lat)``, which stays accurate at the poles where ``p / cos(lat)`` would not.
    """
    p = math.hypot(x_m, y_m)
    lon = math.atan2(y_m, x_m)
    if p == 0.0:
        lat = math.copysign(0.5 * math.pi, z_m) if z_m != 0.0 else 0.0
    else:
        tb = z_m / ((1.0 - WGS84_F) * p)  # tan of the parametric latitude
        num = 0.0
        den = 0.0
        t_lat = 0.0
        ok = True
        for i in range(12):
            cb = 1.0 / math.sqrt(1.0 + tb * tb)
            sb = tb * cb
            num = z_m + WGS84_EP2 * WGS84_B_M * sb * sb * sb
            den = p - WGS84_E2 * WGS84_A_M * cb * cb * cb
            if not den > 0.0:
                ok = False
                break
            new_t = num / den
            # d(lat) = d(tan lat) / (1 + tan^2 lat)
            done = i > 0 and abs(new_t - t_lat) < _LAT_TOL_RAD * (1.0 + new_t * new_t)
            t_lat = new_t
            if done:
                break
            tb = (1.0 - WGS84_F) * t_lat
        lat = math.atan2(num, den) if ok else _latitude_by_angles(p, z_m)
    sl = math.sin(lat)
    alt = p * math.cos(lat) + z_m * sl - WGS84_A_M * math.sqrt(1.0 - WGS84_E2 * sl * sl)
    return lat, lon, alt


@njit
def enu_rotation_into(lat_rad: float, lon_rad: float, out: np.ndarray) -> None:
    """Write into ``out`` (3, 3) the rotation taking ECEF vectors to ENU at (lat, lon).

    Rows are the east, north and up unit vectors expressed in ECEF.
    """
    sl = math.sin(lat_rad)
    cl = math.cos(lat_rad)
    so = math.sin(lon_rad)
    co = math.cos(lon_rad)
    out[0, 0] = -so
    out[0, 1] = co
    out[0, 2] = 0.0
    out[1, 0] = -sl * co
    out[1, 1] = -sl * so
    out[1, 2] = cl
    out[2, 0] = cl * co
    out[2, 1] = cl * so
    out[2, 2] = sl


@njit
def wrap_angle(a_rad: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    two_pi = 2.0 * math.pi
    w = a_rad - two_pi * math.floor((a_rad + math.pi) / two_pi)
    # Rounding can land exactly on +pi (or a hair past); fold it back into the interval.
    if w >= math.pi:
        w -= two_pi
    elif w < -math.pi:
        w += two_pi
    return w


@njit
def aer_of(e_m: float, n_m: float, u_m: float) -> tuple[float, float, float]:
    """(range_m, az_rad in [0, 2*pi), el_rad) of an ENU offset from the observer."""
    rho = math.hypot(e_m, n_m)
    range_m = math.hypot(rho, u_m)
    az = math.atan2(e_m, n_m)
    if az < 0.0:
        az += 2.0 * math.pi
        if az >= 2.0 * math.pi:  # -0.0-ish inputs round up to 2*pi
            az = 0.0
    el = math.atan2(u_m, rho)
    return range_m, az, el


@njit
def enu_of_aer(range_m: float, az_rad: float, el_rad: float) -> tuple[float, float, float]:
    """ENU offset (e, n, u) in metres of a point at (range, azimuth, elevation)."""
    ce = math.cos(el_rad)
    return (
        range_m * ce * math.sin(az_rad),
        range_m * ce * math.cos(az_rad),
        range_m * math.sin(el_rad),
    )


@njit
def aer_jacobian_into(e_m: float, n_m: float, u_m: float, J: np.ndarray) -> None:
    """Write into ``J`` (3, 3) the exact d(range, az, el) / d(e, n, u) at an ENU offset.

    Row 0 is range, row 1 azimuth, row 2 elevation. Directly overhead (horizontal distance
    below 1e-9 m) azimuth is undefined; the horizontal distance is floored there so the
    entries stay finite (and huge), rather than producing inf/nan.
    """
    rho2 = e_m * e_m + n_m * n_m
    floor2 = _RHO_FLOOR_M * _RHO_FLOOR_M
    if rho2 < floor2:
        rho2 = floor2
    rho = math.sqrt(rho2)
    r2 = rho2 + u_m * u_m
    r = math.sqrt(r2)
    J[0, 0] = e_m / r
    J[0, 1] = n_m / r
    J[0, 2] = u_m / r
    J[1, 0] = n_m / rho2
    J[1, 1] = -e_m / rho2
    J[1, 2] = 0.0
    J[2, 0] = -u_m * e_m / (r2 * rho)
    J[2, 1] = -u_m * n_m / (r2 * rho)
    J[2, 2] = rho / r2


# ---------------------------------------------------------------------------------------------
# Private batched kernels
# ---------------------------------------------------------------------------------------------


@njit
def _geodetic_to_ecef(llh: np.ndarray, out: np.ndarray) -> None:
    deg = math.pi / 180.0
    for i in range(llh.shape[0]):
        x, y, z = ecef_of(llh[i, 0] * deg, llh[i, 1] * deg, llh[i, 2])
        out[i, 0] = x
        out[i, 1] = y
        out[i, 2] = z


@njit
def _ecef_to_geodetic(xyz: np.ndarray, out: np.ndarray) -> None:
    rad = 180.0 / math.pi
    for i in range(xyz.shape[0]):
        lat, lon, alt = geodetic_of(xyz[i, 0], xyz[i, 1], xyz[i, 2])
        out[i, 0] = lat * rad
        out[i, 1] = lon * rad
        out[i, 2] = alt


@njit
def _geodetic_to_enu(llh: np.ndarray, ecef0: np.ndarray, R0: np.ndarray, out: np.ndarray) -> None:
    deg = math.pi / 180.0
    for i in range(llh.shape[0]):
        x, y, z = ecef_of(llh[i, 0] * deg, llh[i, 1] * deg, llh[i, 2])
        dx = x - ecef0[0]
        dy = y - ecef0[1]
        dz = z - ecef0[2]
        for k in range(3):
            out[i, k] = R0[k, 0] * dx + R0[k, 1] * dy + R0[k, 2] * dz


@njit
def _enu_to_geodetic(enu: np.ndarray, ecef0: np.ndarray, R0: np.ndarray, out: np.ndarray) -> None:
    rad = 180.0 / math.pi
    for i in range(enu.shape[0]):
        e = enu[i, 0]
        n = enu[i, 1]
        u = enu[i, 2]
        # R0 is orthonormal: its transpose takes ENU back to ECEF.
        x = ecef0[0] + R0[0, 0] * e + R0[1, 0] * n + R0[2, 0] * u
        y = ecef0[1] + R0[0, 1] * e + R0[1, 1] * n + R0[2, 1] * u
        z = ecef0[2] + R0[0, 2] * e + R0[1, 2] * n + R0[2, 2] * u
        lat, lon, alt = geodetic_of(x, y, z)
        out[i, 0] = lat * rad
        out[i, 1] = lon * rad
        out[i, 2] = alt


@njit
def _rotation_at(llh: np.ndarray, R0: np.ndarray, out: np.ndarray) -> None:
    deg = math.pi / 180.0
    Rp = np.empty((3, 3))
    for i in range(llh.shape[0]):
        enu_rotation_into(llh[i, 0] * deg, llh[i, 1] * deg, Rp)
        # local ENU -> ECEF is Rp^T; ECEF -> theatre ENU is R0.
        for a in range(3):
            for b in range(3):
                out[i, a, b] = R0[a, 0] * Rp[b, 0] + R0[a, 1] * Rp[b, 1] + R0[a, 2] * Rp[b, 2]


@njit
def _enu_to_aer(enu: np.ndarray, out: np.ndarray) -> None:
    for i in range(enu.shape[0]):
        r, az, el = aer_of(enu[i, 0], enu[i, 1], enu[i, 2])
        out[i, 0] = r
        out[i, 1] = az
        out[i, 2] = el


@njit
def _aer_to_enu(aer: np.ndarray, out: np.ndarray) -> None:
    for i in range(aer.shape[0]):
        e, n, u = enu_of_aer(aer[i, 0], aer[i, 1], aer[i, 2])
        out[i, 0] = e
        out[i, 1] = n
        out[i, 2] = u


@njit
def _aer_jacobian(enu: np.ndarray, out: np.ndarray) -> None:
    for i in range(enu.shape[0]):
        aer_jacobian_into(enu[i, 0], enu[i, 1], enu[i, 2], out[i])


# ---------------------------------------------------------------------------------------------
# Public wrappers
# ---------------------------------------------------------------------------------------------


def _points(a: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """(n, 3) contiguous float64 view of ``a`` and whether the caller passed a single (3,)."""
    arr = np.ascontiguousarray(a, dtype=np.float64)
    single = arr.ndim == 1
    if single:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name}: expected shape (n, 3) or (3,), got {np.shape(a)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: non-finite values")
    return arr, single


def _geodetic_points(llh: np.ndarray) -> tuple[np.ndarray, bool]:
    arr, single = _points(llh, "llh")
    if (np.abs(arr[:, 0]) > 90.0).any():
        raise ValueError("llh: latitude outside [-90, 90] degrees")
    return arr, single


def _shaped(out: np.ndarray, single: bool) -> np.ndarray:
    return out[0] if single else out


def geodetic_to_ecef(llh: np.ndarray) -> np.ndarray:
    """ECEF metres (n, 3) of geodetic points ``llh`` (n, 3): lat_deg, lon_deg, alt_m (WGS84).

    A single point of shape (3,) gives a (3,) result.
    """
    arr, single = _geodetic_points(llh)
    out = np.empty_like(arr)
    _geodetic_to_ecef(arr, out)
    return _shaped(out, single)


def ecef_to_geodetic(xyz: np.ndarray) -> np.ndarray:
    """Geodetic lat_deg, lon_deg (in (-180, 180]), alt_m (n, 3) of ECEF points (n, 3) in metres.

    Iterated to convergence: a round trip through ``geodetic_to_ecef`` returns within ~1e-9 m.
    """
    arr, single = _points(xyz, "xyz")
    out = np.empty_like(arr)
    _ecef_to_geodetic(arr, out)
    return _shaped(out, single)


def enu_to_aer(enu: np.ndarray) -> np.ndarray:
    """(n, 3) of range_m, az_rad in [0, 2*pi) clockwise from north, el_rad, of ENU offsets."""
    arr, single = _points(enu, "enu")
    out = np.empty_like(arr)
    _enu_to_aer(arr, out)
    return _shaped(out, single)


def aer_to_enu(aer: np.ndarray) -> np.ndarray:
    """ENU offsets (n, 3) in metres of (range_m, az_rad, el_rad) rows (n, 3)."""
    arr, single = _points(aer, "aer")
    if (arr[:, 0] < 0.0).any():
        raise ValueError("aer: negative range")
    out = np.empty_like(arr)
    _aer_to_enu(arr, out)
    return _shaped(out, single)


def aer_jacobian(enu: np.ndarray) -> np.ndarray:
    """Exact Jacobians (n, 3, 3) of (range, az, el) with respect to (e, n, u) at ENU offsets.

    ``J[i, 0]`` is d range / d(e, n, u), ``J[i, 1]`` d az, ``J[i, 2]`` d el (radians per metre).
    """
    arr, single = _points(enu, "enu")
    out = np.empty((arr.shape[0], 3, 3))
    _aer_jacobian(arr, out)
    return _shaped(out, single)


class LocalFrame:
    """The East-North-Up Cartesian frame tangent to the WGS84 ellipsoid at an origin.

    ``to_enu``/``to_geodetic`` are the exact geodetic -> ECEF -> ENU transform (no projection).
    ``ecef0`` (3,) is the origin in ECEF and ``R0`` (3, 3) the ECEF -> ENU rotation; kernels
    that need the transform inside ``@njit`` code take those two arrays.
    """

    def __init__(self, lat0_deg: float, lon0_deg: float, alt0_m: float = 0.0) -> None:
        origin = np.array([lat0_deg, lon0_deg, alt0_m], dtype=np.float64)
        if not np.isfinite(origin).all():
            raise ValueError("LocalFrame: non-finite origin")
        if abs(origin[0]) > 90.0:
            raise ValueError("LocalFrame: latitude outside [-90, 90] degrees")
        self.lat0_deg = float(origin[0])
        self.lon0_deg = float(origin[1])
        self.alt0_m = float(origin[2])
        self.ecef0 = geodetic_to_ecef(origin)
        self.R0 = np.empty((3, 3))
        enu_rotation_into(math.radians(self.lat0_deg), math.radians(self.lon0_deg), self.R0)

    def __repr__(self) -> str:
        return f"LocalFrame({self.lat0_deg!r}, {self.lon0_deg!r}, {self.alt0_m!r})"

    @property
    def origin(self) -> tuple[float, float, float]:
        """(lat0_deg, lon0_deg, alt0_m)."""
        return (self.lat0_deg, self.lon0_deg, self.alt0_m)

    def to_enu(self, llh: np.ndarray) -> np.ndarray:
        """ENU metres (n, 3) in this frame of geodetic points ``llh`` (n, 3) (deg, deg, m)."""
        arr, single = _geodetic_points(llh)
        out = np.empty_like(arr)
        _geodetic_to_enu(arr, self.ecef0, self.R0, out)
        return _shaped(out, single)

    def to_geodetic(self, enu: np.ndarray) -> np.ndarray:
        """Geodetic (n, 3) lat_deg, lon_deg, alt_m of ENU points (n, 3) in this frame."""
        arr, single = _points(enu, "enu")
        out = np.empty_like(arr)
        _enu_to_geodetic(arr, self.ecef0, self.R0, out)
        return _shaped(out, single)

    def sensor_transform(self, site_llh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(M (3, 3), c (3,)) with ``p_sensor_enu = M @ p_theatre_enu + c`` exactly.

        ``site_llh`` (3,) is the sensor's lat_deg, lon_deg, alt_m; the sensor frame is the ENU
        frame at the site. Both frames are ENU frames of one ellipsoid, so the map is a rigid
        motion: ``M`` is a rotation and ``M.T @ (q - c)`` maps back.
        """
        site, single = _geodetic_points(site_llh)
        if not single and site.shape[0] != 1:
            raise ValueError("site_llh: expected a single point (3,)")
        site = site[0]
        Rs = np.empty((3, 3))
        enu_rotation_into(math.radians(site[0]), math.radians(site[1]), Rs)
        s = geodetic_to_ecef(site)
        M = Rs @ self.R0.T
        c = Rs @ (self.ecef0 - s)
        return M, c

    def rotation_at(self, llh: np.ndarray) -> np.ndarray:
        """Rotations (n, 3, 3) taking vectors in the local ENU frame at each point to this frame.

        A velocity ``v_local`` (east, north, up at the point) becomes ``Rt @ v_local`` and a
        covariance ``C_local`` becomes ``Rt @ C_local @ Rt.T``.
        """
        arr, single = _geodetic_points(llh)
        out = np.empty((arr.shape[0], 3, 3))
        _rotation_at(arr, self.R0, out)
        return _shaped(out, single)


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel here on tiny arrays of the real dtypes."""
    frame = LocalFrame(45.0, 30.0, 0.0)
    llh = np.array([[45.1, 30.1, 100.0]])
    enu = frame.to_enu(llh)
    frame.to_geodetic(enu)
    frame.rotation_at(llh)
    ecef_to_geodetic(geodetic_to_ecef(llh))
    aer_to_enu(enu_to_aer(enu))
    aer_jacobian(enu)
