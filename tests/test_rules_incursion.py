"""incursion: opens on entering the buffer (not before), updates inside, closes after leaving
the buffer plus its exit margin and the hold time; a tangential pass cues approach only."""

from __future__ import annotations

import numpy as np

from tests.rulekit import engine, of, run


def _straight(x0, y0, vx, vy, tid=7, **kw):
    return lambda t: [{"id": tid, "xy": (x0 + vx * t, y0 + vy * t), "v": (vx, vy), **kw}]


def test_incursion_opens_updates_and_closes():
    # disc: radius 200 + buffer 1000 around (0, 0); the track crosses it west to east at 10 m/s
    eng = engine({"disc": {"approach": False}})
    cues = run(eng, _straight(-3000.0, 0.0, 10.0, 0.0), t1=700.0)
    inc = of(cues, "incursion", site="disc")
    states = [b["state"] for _, b in inc]
    assert states[0] == "open" and states[-1] == "close"
    assert states.count("open") == 1 and states.count("close") == 1
    t_open = inc[0][0]
    # enters the 1200 m disc at x = -1200, i.e. t = 180 s; not a scan before
    assert t_open == 180.0
    # updates while inside, every update_interval_s (5 s)
    upd = [t for t, b in inc if b["state"] == "update"]
    assert len(upd) >= 40 and np.all(np.diff(upd) == 5.0)
    # leaves x = 1200 + exit margin 100 at t = 430 (last seen inside at 430), closes 10 s later
    t_close = inc[-1][0]
    assert t_close == 431.0 + 10.0 - 1.0
    body = inc[0][1]
    assert body["text"] == (
        "Unidentified surface track 7 (10.0 m/s, radar x2) entered the 1 km buffer of Disc"
    )
    assert body["topic"] == "cue.incursion.disc" and body["track"] == 7
    assert all(b["id"] == body["id"] for _, b in inc)
    assert inc[-1][1]["evidence"]["reason"] == "condition ended"
    # inside the site proper the text says so
    assert any("is inside Disc" in b["text"] for _, b in inc)


def test_no_cue_outside_and_hysteresis_band_does_not_flap():
    eng = engine({"disc": {"approach": False}})
    # skims at 1250 m from the centre: outside the 1200 m buffer, never cues
    assert of(run(eng, _straight(-3000.0, 1250.0, 10.0, 0.0), t1=600.0), "incursion") == []
    # in and out of the buffer edge by 60 m every 20 s: within the 100 m exit margin
    eng = engine({"disc": {"approach": False}})

    def wobble(t):
        r = 1200.0 + 60.0 * np.sign(np.sin(2 * np.pi * t / 40.0))
        return [{"id": 3, "xy": (r, 0.0), "v": (0.0, 0.0)}]

    inc = of(run(eng, wobble, t1=400.0), "incursion")
    assert [b["state"] for _, b in inc].count("open") == 1
    assert not any(b["state"] == "close" for _, b in inc)


def test_track_lost_inside_closes_after_hold():
    eng = engine({"disc": {"approach": False}})

    def script(t):
        return [{"id": 11, "xy": (0.0, 500.0), "v": (0.0, 0.0)}] if t < 50 else []

    inc = of(run(eng, script, t1=100.0), "incursion")
    assert [(t, b["state"]) for t, b in inc if b["state"] != "update"] == [
        (0.0, "open"),
        (59.0, "close"),
    ]
    assert inc[-1][1]["evidence"]["reason"] == "track no longer in the picture"


def test_tangential_pass_cues_approach_but_not_incursion():
    # a straight pass whose closest point is 30 m outside the disc's 1200 m buffer: with 30 m
    # position and 1 m/s velocity uncertainty it could graze the buffer, so approach cues
    eng = engine()
    cues = run(eng, _straight(-4000.0, 1230.0, 12.0, 0.0), t1=700.0)
    assert of(cues, "incursion") == []
    app = of(cues, "approach", site="disc")
    assert app and app[0][1]["state"] == "open"
    # the predicted closest distance to the site settles at 1230 - 200 = 1030 m, outside the
    # 1000 m buffer, once the whole pass is within the horizon
    closest = [b["evidence"]["closest_m"] for _, b in app]
    assert abs(min(closest) - 1030.0) < 1.0 and closest[0] <= 1000.0 + 2 * 125.0
    assert "is approaching Disc: predicted to within 1" in app[0][1]["text"]
    assert app[-1][1]["state"] == "close"
    # a pass 1 km further out does not approach at all
    assert of(run(engine(), _straight(-4000.0, 2230.0, 12.0, 0.0), t1=700.0), "approach") == []
