"""fire_event: a located event near a site opens a cue at once, later events close by join it
(updates), the cue closes after the hold time; an event across the line cues the line; an
event on the protected side away from sites does not."""

from __future__ import annotations

import numpy as np

from fusion.messages import KIND_EVENT, Detections
from tests.rulekit import engine, llh, of, run


def _event(t, x, y, seq, kind="gunshot", sensor="acoustic-1", sigma=50.0):
    return Detections(
        sensor=sensor, seq=seq, kind=KIND_EVENT, t=np.array([t]), z=np.array([llh(x, y)]),
        R=np.diag([sigma**2, sigma**2, 100.0**2])[None], meta={"event": kind},
    )  # fmt: skip


def test_fire_near_site_opens_joins_and_closes():
    shots = {10.0: [_event(9.5, 300, 300, 1)], 40.0: [_event(39.0, 600, 500, 2)],
             41.0: [_event(40.5, 3000, -3000, 3)]}  # fmt: skip
    cues = run(engine(), lambda t: [], t1=200.0, events=lambda t: shots.get(t, []))
    fire = of(cues, "fire_event", site="disc")
    ids = {b["id"] for _, b in fire}
    assert len(ids) == 2  # the third event is 4 km away from the first: its own incident
    first = [(t, b) for t, b in fire if b["evidence"]["event_key"] != "acoustic-1#3#0"]
    assert [(t, b["state"]) for t, b in first] == [(10.0, "open"), (40.0, "update"),
                                                  (100.0, "close")]  # fmt: skip
    assert first[1][1]["evidence"]["events_in_incident"] == 2
    body = first[0][1]
    assert body["track"] is None and body["sigma_m"] == 50.0
    assert np.allclose(body["pos"][:2], llh(300, 300)[:2])
    assert body["text"] == "Gunshot located 224 m from Disc (acoustic-1)"
    # none of these is within 5 km of the plant's square (x 9500..10500)
    assert of(cues, "fire_event", site="plant") == []


def test_fire_across_the_line_and_on_the_protected_side():
    shots = {
        5.0: [_event(5.0, 25000, 30000, 1, kind="launch")],  # 5 km east: across
        6.0: [_event(6.0, 15000, 0, 2)],  # 4.5 km from the plant, west of the line
        7.0: [_event(7.0, -40000, 40000, 3)],
    }  # nowhere near anything
    cues = run(engine(), lambda t: [], t1=100.0, events=lambda t: shots.get(t, []))
    opened = [(t, b["site"]) for t, b in of(cues, "fire_event", state="open")]
    assert opened == [(5.0, "loc"), (6.0, "plant")]
    line = of(cues, "fire_event", site="loc")[0][1]
    assert line["evidence"]["across_line"] is True
    assert line["text"] == "Launch located 5 km across Loc (acoustic-1)"
    assert line["severity"] == "critical"
