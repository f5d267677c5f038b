"""Re-acquisition (fusion.tracker_reacquire): a young track started by an object that has
just left its firm track's gate continues the firm track's id."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fusion.geo import LocalFrame
from fusion.messages import CLS_AIR, CLS_GROUND, CLS_SURFACE, KIND_POS, Detections
from fusion.tracker import Tracker
from fusion.tracker_config import TrackerConfig
from fusion.tracker_reacquire import reacquire
from fusion.tracks import CONFIRMED, TENTATIVE, TrackTable

ORIGIN = (49.0, 2.55, 0.0)
FRAME = LocalFrame(*ORIGIN)
T0 = 1_633_608_000.0


def _report(east_m: float, north_m: float, t_s: float, seq: int, cls: int) -> Detections:
    """One on-ground report (no velocity: a zero of variance 1e4, as the evaluation's
    batches carry it), 10 m sigma."""
    return Detections(
        sensor="adsb", seq=seq, kind=KIND_POS, t=np.array([t_s]),
        z=FRAME.to_geodetic(np.array([[east_m, north_m, 0.0]])),
        R=np.eye(3)[None] * 100.0, vel=np.zeros((1, 3)), vel_R=np.eye(3)[None] * 1e4,
        cls=np.array([cls], np.uint8),
    )  # fmt: skip


def _ids_after_a_jump(config: TrackerConfig, cls_after: int = CLS_GROUND) -> list[set[int]]:
    """An aircraft rolls north at 25 m/s, reported every second for 20 s; then its reports
    come 70 m behind its track's prediction, out of its gate (as when a braking aircraft's
    lagging track misses it), and go on from there. Returns the confirmed ids after each
    report."""
    tr = Tracker(config, ORIGIN)
    ids, seq = [], 0
    for k in range(30):
        north = 25.0 * k if k < 20 else 25.0 * k - 70.0
        seq += 1
        tr.step(_report(0.0, north, T0 + k, seq, CLS_GROUND if k < 20 else cls_after))
        ids.append({int(i) for i in tr.picture().id})
    return ids


def test_the_young_track_of_an_object_that_left_its_gate_continues_the_firm_id() -> None:
    ids = _ids_after_a_jump(TrackerConfig())
    first = ids[19]
    assert len(first) == 1
    assert all(s == first for s in ids[19:])  # the same single id to the end
    # Without the rule the young track is confirmed with an id of its own: a second id.
    off = TrackerConfig().with_class("ground", reacquire_q_h_m2s3=0.0)
    ids_off = _ids_after_a_jump(off)
    assert ids_off[19] == first
    assert any(len(s - first) > 0 for s in ids_off[20:])


def test_a_take_off_continues_from_ground_to_air() -> None:
    ids = _ids_after_a_jump(TrackerConfig(), cls_after=CLS_AIR)
    assert all(s == ids[19] for s in ids[19:])


def _table(firm_speed_mps: float, firm_cls: int, young_born_s: float, offset_m: float):
    """A firm track last updated at T0 (north at `firm_speed_mps`), a young tentative one
    with two updates, first at `young_born_s`, at T0 + 3 s, `offset_m` east of where the
    firm track predicts."""
    tab = TrackTable(8)
    f, y = tab.alloc(2)
    tab.status[f], tab.status[y] = CONFIRMED, TENTATIVE
    tab.cls[f], tab.cls[y] = firm_cls, CLS_GROUND
    tab.x[f] = [0.0, 0.0, 0.0, 0.0, firm_speed_mps, 0.0]
    tab.x[y] = [offset_m, 3.0 * firm_speed_mps, 0.0, 0.0, firm_speed_mps, 0.0]
    tab.t_s[f], tab.t_s[y] = T0, T0 + 3.0
    tab.t0_s[f], tab.t0_s[y] = T0 - 100.0, young_born_s
    tab.hits[f], tab.hits[y] = 90, 2
    P = np.diag([100.0, 100.0, 400.0, 4.0, 4.0, 1.0])
    tab.set_covariance(np.array([f, y]), np.stack([P, P]))
    return tab, int(tab.id[f]), int(f), int(y)


def test_which_pairs_join() -> None:
    cfg = TrackerConfig()
    p = cfg.class_arrays()
    tab, fid, f, y = _table(20.0, CLS_GROUND, T0 + 2.0, 100.0)
    assert reacquire(tab, p, cfg).tolist() == [f]
    assert tab.id[y] == fid and tab.status[y] == CONFIRMED and tab.hits[y] == 92
    assert tab.t0_s[y] == T0 - 100.0 and tab.n_active == 1
    for args in (
        (1.0, CLS_GROUND, T0 + 2.0, 100.0),  # parked: never handed over
        (20.0, CLS_SURFACE, T0 + 2.0, 100.0),  # a class without the rule
        (20.0, CLS_GROUND, T0 - 1.0, 100.0),  # born before the firm track's last update
        (20.0, CLS_GROUND, T0 + 20.0, 100.0),  # born after the window
        (20.0, CLS_GROUND, T0 + 2.0, 600.0),  # outside the manoeuvre gate
    ):
        tab, fid, f, y = _table(*args)
        assert reacquire(tab, p, cfg).shape[0] == 0, args
        assert tab.id[y] != fid and tab.n_active == 2


def test_tracks_of_sensors_that_count_misses_are_left_out() -> None:
    cfg = TrackerConfig()
    p = cfg.class_arrays()
    tab, fid, f, y = _table(20.0, CLS_GROUND, T0 + 2.0, 100.0)
    tab.sensors[f] = tab.sensors[y] = np.uint64(1)
    assert reacquire(tab, p, cfg, np.uint64(1)).shape[0] == 0  # a radar's (misses counted)
    assert reacquire(tab, p, cfg, np.uint64(2)).tolist() == [f]  # another sensor counts them
    assert tab.id[y] == fid
    tab, fid, f, y = _table(80.0, CLS_AIR, T0 + 2.0, 100.0)  # air: its own rule
    assert reacquire(tab, p, cfg).tolist() == [f]


def _ids_after_a_start(config: TrackerConfig) -> list[set[int]]:
    """An aircraft stands for 20 s (fresh fixes a metre apart, every second), then its
    position stays frozen (re-sent bit for bit) for 10 s while it starts to taxi east, and
    its fresh reports come from 150 m east on, at 10 m/s: out of its track's gate. Returns
    the confirmed ids after each report."""
    tr = Tracker(config, ORIGIN)
    ids, seq = [], 0
    for k in range(45):
        if k < 20:
            east = 0.1 * k - 1.0 * (k % 2)
        elif k < 30:
            east = 0.1 * 19 - 1.0  # the frozen last fix
        else:
            east = 150.0 + 10.0 * (k - 30)
        seq += 1
        tr.step(_report(east, 0.0, T0 + k, seq, CLS_GROUND))
        ids.append({int(i) for i in tr.picture().id})
    return ids


def test_a_track_at_rest_is_continued_by_the_start_of_its_aircraft() -> None:
    ids = _ids_after_a_start(TrackerConfig())
    first = ids[19]
    assert len(first) == 1
    assert all(s == first for s in ids[19:])
    # Without the rule the moving aircraft's track gets an id of its own.
    ids_off = _ids_after_a_start(replace(TrackerConfig(), reacquire_rest_starts=False))
    assert ids_off[19] == first
    assert any(len(s - first) > 0 for s in ids_off[30:])


def test_which_starts_continue_a_track_at_rest() -> None:
    cfg = TrackerConfig()
    p = cfg.class_arrays()

    def table(young_speed_mps: float, neighbour_east_m: float | None):
        """A ground track at rest at the origin, last updated at T0; a young one born at
        T0 + 2 s, 100 m east at T0 + 3 s, moving north; optionally a second track at rest
        `neighbour_east_m` east (last updated at T0 too)."""
        tab, fid, f, y = _table(0.0, CLS_GROUND, T0 + 2.0, 100.0)
        tab.x[y, 1], tab.x[y, 4] = 0.0, young_speed_mps
        if neighbour_east_m is not None:
            (n,) = tab.alloc(1)
            tab.status[n], tab.cls[n], tab.t_s[n], tab.t0_s[n], tab.hits[n] = (
                CONFIRMED, CLS_GROUND, T0, T0 - 100.0, 90,
            )  # fmt: skip
            tab.x[n] = [neighbour_east_m, 0.0, 0.0, 0.0, 0.0, 0.0]
            tab.set_covariance(np.array([n]), tab.covariance(np.array([f])))
        return tab, fid, f, y

    tab, fid, f, y = table(8.0, None)
    assert reacquire(tab, p, cfg).tolist() == [f]  # a start: continued
    assert tab.id[y] == fid and tab.status[y] == CONFIRMED
    tab, fid, f, y = table(8.0, 40.0)  # not the nearest firm track: not continued
    assert f not in reacquire(tab, p, cfg).tolist() and tab.id[y] != fid
    tab, fid, f, y = table(1.0, None)  # the young track does not move: not continued
    assert reacquire(tab, p, cfg).shape[0] == 0 and tab.id[y] != fid
    off = replace(cfg, reacquire_rest_starts=False)
    tab, fid, f, y = table(8.0, None)
    assert reacquire(tab, p, off).shape[0] == 0 and tab.id[y] != fid


def test_the_nearest_track_has_a_wider_gate() -> None:
    """A young track moving north, 160 m east of a firm track's prediction 3 s after its
    last update: outside the manoeuvre gate (about 125 m here), inside the one with three
    times the noise (about 200 m), which it gets as the firm track is the nearest."""
    cfg = TrackerConfig()
    p = cfg.class_arrays()
    for firm_speed_mps in (0.0, 20.0):  # at rest (a start) and moving
        tab, fid, f, y = _table(firm_speed_mps, CLS_GROUND, T0 + 2.0, 160.0)
        tab.x[y, 4] = 8.0
        assert reacquire(tab, p, cfg).tolist() == [f] and tab.id[y] == fid
        tab, fid, f, y = _table(firm_speed_mps, CLS_GROUND, T0 + 2.0, 160.0)
        tab.x[y, 4] = 8.0
        plain = replace(cfg, reacquire_near_q_scale=1.0)
        assert reacquire(tab, p, plain).shape[0] == 0 and tab.id[y] != fid
        tab, fid, f, y = _table(firm_speed_mps, CLS_GROUND, T0 + 2.0, 230.0)  # beyond both
        tab.x[y, 4] = 8.0
        assert reacquire(tab, p, cfg).shape[0] == 0 and tab.id[y] != fid
