"""dark_target: a confirmed track without identity in a zone that requires one opens a cue once
it has enough updates (not before), holds while dark inside, closes when it shows an
identity or leaves; identified and tentative tracks never cue."""

from __future__ import annotations

from tests.rulekit import engine, of, run


def test_dark_track_in_corridor_opens_and_closes_on_identity():
    def script(t):
        return [
            {"id": 21, "xy": (-15000.0, -15000.0 + t), "v": (0.0, 1.0),
             "hits": 2 if t < 5 else 10, "ident": "" if t < 100 else "mmsi:235070762"},
            {"id": 22, "xy": (-14000.0, -15000.0), "v": (0.0, 0.0), "ident": "mmsi:1"},
            {"id": 23, "xy": (-13000.0, -15000.0), "v": (0.0, 0.0), "status": 1},
        ]  # fmt: skip

    cues = of(run(engine(), script, t1=200.0), "dark_target")
    assert {b["track"] for _, b in cues} == {21}
    states = [(t, b["state"]) for t, b in cues if b["state"] != "update"]
    assert states == [(5.0, "open"), (114.0, "close")]
    updates = [t for t, b in cues if b["state"] == "update"]
    assert updates == [10.0 + 5.0 * k for k in range(18)]  # every 5 s while it holds
    body = cues[0][1]
    assert body["site"] == "zone" and body["evidence"]["ident"] is None
    assert body["text"] == (
        "Unidentified surface track 21 (1.0 m/s, radar x2) entered Zone, which requires "
        "cooperative identity, without one"
    )


def test_dark_track_leaving_the_zone_closes_after_margin_and_hold():
    # leaves the zone's east edge (x = -10000) at 10 m/s; beyond its 100 m exit margin from
    # t = 110.5, so the last scan with the condition is 110
    cues = of(run(engine(), lambda t: [{"id": 5, "xy": (-11005.0 + 10 * t, -15000.0),
                                        "v": (10.0, 0.0), "status": 3}], t1=200.0),
              "dark_target")  # fmt: skip
    states = [(t, b["state"]) for t, b in cues if b["state"] != "update"]
    assert states == [(0.0, "open"), (110.0 + 15.0, "close")]
