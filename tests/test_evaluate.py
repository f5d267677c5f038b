"""fusion.evaluate: GOSPA against Stone Soup's GOSPAMetric, and hand-made scoring cases."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pytest

from fusion.evaluate import gospa, score_cues, score_identities, score_tracks


def _stonesoup_gospa(X: np.ndarray, Y: np.ndarray, c: float, p: float) -> dict:
    from stonesoup.measures import Euclidean
    from stonesoup.metricgenerator.ospametric import GOSPAMetric
    from stonesoup.types.state import State

    ts = dt.datetime(2026, 1, 1)
    metric = GOSPAMetric(c=c, p=p, measure=Euclidean(mapping=(0, 1, 2)))
    meas = [State(x.reshape(3, 1), timestamp=ts) for x in X]
    truth = [State(y.reshape(3, 1), timestamp=ts) for y in Y]
    return metric.compute_gospa_metric(meas, truth)[0].value


@pytest.mark.parametrize("seed", range(12))
def test_gospa_matches_stonesoup_on_seeded_cases(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(0, 8)), int(rng.integers(0, 8))
    if m + n == 0:
        m = 1
    Y = rng.uniform(-300, 300, (n, 3))
    # Estimates near some truths, plus a few far away, so every term of GOSPA is exercised.
    X = np.concatenate(
        [
            Y[: min(m, n)] + rng.normal(0, 40, (min(m, n), 3)),
            rng.uniform(-300, 300, (max(m - n, 0), 3)),
        ]
    )
    c, p = float(rng.choice([50.0, 100.0, 200.0])), float(rng.choice([1.0, 2.0]))
    ours = gospa(X, Y, c=c, p=p)
    ref = _stonesoup_gospa(X, Y, c, p)
    assert ours.distance == pytest.approx(ref["distance"], rel=1e-9, abs=1e-9)
    assert ours.localisation == pytest.approx(ref["localisation"], rel=1e-9, abs=1e-9)
    assert ours.missed == pytest.approx(ref["missed"], rel=1e-9, abs=1e-9)
    assert ours.false == pytest.approx(ref["false"], rel=1e-9, abs=1e-9)


def test_gospa_hand_cases() -> None:
    Y = np.array([[0.0, 0, 0], [1000.0, 0, 0]])
    assert gospa(Y, Y, c=100).distance == 0.0
    # One truth missed: c^p / 2.
    g = gospa(Y[:1], Y, c=100, p=1)
    assert g.distance == pytest.approx(50.0) and g.n_assigned == 1
    # An estimate 30 m off and one false far away: 30 + 50.
    X = np.array([[30.0, 0, 0], [5000.0, 0, 0], [1000.0, 0, 0]])
    assert gospa(X, Y, c=100, p=1).distance == pytest.approx(80.0)
    # Beyond the cut-off a pair is a miss plus a false: 2 x c/2.
    assert gospa(np.array([[0.0, 500, 0]]), Y[:1], c=100, p=1).distance == pytest.approx(100.0)
    assert gospa(np.zeros((0, 3)), np.zeros((0, 3))).distance == 0.0


def _table(rows: list[tuple[float, int, float, float]]) -> dict[str, np.ndarray]:
    t, i, e, n = (np.array(c) for c in zip(*rows, strict=True))
    pos = np.column_stack([e, n, np.zeros(len(t))])
    return {"t_s": t.astype(float), "id": i.astype(np.int64), "pos": pos, "vel": np.zeros_like(pos)}


def test_score_tracks_switch_fragment_and_spurious() -> None:
    truth = _table(
        [(t, 1, 10.0 * t, 0.0) for t in range(10)] + [(t, 2, 0.0, 5000.0) for t in range(10)]
    )
    rows = []
    for t in range(10):
        # Truth 1: track 100 for t < 4, nothing at t = 4, then track 200: a gap and a switch.
        if t < 4:
            rows.append((t, 100, 10.0 * t + 5, 0.0))
        elif t > 4:
            rows.append((t, 200, 10.0 * t - 5, 0.0))
        # Truth 2 is never tracked; track 300 is spurious all along.
        rows.append((t, 300, 20000.0, 0.0))
    s = score_tracks(truth, _table(rows), assoc_m=100.0)
    assert s.completeness == pytest.approx(9 / 20)
    assert s.spuriousness == pytest.approx(10 / 19)
    assert s.id_switches == 1
    assert s.fragmentations == 1
    assert s.pos_rmse_m == pytest.approx(5.0)
    assert s.n_truth == 2 and s.n_tracks == 3
    assert s.assignment[(1, 7.0)] == 200


def test_score_tracks_keeps_pairs_through_a_crossing() -> None:
    # Two truths cross; each track follows its own truth, passing within 20 m of the other.
    ts = np.arange(0, 21, 1.0)
    rows_t, rows_k = [], []
    for t in ts:
        rows_t += [(t, 1, -100 + 10 * t, 0.0), (t, 2, 100 - 10 * t, 10.0)]
        rows_k += [(t, 11, -100 + 10 * t + 8, 0.0), (t, 12, 100 - 10 * t - 8, 10.0)]
    s = score_tracks(_table(rows_t), _table(rows_k), assoc_m=50.0)
    assert s.id_switches == 0 and s.completeness == 1.0 and s.spuriousness == 0.0


@dataclass(frozen=True)
class _Breach:
    name: str
    rule: str
    site: str
    t_s: float
    target: int | None = None


def test_score_cues_recall_false_duplicates_latency() -> None:
    breaches = [
        _Breach("cross", "line_crossing", "loc", 100.0, 1),
        _Breach("fire", "fire_event", "plant", 200.0),
        _Breach("loiter", "loiter", "bridge", 300.0, 3),
    ]
    t0 = 1_000_000.0
    cues = [
        {
            "id": "a",
            "state": "open",
            "rule": "line_crossing",
            "site": "loc",
            "track": 7,
            "t_s": t0 + 101.5,
        },
        {
            "id": "a",
            "state": "update",
            "rule": "line_crossing",
            "site": "loc",
            "track": 7,
            "t_s": t0 + 103,
        },
        {
            "id": "b",
            "state": "open",
            "rule": "line_crossing",
            "site": "loc",
            "track": 8,
            "t_s": t0 + 104,
        },
        {"id": "c", "state": "open", "rule": "fire_event", "site": "plant", "t_s": t0 + 200.8},
        {
            "id": "d",
            "state": "open",
            "rule": "approach",
            "site": "plant",
            "track": 9,
            "t_s": t0 + 50,
        },
    ]
    track_to_truth = {7: 1, 8: 1, 9: 4}.get
    s = score_cues(
        cues, breaches, target_hours=2.0, t0_s=t0, track_to_truth=lambda k, t: track_to_truth(k)
    )
    assert s.n_detected == 2 and s.recall == pytest.approx(2 / 3)
    assert s.missed == ["loiter"]
    assert s.n_duplicate == 1
    assert s.n_false == 1 and s.false[0]["id"] == "d"
    assert s.false_per_target_hour == pytest.approx(0.5)
    assert s.latency_s == pytest.approx([1.5, 0.8])
    assert s.latency_median_s == pytest.approx(1.15)
    # A much later cue about the same object (its track re-created) repeats the breach.
    late = {"id": "e", "state": "open", "rule": "line_crossing", "site": "loc", "track": 8}
    s3 = score_cues(
        [*cues, {**late, "t_s": t0 + 400.0}],
        breaches,
        target_hours=2.0,
        t0_s=t0,
        track_to_truth=lambda k, t: track_to_truth(k),
    )
    assert s3.n_duplicate == 2 and s3.n_false == 1
    # A cue about the wrong object is not a hit.
    s2 = score_cues(
        cues[:1], breaches[:1], target_hours=1.0, t0_s=t0, track_to_truth=lambda k, t: 99
    )
    assert s2.n_detected == 0 and s2.n_false == 1


def test_score_identities_purity_switches_fragments() -> None:
    # Object A: track 1, then unassigned, then track 1 again (a fragment), then track 2 (switch).
    # Object B: track 3 throughout, but one of its detections lands on track 1 (impure).
    t = np.array([0, 10, 20, 30, 40, 0, 10, 20, 30, 3600.0])
    ident = np.array([b"a"] * 5 + [b"b"] * 5)
    track = np.array([1, -1, 1, 2, 2, 3, 3, 1, 3, 3])
    s = score_identities(t, ident, track)
    assert s.n_objects == 2 and s.n_tracks == 3
    # Track 1: a, a, b -> 2 pure; track 2: a, a -> 2; track 3: b x4 -> 4; assigned 9.
    assert s.purity == pytest.approx(8 / 9)
    assert s.completeness == pytest.approx(9 / 10)
    # A: 1 -> 2 is one switch; B: 3 -> 1 -> 3 is two switches.
    assert s.id_switches == 3
    assert s.fragmentations == 1
    assert s.object_hours == pytest.approx((40 + 3600) / 3600)
