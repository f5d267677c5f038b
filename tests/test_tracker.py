"""Tracking on small simulated scenarios: identities, manoeuvres, clutter, coverage, restarts.

The simulation here is deliberately small and local (straight lines, constant-rate turns,
Gaussian noise, uniform clutter); the full scenario generator lives in fusion.scenario.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fusion.geo import LocalFrame, enu_to_aer
from fusion.messages import CLS_AIR, CLS_SURFACE, Detections, Heartbeat
from fusion.picture import TrackPicture
from fusion.tracker import Tracker
from fusion.tracker_config import TrackerConfig
from fusion.tracks import COASTING, CONFIRMED

ORIGIN = (46.5, 30.7, 0.0)
FRAME = LocalFrame(*ORIGIN)
T0 = 1.7e9


def pos_batch(enu, t, sigma_m, *, seq=0, sensor="radar", ident=None, cls=None, vel=None):
    enu = np.atleast_2d(np.asarray(enu, dtype=np.float64))
    n = enu.shape[0]
    return Detections(
        sensor=sensor,
        seq=seq,
        kind="pos",
        t=np.broadcast_to(np.asarray(t, dtype=np.float64), (n,)).copy(),
        z=FRAME.to_geodetic(enu),
        R=np.tile(np.eye(3) * sigma_m**2, (n, 1, 1)),
        ident=None if ident is None else np.asarray(ident, dtype="S24"),
        cls=None if cls is None else np.full(n, cls, np.uint8),
        vel=vel,
        vel_R=None if vel is None else np.tile(np.eye(3) * 0.5**2, (n, 1, 1)),
    )


def truth_ids(tracker: Tracker, truth_enu: np.ndarray, max_dist_m: float) -> list[int]:
    """Id of the confirmed track nearest each truth (-1 when none within max_dist_m)."""
    pic = tracker.picture()
    out = []
    for p in truth_enu:
        if len(pic) == 0:
            out.append(-1)
            continue
        d = np.linalg.norm(pic.x[:, :3] - p, axis=1)
        k = int(np.argmin(d))
        out.append(int(pic.id[k]) if d[k] < max_dist_m else -1)
    return out


def test_crossing_targets_keep_their_identities():
    rng = np.random.default_rng(11)
    tr = Tracker(TrackerConfig(), ORIGIN)
    dt, sig = 2.0, 10.0
    # Two targets crossing at 60 degrees at the origin at scan 20; identities are read away
    # from the crossing, where "nearest track" is unambiguous.
    v = 15.0
    a = math.radians(30.0)
    vel = np.array([[v * math.cos(a), v * math.sin(a), 0], [v * math.cos(a), -v * math.sin(a), 0]])
    seen = {0: set(), 1: set()}
    for k in range(40):
        t = T0 + k * dt
        truth = vel * (k - 20) * dt
        z = truth + rng.normal(0, sig, truth.shape)
        tr.step(pos_batch(z, t, sig, seq=k))
        if k >= 5 and abs(k - 20) >= 4:
            ids = truth_ids(tr, truth, 100.0)
            for i in (0, 1):
                seen[i].add(ids[i])
    assert len(seen[0]) == 1 and len(seen[1]) == 1 and -1 not in seen[0] | seen[1], seen
    assert seen[0] != seen[1]


def turn_truth(n_scans, dt, turn_deg_s, turn_scans, speed=250.0):
    x = np.array([0.0, 0.0, 3000.0, speed, 0.0, 0.0])
    out = []
    for k in range(n_scans):
        w = math.radians(turn_deg_s) if turn_scans[0] <= k < turn_scans[1] else 0.0
        if w:
            c, s = math.cos(w * dt), math.sin(w * dt)
            ve, vn = x[3], x[4]
            x[0] += (s * ve - (1 - c) * vn) / w
            x[1] += ((1 - c) * ve + s * vn) / w
            x[3], x[4] = c * ve - s * vn, s * ve + c * vn
        else:
            x[:3] += dt * x[3:]
        out.append(x.copy())
    return np.array(out)


def run_air(config, truth, dt, seed, sig=50.0):
    rng = np.random.default_rng(seed)
    tr = Tracker(config, ORIGIN)
    ids = set()
    for k, x in enumerate(truth):
        z = x[:3] + rng.normal(0, sig, 3)
        tr.step(pos_batch(z, T0 + k * dt, sig, seq=k, cls=CLS_AIR))
        if k >= 8:
            ids.update(truth_ids(tr, x[None, :3], 1000.0))
    return ids


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_imm_holds_a_manoeuvring_air_target_where_cv_loses_it(seed):
    dt = 4.0
    truth = turn_truth(50, dt, 5.0, (15, 35))  # 2.3 g turn through 100 degrees
    imm = TrackerConfig()
    cv = imm.with_class("air", imm=False)
    ids_imm = run_air(imm, truth, dt, seed)
    ids_cv = run_air(cv, truth, dt, seed)
    assert len(ids_imm) == 1 and -1 not in ids_imm, ids_imm
    assert len(ids_cv) > 1, ids_cv


def test_clutter_alone_makes_no_confirmed_track():
    rng = np.random.default_rng(5)
    tr = Tracker(TrackerConfig(), ORIGIN)
    for k in range(30):
        z = np.c_[rng.uniform(-50e3, 50e3, (60, 2)), np.zeros(60)]
        res = tr.step(pos_batch(z, T0 + 2.0 * k, 30.0, seq=k))
        assert res.initiated > 0
    assert len(tr.picture()) == 0
    assert len(tr) < 60 * 4  # tentative tracks die within N scans


def polar_batch(truth_enu, t, site, sig, seq):
    M, c = FRAME.sensor_transform(np.asarray(site))
    aer = enu_to_aer(np.atleast_2d(truth_enu) @ M.T + c)
    n = aer.shape[0]
    s = np.array(sig)
    rng = np.random.default_rng(seq)
    aer = aer + rng.normal(0, 1, aer.shape) * s
    aer[:, 1] %= 2 * np.pi
    return Detections(
        sensor="coastal",
        seq=seq,
        kind="polar",
        t=np.full(n, t),
        z=aer,
        R=np.tile(np.diag(s**2), (n, 1, 1)),
        site=tuple(site),
    )


def test_target_leaving_coverage_is_deleted_and_one_entering_is_confirmed_in_m_of_n():
    site = (46.5, 30.7, 30.0)
    tr = Tracker(TrackerConfig(), ORIGIN)
    tr.apply_heartbeat(Heartbeat("coastal", T0, site=site, coverage={"max_range_m": 20_000.0}))
    dt = 3.0
    leaving = np.array([15_000.0, 0.0, 10.0])
    v_leave = np.array([20.0, 0.0, 0.0])  # crosses 20 km after 250 s
    entering = np.array([-22_000.0, 0.0, 10.0])
    v_enter = np.array([15.0, 0.0, 0.0])  # enters at about 133 s
    c = TrackerConfig().classes["unknown"]
    first_seen = confirmed_at = None
    leave_id = None
    deleted_at = None
    for k in range(200):
        t = T0 + k * dt
        a = leaving + v_leave * k * dt
        b = entering + v_enter * k * dt
        inside = [p for p in (a, b) if np.hypot(p[0], p[1]) < 20_000.0]
        if inside:
            tr.step(polar_batch(np.array(inside), t, site, [15.0, 0.002, 0.002], k))
        else:
            tr.step(polar_batch(np.zeros((0, 3)), t, site, [15.0, 0.002, 0.002], k))
        ids = truth_ids(tr, np.array([a, b]), 500.0)
        if k == 5:
            leave_id = ids[0]
            assert leave_id > 0
        if leave_id and deleted_at is None and leave_id not in tr.picture().id:
            deleted_at = t
        if first_seen is None and np.hypot(b[0], b[1]) < 20_000.0:
            first_seen = k
        if first_seen is not None and confirmed_at is None and ids[1] > 0:
            confirmed_at = k
    # Entering: confirmed on its M-th scan in coverage (every scan detects it here).
    assert confirmed_at is not None and confirmed_at - first_seen + 1 <= c.confirm_n
    assert confirmed_at - first_seen + 1 == c.confirm_m
    # Leaving: it left at about 250 s, it stops being counted in coverage and is deleted by
    # the coast time (no misses outside coverage).
    assert deleted_at is not None
    t_exit = T0 + (20_000.0 - 15_000.0) / 20.0
    assert t_exit < deleted_at <= t_exit + c.max_coast_s + 2 * dt


def test_silent_target_inside_coverage_is_deleted_after_max_misses():
    tr = Tracker(TrackerConfig(), ORIGIN)
    tr.set_coverage("radar", 50_000.0, site=ORIGIN)
    p = np.array([1000.0, 2000.0, 0.0])
    for k in range(6):
        tr.step(pos_batch(p, T0 + k, 10.0, seq=k))
    tid = int(tr.picture().id[0])
    max_misses = TrackerConfig().classes["unknown"].max_misses
    other = np.array([[30_000.0, 0.0, 0.0]])
    for k in range(max_misses):
        res = tr.step(pos_batch(other, T0 + 6 + k, 10.0, seq=6 + k))
        st = tr.picture(confirmed_only=False)
        if k < max_misses - 1:
            assert tid in st.id and st.status[list(st.id).index(tid)] == COASTING
    assert tid in res.deleted_ids


def run_mixed(seed=3, n_scans=25, config=None):
    rng = np.random.default_rng(seed)
    tr = Tracker(config or TrackerConfig(), ORIGIN)
    x = np.c_[
        rng.uniform(-5e3, 5e3, (30, 2)), np.zeros(30), rng.normal(0, 10, (30, 2)), np.zeros(30)
    ]
    results = []
    for k in range(n_scans):
        x[:, :3] += 2.0 * x[:, 3:]
        det = rng.random(30) < 0.9
        z = x[det, :3] + rng.normal(0, 25, (int(det.sum()), 3))
        z = np.vstack([z, np.c_[rng.uniform(-6e3, 6e3, (3, 2)), np.zeros(3)]])
        t = T0 + 2.0 * k + rng.uniform(0, 1.5, z.shape[0])  # a sweep: several times
        results.append(tr.step(pos_batch(z, t, 25.0, seq=k)))
    return tr, results


def test_same_batches_give_bit_identical_tracks():
    a, ra = run_mixed()
    b, rb = run_mixed()
    sa, sb = a.snapshot(), b.snapshot()
    for key in ("id", "x", "P", "t_s", "status", "hist", "hits"):
        assert np.array_equal(sa[key], sb[key]), key
        assert sa[key].tobytes() == sb[key].tobytes()
    assert [r.assigned for r in ra] == [r.assigned for r in rb]
    assert len(a.picture()) >= 25


def test_snapshot_restore_keeps_ids_and_carries_on_identically():
    rng = np.random.default_rng(9)
    base = Tracker(TrackerConfig(), ORIGIN)
    x = np.c_[rng.uniform(-5e3, 5e3, (10, 2)), np.zeros(10)]
    v = np.c_[rng.normal(0, 10, (10, 2)), np.zeros(10)]
    for k in range(8):
        base.step(pos_batch(x + v * 2.0 * k + rng.normal(0, 10, x.shape), T0 + 2 * k, 10.0))
    snap = base.snapshot()
    restored = Tracker.restore(snap, TrackerConfig())
    assert np.array_equal(restored.picture().id, base.picture().id)
    for k in range(8, 14):
        z = x + v * 2.0 * k + rng.normal(0, 10, x.shape)
        z = np.vstack([z, [[40e3, 40e3, 0.0]]])  # one new track, to check the id counter
        base.step(pos_batch(z, T0 + 2 * k, 10.0))
        restored.step(pos_batch(z, T0 + 2 * k, 10.0))
    pa, pb = base.picture(False), restored.picture(False)
    assert np.array_equal(pa.id, pb.id) and np.array_equal(pa.x, pb.x)
    assert pb.id.max() > snap["id"].max()
    with pytest.raises(ValueError, match="version"):
        Tracker.restore(dict(snap, version=99))


def test_cooperative_identity_goes_first_and_never_joins_another_identity():
    tr = Tracker(TrackerConfig(), ORIGIN)
    dt = 10.0
    # Two vessels 150 m apart on parallel courses, reporting with their MMSI and velocity.
    p = np.array([[0.0, 0.0, 0.0], [0.0, 150.0, 0.0]])
    v = np.array([[5.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    ids = np.array([b"mmsi:111", b"mmsi:222"])
    for k in range(5):
        tr.step(
            pos_batch(
                p + v * k * dt, T0 + k * dt, 10.0, sensor="ais", ident=ids, cls=CLS_SURFACE, vel=v
            )
        )
    pic = tr.picture()
    assert sorted(pic.ident.tolist()) == [b"mmsi:111", b"mmsi:222"]
    by_ident = dict(zip(pic.ident.tolist(), pic.id.tolist(), strict=True))
    # A third identity right on top of vessel 111 starts its own track.
    res = tr.step(
        pos_batch(
            pic.x[list(pic.ident).index(b"mmsi:111"), :3],
            T0 + 51.0,
            10.0,
            sensor="ais",
            ident=[b"mmsi:333"],
        )
    )
    assert res.initiated == 1 and res.assigned == 0
    # A radar plot (no identity) joins the nearest track and the track keeps its identity.
    res = tr.step(pos_batch(p[1] + v[1] * 5.3 * dt, T0 + 53.0, 20.0, sensor="radar"))
    assert res.assigned == 1
    pic = tr.picture()
    i = list(pic.id).index(by_ident[b"mmsi:222"])
    assert pic.ident[i] == b"mmsi:222" and pic.n_sensors[i] == 2
    assert pic.sensor_kinds[i] == 1 | 8
    # Several reports of one identity in a batch: only the latest is used.
    res = tr.step(
        pos_batch(
            np.vstack([p[1], p[1]]) + v[1] * 5.5 * dt,
            [T0 + 54, T0 + 55],
            10.0,
            sensor="ais",
            ident=[b"mmsi:222", b"mmsi:222"],
        )
    )
    assert res.superseded == 1 and res.assigned == 1 and res.initiated == 0
    # Swapped positions: identity wins over distance.
    k = 6
    tr.step(
        pos_batch(
            (p + v * k * dt)[::-1] + [[0, 40.0, 0], [0, -40.0, 0]],
            T0 + k * dt,
            10.0,
            sensor="ais",
            ident=ids,
            cls=CLS_SURFACE,
            vel=v,
        )
    )
    pic = tr.picture()
    got = dict(zip(pic.ident.tolist(), pic.id.tolist(), strict=True))
    assert got[b"mmsi:111"] == by_ident[b"mmsi:111"] and got[b"mmsi:222"] == by_ident[b"mmsi:222"]


def test_picture_fills_the_contract():
    tr, _ = run_mixed(n_scans=10)
    pic = tr.picture()
    ref = TrackPicture.empty()
    assert isinstance(pic, TrackPicture) and len(pic) > 0
    for name in (
        "id",
        "x",
        "P",
        "t_upd_s",
        "status",
        "ident",
        "cls",
        "n_sensors",
        "sensor_kinds",
        "hits",
        "quality",
    ):
        got, want = getattr(pic, name), getattr(ref, name)
        assert got.dtype == want.dtype and got.shape[1:] == want.shape[1:], name
        assert got.shape[0] == len(pic)
    assert np.all((pic.status == CONFIRMED) | (pic.status == COASTING))
    assert np.all((pic.quality >= 0) & (pic.quality <= 1))
    assert pic.origin == ORIGIN and pic.t_s == pytest.approx(tr.t_now_s)
    assert np.allclose(pic.P, pic.P.transpose(0, 2, 1))
    assert np.all(np.linalg.eigvalsh(pic.P) > 0)


def test_event_batches_pass_through_and_bad_batches_raise():
    tr = Tracker(TrackerConfig(), ORIGIN)
    ev = Detections(
        "acoustic",
        1,
        "event",
        np.array([T0]),
        FRAME.to_geodetic(np.zeros((1, 3))),
        np.eye(3)[None] * 100.0,
    )
    res = tr.step(ev)
    assert res.events is ev and len(tr) == 0
    bad = pos_batch(np.zeros((2, 3)), T0, 10.0)
    bad.R = bad.R[:1]
    with pytest.raises(ValueError, match="shapes"):
        tr.step(bad)
    with pytest.raises(ValueError, match="site"):
        tr.step(Detections("b", 1, "bearing", np.array([T0]), np.zeros((1, 1)), np.ones((1, 1, 1))))


def test_bearings_update_existing_tracks_and_start_none():
    site = (46.52, 30.75, 20.0)
    tr = Tracker(TrackerConfig(), ORIGIN)
    p = np.array([3000.0, 4000.0, 100.0])
    for k in range(5):
        tr.step(pos_batch(p, T0 + k, 30.0, seq=k))
    before = tr.picture()
    M, c = FRAME.sensor_transform(np.asarray(site))
    aer = enu_to_aer((p @ M.T + c)[None])
    b = Detections(
        "df",
        1,
        "bearing",
        np.array([T0 + 5.0, T0 + 5.0]),
        np.array([[aer[0, 1]], [(aer[0, 1] + 1.0) % (2 * np.pi)]]),
        np.full((2, 1, 1), 0.01**2),
        site=site,
    )
    res = tr.step(b)
    assert res.assigned == 1 and res.initiated == 0
    after = tr.picture()
    assert after.id.tolist() == before.id.tolist() and after.sensor_kinds[0] == 8 | 4
    assert after.t_upd_s[0] == T0 + 5.0


def test_imm_tracks_survive_snapshot_and_restore():
    truth = turn_truth(24, 4.0, 5.0, (10, 24))
    rng = np.random.default_rng(4)
    a = Tracker(TrackerConfig(), ORIGIN)
    zs = truth[:, :3] + rng.normal(0, 50, (24, 3))
    for k in range(12):
        a.step(pos_batch(zs[k], T0 + 4 * k, 50.0, cls=CLS_AIR))
    b = Tracker.restore(a.snapshot(), TrackerConfig())
    for k in range(12, 24):
        a.step(pos_batch(zs[k], T0 + 4 * k, 50.0, cls=CLS_AIR))
        b.step(pos_batch(zs[k], T0 + 4 * k, 50.0, cls=CLS_AIR))
    pa, pb = a.picture(), b.picture()
    assert len(pa) == 1 and np.array_equal(pa.id, pb.id)
    assert pa.x.tobytes() == pb.x.tobytes() and pa.P.tobytes() == pb.P.tobytes()
    sa = a.table.imm_slot[a.table.active_slots()]
    assert np.all(sa >= 0)
    assert np.allclose(a.table.imm_mu[sa].sum(axis=1), 1.0)


def test_non_finite_detections_are_rejected_not_tracked():
    tr = Tracker(TrackerConfig(), ORIGIN)
    b = pos_batch(np.array([[0.0, 0.0, 0.0], [500.0, 0.0, 0.0], [900.0, 0.0, 0.0]]), T0, 10.0)
    b.z[1, 0] = np.nan
    b.R[2, 0, 0] = np.inf
    res = tr.step(b)
    assert res.rejected == 2 and res.initiated == 1
    assert np.isfinite(tr.picture(False).x).all()


def test_repacking_the_table_changes_no_track():
    from dataclasses import replace

    a, _ = run_mixed(seed=8)
    b, _ = run_mixed(seed=8, config=replace(TrackerConfig(), pack_every=2, pack_min_tracks=1))
    pa, pb = a.picture(False), b.picture(False)
    ia, ib = np.argsort(pa.id), np.argsort(pb.id)
    assert len(pa) > 20
    assert np.array_equal(pa.id[ia], pb.id[ib])
    assert pa.x[ia].tobytes() == pb.x[ib].tobytes()
    assert pa.P[ia].tobytes() == pb.P[ib].tobytes()
    assert not np.array_equal(pa.id, pb.id)  # same tracks, other slots


def test_late_detection_is_counted_and_taken_at_the_tracks_time():
    tr = Tracker(TrackerConfig(), ORIGIN)
    p = np.array([1000.0, 0.0, 0.0])
    for k in range(5):
        tr.step(pos_batch(p, T0 + 2 * k, 10.0, seq=k))
    res = tr.step(pos_batch(p + [5.0, 0, 0], T0 + 7.0, 10.0, seq=6))  # older than T0 + 8
    assert res.assigned == 1 and res.late == 1
    assert tr.picture().t_upd_s[0] == T0 + 8.0
