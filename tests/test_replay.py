"""fusion.replay and the replay/evaluate/scenario commands: determinism, bad frames, stripped
identities, and the demo scenario's acceptance (every breach cued, no false cue, fast)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fusion.cli import main as fusion_main
from fusion.evaluate_run import evaluate_scenario
from fusion.feed import FeedWriter, read_feed
from fusion.messages import KIND_POS, Detections
from fusion.protocol import encode
from fusion.replay import Replayer, replay_feed, replay_messages, write_run
from fusion.scenario import DEMO_SITES, build_demo
from sensors.sim import SimSensors, write_feed


@pytest.fixture(scope="module")
def short_demo():
    return build_demo(DEMO_SITES, seed=3, duration_s=90.0, n_background=6)


@pytest.fixture(scope="module")
def short_feed(short_demo, tmp_path_factory):
    path = tmp_path_factory.mktemp("feed") / "demo.feed"
    write_feed(short_demo, path)
    return path


@pytest.fixture(scope="module")
def clean_run(short_feed):
    return replay_feed(short_feed, sites=DEMO_SITES)


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_replay_of_a_feed_is_deterministic(short_feed, clean_run) -> None:
    a = clean_run
    b = replay_feed(short_feed, sites=DEMO_SITES)
    assert a.detections > 1000 and a.confirmed_track_ids > 5
    assert a.rejected == {}
    _same(a.tracks, b.tracks)
    assert json.dumps(a.cues, sort_keys=True) == json.dumps(b.cues, sort_keys=True)
    assert a.summary() == b.summary()
    # The line crossing at about 63 s is in this short run, and cued.
    assert any(c["rule"] == "line_crossing" and c["state"] == "open" for c in a.cues)


def test_bad_frames_are_counted_and_do_not_disturb_the_run(short_feed, clean_run, tmp_path) -> None:
    clean = clean_run
    dirty = tmp_path / "dirty.feed"
    bad_nan = Detections(
        "radar-x", 1, KIND_POS, np.array([1.79e9]), np.array([[np.nan, 31.0, 0.0]]),
        np.eye(3)[None] * 100.0,
    )  # fmt: skip
    with FeedWriter(dirty) as w:
        for i, (recv, frame) in enumerate(read_feed(short_feed)):
            w.write(frame, recv)
            if i == 100:
                w.write(b"\x93not a frame", recv)
                w.write(encode(bad_nan), recv)
                w.write(frame[: len(frame) // 2], recv)
    res = replay_feed(dirty, sites=DEMO_SITES)
    assert sum(res.rejected.values()) == 3
    assert res.rejected.get("non_finite") == 1
    _same(res.tracks, clean.tracks)
    assert res.cues == clean.cues


def test_strip_ident_keeps_identities_for_scoring_only(short_demo, tmp_path) -> None:
    msgs = list(SimSensors(short_demo).messages())
    res = replay_messages(msgs, origin=short_demo.origin, strip_ident=True)
    assert res.idents is not None
    n_coop = sum(len(m) for m in msgs if isinstance(m, Detections) and m.ident is not None)
    assert len(res.idents["t_s"]) == n_coop > 0
    # No identity reaches the tracker (the anchor's track is left out of the outputs).
    assert (res.tracks["ident"] == b"").all()
    from fusion.evaluate import score_identities

    s = score_identities(res.idents["t_s"], res.idents["ident"], res.idents["track"])
    assert s.completeness > 0.8 and s.purity > 0.95
    # `fusion evaluate` on such a run scores the stripped identities.
    from fusion.evaluate_run import evaluate_run

    write_run(res, tmp_path)
    report = evaluate_run(tmp_path)
    assert report["identities"]["purity"] == pytest.approx(s.purity)


def test_commands_scenario_replay_evaluate(tmp_path) -> None:
    out = tmp_path / "run"
    rc = fusion_main(["scenario", "--out", str(out), "--seed", "3", "--duration", "90"])
    assert rc == 0 and (out / "demo.feed").is_file() and (out / "truth.npz").is_file()
    rc = fusion_main(
        ["replay", str(out / "demo.feed"), "--sites", str(DEMO_SITES), "--out", str(out)]
    )
    assert rc == 0
    for name in ("cues.jsonl", "tracks.jsonl", "tracks.npz", "summary.json"):
        assert (out / name).is_file(), name
    from fusion.replay_output import read_replay_dir

    ro = read_replay_dir(out)  # the map and export read the same directory
    assert ro.track_frames and ro.final_tracks() is not None
    rc = fusion_main(["evaluate", str(out), "--truth", str(out), "--plots"])
    assert rc == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["tracks"]["completeness"] > 0.5
    assert (out / "map.png").stat().st_size > 10_000
    assert (out / "gospa.png").stat().st_size > 5_000
    assert fusion_main(["replay", str(tmp_path / "missing.feed")]) == 2


def test_reorder_window_releases_in_measurement_order(short_demo) -> None:
    # Arrival order differs from measurement order (latencies differ per sensor); with a
    # window wider than the latencies the replay sees measurement order either way.
    sim = SimSensors(short_demo)
    a = Replayer(origin=short_demo.origin, lag_s=2.0)
    for m in sim.timed("arrival"):
        a.message(m.msg, m.arrival_t_s)
    b = Replayer(origin=short_demo.origin, lag_s=2.0)
    for m in sim.timed("measurement"):
        b.message(m.msg, m.arrival_t_s)
    _same(a.finish().tracks, b.finish().tracks)


@pytest.mark.slow
def test_demo_scenario_every_breach_cued_no_false_cue_fast(tmp_path) -> None:
    """The acceptance test of issue 7 on the full demo scenario, replayed in-process."""
    sc = build_demo(DEMO_SITES, seed=7)
    res = replay_messages(SimSensors(sc).messages(), sites=DEMO_SITES)
    write_run(res, tmp_path)
    truth = sc.truth_table()
    truth["origin"] = np.asarray(sc.origin)
    tracks = dict(res.tracks, origin=np.asarray(res.origin))
    ts, cs = evaluate_scenario(res.cues, tracks, truth, sc.breaches, sc.t0_s)
    rules = {b.rule for b in sc.breaches}
    assert {"line_crossing", "approach", "loiter", "dark_target", "fire_event"} <= rules
    assert cs.missed == [], cs.summary()
    assert cs.n_false == 0, cs.false
    assert cs.latency_median_s < 2.0, cs.latency_s
    assert math.isfinite(ts.gospa_mean)
