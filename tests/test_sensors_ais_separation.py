"""The AIS measurement model (sensors.ais.position_variance) and the surface class
(fusion.tracker_config) on synthetic vessels, identities stripped: moored neighbours keep one
pure track each, a ferry keeps one track through its turns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.messages import KIND_POS, Detections
from fusion.replay import Replayer
from sensors.ais import (
    SIGMA_FLOOR_M,
    TIME_SIGMA_S,
    AisDecoder,
    coarse_grid_variance,
    position_variance,
)
from sensors.batching import KNOT_MPS, window_batches

M_PER_DEG = 111_195.0
LAT0, LON0 = 50.80, -1.20
T0 = 1_452_603_731.0


def _latlon(east_m: float, north_m: float) -> tuple[float, float]:
    return LAT0 + north_m / M_PER_DEG, LON0 + east_m / (M_PER_DEG * math.cos(math.radians(LAT0)))


def _tracks_of(meas: list, tracker: dict | None = None) -> dict[bytes, np.ndarray]:
    r = Replayer(origin=(LAT0, LON0, 0.0), track_dt_s=0.0, strip_ident=True, tracker=tracker)
    for b in window_batches(meas, "ais"):
        r.message(b)
    ids = r.finish().idents
    return {i: ids["track"][ids["ident"] == i] for i in np.unique(ids["ident"])}


def test_position_variance_floor_and_speed_term() -> None:
    assert position_variance(0.0) == SIGMA_FLOOR_M**2
    assert position_variance(10.0) == pytest.approx(SIGMA_FLOOR_M**2 + (10.0 * TIME_SIGMA_S) ** 2)
    # Off the 0.01' grid (LAT0, LON0 are on it: coarse_grid_variance would add its term).
    lat, lon = LAT0 + 1e-5, LON0 + 1e-5
    m = AisDecoder(plausibility=False).measurement(T0, 235000001, lat, lon, 19.4, 90.0)
    v = 19.4 * KNOT_MPS
    assert m.r_diag[0] == pytest.approx(position_variance(v)) == m.r_diag[1]
    assert m.vel_var[0] < 0.3  # 0.1 m/s speed, 3 deg of course at 10 m/s


def test_two_vessels_moored_16_m_apart_keep_one_pure_track_each() -> None:
    """Reports every 10 s, alternately, 1 m of scatter, SOG 0, 16 m apart as two Solent
    vessels are: with the 30 m sigma of before (and with a 5 m floor) one track took both."""
    dec = AisDecoder(plausibility=False)
    rng = np.random.default_rng(11)
    meas = []
    for k in range(120):
        for j, mmsi in enumerate((235051664, 212890000)):
            e, n = rng.normal(0.0, 1.0, 2) + (0.0, 16.0 * j)
            lat, lon = _latlon(e, n)
            cog = float(rng.uniform(0.0, 359.0))  # a moored vessel's course is noise
            meas.append(dec.measurement(T0 + 10.0 * k + 5.0 * j, mmsi, lat, lon, 0.0, cog))
    tracks = _tracks_of(meas)
    late = {i: k[60:] for i, k in tracks.items()}  # after initiation
    for i, k in late.items():
        assert np.unique(k).shape[0] == 1 and k[0] >= 0, (i, np.unique(k))
    a, b = late.values()
    assert a[0] != b[0]


def test_ferry_turning_keeps_one_track() -> None:
    """A ferry at 10 m/s turning at 1.2 deg/s for 60 s, reports every 2 s whose stamped times
    jitter by 0.5 s (reception time): one track, no duplicate. With its reported velocities
    vetted against the track's (ClassParams.vel_check), the small surface process noise lets
    the track's velocity lag the turn, the vetting then refuses the reports' velocities and
    the track loses the ferry."""
    dec = AisDecoder(plausibility=False)
    rng = np.random.default_rng(5)
    meas = []
    e = n = 0.0
    course = 180.0
    speed = 10.0
    for k in range(150):
        t = T0 + 2.0 * k
        if 40 <= k < 70:
            course += 2.4
        c = math.radians(course)
        e += speed * 2.0 * math.sin(c)
        n += speed * 2.0 * math.cos(c)
        lat, lon = _latlon(e + rng.normal(0, 1.0), n + rng.normal(0, 1.0))
        t_rx = t + float(rng.normal(0.0, 0.5))
        meas.append(dec.measurement(t_rx, 235069877, lat, lon, speed / KNOT_MPS, course % 360))
    (k,) = _tracks_of(meas).values()
    assert np.unique(k[k >= 0]).shape[0] == 1
    # The vetting's failure needs the small noise: with the noise that grows with speed
    # (fusion.tracker_speed_q) the track's velocity follows the turn and passes it.
    vetted = {"vel_check": True, "q_h_per_speed2_s": 0.0}
    (k,) = _tracks_of(meas, {"classes": {"surface": vetted}}).values()
    assert np.unique(k[k >= 0]).shape[0] > 1


def test_stationary_duplicate_surface_tracks_merge() -> None:
    """Two tracks on one moored vessel (a plot feed reports it twice a scan for a while, then
    once) merge into one (ClassParams.merge_stationary); without it both stay, one of them
    coasting next to the other."""
    from fusion.messages import CLS_SURFACE
    from fusion.tracker import Tracker
    from fusion.tracker_config import TrackerConfig

    def run(cfg: TrackerConfig) -> int:
        tr = Tracker(cfg, origin=(LAT0, LON0, 0.0))
        for k in range(20):
            east = (0.0, 1.0) if k < 5 else (0.5,)
            lat, lon = zip(*(_latlon(e, 0.0) for e in east), strict=True)
            n = len(east)
            tr.step(
                Detections(
                    sensor="plots",
                    seq=k + 1,
                    kind=KIND_POS,
                    t=np.full(n, T0 + 10.0 * k),
                    z=np.stack([lat, lon, np.zeros(n)], axis=1),
                    R=np.tile(np.diag([25.0, 25.0, 2500.0]), (n, 1, 1)),
                    cls=np.full(n, CLS_SURFACE, np.uint8),
                )
            )
        return len(tr)

    assert run(TrackerConfig()) == 1
    assert run(TrackerConfig().with_class("surface", merge_stationary=False)) == 2


def _rounded(lat: float, lon: float) -> tuple[float, float]:
    """A position as a transponder that gives 0.01 arc-minute sends it."""
    return round(lat * 6000.0) / 6000.0, round(lon * 6000.0) / 6000.0


def test_coarse_grid_variance_only_on_the_grid_and_under_way() -> None:
    lat, lon = _rounded(LAT0 + 0.0012, LON0 + 0.0021)
    e_var, n_var = coarse_grid_variance(lat, lon)
    assert n_var == pytest.approx(18.52**2 / 12.0)
    assert e_var == pytest.approx(n_var * math.cos(math.radians(lat)) ** 2)
    assert coarse_grid_variance(lat + 0.0001 / 60.0, lon) == (0.0, 0.0)  # 0.0001': fine
    dec = AisDecoder(plausibility=False)
    moving = dec.measurement(T0, 235000001, lat, lon, 4.0, 90.0)
    v = 4.0 * KNOT_MPS
    assert moving.r_diag[1] == pytest.approx(position_variance(v) + n_var)
    at_rest = dec.measurement(T0 + 10.0, 235000001, lat, lon, 0.2, 90.0)
    assert at_rest.r_diag[0] == position_variance(0.2 * KNOT_MPS) == at_rest.r_diag[1]


def _fast_craft(dec: AisDecoder, rng: np.random.Generator) -> list:
    """A fast craft at 15 m/s reported every 3 s for a minute (its track confirms), then
    received only every 60-100 s while it turns at 0.1 deg/s."""
    meas, t, e, n, course = [], 0.0, 0.0, 0.0, 90.0
    while t < 1_800.0:
        dt = 3.0 if t < 60.0 else float(rng.uniform(60.0, 100.0))
        for _ in range(int(dt)):  # 1 s steps of the turn
            course += 0.1 if t >= 60.0 else 0.0
            c = math.radians(course)
            e, n = e + 15.0 * math.sin(c), n + 15.0 * math.cos(c)
        t += int(dt)
        lat, lon = _latlon(e + rng.normal(0.0, 1.0), n + rng.normal(0.0, 1.0))
        meas.append(dec.measurement(T0 + t, 235008564, lat, lon, 15.0 / KNOT_MPS, course % 360))
    return meas


def test_fast_craft_seen_every_minute_or_two_keeps_its_track() -> None:
    """With the surface class's small process noise alone (q_h_per_speed2_s = 0) its turn
    takes it hundreds of metres off a prediction whose sigma is tens of metres, and each
    report starts a new track; the noise that grows with speed (fusion.tracker_speed_q)
    keeps one track."""
    rng = np.random.default_rng(2)
    meas = _fast_craft(AisDecoder(plausibility=False), rng)
    (k,) = _tracks_of(meas).values()
    assert np.unique(k[k >= 0]).shape[0] == 1 and (k >= 0).sum() >= len(meas) - 4
    off = {"classes": {"surface": {"q_h_per_speed2_s": 0.0}}}
    (k,) = _tracks_of(meas, off).values()
    assert np.unique(k[k >= 0]).shape[0] != 1 or (k >= 0).sum() < len(meas) - 4


def test_moored_track_does_not_take_a_passing_vessels_reports() -> None:
    """A vessel moored (SOG 0, reports every 3 minutes, as at anchor) and, after its track
    is confirmed, a vessel passing 25 m from it at 6 m/s (reports every 3 s): the passing
    vessel's reports fall inside the moored track's 3-minute gate; without the velocity gate
    (fusion.tracker_vgate) that track takes them."""
    dec = AisDecoder(plausibility=False)
    rng = np.random.default_rng(4)
    meas = []
    for k in range(12):
        lat, lon = _latlon(*rng.normal(0.0, 1.0, 2))
        meas.append(dec.measurement(T0 + 180.0 * k, 235073221, lat, lon, 0.0, 0.0))
    t_pass = T0 + 180.0 * 6 + 90.0
    for k in range(40):
        east = -60.0 + 6.0 * 3.0 * k  # passes the moored vessel at k = 3 or 4
        lat, lon = _latlon(east + rng.normal(0.0, 1.0), 25.0 + rng.normal(0.0, 1.0))
        meas.append(dec.measurement(t_pass + 3.0 * k, 235061621, lat, lon, 6.0 / KNOT_MPS, 90.0))
    moored = _tracks_of(meas)[b"mmsi:235073221"]
    passing = _tracks_of(meas)[b"mmsi:235061621"]
    assert not set(passing[passing >= 0].tolist()) & set(moored[moored >= 0].tolist())
    off = {"classes": {"surface": {"vel_gate_mps": 0.0}}}
    moored = _tracks_of(meas, off)[b"mmsi:235073221"]
    passing = _tracks_of(meas, off)[b"mmsi:235061621"]
    assert set(passing[passing >= 0].tolist()) & set(moored[moored >= 0].tolist())


def test_slow_report_without_course_says_at_rest() -> None:
    """SOG 0.3 kn with COG 360 ("not available"): a zero velocity whose variance covers any
    direction at that speed; a faster one without a course has no velocity."""
    dec = AisDecoder(plausibility=False)
    m = dec.measurement(T0, 235000001, LAT0 + 1e-5, LON0 + 1e-5, 0.3, 360.0)
    v = 0.3 * KNOT_MPS
    assert m.vel == (0.0, 0.0, 0.0)
    assert m.vel_var[0] == pytest.approx(v * v + 0.1**2) == m.vel_var[1]
    assert dec.measurement(T0 + 1.0, 235000001, LAT0, LON0, 5.0, 360.0).vel is None


def test_velocity_gate_keeps_reports_without_a_velocity() -> None:
    """A pair whose report carries no usable velocity (variance 1e4, as a batch fills a
    missing one) is never dropped by the velocity gate; one whose confident velocity differs
    by 6 m/s is."""
    from fusion.tracker_config import TrackerConfig
    from fusion.tracker_vgate import velocity_gate
    from fusion.tracks import CONFIRMED, TrackTable

    tab = TrackTable(4)
    slots = tab.alloc(1)
    tab.status[slots] = CONFIRMED
    tab.cls[slots] = 2  # surface
    tab.x[slots] = 0.0
    tab.set_covariance(slots, np.eye(6)[None] * 0.01)
    p = TrackerConfig().class_arrays()
    vel = np.array([[6.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    vel_R = np.stack([np.eye(3) * 0.01, np.eye(3) * 1e4])
    rows = slots.astype(np.int64)
    pt, pd = np.zeros(2, np.int64), np.arange(2, dtype=np.int64)
    vel[1, 0] = 6.0  # the same disagreement, but unknown
    out_t, out_d, _ = velocity_gate(tab, rows, pt, pd, np.zeros(2), vel, vel_R, p)
    assert out_d.tolist() == [1]
