"""The adapter's link to fusion: batching, acks, outage buffering, bound, CURVE, heartbeats."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq
import zmq.auth
from prometheus_client import generate_latest

from fusion.messages import KIND_POS
from sensors.base import Link, LinkConfig
from sensors.batching import Batcher, Measurement
from tests.sensors_loopback import LoopbackFusion

pytestmark = pytest.mark.timeout(60)


def meas(i: int, t0: float = 1.7e9) -> Measurement:
    return Measurement(
        KIND_POS,
        t0 + i * 0.01,
        (50.0 + i * 1e-5, -1.0, 0.0),
        (100.0, 100.0, 2500.0),
        b"mmsi:%d" % (200000000 + i % 7),
        2,
        (1.0, 2.0, 0.0),
        (0.25, 0.25, 0.01),
    )


def fast_config(endpoint: str, **kw) -> LinkConfig:
    base = dict(
        endpoint=endpoint,
        sensor="ais-test",
        plaintext=True,
        batch_max=50,
        batch_wait_s=0.02,
        ack_timeout_s=0.3,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        heartbeat_s=0.1,
        seq_start=1,
    )
    base.update(kw)
    return LinkConfig(**base)


@pytest.fixture
def fusion():
    f = LoopbackFusion().start()
    yield f
    f.stop()


def _all_times(batches) -> list[float]:
    return sorted(float(x) for b in batches for x in b.t)


def test_batches_by_size_and_time_and_seq_increases(fusion):
    with Link(fast_config(fusion.endpoint)) as link:
        for i in range(120):
            assert link.submit(meas(i))
        assert fusion.wait_for(120, 5.0)
        assert link.flush(5.0)
        # a lone measurement goes out after the wait, not when a batch fills
        t0 = time.monotonic()
        link.submit(meas(500))
        assert fusion.wait_for(121, 5.0)
        assert time.monotonic() - t0 < 1.0
    got = fusion.received()
    assert [len(b) for b in got][:2] == [50, 50]
    assert all(len(b) <= 50 for b in got)
    seqs = [b.seq for b in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert _all_times(got) == sorted(meas(i).t_s for i in [*range(120), 500])
    b = got[0]
    assert b.kind == KIND_POS and b.sensor == "ais-test"
    np.testing.assert_array_equal(b.R[0], np.diag([100.0, 100.0, 2500.0]))
    assert b.ident[0] == b"mmsi:200000000" and b.vel.shape == (50, 3)
    assert link.pending == 0 and link.stats["acked_batches"] == len(got)


def test_outage_buffers_then_delivers_everything(fusion):
    cfg = fast_config(fusion.endpoint, unacked_max=1000)
    with Link(cfg) as link:
        for i in range(100):
            link.submit(meas(i))
        assert fusion.wait_for(100, 5.0)
        fusion.stop()  # fusion goes away
        t0 = time.monotonic()
        for i in range(100, 1100):
            assert link.submit(meas(i))  # reading never waits on the network
        assert time.monotonic() - t0 < 1.0
        time.sleep(0.8)  # longer than the ack timeout: the link reconnects with backoff
        assert 0 < link.pending <= cfg.unacked_max
        assert link.stats["dropped_batches"] == 0
        fusion.start()  # and comes back on the same port
        assert fusion.wait_for(1100, 10.0)
        assert link.flush(5.0)
    assert _all_times(fusion.received()) == sorted(meas(i).t_s for i in range(1100))
    assert link.stats["dropped_batches"] == 0


def test_unanswered_batches_reopen_the_socket_with_backoff_and_resend(fusion):
    fusion.mute = True  # fusion receives but never acks: a hung service
    cfg = fast_config(fusion.endpoint, ack_timeout_s=0.2, backoff_initial_s=0.05)
    with Link(cfg) as link:
        for i in range(10):
            link.submit(meas(i))
        deadline = time.monotonic() + 5
        while link.stats["reconnects"] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert link.stats["reconnects"] >= 3
        assert link.stats["resent"] >= 3 and fusion.duplicates >= 2
        assert link.pending == 1  # still held: nothing was acknowledged
        fusion.mute = False
        assert link.flush(5.0)
    assert _all_times(fusion.received()) == sorted(meas(i).t_s for i in range(10))


def test_buffer_bound_drops_oldest_and_counts(fusion):
    fusion.stop()
    cfg = fast_config(fusion.endpoint, unacked_max=5, batch_max=10)
    with Link(cfg) as link:
        for i in range(200):  # 20 batches while fusion is down
            link.submit(meas(i))
        deadline = time.monotonic() + 5
        while link.stats["batches_out"] < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert link.pending == 5
        assert link.stats["dropped_batches"] == 15
        assert link.stats["dropped_detections"] == 150
        fusion.start()
        assert fusion.wait_for(50, 10.0)
        assert link.flush(5.0)
    # exactly the newest five batches, nothing else
    assert _all_times(fusion.received()) == sorted(meas(i).t_s for i in range(150, 200))


def test_curve_link_and_plaintext_refused_off_loopback(tmp_path):
    server_pub, server_sec = zmq.auth.create_certificates(tmp_path, "server")
    _, client_sec = zmq.auth.create_certificates(tmp_path, "node1")
    _, secret = zmq.auth.load_certificate(server_sec)
    fusion = LoopbackFusion(server_secret=secret).start()
    try:
        cfg = fast_config(
            fusion.endpoint, plaintext=False, client_cert=client_sec, server_key=server_pub
        )
        with Link(cfg) as link:
            for i in range(30):
                link.submit(meas(i))
            assert fusion.wait_for(30, 5.0)
        # a wrong server key never delivers anything
        wrong_pub, _ = zmq.auth.create_certificates(tmp_path, "other")
        cfg2 = fast_config(
            fusion.endpoint, plaintext=False, client_cert=client_sec, server_key=wrong_pub
        )
        n_before = len(fusion.received())
        link2 = Link(cfg2).start()
        link2.submit(meas(999))
        time.sleep(0.3)
        link2.close(drain_s=0.1)
        assert len(fusion.received()) == n_before
    finally:
        fusion.stop()
    with pytest.raises(ValueError, match="not loopback"):
        Link(fast_config("tcp://10.1.2.3:5555"))
    with pytest.raises(ValueError, match="CURVE keys required"):
        Link(fast_config("tcp://10.1.2.3:5555", plaintext=False))


def test_heartbeats_carry_coverage_and_metrics_are_exposed(fusion):
    cfg = fast_config(fusion.endpoint, site=(50.8, -1.1, 20.0), coverage={"max_range_m": 40000.0})
    with Link(cfg) as link:
        deadline = time.monotonic() + 5
        while len(fusion.heartbeats) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        link.submit(meas(1))
        assert fusion.wait_for(1, 5.0)
        assert link.flush(5.0)
        text = generate_latest(link.registry).decode()
    hb = fusion.heartbeats[0]
    assert hb.sensor == "ais-test" and hb.status == "ok"
    assert {h.status for h in fusion.heartbeats} == {"ok"}
    assert hb.coverage == {"max_range_m": 40000.0} and tuple(hb.site) == (50.8, -1.1, 20.0)
    assert 'sensors_unacked_batches{sensor="ais-test"} 0.0' in text
    assert 'sensors_acked_batches_total{sensor="ais-test"} 1.0' in text


def test_losing_measurements_degrades_the_heartbeat(fusion):
    cfg = fast_config(fusion.endpoint, queue_max=1, heartbeat_s=0.05)
    with Link(cfg) as link:
        link.set_status("ok")
        dropped = sum(not link.submit(meas(i)) for i in range(2000))
        assert dropped > 0 and link.stats["queue_full"] == dropped
        deadline = time.monotonic() + 5
        while "degraded" not in {h.status for h in fusion.heartbeats}:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        n = len(fusion.heartbeats)
        while len(fusion.heartbeats) < n + 2:  # no further losses: ok again
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert fusion.heartbeats[-1].status == "ok"


def test_batcher_groups_kinds_and_velocity_presence():
    b = Batcher("s", batch_max=100, max_wait_s=0.05, seq_start=7)
    with_vel = meas(1)
    without = with_vel._replace(vel=None, vel_var=None)
    assert b.add(with_vel, 0.0) == [] and b.add(without, 0.01) == []
    assert b.due(0.04) == []
    out = b.due(0.07)
    assert [d.seq for d in out] == [7, 8]
    assert {d.vel is None for d in out} == {True, False}
    assert b.next_due_s() is None
