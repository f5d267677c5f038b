"""line_crossing: opens once a track is believed across the line on the protected side (not
before), holds while it stays, closes after it goes back; noise along the line opens at most
one cue; a track first seen on the protected side never cues."""

from __future__ import annotations

import numpy as np
import pytest

from tests.rulekit import engine, of, run

# the line is x = 20000 m, protected side west (x < 20000)


def _across_and_back(t):
    # 5 m off round numbers so that no scan sits exactly on a threshold
    x = 23005.0 - 10.0 * t if t < 400 else 19005.0 + 10.0 * (t - 400)
    vx = -10.0 if t < 400 else 10.0
    return [{"id": 9, "xy": (x, 10000.0), "v": (vx, 0.0)}]


def test_crossing_opens_updates_and_closes():
    cues = of(run(engine(), _across_and_back, t1=700.0), "line_crossing")
    states = [b["state"] for _, b in cues]
    assert states[0] == "open" and states.count("open") == 1 and states[-1] == "close"
    # believed across beyond 150 m (hysteresis, above 2 sigma = 60 m): x < 19850 from t = 316,
    # confirmed on the third consecutive scan
    assert cues[0][0] == 318.0
    body = cues[0][1]
    assert body["site"] == "loc" and body["topic"] == "cue.line_crossing.loc"
    assert body["severity"] == "critical"  # priority 4 + 2 for a crossing
    assert body["text"] == (
        "Unidentified surface track 9 (10.0 m/s, radar x2) crossed Loc toward the protected "
        "side, 175 m beyond it"
    )
    assert sum(s == "update" for s in states) >= 30
    # back east past 20150 m from t = 515, believed on the third scan (517); the last scan
    # with the condition is 516, and the cue closes 30 s later
    assert cues[-1][0] == 516.0 + 30.0


def test_first_seen_on_protected_side_does_not_cue():
    cues = run(engine(), lambda t: [{"id": 4, "xy": (19000.0 - 10 * t, 10000.0), "v": (-10, 0)}],
               t1=200.0)  # fmt: skip
    assert of(cues, "line_crossing") == []


def test_uncertain_track_needs_to_be_further_across():
    # position sigma 300 m: belief needs 2 sigma = 600 m across instead of 150 m
    def script(t):
        return [{"id": 2, "xy": (21005.0 - 10.0 * t, 10000.0), "v": (-10.0, 0.0),
                 "sigma_m": 300.0}]  # fmt: skip

    cues = of(run(engine(), script, t1=300.0), "line_crossing", state="open")
    assert [t for t, _ in cues] == [163.0]  # x < 19400 from t = 161, third scan 163


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jitter_along_the_line_opens_at_most_one_cue(seed):
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 80.0, 2000)

    def script(t):
        # truth walks north on the line itself; the estimate jitters 80 m across it
        return [{"id": 1, "xy": (20000.0 + noise[int(t)], -5000.0 + 5.0 * t), "v": (0.0, 5.0),
                 "sigma_m": 50.0}]  # fmt: skip

    cues = of(run(engine(), script, t1=800.0), "line_crossing")
    assert sum(b["state"] == "open" for _, b in cues) <= 1


@pytest.mark.parametrize("seed", [0, 1])
def test_real_crossing_under_noise_opens_exactly_one(seed):
    rng = np.random.default_rng(10 + seed)
    noise = rng.normal(0.0, 60.0, 2000)

    def script(t):
        # crosses slowly (1 m/s) from 150 m east to 250 m west and lingers near the line
        x = 20150.0 - 1.0 * min(t, 400.0) + noise[int(t)]
        return [{"id": 1, "xy": (x, 0.0 + 3.0 * t), "v": (-1.0, 3.0), "sigma_m": 40.0}]

    cues = of(run(engine(), script, t1=700.0), "line_crossing")
    assert sum(b["state"] == "open" for _, b in cues) == 1
    assert not any(b["state"] == "close" for _, b in cues)


def test_demo_theatre_crossing_westward_is_toward_the_protected_side():
    from pathlib import Path

    from fusion.rules.engine import RuleEngine
    from fusion.sites import load_sites

    demo = Path(__file__).resolve().parent.parent / "configs" / "sites" / "demo.geojson"
    eng = RuleEngine(load_sites(demo))
    # loc-east runs near x = 21.3 km at y = 20 km; west is protected
    west = of(run(eng, lambda t: [{"id": 1, "xy": (26000.0 - 20 * t, 20000.0),
                                   "v": (-20.0, 0.0)}], t1=400.0), "line_crossing")  # fmt: skip
    assert [b["site"] for _, b in west if b["state"] == "open"] == ["loc-east"]
    eng = RuleEngine(load_sites(demo))
    east = of(run(eng, lambda t: [{"id": 2, "xy": (16000.0 + 20 * t, 20000.0),
                                   "v": (20.0, 0.0)}], t1=400.0), "line_crossing")  # fmt: skip
    assert east == []


@pytest.mark.parametrize("track_id", [-7, 0, 2**46 + 3])
def test_any_track_id_crosses_the_same_way(track_id):
    # the rule's memory keys combine the line and the track id: negative and large ids too
    def script(t):
        return [{**tr, "id": track_id} for tr in _across_and_back(t)]

    cues = of(run(engine(), script, t1=700.0), "line_crossing")
    ref = of(run(engine(), _across_and_back, t1=700.0), "line_crossing")
    assert [(t, b["state"]) for t, b in cues] == [(t, b["state"]) for t, b in ref]
    assert all(b["track"] == track_id for _, b in cues)
