"""Re-sent positions with a gap (fusion.tracker_repeats, ClassParams.repeat_gap_s): a
position that keeps coming is re-sent; one sent again after a pause is fresh."""

from __future__ import annotations

import numpy as np

from fusion.tracker_repeats import RepeatFilter

T0 = 1_633_608_000.0
P1 = np.array([[49.00001, 2.55001, 0.0]])


def test_a_position_that_keeps_coming_is_dropped_one_after_a_pause_is_fresh() -> None:
    f = RepeatFilter(30.0)
    gap = np.array([5.0])
    marks = []
    for dt in (0.0, 1.0, 2.0, 4.0, 8.0, 12.0, 20.0, 21.0):
        u = np.ones(1, np.bool_)
        marks.append(f.mark("adsb", P1, np.array([T0 + dt]), u, gap))
    # Sent at 0; re-sent at 1, 2, 4, 8 (each within 5 s of the last); at 12 the last sending
    # (8) is 4 s old: re-sent; 20 comes 8 s after 12: fresh again, then 21 is re-sent.
    assert marks == [0, 1, 1, 1, 1, 1, 0, 1]
    # Without a gap the window alone decides: every one within 30 s of the first is re-sent.
    f = RepeatFilter(30.0)
    marks = [
        f.mark("adsb", P1, np.array([T0 + dt]), np.ones(1, np.bool_))
        for dt in (0.0, 1.0, 20.0, 21.0)
    ]
    assert marks == [0, 1, 1, 1]


def test_the_gap_is_per_detection_and_a_snapshot_keeps_the_last_times() -> None:
    f = RepeatFilter(30.0)
    both = np.vstack([P1, P1 + 1e-3])
    assert f.mark("adsb", both, np.array([T0, T0]), np.ones(2, np.bool_), np.zeros(2)) == 0
    u = np.ones(2, np.bool_)
    # 10 s later: the first with a 5 s gap is fresh, the second without a gap is re-sent.
    assert f.mark("adsb", both, np.array([T0 + 10, T0 + 10]), u, np.array([5.0, 0.0])) == 1
    assert u.tolist() == [True, False]
    g = RepeatFilter(30.0)
    g.load(f.to_dict())
    u = np.ones(1, np.bool_)
    assert g.mark("adsb", P1, np.array([T0 + 14]), u, np.array([5.0])) == 1  # last sent 10
    old = RepeatFilter(30.0)  # a snapshot written before the last times
    old.load({"adsb": [[int(k) for k in f.to_dict()["adsb"][0]], [T0, T0]]})
    assert old.mark("adsb", P1, np.array([T0 + 3]), np.ones(1, np.bool_), np.array([5.0])) == 1


def test_aircraft_taxiing_behind_another_on_the_same_line_keeps_its_own_track() -> None:
    """Two aircraft taxi north along one centre line at 8 m/s, 15 s apart; surface positions
    come on a grid (here 1e-5 deg, about a metre), so the follower reports, bit for bit,
    grid points the leader reported 15 s before. Without the gap those reports were dropped
    as re-sent positions (and scored with the leader's track); with it each aircraft keeps
    one track of its own."""
    from fusion.replay import Replayer
    from sensors.adsb import AdsbDecoder
    from sensors.batching import window_batches
    from tests.test_tracker_runway import LAT0, LON0, M_PER_DEG_LAT

    def scored(tracker: dict | None) -> dict[bytes, np.ndarray]:
        dec = AdsbDecoder(plausibility=False)
        meas = []
        for k in range(120):
            for icao, start in (("39a020", 0.0), ("39a021", 15.0)):
                if k >= start:
                    north = 8.0 * (k - start)
                    lat = round(LAT0 + north / M_PER_DEG_LAT, 5)
                    meas.append(dec.measurement(T0 + k, icao, lat, LON0, None, on_ground=True,
                                                stale_check=True))  # fmt: skip
        r = Replayer(origin=(LAT0, LON0, 0.0), track_dt_s=0.0, strip_ident=True, tracker=tracker)
        for b in window_batches(meas, "adsb", window_s=None):
            r.message(b)
        ids = r.finish().idents
        return {o: ids["track"][ids["ident"] == o] for o in np.unique(ids["ident"])}

    def one_own_track_each(tracks: dict[bytes, np.ndarray]) -> bool:
        own = [np.unique(k[k >= 0]) for k in tracks.values()]
        return all(o.shape[0] == 1 for o in own) and own[0][0] != own[1][0]

    assert one_own_track_each(scored(None))
    assert not one_own_track_each(scored({"classes": {"ground": {"repeat_gap_s": 0.0}}}))
