"""Duplicate pruning, re-sent positions, stale velocities and the miss rule of the tracker:
kernels against slow references on seeded cases, and the behaviour in `Tracker.step`."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.geo import LocalFrame
from fusion.kernels import prune, velocity_check
from fusion.kernels.gating import ident_words
from fusion.kernels.packed import pack
from fusion.kernels.prune import tentative_timeouts
from fusion.kernels.velocity_check import IGNORED_VEL_VAR
from fusion.messages import CLS_AIR, Detections
from fusion.models import cv_predict_into
from fusion.tracker import Tracker
from fusion.tracker_config import TrackerConfig
from fusion.tracker_prune import DuplicatePruner
from fusion.tracker_repeats import RepeatFilter, position_keys
from tests.packedkit import symmetric, via_packed

# The kernels read packed covariances (the table's layout); these take (n, 6, 6) ones.
duplicate_pairs = via_packed(prune.duplicate_pairs, 3)
discount_stale_velocity = via_packed(velocity_check.discount_stale_velocity, 4)

ORIGIN = (46.5, 30.7, 0.0)
FRAME = LocalFrame(*ORIGIN)
T0 = 1.7e9


def _spd(rng, n, scale):
    A = rng.normal(size=(n, 6, 6)) * scale
    return symmetric(A @ A.transpose(0, 2, 1) + np.eye(6) * scale**2)


def _pairs_reference(rows, t_ref, x, P, t_s, cls, ident, q_h, q_v, d2_max, sep_m, v_min):
    out = []
    for ia in range(len(rows)):
        for ib in range(ia + 1, len(rows)):
            a, b = rows[ia], rows[ib]
            if ident[a] and ident[b] and ident[a] != ident[b]:
                continue
            if np.hypot(*x[a, 3:5]) < v_min or np.hypot(*x[b, 3:5]) < v_min:
                continue
            xs, Ps = [], []
            for r in (a, b):
                xr, Pr = x[r].copy(), P[r].copy()
                cv_predict_into(xr, Pr, max(t_ref - t_s[r], 0.0), q_h[cls[r]], q_v[cls[r]])
                xs.append(xr)
                Ps.append(Pr)
            if np.hypot(*(xs[0][:2] - xs[1][:2])) > sep_m:
                continue
            y = xs[0] - xs[1]
            d2 = float(y @ np.linalg.solve(Ps[0] + Ps[1], y))
            if d2 < d2_max:
                out.append((a, b, d2))
    return out


@pytest.mark.parametrize("half_side_m", [2_000.0, 400_000.0])
def test_duplicate_pairs_agree_with_a_brute_force_reference(half_side_m):
    """Tracks over a few cells of the sweep (its counting sort) and over thousands of them
    (the comparison sort)."""
    q_h = np.array([1.0, 4.0, 0.01, 0.5])
    q_v = np.array([0.1, 0.03, 1e-4, 0.01])
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n = 60
        x = np.zeros((n, 6))
        x[:, :2] = rng.uniform(-half_side_m, half_side_m, (n, 2))
        x[:, 3:5] = rng.normal(0, 5, (n, 2))
        # Near-copies of some tracks (duplicates), some of them stationary.
        for k in range(0, 20, 2):
            x[k + 1] = x[k] + rng.normal(0, 3, 6)
        x[4:6, 3:5] = 0.0
        P = _spd(rng, n, 3.0)
        t_s = T0 + rng.uniform(-3, 0, n)
        cls = rng.integers(0, 4, n).astype(np.uint8)
        ident = np.zeros(n, dtype="S24")
        ident[8], ident[9] = b"mmsi:1", b"mmsi:2"  # a near-copy with another identity
        rows = np.sort(rng.choice(n, 50, replace=False)).astype(np.int64)
        rows = np.union1d(rows, np.arange(12)).astype(np.int64)
        a, b, d2 = duplicate_pairs(
            rows, T0, x, P, t_s, cls, ident_words(ident), q_h, q_v, 16.81, 500.0, 2.0
        )
        ref = _pairs_reference(rows, T0, x, P, t_s, cls, ident, q_h, q_v, 16.81, 500.0, 2.0)
        assert [(int(i), int(j)) for i, j in zip(a, b, strict=True)] == [r[:2] for r in ref]
        assert np.allclose(d2, [r[2] for r in ref], rtol=1e-9)
        assert (8, 9) not in [r[:2] for r in ref]


@pytest.mark.parametrize("still_classes", [(), (2,), (1, 2)])
def test_firm_duplicate_pairs_apply_the_stationary_rule_per_class(still_classes):
    """The firm slots' pairs, with the speed floor waived for a pair of two tracks whose
    classes merge stationary duplicates (`ClassParams.merge_stationary`): against the brute
    force over the firm slots without a floor, then the rule applied pair by pair."""
    q_h = np.array([1.0, 4.0, 0.01, 0.5])
    q_v = np.array([0.1, 0.03, 1e-4, 0.01])
    still = np.zeros(4, np.bool_)
    still[list(still_classes)] = True
    slow_pairs = 0
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        n = 60
        x = np.zeros((n, 6))
        x[:, :2] = rng.uniform(-2_000.0, 2_000.0, (n, 2))
        x[:, 3:5] = rng.normal(0, 5, (n, 2))
        for k in range(0, 30, 2):  # near-copies, a third of them at rest
            x[k + 1] = x[k] + rng.normal(0, 3, 6)
            if k % 3 == 0:
                x[k : k + 2, 3:5] = rng.normal(0, 0.3, (2, 2))
        P = _spd(rng, n, 3.0)
        t_s = T0 + rng.uniform(-3, 0, n)
        cls = rng.integers(0, 4, n).astype(np.uint8)
        status = rng.integers(0, 4, n).astype(np.uint8)  # free, tentative, confirmed, coasting
        ident = np.zeros(n, dtype="S24")
        a, b, d2 = prune.firm_duplicate_pairs(
            status, T0, x, pack(P), t_s, cls, ident_words(ident), q_h, q_v, 16.81, 500.0, 2.0,
            still,
        )  # fmt: skip
        rows = np.flatnonzero(status >= 2).astype(np.int64)
        ref = _pairs_reference(rows, T0, x, P, t_s, cls, ident, q_h, q_v, 16.81, 500.0, 0.0)
        fast = np.hypot(x[:, 3], x[:, 4]) >= 2.0
        both_still = [still[cls[r[0]]] and still[cls[r[1]]] for r in ref]
        ref = [r for r, s in zip(ref, both_still, strict=True) if s or fast[r[0]] and fast[r[1]]]
        assert [(int(i), int(j)) for i, j in zip(a, b, strict=True)] == [r[:2] for r in ref]
        assert np.allclose(d2, [r[2] for r in ref], rtol=1e-9)
        slow_pairs += sum(not (fast[r[0]] and fast[r[1]]) for r in ref)
    # Pairs at rest are found exactly when some class merges them.
    assert (slow_pairs > 0) == (still_classes != ())


def test_tentative_timeouts_only_for_tracks_of_silent_sensors():
    rows = np.arange(4, dtype=np.int64)
    status = np.array([1, 1, 2, 1], np.uint8)  # tentative, tentative, confirmed, tentative
    sensors = np.array([0b01, 0b10, 0b01, 0b01], np.uint64)
    t_s = np.array([T0 - 10, T0 - 10, T0 - 10, T0 - 2])
    cls = np.zeros(4, np.uint8)
    out = np.zeros(4, np.bool_)
    tentative_timeouts(rows, T0, t_s, status, sensors, np.uint64(0b10), cls, np.array([5.0]), out)
    assert out.tolist() == [True, False, False, False]


def test_stale_velocity_is_discounted_and_a_consistent_one_kept():
    x = np.zeros((2, 6))
    x[:, 3] = 60.0
    P = np.tile(np.eye(6), (2, 1, 1))
    z = np.zeros((2, 6))
    z[0, 3] = 60.5  # consistent
    z[1, 3] = 20.0  # stale: far from the track's 60 m/s
    R = np.tile(np.eye(6) * 0.25, (2, 1, 1))
    n = discount_stale_velocity(
        np.array([0, 1]), np.array([0, 1]), np.array([T0, T0]), x, P, np.array([T0, T0]),
        np.zeros(2, np.uint8), np.array([1.0]), np.array([0.1]), z, R, 16.27,
    )  # fmt: skip
    assert n == 1
    assert R[0, 3, 3] == 0.25 and R[1, 3, 3] == IGNORED_VEL_VAR and R[1, 3, 4] == 0.0


def test_repeat_filter_drops_re_sent_positions_within_the_window():
    f = RepeatFilter(30.0)
    z1 = np.array([[48.1, 2.1, 1000.0], [48.2, 2.2, 500.0]])
    u = np.ones(2, np.bool_)
    assert f.mark("s", z1, np.array([T0, T0]), u) == 0 and u.all()
    # Same horizontal position, new altitude and time: a re-sent stale position.
    z2 = np.array([[48.1, 2.1, 990.0], [48.2000001, 2.2, 500.0], [48.1, 2.1, 980.0]])
    u = np.ones(3, np.bool_)
    assert f.mark("s", z2, np.array([T0 + 1, T0 + 1, T0 + 2]), u) == 2
    assert u.tolist() == [False, True, False]
    assert f.mark("other", z2[:1], np.array([T0 + 1]), np.ones(1, np.bool_)) == 0
    u = np.ones(1, np.bool_)  # after the window the same position is a measurement again
    assert f.mark("s", z1[:1], np.array([T0 + 31]), u) == 0 and u.all()
    assert position_keys(z1).dtype == np.uint64


def _pos(enu, t, sigma, sensor="rx", vel=None):
    enu = np.atleast_2d(enu)
    n = enu.shape[0]
    return Detections(
        sensor=sensor, seq=0, kind="pos", t=np.full(n, t), z=FRAME.to_geodetic(enu),
        R=np.tile(np.eye(3) * sigma**2, (n, 1, 1)), vel=vel,
        vel_R=None if vel is None else np.tile(np.eye(3) * 0.5**2, (n, 1, 1)),
    )  # fmt: skip


def test_misses_only_inside_a_declared_coverage():
    p = np.array([[1_000.0, 0.0, 0.0]])
    silent, declared = Tracker(TrackerConfig(), ORIGIN), Tracker(TrackerConfig(), ORIGIN)
    declared.set_coverage("rx", 50_000.0, site=ORIGIN)
    for tr in (silent, declared):
        for k in range(5):
            tr.step(_pos(p, T0 + k, 10.0))
    far = np.array([[30_000.0, 0.0, 0.0]])
    for k in range(5, 12):
        silent.step(_pos(far + k, T0 + k, 10.0))
        declared.step(_pos(far + k, T0 + k, 10.0))
    # The receiver without coverage never made the silent track miss: it lives until its
    # coast time; the declared sensor deleted it after max_misses.
    assert 1 in silent.picture().id
    assert 1 not in declared.picture(confirmed_only=False).id


def test_duplicate_tracks_of_one_moving_target_are_merged_into_the_older():
    # Bursts off: taken in turn (fusion.tracker_bursts), the two reports per batch below
    # would not make the duplicate this test needs.
    tr = Tracker(TrackerConfig(burst_sep_m=0.0), ORIGIN)
    v = np.array([[150.0, 0.0, 0.0]])

    def step(k, offsets):
        p = np.array([[0.0, 0.0, 3_000.0]]) + v * k
        b = _pos(p + np.asarray(offsets), T0 + k, 30.0, vel=np.repeat(v, len(offsets), 0))
        b.cls = np.full(len(offsets), CLS_AIR, np.uint8)
        tr.step(b)

    for k in range(6):  # one aircraft, its reports carry its velocity; no coverage, no misses
        step(k, [[0.0, 0.0, 0.0]])
    for k in range(6, 10):  # two reports of it per batch: a second track is confirmed
        step(k, [[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    assert len(tr.picture()) == 2
    for k in range(10, 20):  # one report again: the younger duplicate never misses, but merges
        step(k, [[0.0, 0.0, 0.0]])
    assert tr.picture().id.tolist() == [1]


def test_duplicate_pairs_of_the_fused_scan_are_those_of_the_check(monkeypatch):
    """A plain position batch gets its duplicate pairs from the fused scan kernel
    (`scan_step_pos`); they are the pairs `DuplicatePruner.check` finds on the same table
    (compared at every check), and merged."""
    seen = []
    merge = DuplicatePruner.merge

    def spy(self, tab, a, b, t_now_s):
        ref_a, ref_b, _ = prune.firm_duplicate_pairs(
            tab.status, t_now_s, tab.x, tab.P, tab.t_s, tab.cls, ident_words(tab.ident),
            p["q_h_m2s3"], p["q_v_m2s3"], self.d2_max, self.sep_m, self.min_speed_mps,
            p["merge_stationary"],
        )  # fmt: skip
        gone = merge(self, tab, a, b, t_now_s)
        seen.append((a.tolist(), b.tolist(), ref_a.tolist(), ref_b.tolist(), gone.tolist()))
        return gone

    monkeypatch.setattr(DuplicatePruner, "merge", spy)
    monkeypatch.setattr(DuplicatePruner, "check", lambda *a: pytest.fail("not the fused path"))
    tr = Tracker(TrackerConfig(burst_sep_m=0.0), ORIGIN)
    tr.set_coverage("rx", 50_000.0, site=ORIGIN)
    p = tr._p
    for k in range(16):  # two reports of one moving target per scan, plain batches
        at = np.array([[150.0 * 2 * k, 0.0, 0.0], [150.0 * 2 * k + 5.0, 0.0, 0.0]])
        tr.step(_pos(at, T0 + 2 * k, 20.0))
    assert len(seen) == 16 and all(a == ra and b == rb for a, b, ra, rb, _ in seen)
    assert any(gone for *_, gone in seen)  # pairs were found and merged
