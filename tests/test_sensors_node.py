"""Node configs, acoustic events, `sensors convert`, replay and `sensors run` end to end."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fusion import protocol
from fusion.feed import read_feed
from fusion.messages import KIND_EVENT, Detections
from sensors.acoustic import AcousticDecoder
from sensors.base import Link, LinkConfig
from sensors.cli import main as sensors_main
from sensors.node import ConfigError, load_node_config, run_node
from sensors.replay import replay_feed
from tests.sensors_loopback import LoopbackFusion

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fusion():
    f = LoopbackFusion().start()
    yield f
    f.stop()


def test_example_node_configs_load():
    paths = sorted((ROOT / "configs" / "nodes").glob("*.toml"))
    kinds = {load_node_config(p).adapters[0].kind for p in paths}
    assert kinds == {"ais", "sbs", "opensky", "asterix", "acoustic"}
    radar = load_node_config(ROOT / "configs" / "nodes" / "asterix.toml").adapters[0]
    assert radar.radars[(25, 204)] == (49.2, 2.1, 180.0)


def test_bad_node_config_says_where(tmp_path):
    p = tmp_path / "n.toml"
    p.write_text(
        '[node]\nname = "x"\nendpoint = "tcp://127.0.0.1:1"\n[[adapter]]\nkind = "sonar"\n'
    )
    with pytest.raises(ConfigError, match="adapter #1: kind"):
        load_node_config(p)
    p.write_text(
        '[node]\nname = "x"\nendpoint = "tcp://127.0.0.1:1"\n[[adapter]]\nkind = "ais"\n'
        'sensor = "a"\nsource = "udp://0.0.0.0:1"\n[adapter.options]\nwarp = 9\n'
    )
    with pytest.raises(ConfigError, match="adapter #1: \\[adapter.options\\]"):
        load_node_config(p)
    p.write_text("[node\n")
    with pytest.raises(ConfigError):
        load_node_config(p)
    assert sensors_main(["run", str(p)]) == 2


def test_acoustic_events_and_bad_lines():
    dec = AcousticDecoder()
    lines = [
        json.dumps({"t_s": 1.7e9, "event": "gunfire", "lat_deg": 47.1, "lon_deg": 37.5}),
        json.dumps(
            {
                "time": "2024-03-01T12:00:00.250Z",
                "event": "launch",
                "lat": 47.2,
                "lon": 37.6,
                "alt": 80.0,
                "sigma_m": 20.0,
                "sigma_alt_m": 40.0,
            }
        ),
        "{not json",
        json.dumps({"t_s": 1.7e9, "event": "fireworks", "lat_deg": 1, "lon_deg": 1}),
        json.dumps({"t_s": 1.7e9, "event": "impact", "lat_deg": 95.0, "lon_deg": 1}),
        json.dumps({"t_s": 1.7e9, "event": "impact", "lat_deg": 1.0, "lon_deg": 1, "sigma_m": 0}),
        json.dumps({"event": "impact", "lat_deg": 1.0, "lon_deg": 1}),
        json.dumps([1, 2]),
        json.dumps({"t_s": "soon", "event": "impact", "lat_deg": 1.0, "lon_deg": 1}),
        "",
    ]
    out = [m for line in lines for m in dec.feed(line.encode(), 0.0)]
    assert [m.event for m in out] == ["gunfire", "launch"]
    a, b = out
    assert a.kind == KIND_EVENT and a.z == (47.1, 37.5, 0.0)
    assert a.r_diag == (2500.0, 2500.0, 10000.0)
    assert b.t_s == pytest.approx(1709294400.25) and b.r_diag == (400.0, 400.0, 1600.0)
    assert dec.stats == {
        "events": 2,
        "empty": 1,
        "undecodable": 3,
        "unknown_event": 1,
        "out_of_range": 2,
        "no_time": 1,
    }


def test_convert_keeps_measurement_times(shared_data, tmp_path):
    out = tmp_path / "dma.feed"
    src = shared_data / "ais" / "dma_stream_example.nmea"
    assert sensors_main(["convert", "ais", str(src), "--out", str(out)]) == 0
    batches = [protocol.decode(f) for _, f in read_feed(out)]
    recv = [t for t, _ in read_feed(out)]
    assert sum(len(b) for b in batches) == 2962
    t = np.concatenate([b.t for b in batches])
    assert all((np.diff(b.t) >= 0).all() for b in batches)  # sorted by measurement time
    assert (np.diff(recv) >= 0).all()  # and recorded in the order they would have arrived
    assert t.min() >= 1276256760.0 and t.max() <= 1276256810.0  # 2010-06-11 11:46:00..50
    assert all(r >= b.t.max() for r, b in zip(recv, batches, strict=True))
    assert [b.seq for b in batches] == list(range(1, len(batches) + 1))
    assert all(b.sensor == "ais.dma_stream_example" for b in batches)


def _write_feed(path: Path, n_batches: int, span_s: float) -> list[Detections]:
    from fusion.feed import FeedWriter
    from sensors.batching import Batcher, Measurement

    b = Batcher("rec", batch_max=10, max_wait_s=1e9, seq_start=100)
    dets = []
    for i in range(n_batches * 10):
        t = 1.6e9 + span_s * (i // 10) / max(n_batches - 1, 1)
        dets += b.add(Measurement("pos", t, (50.0, 1.0, 0.0), (1.0, 1.0, 1.0)), 0.0)
    with FeedWriter(path) as w:
        for d in dets:
            w.write(protocol.encode(d), float(d.t.max()))
    return dets


def test_replay_command_fast_to_loopback(tmp_path, fusion):
    path = tmp_path / "x.feed"
    _write_feed(path, 12, 2.0)
    argv = ["replay", str(path), "--endpoint", fusion.endpoint, "--plaintext", "--fast"]
    assert sensors_main(argv) == 0
    assert sum(len(b) for b in fusion.received()) == 120
    # CURVE is the default: without keys and off loopback, a clear refusal
    assert sensors_main(["replay", str(path), "--endpoint", "tcp://10.9.9.9:1"]) == 2


def test_replay_paces_by_speed(tmp_path):
    path = tmp_path / "x.feed"
    _write_feed(path, 5, 8.0)
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    sent = []
    st = replay_feed(path, sent.append, speed=4.0, clock=lambda: now[0], sleep=sleep)
    assert st.batches == 5 and st.detections == 50
    assert sum(slept) == pytest.approx(2.0)  # 8 s of recording at 4x
    st = replay_feed(path, sent.append, speed=None, clock=lambda: now[0], sleep=sleep)
    assert sum(slept) == pytest.approx(2.0)  # --fast never sleeps
    t0 = now[0]
    st = replay_feed(path, sent.append, speed=None, retime=True, clock=lambda: now[0])
    assert sent[-5].t.min() == t0


def test_replay_through_link_renumbers_and_delivers(tmp_path, fusion):
    path = tmp_path / "x.feed"
    dets = _write_feed(path, 30, 3.0)
    cfg = LinkConfig(endpoint=fusion.endpoint, sensor="replay", plaintext=True, overflow="block")
    with Link(cfg) as link:
        st = replay_feed(path, link.submit, speed=None)
        assert fusion.wait_for(300, 10.0)
        assert link.flush(5.0)
    got = fusion.received()
    assert st.batches == 30 and len(got) == 30
    assert all(g.sensor == "rec" for g in got)
    seqs = [g.seq for g in got]
    assert seqs == sorted(seqs) and seqs[0] > dets[-1].seq  # new numbers, time-based start
    np.testing.assert_array_equal(
        np.concatenate([g.t for g in got]), np.concatenate([d.t for d in dets])
    )


def test_run_node_with_a_file_source_delivers_events(tmp_path, fusion):
    events = tmp_path / "events.jsonl"
    rows = [
        {"t_s": 1.7e9 + i, "event": ("gunfire", "impact")[i % 2], "lat_deg": 47.0, "lon_deg": 37.0}
        for i in range(20)
    ]
    events.write_text("\n".join(json.dumps(r) for r in rows) + "\ngarbage\n")
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        f"""
[node]
name = "t"
endpoint = "{fusion.endpoint}"
plaintext = true
[[adapter]]
kind = "acoustic"
sensor = "acoustic.t"
source = "file:{events}"
site = [47.0, 37.0, 10.0]
max_range_m = 5000
[adapter.link]
batch_wait_s = 0.01
heartbeat_s = 0.05
"""
    )
    stop = threading.Event()
    runners = run_node(load_node_config(cfg), stop)
    try:
        assert fusion.wait_for(20, 10.0)
        (r,) = runners
        assert r.finished.wait(5.0)
        assert r.stats["events"] == 20 and r.stats["undecodable"] == 1
        deadline = time.monotonic() + 5
        while not fusion.heartbeats and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        for r in runners:
            r.close()
    got = fusion.received()
    assert {g.meta["event"] for g in got} == {"gunfire", "impact"}
    assert all(g.kind == KIND_EVENT for g in got)
    assert fusion.heartbeats[0].coverage == {"max_range_m": 5000.0}


@pytest.mark.parametrize(
    ("kind", "rel", "extra", "n_det", "kind_wire"),
    [
        ("ais", "ais/solent_ais_20160112.csv", {}, 18622, "pos"),
        ("opensky", "adsb/opensky_uk_states_20210712.csv", {}, 5393, "pos"),  # 14 implausible
        ("asterix", "asterix/cat034_cat048_sample.pcap", {"site": (48.7, 2.3, 1.0)}, 126, "polar"),
    ],
)
def test_convert_each_kind(shared_data, tmp_path, kind, rel, extra, n_det, kind_wire):
    from sensors.commands.convert import convert

    out = tmp_path / "x.feed"
    counts = convert(kind, shared_data / rel, out, sensor=f"{kind}.t", **extra)
    assert counts["detections"] == n_det
    batches = [protocol.decode(f) for _, f in read_feed(out)]
    assert sum(len(b) for b in batches) == n_det
    assert {b.kind for b in batches} == {kind_wire}
    seqs = [b.seq for b in batches]
    assert seqs == list(range(1, len(seqs) + 1))
