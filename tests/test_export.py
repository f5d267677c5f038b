"""GeoJSON export and the replay-output reader: layers, values, open-cue folding, the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fusion.cli import main as fusion_main
from fusion.export import cue_features, open_cues, sites_geojson, to_geojson, track_features
from fusion.mapstate import ELLIPSE_K
from fusion.messages import CLS_AIR, CLS_SURFACE, TrackUpdate
from fusion.replay_output import ReplayOutputError, read_replay_dir

ROOT = Path(__file__).resolve().parent.parent
DEMO_SITES = ROOT / "configs" / "sites" / "demo.geojson"
T0 = 1_790_000_000.0


def update(t_s=T0, ids=(5, 2, 9), status=(2, 3, 1)) -> TrackUpdate:
    n = len(ids)
    P = np.tile(np.diag([80.0**2, 20.0**2, 10.0**2, 1.0, 1.0, 1.0]), (n, 1, 1))
    return TrackUpdate(
        t_s=t_s,
        id=np.asarray(ids, np.int64),
        pos=np.array([[46.6 + 0.01 * k, 31.1 + 0.01 * k, 100.0 * k] for k in range(n)]),
        vel=np.tile([0.0, 10.0, 0.0], (n, 1)),
        P=P,
        status=np.asarray(status, np.uint8),
        ident=np.array([b"icao:4ca1fa", b"", b""][:n], "S24"),
        cls=np.array([CLS_AIR, CLS_SURFACE, CLS_SURFACE][:n], np.uint8),
        n_sensors=np.full(n, 3, np.uint8),
    )


def cue(cid, state, t_s, pos=(46.55, 31.05, 0.0)):
    return {
        "id": cid,
        "state": state,
        "rule": "incursion",
        "site": "port-alpha",
        "site_name": "Port Alpha",
        "t_s": t_s,
        "track": 2,
        "pos": list(pos),
        "sigma_m": 25.0,
        "severity": "high",
        "text": f"{cid} {state}",
        "evidence": {"sensors": ["radar-1"]},
    }


def test_open_cues_folds_the_lifecycle():
    events = [cue("a", "open", 1), cue("b", "open", 2), cue("a", "update", 3), cue("b", "close", 4)]
    got = open_cues(events)
    assert [(c["id"], c["state"]) for c in got] == [("a", "update")]


def test_track_features_values_and_ellipses():
    feats = track_features(update())
    points = [f for f in feats if f["properties"]["layer"] == "track"]
    ells = [f for f in feats if f["properties"]["layer"] == "track_ellipse"]
    assert [f["properties"]["id"] for f in points] == [2, 5]  # sorted; tentative 9 left out
    assert len(ells) == 2
    p5 = points[1]
    lon, lat, alt = p5["geometry"]["coordinates"]
    assert (lat, lon, alt) == (46.6, 31.1, 0.0)  # full precision, [lon, lat, alt] order
    props = p5["properties"]
    assert props["class"] == "air" and props["ident"] == "icao:4ca1fa"
    assert props["status"] == "confirmed" and props["n_sensors"] == 3
    assert props["speed_mps"] == pytest.approx(10.0) and props["course_deg"] == pytest.approx(0)
    assert props["ellipse_a_m"] == pytest.approx(ELLIPSE_K * 80)
    assert props["ellipse_b_m"] == pytest.approx(ELLIPSE_K * 20)
    assert props["ellipse_bearing_deg"] == pytest.approx(90.0)
    assert props["le_m"] == pytest.approx(10.0)
    assert 20.0 < props["ce_m"] < 80.0
    # the ellipse polygon: closed, its east-west half-width is the semi-major axis
    ring = np.array(ells[1]["geometry"]["coordinates"][0])
    assert (ring[0] == ring[-1]).all()
    half_width_m = (
        (ring[:, 0].max() - ring[:, 0].min()) / 2 * 111_132.954 * math.cos(math.radians(46.6))
    )
    assert half_width_m == pytest.approx(ELLIPSE_K * 80, rel=1e-3)


def test_cue_features():
    (f,) = cue_features([cue("a", "open", T0)])
    assert f["geometry"] == {"type": "Point", "coordinates": [31.05, 46.55, 0.0]}
    p = f["properties"]
    assert p["layer"] == "cue" and p["id"] == "a" and p["site_name"] == "Port Alpha"
    assert p["evidence"] == {"sensors": ["radar-1"]} and p["sigma_m"] == 25.0
    (g,) = cue_features([{"id": "x", "rule": "sensor_outage", "state": "open", "t_s": T0}])
    assert g["geometry"] is None


def test_sites_from_file_with_buffers():
    fc = sites_geojson(DEMO_SITES)
    layers = [f["properties"]["layer"] for f in fc["features"]]
    assert layers.count("line") == 1
    src = json.loads(DEMO_SITES.read_text())
    assert layers.count("site") == len(src["features"]) - 1
    buffered = [f for f in src["features"] if f["properties"].get("buffer_m")]
    bufs = [f for f in fc["features"] if f["properties"]["layer"] == "buffer"]
    assert len(bufs) == len(buffered)
    # a Point site's buffer is a circle of radius + buffer around it
    from fusion.sites import load_sites

    ss = load_sites(DEMO_SITES)
    bridge = next(f for f in bufs if f["properties"]["id"] == "bridge-east")
    site = ss["bridge-east"]
    ring = np.array(bridge["geometry"]["coordinates"][0])
    enu = ss.frame.to_enu(np.column_stack([ring[:, 1], ring[:, 0], np.zeros(len(ring))]))
    c = np.asarray(site.geometry.centroid.coords[0])
    r = np.hypot(enu[:, 0] - c[0], enu[:, 1] - c[1])
    assert r.max() == pytest.approx(site.radius_m + site.buffer_m, rel=0.01)


def test_to_geojson_is_valid_json_and_ordered():
    events = [cue("a", "open", T0), cue("b", "open", T0), cue("b", "close", T0 + 1)]
    fc = to_geojson(update(), events, DEMO_SITES)
    text = json.dumps(fc, allow_nan=False)
    back = json.loads(text)
    layers = [f["properties"]["layer"] for f in back["features"]]
    assert layers.index("track") > max(i for i, x in enumerate(layers) if x in ("site", "line"))
    assert [
        f["properties"]["id"] for f in back["features"] if f["properties"]["layer"] == "cue"
    ] == ["a"]
    assert back["properties"]["t_s"] == T0
    assert to_geojson(update(), events, DEMO_SITES) == fc  # deterministic


def write_replay(tmp_path: Path) -> Path:
    d = tmp_path / "replay"
    d.mkdir()
    events = [cue("a", "open", T0 + 1), cue("b", "open", T0 + 2), cue("b", "close", T0 + 3)]
    (d / "cues.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\nnot json\n")
    lines = []
    for k in range(3):  # one whole-update line per step, then a per-track line format
        u = update(T0 + k, ids=(5, 2), status=(2, 2))
        lines.append(
            json.dumps(
                {
                    "t_s": u.t_s,
                    "id": u.id.tolist(),
                    "pos": u.pos.tolist(),
                    "vel": u.vel.tolist(),
                    "P": u.P.tolist(),
                    "status": ["confirmed", "confirmed"],
                    "ident": ["icao:4ca1fa", ""],
                    "cls": ["air", "surface"],
                    "n_sensors": [3, 3],
                }
            )
        )
    for tid, status in ((5, "confirmed"), (2, "free")):  # the last instant, one row a track
        row = {"t_s": T0 + 3, "id": tid, "lat_deg": 46.7, "lon_deg": 31.2, "alt_m": 0.0}
        lines.append(json.dumps({**row, "status": status, "sigma_m": 30.0}))
    (d / "tracks.jsonl").write_text("\n".join(lines) + "\n")
    (d / "summary.json").write_text(json.dumps({"sites": str(DEMO_SITES)}))
    return d


def test_read_replay_dir(tmp_path):
    out = read_replay_dir(write_replay(tmp_path))
    assert out.bad_lines == 1 and len(out.cues) == 3 and len(out.track_frames) == 4
    assert out.sites_path == DEMO_SITES
    final = out.final_tracks()
    assert final.id.tolist() == [5] and final.t_s == T0 + 3  # track 2 ended free
    assert np.diag(final.P[0])[:3] == pytest.approx([300.0] * 3)  # sigma_m 30: isotropic
    assert [c["id"] for c in out.open_cues()] == ["a"]
    times = [getattr(m, "t_s", None) or m.body["t_s"] for _, m in out.pairs()]
    assert times == sorted(times)
    with pytest.raises(ReplayOutputError):
        read_replay_dir(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReplayOutputError, match="no cues.jsonl"):
        read_replay_dir(empty)


def test_export_command_on_replay_dir(tmp_path, capsys):
    d = write_replay(tmp_path)
    out = tmp_path / "picture.geojson"
    assert fusion_main(["export", "--format", "geojson", "--replay", str(d), "-o", str(out)]) == 0
    fc = json.loads(out.read_text())
    by_layer: dict[str, list] = {}
    for f in fc["features"]:
        by_layer.setdefault(f["properties"]["layer"], []).append(f)
    assert [f["properties"]["id"] for f in by_layer["track"]] == [5]
    assert [f["properties"]["id"] for f in by_layer["cue"]] == ["a"]
    assert len(by_layer["site"]) + len(by_layer["line"]) == 6
    assert "1 tracks, 1 open cues, 6 sites" in capsys.readouterr().err
    assert fusion_main(["export", "--replay", str(tmp_path / "missing")]) == 2


def test_export_command_from_the_query_socket(tmp_path):
    """`fusion export` against a running service (CURVE on loopback): its tracks and open cues."""
    from fusion.service.server import FusionService, run_in_thread
    from fusion.service.testing import CountingCore, RawAdapter, make_batch, write_config

    config, path = write_config(tmp_path, adapters={"adapter": ["s1"]})
    svc = FusionService(config, core=CountingCore(cue_every=2, n_tracks=3))
    svc.start()
    thread = run_in_thread(svc)
    adapter = RawAdapter.for_config(config, svc.endpoints["ingest"], "adapter")
    try:
        for seq in range(1, 5):
            adapter.send_msg(make_batch("s1", seq, n=2))
        assert adapter.wait_ack("s1", 4)
        out = tmp_path / "live.geojson"
        args = [
            "export",
            "--config",
            str(path),
            "--query",
            svc.endpoints["query"],
            "--sites",
            str(DEMO_SITES),
            "-o",
            str(out),
        ]
        assert fusion_main(args) == 0
        fc = json.loads(out.read_text())
        layers: dict[str, list] = {}
        for f in fc["features"]:
            layers.setdefault(f["properties"]["layer"], []).append(f["properties"])
        assert [p["id"] for p in layers["track"]] == [0, 1, 2]
        assert sorted(p["id"] for p in layers["cue"]) == ["s1-2", "s1-4"]
        assert len(layers["site"]) + len(layers["line"]) == 6
    finally:
        adapter.close()
        svc.request_stop()
        thread.join(15)


def test_read_demo_run_dir_with_tracks_npz(tmp_path):
    """A `fusion demo` run directory: cues.jsonl, tracks.npz (theatre ENU) and fusion.toml."""
    from fusion.geo import LocalFrame

    origin = (46.5, 31.0, 0.0)
    frame = LocalFrame(*origin)
    llh = np.array([[46.6, 31.1, 50.0], [46.7, 31.2, 0.0], [46.61, 31.11, 50.0]])
    np.savez_compressed(
        tmp_path / "tracks.npz",
        origin=np.array(origin),
        t_s=np.array([T0 + 1, T0, T0 + 1]),
        id=np.array([4, 4, 7]),
        pos=frame.to_enu(llh),
        vel=np.zeros((3, 3)),
        sigma_m=np.array([30.0, 30.0, 60.0]),
        status=np.array([2, 2, 3], np.uint8),
        ident=np.array([b"", b"", b"mmsi:1"], "S24"),
        cls=np.array([3, 3, 2], np.uint8),
    )
    (tmp_path / "cues.jsonl").write_text(json.dumps(cue("a", "open", T0)) + "\n")
    (tmp_path / "fusion.toml").write_text(f'[theatre]\nsites = "{DEMO_SITES}"\n')
    out = read_replay_dir(tmp_path)
    assert [f.t_s for f in out.track_frames] == [T0, T0 + 1]
    final = out.final_tracks()
    assert final.id.tolist() == [4, 7]
    assert final.pos[:, :2] == pytest.approx(llh[[0, 2], :2], abs=1e-9)
    assert final.P[1, 0, 0] == pytest.approx(1200.0)  # 60 m over three axes
    assert out.sites_path == DEMO_SITES and out.manifest["origin"] == list(origin)


def test_to_geojson_from_picture_and_siteset():
    """The in-process form: a tracker's TrackPicture (theatre ENU), cue bodies, a SiteSet."""
    from fusion.picture import TrackPicture
    from fusion.sites import load_sites

    ss = load_sites(DEMO_SITES)
    llh = np.array([[46.7, 31.2, 100.0]])
    enu = ss.frame.to_enu(llh)
    Rt = ss.frame.rotation_at(llh)[0]  # local ENU at the track -> theatre
    P_local = np.diag([50.0**2, 10.0**2, 5.0**2, 1.0, 1.0, 1.0])
    T = np.zeros((6, 6))
    T[:3, :3] = T[3:, 3:] = Rt
    pic = TrackPicture(
        t_s=T0, origin=ss.frame.origin, id=np.array([11]),
        x=np.hstack([enu, (Rt @ [0.0, 7.0, 0.0])[None]]), P=(T @ P_local @ T.T)[None],
        t_upd_s=np.array([T0 - 1]), status=np.array([2], np.uint8),
        ident=np.array([b""], "S24"), cls=np.array([3], np.uint8),
        n_sensors=np.array([2], np.uint8), sensor_kinds=np.array([2], np.uint8),
        hits=np.array([9], np.int32), quality=np.array([0.8]),
    )  # fmt: skip
    fc = to_geojson(pic, [cue("a", "open", T0)], ss)
    (trk,) = [f for f in fc["features"] if f["properties"]["layer"] == "track"]
    lon, lat, alt = trk["geometry"]["coordinates"]
    assert (lat, lon, alt) == pytest.approx((46.7, 31.2, 100.0), abs=1e-8)
    p = trk["properties"]
    assert p["t_s"] == T0 - 1
    assert min(p["course_deg"], 360.0 - p["course_deg"]) == pytest.approx(0.0, abs=1e-6)
    # the ellipse is the local one (50 m east-west, 10 m north-south), rotated back exactly
    assert p["ellipse_a_m"] == pytest.approx(ELLIPSE_K * 50) and p["le_m"] == pytest.approx(5)
    assert p["ellipse_bearing_deg"] % 180 == pytest.approx(90.0, abs=1e-6)
    assert {f["properties"]["layer"] for f in fc["features"]} >= {"site", "line", "buffer", "cue"}
