"""The adapter link against the real fusion service (CURVE, ZAP allowlist, durable acks), with
a counting core: a service stopped and restarted mid-stream loses nothing the adapter held."""

from __future__ import annotations

import time

import pytest

from fusion.demo import free_ports
from fusion.messages import KIND_POS
from fusion.service.server import FusionService, run_in_thread
from fusion.service.testing import CountingCore, write_config
from sensors.base import Link, LinkConfig
from sensors.batching import Measurement

pytestmark = pytest.mark.timeout(120)


def _meas(i: int, t_s: float) -> Measurement:
    return Measurement(
        KIND_POS, t_s, (46.5 + i * 1e-4, 31.0, 0.0), (100.0, 100.0, 2500.0), b"mmsi:%d" % i, 2
    )


def _start(config) -> tuple[FusionService, object, CountingCore]:
    core = CountingCore()
    svc = FusionService(config, core=core)
    svc.start()
    return svc, run_in_thread(svc), core


def _wait(pred, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_link_to_the_service_survives_a_restart(tmp_path):
    config, _ = write_config(tmp_path, adapters={"node1": ["ais.t"]}, ports=tuple(free_ports(3)))
    keys = config.security.keys_dir
    svc, thread, core = _start(config)
    cfg = LinkConfig(
        endpoint=svc.endpoints["ingest"],
        sensor="ais.t",
        client_cert=str(keys / "node1.key_secret"),
        server_key=str(keys / "fusion.key"),
        batch_max=20,
        batch_wait_s=0.02,
        ack_timeout_s=1.0,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        heartbeat_s=0.2,
    )
    link = Link(cfg).start()
    try:
        t0 = time.time()
        for i in range(200):
            link.submit(_meas(i, t0 + i * 1e-3))
        assert _wait(lambda: core.counts.get("ais.t", 0) == 200, 20.0)
        assert link.flush(10.0)  # durable acks came back for all of it

        svc.request_stop()
        thread.join(15)
        assert not thread.is_alive()
        t1 = time.time()
        for i in range(200, 500):  # fusion is down: the adapter keeps reading and holds these
            link.submit(_meas(i, t1 + i * 1e-3))
        assert _wait(lambda: link.stats["batches_out"] >= 25, 5.0)
        assert link.pending > 0

        svc, thread, core = _start(config)  # same ports, restores its snapshot
        assert core.restored and core.counts.get("ais.t", 0) == 200
        assert _wait(lambda: core.counts.get("ais.t", 0) >= 500, 30.0)
        assert link.flush(10.0)
        time.sleep(0.3)
        assert core.counts["ais.t"] == 500  # every detection exactly once
        assert link.stats["dropped_batches"] == 0
    finally:
        link.close(0.5)
        svc.request_stop()
        thread.join(15)
