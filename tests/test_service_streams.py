"""The service's output side on loopback with CURVE: cues stored before they are published,
late joiners catching up through the query socket (clone pattern), a stalled subscriber that
does not slow the service and whose drops are counted, and the Prometheus metrics."""

from __future__ import annotations

import time

import pytest
from prometheus_client import generate_latest

from fusion.client import FusionClient
from fusion.messages import CueEvent, Status, TrackUpdate
from fusion.service.server import FusionService, run_in_thread
from fusion.service.testing import CountingCore, RawAdapter, make_batch, write_config

pytestmark = pytest.mark.timeout(90)


class Running:
    def __init__(self, tmp_path, core, **service):
        self.config, _ = write_config(tmp_path, adapters={"adapter": ["s1"]}, service=service)
        self.svc = FusionService(self.config, core=core)
        self.svc.start()
        self.thread = run_in_thread(self.svc)
        self.adapter = RawAdapter.for_config(self.config, self.svc.endpoints["ingest"], "adapter")
        self.client = FusionClient(
            self.svc.endpoints["query"],
            self.svc.endpoints["publish"],
            keys=_secret(self.config, "subscriber"),
            server_public=self.svc.server_keys.public,
        )

    def send(self, first: int, last: int) -> None:
        now = time.time()
        for seq in range(first, last + 1):
            self.adapter.send_msg(make_batch("s1", seq, n=5, t_s=now + seq * 1e-3))

    def stop(self) -> None:
        self.client.close()
        self.adapter.close()
        self.svc.request_stop()
        self.thread.join(15)
        assert not self.thread.is_alive()


def _secret(config, name):
    from fusion.security import load_secret

    return load_secret(name, config.security.keys_dir)


@pytest.fixture
def running(tmp_path):
    r = Running(tmp_path, CountingCore(cue_every=5))
    yield r
    r.stop()


def test_late_joiner_gets_history_then_live_without_gaps_or_repeats(running):
    r = running
    r.send(1, 50)
    assert r.adapter.wait_ack("s1", 50)
    assert r.svc.store.last_seq() == 10  # stored before anyone subscribed

    sub = r.client.subscribe(["cue"])
    got = []
    while len(got) < 10:
        m = sub.next(timeout_s=5)
        assert m is not None
        got.append(m)
    assert all(m.from_history for m in got)
    assert [m.message.body["seq"] for m in got] == list(range(1, 11))

    r.send(51, 100)
    while len(got) < 20:
        m = sub.next(timeout_s=5)
        assert m is not None, len(got)
        assert m.topic == "cue.incursion.port-alpha" and isinstance(m.message, CueEvent)
        got.append(m)
    assert [m.message.body["seq"] for m in got] == list(range(1, 21))
    assert not any(m.from_history for m in got[10:])
    # Every published cue is in the store, with the same body.
    stored = {b["seq"]: b for b in r.client.history(0)}
    for m in got:
        assert stored[m.message.body["seq"]]["id"] == m.message.body["id"]
    assert sub.next(timeout_s=0.3) is None
    sub.close()

    assert len(r.client.open_cues()) == 20
    assert [b["seq"] for b in r.client.history(15)] == [16, 17, 18, 19, 20]
    assert isinstance(r.client.tracks(), TrackUpdate)
    status = r.client.status()
    assert isinstance(status, Status) and status.counters["processed_detections"] == {"s1": 500}


def test_subscriber_filters_by_topic_and_sees_status(running):
    r = running
    sub = r.client.subscribe(["status"], catch_up=False)
    m = sub.next(timeout_s=3)
    assert m is not None and m.topic == "status" and isinstance(m.message, Status)
    sub.close()


def _time_to_process(tmp_path, n_batches, stalled: bool) -> tuple[float, Running, object]:
    r = Running(
        tmp_path,
        CountingCore(n_tracks=2000),
        track_publish_hz=100.0,
        pub_hwm=4,
        reorder_lag_s=0.0,
    )
    sub = None
    if stalled:
        sub = r.client.subscribe(["trk", "status"], catch_up=False, rcvhwm=4)
        # Never read: the socket's and the kernel's buffers fill, then PUB drops.
    time.sleep(0.5)
    t0 = time.monotonic()
    r.send(1, n_batches)
    assert r.adapter.wait_ack("s1", n_batches, timeout_s=30)
    return time.monotonic() - t0, r, sub


def test_stalled_subscriber_does_not_slow_the_service_and_drops_are_counted(tmp_path):
    n = 3000
    base_s, r0, _ = _time_to_process(tmp_path / "a", n, stalled=False)
    r0.stop()
    stalled_s, r, sub = _time_to_process(tmp_path / "b", n, stalled=True)
    try:
        published = r.svc.publisher.sent.get("trk", 0)
        assert published > 50
        # Acks follow snapshots (0.2 s), so both runs carry the same fixed delay.
        assert stalled_s < 2.0 * base_s + 1.0, (base_s, stalled_s)
        # Now read everything: the gaps in the per-topic sequence are the drops.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            sub.next(timeout_s=0.1)
        assert sub.missed > 0
        sub.close()  # reports what it has not reported yet
        deadline = time.monotonic() + 5
        while r.svc.publisher.reported_drops < sub.missed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.svc.publisher.reported_drops == sub.missed
        text = generate_latest(r.svc.registry).decode()
        assert f'fusion_publish_drops_total{{source="reported"}} {float(sub.missed)}' in text
        print(
            f"\nbaseline {base_s:.2f} s, stalled subscriber {stalled_s:.2f} s, "
            f"published {published}, missed {sub.missed}"
        )
    finally:
        r.stop()


def test_metrics_read_live_state(running):
    r = running
    r.send(1, 20)
    r.adapter.send(b"\x00garbage")
    r.adapter.send_msg(make_batch("s1", 3))  # duplicate
    assert r.adapter.wait_ack("s1", 20)
    deadline = time.monotonic() + 3
    while r.svc.ingest.duplicates < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the view of tracks and sensor states refreshes every status interval
    text = generate_latest(r.svc.registry).decode()
    for line in (
        'fusion_detections_total{kind="pos",sensor="s1"} 100.0',
        'fusion_rejects_total{reason="decode"} 1.0',
        "fusion_duplicates_total 1.0",
        'fusion_cue_events_total{rule="incursion",state="open"} 4.0',
        'fusion_open_cues{rule="incursion"} 4.0',
        'fusion_sensor_liveness{sensor="s1"} 0.0',
        "fusion_batch_processing_seconds_count 20.0",
        "fusion_detection_to_cue_seconds_count 4.0",
        "fusion_reorder_depth 0.0",
        'fusion_tracks{state="confirmed"} 0.0',
    ):
        assert line in text, line


def test_fusion_subscribe_command_prints_json_lines(tmp_path, capsys):
    import json
    import socket

    from fusion.cli import main

    socks = [socket.socket() for _ in range(3)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = tuple(s.getsockname()[1] for s in socks)
    for s in socks:
        s.close()
    config, path = write_config(tmp_path, ports=ports)
    svc = FusionService(config, core=CountingCore(cue_every=2))
    svc.start()
    thread = run_in_thread(svc)
    adapter = RawAdapter.for_config(config, config.service.ingest, "adapter")
    try:
        now = time.time()
        for seq in range(1, 7):
            adapter.send_msg(make_batch("s1", seq, t_s=now))
        assert adapter.wait_ack("s1", 6)
        code = main(
            [
                "subscribe",
                "--config",
                str(path),
                "--json",
                "--topic",
                "cue",
                "--count",
                "3",
                "--duration",
                "10",
            ]
        )
        assert code == 0
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert [x["body"]["seq"] for x in lines] == [1, 2, 3]
        assert all(x["type"] == "cue" and x["history"] for x in lines)
        assert lines[0]["topic"] == "cue.incursion.port-alpha"
        # The default live table renders the same stream.
        assert main(["subscribe", "--config", str(path), "--count", "2", "--duration", "10"]) == 0
        assert "port-alpha" in capsys.readouterr().out
    finally:
        adapter.close()
        svc.request_stop()
        thread.join(10)


def test_live_only_subscription_starts_at_the_first_cue(running):
    r = running
    r.send(1, 20)
    assert r.adapter.wait_ack("s1", 20)
    sub = r.client.subscribe(["cue"], catch_up=False)
    time.sleep(0.3)  # let the subscription reach the publisher
    r.send(21, 40)
    got = []
    while (m := sub.next(timeout_s=2)) is not None:
        got.append(m.message.body["seq"])
    assert got == [5, 6, 7, 8]  # cues of batches 25, 30, 35, 40; no history
    sub.close()
