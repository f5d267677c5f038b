"""Service lifecycle on loopback: a stop drains the reorder buffer and acknowledges it, restart
restores delivery state, heartbeats drive liveness in the status stream, feed recording writes
what was accepted, and the Prometheus HTTP endpoint answers."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest

from fusion import protocol
from fusion.feed import read_feed
from fusion.messages import Detections, Heartbeat
from fusion.service.server import FusionService, run_in_thread
from fusion.service.testing import CountingCore, RawAdapter, make_batch, write_config

pytestmark = pytest.mark.timeout(60)


def _start(config, core=None):
    svc = FusionService(config, core=core or CountingCore())
    svc.start()
    return svc, run_in_thread(svc)


def test_stop_drains_held_batches_snapshots_and_acks(tmp_path):
    # A long lag and no periodic snapshot: only the shutdown can process and acknowledge.
    config, _ = write_config(tmp_path, service={"reorder_lag_s": 30.0, "snapshot_interval_s": 60.0})
    svc, thread = _start(config)
    a = RawAdapter.for_config(config, svc.endpoints["ingest"], "adapter")
    now = time.time()
    for seq in (1, 2, 3, 4):
        # Sent out of time order: the drain releases them in measurement-time order.
        a.send_msg(make_batch("s1", seq, t_s=now - seq))
    deadline = time.monotonic() + 5
    while svc.reorder.depth < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert svc.core.seen == [] and a.read_acks(0.2) == {}
    svc.request_stop()
    assert a.wait_ack("s1", 4, timeout_s=5)
    thread.join(10)
    assert not thread.is_alive()
    assert svc.core.seen == [("s1", 4), ("s1", 3), ("s1", 2), ("s1", 1)]
    a.close()

    # Restart: the processed seqs are remembered, so a resend is a duplicate, and the core's
    # state comes back.
    svc2, thread2 = _start(config)
    try:
        assert svc2.core.restored and svc2.durable_ack == {"s1": 4}
        b = RawAdapter.for_config(config, svc2.endpoints["ingest"], "adapter")
        b.send_msg(make_batch("s1", 2, t_s=now))
        assert b.wait_ack("s1", 4, timeout_s=5)  # a duplicate is re-acknowledged at once
        assert svc2.ingest.duplicates == 1
        b.send_msg(make_batch("s1", 5, t_s=now))
        deadline = time.monotonic() + 5
        while svc2.reorder.depth < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        svc2.request_stop()
        assert b.wait_ack("s1", 5, timeout_s=5)
        assert svc2.core.seen == [("s1", 5)]
        b.close()
    finally:
        svc2.request_stop()
        thread2.join(10)


def test_heartbeats_drive_liveness_and_status(tmp_path):
    config, _ = write_config(
        tmp_path,
        service={"heartbeat_late_s": 0.3, "heartbeat_lost_s": 0.8, "status_interval_s": 0.1},
    )
    svc, thread = _start(config)
    a = RawAdapter.for_config(config, svc.endpoints["ingest"], "adapter")
    try:
        a.send_msg(
            Heartbeat(
                sensor="s1",
                t_s=time.time(),
                site=(46.5, 31.0, 0.0),
                coverage={"max_range_m": 20_000.0},
            )
        )
        deadline = time.monotonic() + 3
        while svc.liveness.state("s1", time.time()) != "alive":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert svc.query_status().sensors["s1"]["state"] == "alive"
        assert svc.sensor_states(time.time())["s1"]["coverage"] == {"max_range_m": 20_000.0}
        time.sleep(0.45)
        assert svc.query_status().sensors["s1"]["state"] == "late"
        time.sleep(0.5)
        assert svc.query_status().sensors["s1"]["state"] == "lost"
        time.sleep(0.2)
        assert svc.view.sensors == {"s1": "lost"}
        # A heartbeat for a sensor the key is not bound to is refused like a batch would be.
        a.send_msg(Heartbeat(sensor="other", t_s=time.time()))
        deadline = time.monotonic() + 3
        while svc.ingest.rejects.get("sensor_binding", 0) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert "other" not in svc.liveness.sensors
    finally:
        a.close()
        svc.request_stop()
        thread.join(10)


def test_feed_recording_writes_accepted_frames(tmp_path):
    config, _ = write_config(
        tmp_path, extra='[recording]\nenabled = true\ndir = "feeds"\nrotate_mb = 0.01\n'
    )
    svc, thread = _start(config)
    a = RawAdapter.for_config(config, svc.endpoints["ingest"], "adapter")
    now = time.time()
    try:
        a.send_msg(Heartbeat(sensor="s1", t_s=now))
        for seq in range(1, 31):
            a.send_msg(make_batch("s1", seq, n=20, t_s=now))
        a.send(b"\x00junk")  # rejected: not recorded
        a.send_msg(make_batch("s1", 3, t_s=now))  # duplicate: not recorded
        assert a.wait_ack("s1", 30)
    finally:
        a.close()
        svc.request_stop()
        thread.join(10)
    feeds = tmp_path / "feeds"
    assert len(list(feeds.glob("*.feed"))) > 1  # rotated at 10 kB
    msgs = [protocol.decode(f, now_s=float("inf")) for _, f in read_feed(feeds)]
    assert isinstance(msgs[0], Heartbeat)
    dets = [m for m in msgs if isinstance(m, Detections)]
    assert [m.seq for m in dets] == list(range(1, 31))


def test_metrics_http_endpoint(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    config, _ = write_config(tmp_path, service={"metrics_port": port})
    svc, thread = _start(config)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        text = body.decode()
        assert "fusion_batches_total 0.0" in text
        assert "fusion_auth_admitted_total" in text
    finally:
        svc.request_stop()
        thread.join(10)


class _SlowCore(CountingCore):
    def process(self, batches, sensor_states, now_s):
        time.sleep(0.002 * len(batches))
        return super().process(batches, sensor_states, now_s)


def test_a_slow_core_pushes_back_instead_of_holding_everything(tmp_path, monkeypatch):
    import fusion.service.server as server

    monkeypatch.setattr(server, "MAX_HELD_BATCHES", 50)
    config, _ = write_config(tmp_path, service={"reorder_lag_s": 0.0})
    svc, thread = _start(config, core=_SlowCore())
    a = RawAdapter.for_config(config, svc.endpoints["ingest"], "adapter")
    try:
        now = time.time()
        for seq in range(1, 401):
            a.send_msg(make_batch("s1", seq, n=2, t_s=now + seq * 1e-3))
        most = 0
        deadline = time.monotonic() + 30
        while svc.core.batches < 400:
            assert time.monotonic() < deadline
            most = max(most, svc.reorder.depth + len(svc._ready))
            time.sleep(0.001)
        assert most <= 50
        assert [q for _, q in svc.core.seen] == list(range(1, 401))
        assert a.wait_ack("s1", 400)
    finally:
        a.close()
        svc.request_stop()
        thread.join(10)


def test_sensor_outage_cue_from_heartbeats_with_the_real_core(tmp_path):
    """Heartbeats stop: liveness turns the sensor lost and the idle scan of the rules cues an
    outage over the sites it covered, stored and published like any cue."""
    sites = Path(__file__).resolve().parent.parent / "configs" / "sites" / "demo.geojson"
    config, _ = write_config(
        tmp_path,
        adapters={"adapter": ["r1"]},
        service={"heartbeat_late_s": 0.2, "heartbeat_lost_s": 0.5},
        extra=f'[theatre]\norigin = [46.5, 31.0, 0.0]\nsites = "{sites}"\n',
    )
    svc = FusionService(config)
    svc.core.idle_s = 0.3
    svc.start()
    thread = run_in_thread(svc)
    a = RawAdapter.for_config(config, svc.endpoints["ingest"], "adapter")
    try:
        now = time.time()
        a.send_msg(
            Heartbeat(
                sensor="r1", t_s=now, site=(46.5, 31.0, 0.0), coverage={"max_range_m": 20_000.0}
            )
        )
        a.send_msg(make_batch("r1", 1, n=3, t_s=now))
        assert a.wait_ack("r1", 1)
        deadline = time.monotonic() + 10
        while not any(b["rule"] == "sensor_outage" for b in svc.store.since(0)):
            assert time.monotonic() < deadline, svc.store.since(0)
            time.sleep(0.1)
        outage = [b for b in svc.store.since(0) if b["rule"] == "sensor_outage"]
        assert outage[0]["state"] == "open" and "r1" in outage[0]["text"]
        assert svc.cue_events.get(("sensor_outage", "open"), 0) >= 1
    finally:
        a.close()
        svc.request_stop()
        thread.join(10)


def test_late_batches_dropped_by_policy_are_counted_and_acknowledged(tmp_path):
    config, _ = write_config(tmp_path, service={"reorder_lag_s": 0.05, "late_policy": "drop"})
    svc, thread = _start(config)
    a = RawAdapter.for_config(config, svc.endpoints["ingest"], "adapter")
    try:
        now = time.time()
        a.send_msg(make_batch("s1", 1, t_s=now))
        assert a.wait_ack("s1", 1)
        a.send_msg(make_batch("s1", 2, t_s=now - 60.0))  # a minute older than released data
        a.send_msg(make_batch("s1", 3, t_s=now + 0.1))
        assert a.wait_ack("s1", 3)
        assert svc.reorder.late == 1 and svc.reorder.late_dropped == 1
        assert svc.core.seen == [("s1", 1), ("s1", 3)]
        assert svc.counters()["late_dropped"] == 1
    finally:
        a.close()
        svc.request_stop()
        thread.join(10)
