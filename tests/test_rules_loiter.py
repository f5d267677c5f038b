"""loiter: opens once a stay inside the buffer reaches dwell_s (not before), holds while the
stay goes on (short gaps forgiven), closes after the track leaves."""

from __future__ import annotations

from tests.rulekit import engine, of, run

RULES = {"disc": {"loiter": {"dwell_s": 60}, "approach": False}}


def test_loiter_opens_after_dwell_updates_and_closes():
    def script(t):
        if 10 <= t < 200:
            return [{"id": 6, "xy": (500.0, 300.0), "v": (0.0, 0.0)}]
        return [{"id": 6, "xy": (5000.0, 300.0), "v": (0.0, 0.0)}]

    lo = of(run(engine(RULES), script, t1=300.0), "loiter")
    states = [b["state"] for _, b in lo]
    assert lo[0][0] == 70.0 and states[0] == "open" and states.count("open") == 1
    assert lo[0][1]["evidence"]["dwell_s"] == 60.0
    assert lo[0][1]["text"] == (
        "Unidentified surface track 6 (0.0 m/s, radar x2) has loitered 1 min in the 1 km buffer"
        " of Disc"
    )
    assert states.count("update") >= 20
    # last inside at 199, closes 30 s later
    assert states[-1] == "close" and lo[-1][0] == 229.0


def test_short_gap_is_forgiven_long_gap_restarts_the_dwell():
    def gap(out_from, out_to):
        def script(t):
            inside = not (out_from <= t < out_to)
            return [{"id": 1, "xy": (500.0 if inside else 5000.0, 0.0), "v": (0.0, 0.0)}]

        return script

    # out for 20 s (< grace 30 s) at t = 40: the stay continues, opens at 60
    lo = of(run(engine(RULES), gap(40, 60), t1=150.0), "loiter", state="open")
    assert [t for t, _ in lo] == [60.0]
    # out for 40 s: the stay restarts at 80, opens at 140
    lo = of(run(engine(RULES), gap(40, 80), t1=200.0), "loiter", state="open")
    assert [t for t, _ in lo] == [140.0]


def test_passing_through_does_not_loiter():
    lo = run(engine(RULES), lambda t: [{"id": 2, "xy": (-3000 + 50 * t, 0.0), "v": (50.0, 0)}],
             t1=200.0)  # fmt: skip
    assert of(lo, "loiter") == []
    assert of(lo, "incursion", state="open")
