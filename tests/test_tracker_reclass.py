"""Air <-> ground class changes of tracks from the class of their reports
(fusion.tracker_reclass): landing, parking and take-off of one ADS-B-like aircraft."""

from __future__ import annotations

import numpy as np

from fusion.kernels.packed import unpack
from fusion.messages import CLS_AIR, CLS_GROUND, Detections
from fusion.tracker import Tracker
from fusion.tracker_config import TrackerConfig

from .test_tracker import FRAME, ORIGIN, T0


def report(p_m, v_mps, t_s, cls, sigma_m):
    return Detections(
        sensor="adsb",
        seq=int(t_s - T0),
        kind="pos",
        t=np.array([t_s]),
        z=FRAME.to_geodetic(np.atleast_2d(p_m)),
        R=(np.eye(3) * sigma_m**2)[None],
        ident=np.array([b"icao:aaaaaa"], dtype="S24"),
        cls=np.array([cls], np.uint8),
        vel=np.atleast_2d(v_mps),
        vel_R=(np.eye(3) * 0.5**2)[None],
    )


def fly_land_park(tr: Tracker) -> float:
    """Approach at 70 m/s (air), roll out to rest (ground), then parked reports 30 s apart."""
    t = T0
    for k in range(10):  # airborne approach, 1 s apart
        t = T0 + k
        tr.step(report([70.0 * k, 0.0, 300.0 - 30.0 * k], [70.0, 0.0, -30.0], t, CLS_AIR, 30.0))
    x = 630.0
    for k in range(10):  # on the runway, slowing down
        t += 1.0
        x += 70.0 - 7.0 * k
        tr.step(report([x, 0.0, 0.0], [70.0 - 7.0 * (k + 1), 0.0, 0.0], t, CLS_GROUND, 5.0))
    for _ in range(4):  # parked
        t += 30.0
        tr.step(report([x, 0.0, 0.0], [0.0, 0.0, 0.0], t, CLS_GROUND, 5.0))
    return t


def horizontal_sigma_after(tr: Tracker, dt_s: float) -> float:
    """Horizontal position sigma of the only track, predicted dt_s ahead (plain CV noise)."""
    tab = tr.table
    slot = int(np.flatnonzero(tab.status > 0)[0])
    P = unpack(tab.P[slot : slot + 1])[0]
    q = tr.config.classes[{CLS_AIR: "air", CLS_GROUND: "ground"}[int(tab.cls[slot])]].q_h_m2s3
    return float(np.sqrt(P[0, 0] + 2 * dt_s * P[0, 3] + dt_s**2 * P[3, 3] + q * dt_s**3 / 3))


def test_landed_aircraft_becomes_a_ground_track_without_imm():
    tr = Tracker(TrackerConfig(), ORIGIN)
    fly_land_park(tr)
    tab = tr.table
    live = np.flatnonzero(tab.status > 0)
    assert live.shape[0] == 1
    slot = int(live[0])
    assert tab.cls[slot] == CLS_GROUND
    assert tab.imm_slot[slot] == -1 and not tab.imm_used.any()  # the IMM row is returned
    # Parked, 30 s between re-sent positions: the gate stays tight (ground noise), where
    # the air class kept it several times wider.
    off = Tracker(TrackerConfig(reclass_air_ground=False), ORIGIN)
    fly_land_park(off)
    assert off.table.cls[np.flatnonzero(off.table.status > 0)[0]] == CLS_AIR
    assert horizontal_sigma_after(tr, 30.0) < 0.5 * horizontal_sigma_after(off, 30.0)


def test_take_off_keeps_one_track_and_restarts_the_imm():
    tr = Tracker(TrackerConfig(), ORIGIN)
    t = fly_land_park(tr)
    track_id = int(tr.table.id[np.flatnonzero(tr.table.status > 0)[0]])
    tab = tr.table
    p0 = tab.x[np.flatnonzero(tab.status > 0)[0], :3].copy()
    v = 0.0
    p = p0.copy()
    for k in range(25):  # take-off roll at 2.5 m/s^2, then airborne
        t += 1.0
        v += 2.5
        p = p + np.array([v, 0.0, 0.0])
        airborne = k >= 20
        if airborne:
            p[2] += 5.0 * (k - 19)
        cls = CLS_AIR if airborne else CLS_GROUND
        tr.step(report(p, [v, 0.0, 5.0 if airborne else 0.0], t, cls, 30.0 if airborne else 5.0))
    live = np.flatnonzero(tab.status > 0)
    assert live.shape[0] == 1 and int(tab.id[live[0]]) == track_id
    assert tab.cls[live[0]] == CLS_AIR and tab.imm_slot[live[0]] >= 0
    mu = tab.imm_mu[tab.imm_slot[live[0]]]
    assert np.isclose(mu.sum(), 1.0)
