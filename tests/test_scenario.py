"""The scenario generator and the simulated sensors: determinism, breaches, realism, validity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fusion.feed import read_feed
from fusion.messages import KIND_POLAR, KIND_POS, Detections, Heartbeat
from fusion.protocol import decode, encode
from fusion.scenario import DEMO_SITES, build_demo
from fusion.scenario.motion import DYNAMICS
from sensors.sim import SimSensors, realtime, write_feed

LAT0, LON0 = 46.5, 31.0


def _ll(e: float, n: float) -> list[float]:
    return [LON0 + e / (111_320 * math.cos(math.radians(LAT0))), LAT0 + n / 111_320]


def _circle(e: float, n: float, r: float) -> list[list[list[float]]]:
    a = np.linspace(0, 2 * math.pi, 25)
    return [[_ll(e + r * math.sin(x), n + r * math.cos(x)) for x in a]]


@pytest.fixture(scope="module")
def sites_file(tmp_path_factory) -> str:
    """A small theatre of our own, so these tests do not depend on the shipped demo file."""

    def feat(props, geom):
        return {"type": "Feature", "properties": props, "geometry": geom}

    doc = {
        "type": "FeatureCollection",
        "properties": {"origin": [LAT0, LON0, 0.0]},
        "features": [
            feat(
                {"id": "loc", "kind": "line_of_contact", "protected_side": "right"},
                {
                    "type": "LineString",
                    "coordinates": [
                        _ll(-40e3, -5e3),
                        _ll(-10e3, 12e3),
                        _ll(20e3, 20e3),
                        _ll(45e3, 25e3),
                    ],
                },
            ),
            feat(
                {"id": "plant", "kind": "power_plant", "radius_m": 800, "buffer_m": 1500},
                {"type": "Point", "coordinates": _ll(5e3, 2e3)},
            ),
            feat(
                {
                    "id": "bridge",
                    "kind": "bridge",
                    "radius_m": 300,
                    "buffer_m": 1000,
                    "rules": {"loiter": {"dwell_s": 60}},
                },
                {"type": "Point", "coordinates": _ll(-12e3, -4e3)},
            ),
            feat(
                {"id": "depot", "kind": "depot", "radius_m": 400, "buffer_m": 1000},
                {"type": "Point", "coordinates": _ll(-28e3, -8e3)},
            ),
            feat(
                {"id": "port", "kind": "port", "buffer_m": 1000},
                {"type": "Polygon", "coordinates": _circle(15e3, -15e3, 2e3)},
            ),
            feat(
                {"id": "corridor", "kind": "corridor"},
                {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            _ll(10e3, -25e3),
                            _ll(40e3, -25e3),
                            _ll(40e3, -30e3),
                            _ll(10e3, -30e3),
                            _ll(10e3, -25e3),
                        ]
                    ],
                },
            ),
        ],
    }
    p = tmp_path_factory.mktemp("sites") / "theatre.geojson"
    p.write_text(json.dumps(doc))
    return str(p)


@pytest.fixture(scope="module")
def scenario(sites_file):
    return build_demo(sites_file, seed=7, duration_s=360.0)


def test_scenario_is_deterministic(sites_file, scenario) -> None:
    again = build_demo(sites_file, seed=7, duration_s=360.0)
    a, b = scenario.truth_table(), again.truth_table()
    for k in a:
        assert np.array_equal(a[k], b[k])
    assert again.breaches == scenario.breaches
    other = build_demo(sites_file, seed=8, duration_s=360.0)
    assert not np.array_equal(other.truth_table()["pos"][:50], a["pos"][:50])


def test_every_scripted_breach_kind_is_present_with_its_site(scenario) -> None:
    got = {(b.rule, b.site) for b in scenario.breaches}
    for want in [
        ("line_crossing", "loc"),
        ("approach", "plant"),
        ("loiter", "bridge"),
        ("dark_target", "corridor"),
        ("fire_event", "depot"),
    ]:
        assert want in got
    for b in scenario.breaches:
        assert 0.0 < b.t_s < scenario.duration_s
    scripted = {"crossing-vehicle", "approach-drone", "loiter-drone", "dark-vessel"}
    for b in scenario.breaches:
        if b.target is not None:
            assert scenario.target(b.target).name in scripted, b


def test_traffic_is_realistic(scenario) -> None:
    kinds = {t.kind for t in scenario.targets}
    assert kinds == {"ground", "vessel", "aircraft", "drone"}
    coop = [t for t in scenario.targets if t.ident]
    assert coop and len(coop) < len(scenario.targets)
    speed_max = {"ground": 25.0, "vessel": 12.0, "aircraft": 160.0, "drone": 30.0}
    for tg in scenario.targets:
        v = tg.traj.vel
        spd = np.hypot(v[:, 0], v[:, 1])
        assert spd.max() <= speed_max[tg.kind] + 1e-6, tg.name
        hdg = np.unwrap(np.arctan2(v[:, 0], v[:, 1]))
        moving = spd[1:] > 1.0
        rate = np.degrees(np.abs(np.diff(hdg)))[moving] / 0.1
        if rate.size:
            assert rate.max() <= DYNAMICS[tg.kind].max_turn_rate_dps + 1e-6, tg.name
        # Height above the ellipsoid: ENU up plus the fall of the ground from the tangent plane.
        e, n, u = tg.traj.pos.T
        h = u + (e**2 + n**2) / (2 * 6_371_000.0)
        if tg.kind in ("ground", "vessel"):
            assert np.abs(h).max() < 1.0
        elif tg.kind == "aircraft":
            assert h.min() > 1000.0
        else:
            assert 30.0 < h.min() and h.max() < 500.0


@pytest.fixture(scope="module")
def timed(scenario):
    return SimSensors(scenario).timed()


def test_sim_messages_are_valid_ordered_and_deterministic(scenario, timed) -> None:
    frames = [encode(m.msg) for m in timed]
    for f in frames:
        decode(f, now_s=math.inf)
    t = [m.meas_t_s for m in timed]
    assert t == sorted(t)
    seqs: dict[str, int] = {}
    for m in timed:
        if isinstance(m.msg, Detections):
            assert m.msg.seq > seqs.get(m.msg.sensor, 0)
            seqs[m.msg.sensor] = m.msg.seq
            assert m.arrival_t_s > m.meas_t_s >= m.msg.t.max() - 1e-9
    again = [encode(m.msg) for m in SimSensors(scenario).timed()]
    assert again == frames
    kinds = {(m.msg.sensor, m.msg.kind) for m in timed if isinstance(m.msg, Detections)}
    assert {k for _, k in kinds} == {"polar", "pos", "event"}
    hbs = [m.msg for m in timed if isinstance(m.msg, Heartbeat)]
    assert {h.sensor for h in hbs} == {s.id for s in scenario.sensors}


def test_radar_plots_have_the_stated_noise(scenario, timed) -> None:
    spec = next(s for s in scenario.sensors if s.id == "radar-line")
    frame = scenario.theatre.frame
    sim = SimSensors(scenario)
    site = np.asarray(sim.sensor_sites_llh()["radar-line"])
    M, c = frame.sensor_transform(site)
    from fusion.geo import enu_to_aer

    res = []
    batches = [m.msg for m in timed if getattr(m.msg, "sensor", "") == "radar-line"]
    for d in batches[:300]:
        if not isinstance(d, Detections):
            continue
        assert d.kind == KIND_POLAR
        for tt, z in zip(d.t, d.z, strict=True):
            ids, pos, _ = scenario.truth_at(tt - scenario.t0_s)
            aer = enu_to_aer(pos @ M.T + c)
            k = np.argmin(
                np.abs(aer[:, 0] - z[0]) + 2e4 * np.abs(np.angle(np.exp(1j * (aer[:, 1] - z[1]))))
            )
            dr = z[0] - aer[k, 0]
            daz = np.angle(np.exp(1j * (z[1] - aer[k, 1])))
            if abs(dr) < 5 * spec.sigma_range_m and abs(daz) < 5 * spec.sigma_az_rad:
                res.append((dr, daz))
    res = np.array(res)
    assert len(res) > 300
    assert np.std(res[:, 0]) == pytest.approx(spec.sigma_range_m, rel=0.1)
    assert np.std(res[:, 1]) == pytest.approx(spec.sigma_az_rad, rel=0.1)


def test_transponders_off_and_dark_targets_send_no_reports(scenario, timed) -> None:
    reported: dict[bytes, list[float]] = {}
    for m in timed:
        d = m.msg
        if isinstance(d, Detections) and d.kind == KIND_POS:
            for i, t in zip(d.ident, d.t, strict=True):
                reported.setdefault(bytes(i), []).append(float(t) - scenario.t0_s)
    dark = [t for t in scenario.targets if not t.ident]
    assert dark
    off = [t for t in scenario.targets if t.transponder_off]
    assert off
    for tg in off:
        ts = np.array(reported.get(tg.ident.encode(), []))
        for a, b in tg.transponder_off:
            assert not ((ts >= a) & (ts < b)).any()
        assert len(ts) > 0
    assert len(reported) == len([t for t in scenario.targets if t.ident])


def test_feed_file_and_realtime_pacing(scenario, tmp_path) -> None:
    path = tmp_path / "demo.feed"
    n = write_feed(scenario, path)
    frames = list(read_feed(path))
    assert len(frames) == n
    recv = [r for r, _ in frames]
    assert recv == sorted(recv)
    # Real-time pacing with a fake clock: at speed 10, the last message is due at duration/10.
    now = [0.0]
    slept = []

    def sleep(dt):
        slept.append(dt)
        now[0] += dt

    out = list(
        realtime(scenario, speed=10.0, clock=lambda: now[0], sleep=sleep, sensors={"adsb-1"})
    )
    assert out and all(m.sensor == "adsb-1" for m in out)
    assert now[0] == pytest.approx((scenario.duration_s + 0.3) / 10.0, abs=0.15)
    assert min(slept) >= 0


def test_shipped_demo_sites_build(tmp_path) -> None:
    if not DEMO_SITES.exists():
        pytest.skip("configs/sites/demo.geojson not present yet")
    sc = build_demo(DEMO_SITES, seed=7)
    rules = {b.rule for b in sc.breaches}
    assert {"line_crossing", "approach", "fire_event"} <= rules
