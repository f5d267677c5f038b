"""On-ground ADS-B reports: class ground and a tight, speed-dependent R (sensors.adsb), and
what that buys the tracker: parked aircraft side by side keep one pure track each."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.messages import CLS_AIR, CLS_GROUND
from fusion.replay import Replayer
from sensors.adsb import (
    SIGMA_H_M,
    SIGMA_SURFACE_M,
    SURFACE_TIME_SIGMA_S,
    AdsbDecoder,
    SbsDecoder,
    decode_opensky_csv,
    sbs_line,
)
from sensors.batching import KNOT_MPS, enu_velocity, window_batches

M_PER_DEG_LAT = 111_195.0


def test_on_ground_report_is_ground_class_with_speed_dependent_sigma() -> None:
    dec = AdsbDecoder(plausibility=False)
    parked = dec.measurement(1e9, "abc123", 49.0, 2.5, None, on_ground=True)
    assert parked.cls == CLS_GROUND
    assert parked.r_diag[:2] == (SIGMA_SURFACE_M**2, SIGMA_SURFACE_M**2)
    vel = enu_velocity(15.0, 90.0)
    taxi = dec.measurement(1e9 + 1, "abc123", 49.0, 2.5001, None, vel=vel, on_ground=True)
    want = SIGMA_SURFACE_M**2 + (15.0 * SURFACE_TIME_SIGMA_S) ** 2
    assert taxi.r_diag[0] == pytest.approx(want) and taxi.r_diag[1] == pytest.approx(want)
    airborne = dec.measurement(1e9 + 2, "abc124", 49.0, 2.5, 3000.0, vel=vel)
    assert airborne.cls == CLS_AIR and airborne.r_diag[0] == SIGMA_H_M**2


def test_sbs_surface_position_and_ground_flag_are_on_ground() -> None:
    dec = SbsDecoder(plausibility=False)
    t = 1_633_608_000.0
    (surf,) = dec.feed(sbs_line("4ca1fa", t, msg_type=2, lat=49.0, lon=2.5, gs_kt=10.0,
                                track_deg=90.0), t)  # fmt: skip
    assert surf.cls == CLS_GROUND
    v = 10.0 * KNOT_MPS
    assert surf.r_diag[0] == pytest.approx(SIGMA_SURFACE_M**2 + (v * SURFACE_TIME_SIGMA_S) ** 2)
    flagged = sbs_line("4ca1fb", t, msg_type=3, lat=49.0, lon=2.6).replace(b",0", b",-1")
    assert flagged.endswith(b",-1")
    (m,) = dec.feed(flagged, t)
    assert m.cls == CLS_GROUND
    (air,) = dec.feed(sbs_line("4ca1fc", t, msg_type=3, alt_ft=3000, lat=49.0, lon=2.7), t)
    assert air.cls == CLS_AIR


def test_opensky_csv_onground_column() -> None:
    head = b"time,icao24,lat,lon,velocity,heading,vertrate,callsign,onground,baroaltitude"
    rows = [
        b"1626098400,3c4591,51.47,-0.44,0.0,99.0,0.0,BOX413,True,",
        b"1626098400,3c4592,51.57,-0.44,250.0,99.0,0.0,BOX414,False,10668.0",
    ]
    ms = list(decode_opensky_csv((0.0, x) for x in [head, *rows]))
    assert [m.cls for m in ms] == [CLS_GROUND, CLS_AIR]


def test_parked_aircraft_80_m_apart_keep_one_pure_track_each() -> None:
    """Two aircraft parked 80 m apart (neighbouring stands), each reporting every 2 s (1 m
    scatter), stripped of their identities: with the ground class and its tight R each has
    its own track; as air reports under a 50 m sigma one track took both."""
    dec = AdsbDecoder(plausibility=False)
    rng = np.random.default_rng(3)
    lat0, lon0 = 49.0, 2.55
    dlat = 80.0 / M_PER_DEG_LAT
    meas = []
    for k in range(150):
        for j, icao in enumerate(("39a001", "39a002")):
            t = 1_633_608_000.0 + 2.0 * k + 1.0 * j
            e, n = rng.normal(0.0, 1.0, 2)
            lat = lat0 + j * dlat + n / M_PER_DEG_LAT
            lon = lon0 + e / (M_PER_DEG_LAT * math.cos(math.radians(lat0)))
            meas.append(dec.measurement(t, icao, lat, lon, None, vel=(0.0, 0.0, 0.0),
                                        vel_var=(4.0, 4.0, 2.25), on_ground=True))  # fmt: skip
    r = Replayer(origin=(lat0, lon0, 0.0), track_dt_s=0.0, strip_ident=True)
    for b in window_batches(meas, "adsb", window_s=None):
        r.message(b)
    ids = r.finish().idents
    late = ids["t_s"] > ids["t_s"].min() + 60.0  # after initiation
    for icao in (b"icao:39a001", b"icao:39a002"):
        mine = late & (ids["ident"] == icao)
        tracks = np.unique(ids["track"][mine])
        assert tracks.shape[0] == 1 and tracks[0] >= 0, (icao, tracks)
    tracks_of = {i: set(ids["track"][late & (ids["ident"] == i)]) for i in set(ids["ident"])}
    assert not set.intersection(*tracks_of.values())


def test_landing_aircraft_keeps_its_track_when_its_reports_turn_ground() -> None:
    """An aircraft on final at 70 m/s, touching down and slowing to 10 m/s: its reports turn
    from air (50 m sigma) to ground (class ground, tight sigma); the track goes on."""
    dec = AdsbDecoder(plausibility=False)
    lat0, lon0 = 49.0, 2.55
    meas = []
    north = 0.0
    speed = 70.0
    for k in range(120):
        t = 1_633_608_000.0 + k
        on_ground = k >= 60
        if on_ground:
            speed = max(10.0, speed - 1.5)
        north += speed
        alt = None if on_ground else 3.0 * (60 - k) * 5.0
        vel = (0.0, speed, 0.0 if on_ground else -15.0)
        lat = lat0 + north / M_PER_DEG_LAT
        var = (4.0, 4.0, 2.25)
        meas.append(dec.measurement(t, "39a003", lat, lon0, alt, vel=vel, vel_var=var,
                                    on_ground=on_ground))  # fmt: skip
    assert meas[-1].cls == CLS_GROUND and meas[0].cls == CLS_AIR
    r = Replayer(origin=(lat0, lon0, 0.0), track_dt_s=0.0, strip_ident=True)
    for b in window_batches(meas, "adsb", window_s=None):
        r.message(b)
    tracks = r.finish().idents["track"]
    assert np.unique(tracks[tracks >= 0]).shape[0] == 1
    assert (tracks[10:] >= 0).all()


def test_opensky_velocity_repeated_bit_for_bit_is_stale() -> None:
    dec = AdsbDecoder(plausibility=False)
    vel, var = (46.9, 24.7, 0.0), (4.0, 4.0, 2.25)
    kept = [
        dec.measurement(1e9 + k, "39a004", 49.0 + 1e-4 * k, 2.5, 300.0, vel=vel, vel_var=var,
                        stale_check=True) for k in range(15)
    ]  # fmt: skip
    assert [m.vel is not None for m in kept] == [True] * 10 + [False] * 5
    assert dec.stats["stale_velocity"] == 5
    fresh = dec.measurement(1e9 + 15, "39a004", 49.0015, 2.5, 300.0, vel=(46.8, 24.7, 0.0),
                            vel_var=var, stale_check=True)  # fmt: skip
    assert fresh.vel is not None
    parked = [
        dec.measurement(1e9 + k, "39a005", 49.1, 2.5, None, vel=(0.0, 0.0, 0.0), vel_var=var,
                        on_ground=True, stale_check=True) for k in range(30)
    ]  # fmt: skip
    assert all(m.vel is not None for m in parked)  # a parked aircraft's zero is not stale
    sbs = [
        dec.measurement(1e9 + k, "39a006", 49.2 + 1e-4 * k, 2.5, 300.0, vel=vel, vel_var=var)
        for k in range(15)
    ]
    assert all(m.vel is not None for m in sbs)  # rounded SBS values repeat legitimately


def test_landing_with_a_stale_velocity_keeps_one_track() -> None:
    """The Paris case: after touch-down the state vectors keep the approach velocity (53 m/s)
    while the aircraft slows to 20 m/s. With the stale velocity left out one track follows;
    used, it drags the track ahead of the positions and the aircraft gets new tracks."""
    lat0, lon0 = 49.0, 2.55

    def tracks(stale_check: bool) -> np.ndarray:
        dec = AdsbDecoder(plausibility=False)
        meas, north, speed = [], 0.0, 53.0
        for k in range(150):
            if k >= 30:
                speed = max(20.0, speed - 1.0)
            north += speed
            reported = (0.0, 53.0 if k >= 30 else speed, 0.0)
            meas.append(dec.measurement(1_633_608_000.0 + k, "39a007",
                                        lat0 + north / M_PER_DEG_LAT, lon0, None, vel=reported,
                                        vel_var=(4.0, 4.0, 2.25), on_ground=True,
                                        stale_check=stale_check))  # fmt: skip
        r = Replayer(origin=(lat0, lon0, 0.0), track_dt_s=0.0, strip_ident=True)
        for b in window_batches(meas, "adsb", window_s=None):
            r.message(b)
        k = r.finish().idents["track"]
        return np.unique(k[k >= 0])

    assert tracks(True).shape[0] == 1
    assert tracks(False).shape[0] > 1
