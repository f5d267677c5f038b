"""Bursts (fusion.tracker_bursts): one object's several reports in one batch of state-vector
reports are taken in turn, so the second does not start a duplicate track."""

from __future__ import annotations

import math

import numpy as np

from fusion.messages import CLS_SURFACE, KIND_POS, Detections
from fusion.tracker import Tracker
from fusion.tracker_bursts import burst_parts, subset
from fusion.tracker_config import TrackerConfig

M_PER_DEG = 111_195.0
LAT0, LON0 = 50.8, -1.2


def _batch(t, east_m, north_m, vel, seq=1, sensor="ais") -> Detections:
    t = np.asarray(t, dtype=np.float64)
    n = t.shape[0]
    lat = LAT0 + np.asarray(north_m) / M_PER_DEG
    lon = LON0 + np.asarray(east_m) / (M_PER_DEG * math.cos(math.radians(LAT0)))
    return Detections(
        sensor=sensor,
        seq=seq,
        kind=KIND_POS,
        t=t,
        z=np.stack([lat, lon, np.zeros(n)], axis=1),
        R=np.tile(np.diag([25.0, 25.0, 2500.0]), (n, 1, 1)),
        vel=np.asarray(vel, dtype=np.float64).reshape(n, 3),
        vel_R=np.tile(np.diag([0.01, 0.01, 0.01]), (n, 1, 1)),
        cls=np.full(n, CLS_SURFACE, np.uint8),
    )


def test_parts_separate_close_reports_and_keep_far_ones_together() -> None:
    # 0 and 1: one vessel at 10 m/s, 0.4 s apart (4 m); 2: another vessel 2 km away; 3: a
    # third report of the first vessel 0.5 s later.
    b = _batch([10.0, 10.4, 10.1, 10.9], [0.0, 4.0, 2000.0, 9.0], [0.0, 0.0, 0.0, 0.0],
               [[10.0, 0, 0]] * 4)  # fmt: skip
    parts = burst_parts(b, 50.0)
    assert parts is not None
    assert [p.tolist() for p in parts] == [[0, 2], [1], [3]]
    assert burst_parts(subset(b, np.array([0, 2])), 50.0) is None
    assert burst_parts(b, 0.0) is None  # off
    with_ident = _batch([1.0, 1.2], [0.0, 1.0], [0.0, 0.0], [[0, 0, 0]] * 2)
    with_ident.ident = np.array([b"mmsi:1", b"mmsi:1"], dtype="S24")
    assert burst_parts(with_ident, 50.0) is None  # the tracker keeps the latest per identity
    no_vel = _batch([1.0, 1.2], [0.0, 1.0], [0.0, 0.0], [[0, 0, 0]] * 2)
    no_vel.vel = no_vel.vel_R = None
    assert burst_parts(no_vel, 50.0) is None  # plots of a scan: one per target


def _run(cfg: TrackerConfig) -> tuple[Tracker, int]:
    """A vessel at 5 m/s north whose reports come in pairs 0.4 s apart, one batch a second;
    returns the tracker and the number of tracks it started."""
    tr = Tracker(cfg, origin=(LAT0, LON0, 0.0))
    started = 0
    for k in range(60):
        t0 = 1_452_603_731.0 + 4.0 * k
        t = [t0 + 0.1, t0 + 0.5]
        north = [5.0 * (x - 1_452_603_731.0) for x in t]
        started += tr.step(_batch(t, [0.0, 0.0], north, [[0.0, 5.0, 0.0]] * 2, seq=k + 1)).initiated
    return tr, started


def test_one_vessel_reporting_twice_a_batch_keeps_one_track() -> None:
    tr, started = _run(TrackerConfig())
    assert started == 1 and len(tr) == 1
    assert tr.picture(confirmed_only=False).id.tolist() == [1]
    # Without the rule the second report of the first pair starts a second track (later
    # merged into the first as a duplicate, which costs an identity switch in the scoring).
    _, started_off = _run(TrackerConfig(burst_sep_m=0.0))
    assert started_off >= 2


def test_split_batches_are_deterministic() -> None:
    (a, _), (b, _) = _run(TrackerConfig()), _run(TrackerConfig())
    pa, pb = a.picture(False), b.picture(False)
    assert np.array_equal(pa.x, pb.x) and np.array_equal(pa.P, pb.P)
    assert np.array_equal(pa.id, pb.id)
