"""sensor_outage: a sensor covering a site that stops heartbeating opens a cue after the
timeout (not before), holds while silent, closes when it heartbeats again; a sensor reported
lost cues at once; sensors that cover nothing or cannot be placed do not."""

from __future__ import annotations

from tests.rulekit import engine, llh, of, run

RADAR = llh(0.0, -5000.0)  # 5 km south of the disc; 8 km range covers only the disc


def test_silent_sensor_opens_and_closes():
    def states(t):
        last = t if (t < 50 or t >= 120) else 50.0
        return {
            "radar-1": {"state": "ok", "site": RADAR, "max_range_m": 8000.0, "last_hb_s": last},
            "radar-far": {"state": "ok", "site": llh(-60000, 60000), "max_range_m": 5000.0,
                          "last_hb_s": 0.0},
            "nowhere": {"state": "lost", "last_hb_s": 0.0},
        }  # fmt: skip

    cues = of(run(engine(), lambda t: [], t1=200.0, states=states), "sensor_outage")
    assert {b["site"] for _, b in cues} == {"disc"}
    events = [(t, b["state"]) for t, b in cues if b["state"] != "update"]
    assert events == [(81.0, "open"), (124.0, "close")]  # silent > 30 s; back at 120, +5 s
    updates = [b for _, b in cues if b["state"] == "update"]
    assert len(updates) == 7 and updates[-1]["evidence"]["silent_s"] == 66.0
    assert updates[-1]["text"].startswith("Sensor radar-1 covering Disc is still silent")
    body = cues[0][1]
    assert body["evidence"]["sensor"] == "radar-1" and body["evidence"]["silent_s"] == 31.0
    assert body["text"] == ("Sensor radar-1 covering Disc has been silent for 31 s (state ok)")
    assert body["severity"] == "low"  # priority 3 - 1


def test_lost_state_cues_at_once_for_every_covered_site():
    st = {"radar-2": {"state": "lost", "site": llh(5000.0, 0.0), "max_range_m": 6000.0,
                      "last_hb_s": 0.0}}  # fmt: skip
    cues = run(engine(), lambda t: [], t1=3.0, states=lambda t: st)
    opened = sorted(b["site"] for _, b in of(cues, "sensor_outage", state="open"))
    assert opened == ["disc", "plant"]
    assert all(t == 0.0 for t, _ in of(cues, "sensor_outage", state="open"))


def test_polygon_coverage():
    poly = [llh(x, y)[:2] for x, y in [(15000, -1000), (25000, -1000), (25000, 1000),
                                       (15000, 1000)]]  # fmt: skip
    st = {"eo-1": {"state": "down", "coverage": {"polygon": poly}}}
    cues = run(engine(), lambda t: [], t1=2.0, states=lambda t: st)
    assert sorted(b["site"] for _, b in of(cues, "sensor_outage", state="open")) == ["loc"]
