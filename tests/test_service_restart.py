"""SIGKILL in the middle of a stream, restart, the adapter resends: every detection is processed
exactly once (the final tracks equal those of an uninterrupted in-process run, and the
per-sensor count of processed detections equals what was sent), tracks keep their ids, every
cue a subscriber received is in the store, and SIGTERM ends the service with exit code 0.

The service runs as `fusion run` in a subprocess (real tracker, CURVE on loopback); the adapter
is the project's own link (sensors.base.Link) with its unacknowledged buffer and resend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fusion.client import FusionClient, QueryError
from fusion.demo import free_ports
from fusion.messages import CueEvent
from fusion.service.testing import straight_targets, write_config

ROOT = Path(__file__).resolve().parent.parent
N_TARGETS = 20
N_SCANS = 240


# The same service with the counting core (delivery only, no tracker): a second process image.
COUNTING = (
    "import logging, sys; logging.basicConfig(level=logging.INFO);"
    "from fusion.config import load_config;"
    "from fusion.service.server import FusionService;"
    "from fusion.service.testing import CountingCore;"
    "sys.exit(FusionService(load_config(sys.argv[1]), core=CountingCore(cue_every=7)).serve())"
)


def _start(config_path: Path, log: Path, core: str = "tracker") -> subprocess.Popen:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    if core == "tracker":
        cmd = ["-m", "fusion.cli", "run", "--config", str(config_path), "--log-level", "INFO"]
    else:
        cmd = ["-c", COUNTING, str(config_path)]
    return subprocess.Popen(
        [sys.executable, *cmd],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),  # noqa: SIM115 - the child owns it
    )


def _wait_ready(client: FusionClient, proc: subprocess.Popen, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "service exited during start"
        try:
            return client.status()
        except QueryError:
            time.sleep(0.2)
    raise AssertionError("service not ready")


def _reference(batches):
    from fusion.tracker import Tracker

    tr = Tracker(origin=(46.5, 31.0, 0.0))
    for b in batches:
        tr.step(b)
    return tr.picture(confirmed_only=True)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("core", ["counting", "tracker"])
def test_sigkill_mid_stream_then_restart_processes_every_detection_once(tmp_path, core):
    from sensors.base import Link, LinkConfig

    ports = free_ports(3)
    config, path = write_config(
        tmp_path,
        adapters={"adapter": ["radar"]},
        ports=tuple(ports),
        service={"reorder_lag_s": 0.05, "snapshot_interval_s": 0.5, "track_publish_hz": 5.0},
        # The tracker run has the demo sites: targets near Port Alpha make cues.
        extra=f'[theatre]\nsites = "{ROOT / "configs/sites/demo.geojson"}"\n'
        if core == "tracker"
        else "",
    )
    keys = config.security.keys_dir
    log = tmp_path / "service.log"
    client = FusionClient.from_config(config, key="subscriber", timeout_s=2.0)
    batches = straight_targets(N_TARGETS, N_SCANS, t0_s=time.time() - 900.0, spread_m=4000.0)
    expected = _reference(batches) if core == "tracker" else None

    proc = _start(path, log, core)
    link = None
    try:
        _wait_ready(client, proc)
        sub = client.subscribe(["cue"])
        link = Link(
            LinkConfig(
                endpoint=config.service.ingest,
                sensor="radar",
                client_cert=str(keys / "adapter.key_secret"),
                server_key=str(keys / "fusion.key"),
                seq_start=1,
                unacked_max=100_000,
                overflow="block",
                ack_timeout_s=1.0,
                backoff_initial_s=0.1,
                backoff_max_s=0.5,
                heartbeat_s=0.5,
            )
        ).start()

        for b in batches[:120]:
            link.submit(b)
        assert link.flush(30), "first part not acknowledged"
        ids_before = set(client.tracks().id.tolist())
        assert core == "counting" or len(ids_before) == N_TARGETS

        for b in batches[120:180]:
            link.submit(b)
        time.sleep(0.3)  # some processed, some held, part of it not yet in a snapshot
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        unacked_at_kill = link.pending
        assert unacked_at_kill > 0, "the kill was not mid-stream"

        proc = _start(path, log, core)
        status = _wait_ready(client, proc)
        assert status.counters["restored_from"] is not None
        for b in batches[180:]:
            link.submit(b)
        assert link.flush(60), f"not all acknowledged: {link.pending} pending"

        status = client.status()
        assert status.counters["processed_detections"] == {"radar": N_TARGETS * N_SCANS}
        assert status.counters["core_errors"] == 0
        stored_cues = client.history(0)
        if core == "counting":
            # The counting core emits cue "radar-<seq>" for every 7th seq: each exactly once
            # in the store although part of the stream was processed twice.
            ids = [b["id"] for b in stored_cues]
            assert sorted(ids) == sorted(f"radar-{q}" for q in range(7, N_SCANS + 1, 7))
            assert status.counters["cues_suppressed"] >= 0
        else:
            _check_tracks(client.tracks(), expected, ids_before)
            assert stored_cues, "the scenario should raise cues"
            opens = [b["id"] for b in stored_cues if b["state"] == "open"]
            assert len(opens) == len(set(opens)), "a cue opened twice"

        # Every cue the subscriber saw is in the store.
        received = []
        while (m := sub.next(timeout_s=0.5)) is not None:
            if isinstance(m.message, CueEvent):
                received.append(m.message.body)
        stored = {(b["seq"], b["id"], b["state"]) for b in stored_cues}
        assert {(b["seq"], b["id"], b["state"]) for b in received} <= stored
        sub.close()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        print(
            f"\n{core}: unacked at kill {unacked_at_kill}, resent {link.stats['resent']}, "
            f"cues {len(stored)} (received live {len(received)}), "
            f"suppressed replays {status.counters['cues_suppressed']}"
        )
    finally:
        if link is not None:
            link.close(drain_s=0.1)
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _check_tracks(final, expected, ids_before) -> None:
    """Exactly once: the same tracks as an uninterrupted run, ids included."""
    from fusion.geo import LocalFrame

    order = np.argsort(final.id)
    assert final.id[order].tolist() == sorted(expected.id.tolist())
    assert ids_before <= set(final.id.tolist())
    ref_llh = LocalFrame(46.5, 31.0, 0.0).to_geodetic(expected.x[:, :3])
    ref = ref_llh[np.argsort(expected.id)]
    np.testing.assert_allclose(final.pos[order], ref, rtol=0, atol=1e-9)
