"""approach: closest point of approach inside the buffer within the horizon, with ETA and
closest distance; closes when the track turns away; never for tracks that miss or crawl."""

from __future__ import annotations

import pytest

from tests.rulekit import engine, of, run


def _head_on(turn_at_s=None):
    # toward the plant (square of half-side 500 at (10000, 0), buffer 2000) at 10 m/s
    def script(t):
        if turn_at_s is None or t < turn_at_s:
            return [{"id": 5, "xy": (10.0 * t, 0.0), "v": (10.0, 0.0)}]
        x = 10.0 * turn_at_s - 10.0 * (t - turn_at_s)
        return [{"id": 5, "xy": (x, 0.0), "v": (-10.0, 0.0)}]

    return script


def test_approach_opens_with_eta_and_closest_then_hands_over_to_incursion():
    cues = run(engine(), _head_on(), t1=800.0)
    app = of(cues, "approach", site="plant")
    t_open, first = app[0]
    assert first["state"] == "open"
    # horizon 120 s: the prediction reaches the plant (9500) when x >= 9500 - 1200; the
    # allowance (2 sigma, sigma = sqrt(30^2 + 120^2)) lets it open within 2000 + 247 m of it
    assert 6000.0 <= 10.0 * t_open <= 6100.0
    assert of(cues, "approach", site="plant", state="open")[0][0] == t_open
    # once the path reaches the buffer the ETA is the time to its edge at x = 7500
    for t, b in app:
        if b["state"] == "update" and b["evidence"]["closest_m"] <= 2000.0:
            assert b["evidence"]["eta_s"] == pytest.approx((7500.0 - 10.0 * t) / 10.0, abs=0.1)
            assert "predicted into its 2 km buffer in" in b["text"]
    assert sum(b["evidence"]["closest_m"] <= 2000.0 for _, b in app) >= 5
    # entering the buffer at t = 750 ends the approach and opens the incursion
    inc = of(cues, "incursion", site="plant", state="open")
    assert [t for t, _ in inc] == [750.0]
    assert app[-1][1]["state"] == "close" and app[-1][0] == 749.0 + 10.0 - 0.0
    # one cue id through the approach's life
    assert len({b["id"] for _, b in app}) == 1


def test_approach_closes_after_turning_away():
    cues = run(engine(), _head_on(turn_at_s=680.0), t1=800.0)
    app = of(cues, "approach", site="plant")
    states = [b["state"] for _, b in app]
    assert states.count("open") == 1 and states[-1] == "close"
    assert app[-1][0] == 679.0 + 10.0
    assert of(cues, "incursion", site="plant") == []


def test_no_approach_when_moving_away_too_slow_or_beyond_horizon():
    away = run(engine(), lambda t: [{"id": 1, "xy": (6500.0 - 10 * t, 0.0), "v": (-10.0, 0)}],
               t1=200.0)  # fmt: skip
    assert of(away, "approach", site="plant") == []
    crawl = run(engine(), lambda t: [{"id": 2, "xy": (7000.0, 0.0), "v": (0.5, 0.0)}], t1=50.0)
    assert of(crawl, "approach") == []
    # 40 m/s along y = 2000: the plant's buffer starts at x = 9500 - sqrt(2000^2 - 1500^2);
    # the 120 s prediction (4800 m) reaches it from x = 3377, the allowance a little earlier
    far = run(engine(), lambda t: [{"id": 3, "xy": (-2000.0 + 40 * t, 2000.0), "v": (40.0, 0)}],
              t1=200.0)  # fmt: skip
    first = of(far, "approach", state="open", site="plant")
    assert first and first[0][0] > 0.0
    x_open = -2000.0 + 40.0 * first[0][0]
    assert 9500.0 - 1322.9 - 4800.0 - 500.0 <= x_open <= 9500.0 - 1322.9 - 4800.0 + 40.0
    assert of(far, "approach", site="disc") == []


def test_horizon_parameter_from_the_site_file():
    eng = engine({"plant": {"approach": {"horizon_s": 30.0}}})
    app = of(run(eng, _head_on(), t1=800.0), "approach", state="open", site="plant")
    # now the prediction is only 300 m long
    assert 10.0 * app[0][0] >= 9500.0 - 300.0 - 2000.0 - 2 * 42.5
