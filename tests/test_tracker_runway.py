"""Aircraft on runways, identities stripped: a landing roll-out and a take-off roll keep one
track (on-ground stale velocities left out after 1 s in sensors.adsb, the ground class's
noise growing with the speed above 20 m/s in fusion.tracker_speed_q)."""

from __future__ import annotations

import numpy as np
import pytest

import sensors.adsb as adsb
from fusion.messages import CLS_GROUND, CLS_SURFACE
from fusion.replay import Replayer
from fusion.tracker_config import TrackerConfig
from fusion.tracker_speed_q import track_q_h
from fusion.tracks import TrackTable
from sensors.adsb import AdsbDecoder
from sensors.batching import window_batches

M_PER_DEG_LAT = 111_195.0
LAT0, LON0 = 49.0, 2.55
T0 = 1_633_608_000.0


def _tracks(meas: list, tracker: dict | None = None) -> np.ndarray:
    """The distinct confirmed tracks the stripped reports were scored on."""
    r = Replayer(origin=(LAT0, LON0, 0.0), track_dt_s=0.0, strip_ident=True, tracker=tracker)
    for b in window_batches(meas, "adsb", window_s=None):
        r.message(b)
    k = r.finish().idents["track"]
    return np.unique(k[k >= 0])


def test_on_ground_velocity_repeated_by_the_next_report_is_left_out() -> None:
    dec = AdsbDecoder(plausibility=False)
    vel, var = (0.0, 40.0, 0.0), (4.0, 4.0, 2.25)
    ground = [
        dec.measurement(T0 + k, "39a010", LAT0 + 40.0 * k / M_PER_DEG_LAT, LON0, None,
                        vel=vel, vel_var=var, on_ground=True, stale_check=True)
        for k in range(4)
    ]  # fmt: skip
    assert [m.vel is not None for m in ground] == [True, False, False, False]
    assert dec.stats["stale_velocity"] == 3
    # Without its velocity the report's R takes the speed from the displacement (40 m/s).
    want = adsb.SIGMA_SURFACE_M**2 + (40.0 * adsb.SURFACE_TIME_SIGMA_S) ** 2
    assert ground[1].r_diag[0] == pytest.approx(want, rel=1e-3)
    air = [
        dec.measurement(T0 + k, "39a011", LAT0 + 0.1 + 40.0 * k / M_PER_DEG_LAT, LON0, 300.0,
                        vel=vel, vel_var=var, stale_check=True)
        for k in range(4)
    ]  # fmt: skip
    assert all(m.vel is not None for m in air)  # airborne: STALE_VEL_S


def _roll_out(dec: AdsbDecoder) -> list:
    """A landing roll-out at Paris: touch-down at 75 m/s, braking at 3 m/s^2 to 15 m/s, then
    taxiing; one on-ground report a second. The state vectors' velocity is refreshed only
    every 8 s and repeated bit for bit in between (below the 10 s of the airborne rule)."""
    meas, north, speed, refreshed = [], 0.0, 75.0, 75.0
    for k in range(90):
        speed = max(15.0, speed - 3.0)
        north += speed
        if k % 8 == 0:
            refreshed = speed
        reported = (0.0, refreshed, 0.0)
        meas.append(dec.measurement(T0 + k, "39a012", LAT0 + north / M_PER_DEG_LAT, LON0, None,
                                    vel=reported, vel_var=(4.0, 4.0, 2.25), on_ground=True,
                                    stale_check=True))  # fmt: skip
    return meas


def test_braking_roll_out_with_intermittent_velocity_keeps_one_track(monkeypatch) -> None:
    assert _tracks(_roll_out(AdsbDecoder(plausibility=False))).shape[0] == 1
    # With the airborne rule on the ground the repeated velocities pin the track's velocity
    # ahead of the braking aircraft, and its positions fall out of the gate.
    monkeypatch.setattr(adsb, "STALE_GROUND_VEL_S", adsb.STALE_VEL_S)
    assert _tracks(_roll_out(AdsbDecoder(plausibility=False))).shape[0] > 1


def _take_off(dec: AdsbDecoder, seed: int = 3) -> list:
    """A take-off roll without velocities (none reported on the ground, as at Paris): at rest
    for 20 s, then 2.5 m/s^2 to 80 m/s. One on-ground report a second, stamped to the second
    as the state vectors are: its position is up to 0.7 s older than its time."""
    rng = np.random.default_rng(seed)

    def north_at(t: float) -> float:
        a = max(t - 20.0, 0.0)
        return 1.25 * a * a if a <= 32.0 else 1280.0 + 80.0 * (a - 32.0)

    return [
        dec.measurement(T0 + k, "39a013", LAT0 + north_at(k - rng.uniform(0.0, 0.7))
                        / M_PER_DEG_LAT, LON0, None, on_ground=True, stale_check=True)
        for k in range(60)
    ]  # fmt: skip


def test_take_off_roll_without_velocity_keeps_one_track() -> None:
    assert _tracks(_take_off(AdsbDecoder(plausibility=False))).shape[0] == 1
    flat = {"classes": {"ground": {"q_h_per_speed2_s": 0.0}}}  # the class's noise alone
    assert _tracks(_take_off(AdsbDecoder(plausibility=False)), flat).shape[0] > 1


def test_ground_noise_grows_only_above_the_speed_floor() -> None:
    cfg = TrackerConfig()
    p = cfg.class_arrays()
    tab = TrackTable(8)
    slots = tab.alloc(4)
    tab.cls[slots] = [CLS_GROUND, CLS_GROUND, CLS_GROUND, CLS_SURFACE]
    tab.x[slots, 3] = [0.0, 12.0, 60.0, 6.0]
    tab.x[slots, 4] = [0.0, 16.0, 0.0, 8.0]  # speeds 0, 20, 60, 10 m/s
    q = track_q_h(tab, slots, p)
    g = cfg.classes["ground"]
    s = cfg.classes["surface"]
    assert g.q_h_speed_floor_mps == 20.0
    assert q[:2].tolist() == [g.q_h_m2s3, g.q_h_m2s3]  # taxi speeds: the class's noise
    assert q[2] == pytest.approx(g.q_h_m2s3 + g.q_h_per_speed2_s * 40.0**2)
    # Classes without a floor: the whole speed, the same value as before the floor.
    assert q[3] == s.q_h_m2s3 + s.q_h_per_speed2_s * (6.0**2 + 8.0**2)
