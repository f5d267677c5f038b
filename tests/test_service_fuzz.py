"""100,000 random and mutated frames at the ingest socket (CURVE, admitted key), interleaved
with valid traffic: the service keeps running, counts every bad frame by reason, and processes
the valid batches exactly once and in order."""

from __future__ import annotations

import math
import time

import msgpack
import numpy as np
import pytest
import zmq

from fusion import protocol
from fusion.messages import Heartbeat
from fusion.service.server import FusionService, run_in_thread
from fusion.service.testing import CountingCore, RawAdapter, make_batch, write_config

N_FUZZ = 100_000
VALID_EVERY = 100


def _mutants(rng: np.random.Generator, now: float):
    """A generator of hostile frames: random bytes, damaged valid frames, valid msgpack with
    bad content. Sensor ids stay away from the valid stream's id ("v1")."""
    good = [
        protocol.encode(make_batch("fz", i, n=int(rng.integers(1, 20)), t_s=now)) for i in range(50)
    ]
    hb = protocol.encode(Heartbeat(sensor="fz", t_s=now))
    base = msgpack.unpackb(good[0], raw=False, ext_hook=lambda c, d: msgpack.ExtType(c, d))

    def field_variant():
        m = dict(base)
        choice = int(rng.integers(0, 12))
        if choice == 0:
            m["v"] = int(rng.integers(2, 100))
        elif choice == 1:
            m["type"] = "nope"
        elif choice == 2:
            m.pop(["sensor", "seq", "t", "z", "R", "kind"][int(rng.integers(0, 6))])
        elif choice == 3:
            m["seq"] = "seven"
        elif choice == 4:
            m["kind"] = "sonar"
        elif choice == 5:
            m["extra"] = 1
        elif choice == 6:
            m["sensor"] = "x" * 1000
        elif choice == 7:
            m["site"] = [100.0, 0.0, 0.0]
        elif choice == 8:
            m["meta"] = {"a": {"b": {"c": {"d": {"e": 1}}}}}
        elif choice == 9:
            m["site"] = [math.nan, 0.0, 0.0]
        elif choice == 10:
            m["sensor"] = "bad sensor!"
        else:
            m = [1, 2, 3]
        return msgpack.packb(m, use_bin_type=True)

    def array_variant():
        b = make_batch("fz", int(rng.integers(0, 1000)), n=3, t_s=now)
        choice = int(rng.integers(0, 6))
        if choice == 0:
            b.z = b.z.copy()
            b.z[1, 0] = 91.0  # latitude out of range
        elif choice == 1:
            b.z = b.z.copy()
            b.z[0, 1] = np.inf
        elif choice == 2:
            b.R = b.R.copy()
            b.R[0, 0, 1] = 1e6  # not symmetric
        elif choice == 3:
            b.t = b.t + 1e6  # far in the future
        elif choice == 4:
            b.R = -b.R  # not positive definite
        else:
            b.z = b.z[:, :2]  # wrong width
        try:
            return protocol.encode(b)
        except Exception:
            return b"\x00"

    while True:
        kind = int(rng.integers(0, 7))
        if kind == 0:
            yield rng.bytes(int(rng.integers(0, 300)))
        elif kind in (1, 2):
            f = bytearray(good[int(rng.integers(0, len(good)))])
            for _ in range(int(rng.integers(1, 4))):
                f[int(rng.integers(0, len(f)))] = int(rng.integers(0, 256))
            yield bytes(f)
        elif kind == 3:
            f = good[int(rng.integers(0, len(good)))]
            yield f[: int(rng.integers(0, len(f)))]
        elif kind == 4:
            yield field_variant()
        elif kind == 5:
            yield array_variant()
        else:
            yield hb if rng.random() < 0.1 else bytes(rng.integers(0x80, 0xFF, 40, np.uint8))


@pytest.mark.timeout(120)
def test_fuzzed_ingest_keeps_running_and_valid_traffic_is_exact(tmp_path):
    config, _ = write_config(
        tmp_path,
        adapters={"fuzzer": ["v1", "fz"]},
        service={"reorder_lag_s": 0.05, "snapshot_interval_s": 0.5},
    )
    svc = FusionService(config, core=CountingCore())
    svc.start()
    thread = run_in_thread(svc)
    adapter = RawAdapter.for_config(config, svc.endpoints["ingest"], "fuzzer")
    rng = np.random.default_rng(20240611)
    now = time.time()
    frames = _mutants(rng, now)
    n_valid = 0
    n_multi = 0
    t0 = time.monotonic()
    try:
        for i in range(N_FUZZ):
            if i % VALID_EVERY == 0:
                n_valid += 1
                adapter.send_msg(make_batch("v1", n_valid, n=10, t_s=now + n_valid * 1e-3))
            if i % 5000 == 1:
                adapter.sock.send_multipart([b"two", b"frames"])
                n_multi += 1
                continue
            adapter.send(next(frames))
        assert adapter.wait_ack("v1", n_valid, timeout_s=60), adapter.acks
        elapsed = time.monotonic() - t0
        ing = svc.ingest
        received = sum(ing.rejects.values()) + ing.batches + ing.duplicates + ing.heartbeats

        assert thread.is_alive()
        # Every frame is accounted for: rejected by reason, accepted, duplicate or heartbeat.
        assert received == N_FUZZ + n_valid, (received, ing.rejects)
        assert ing.rejects.get("frames") == n_multi
        for reason in (
            "decode",
            "version",
            "type",
            "missing_field",
            "lat_lon_range",
            "non_finite",
            "covariance",
            "future_time",
            "sensor_binding",
            "field_type",
            "shape",
        ):
            assert ing.rejects.get(reason, 0) > 0, (reason, ing.rejects)
        assert set(ing.rejects) <= set(protocol.REASONS) | {
            "frames",
            "sensor_binding",
            "unexpected_type",
            "too_many_detections",
            "too_many_sensors",
        }
        # The valid stream: every batch once, in order, all its detections.
        v1 = [seq for s, seq in svc.core.seen if s == "v1"]
        assert v1 == list(range(1, n_valid + 1))
        assert svc.core.counts["v1"] == 10 * n_valid
        print(f"\n{N_FUZZ} fuzz frames + {n_valid} valid in {elapsed:.1f} s; rejects {ing.rejects}")
        assert elapsed < 90
    finally:
        adapter.close()
        svc.request_stop()
        thread.join(15)
    assert not thread.is_alive()


def test_unauthenticated_frames_never_reach_decode():
    """Without a User-Id (no ZAP) a frame is refused before the decoder sees it."""
    from fusion.security import Allowlist
    from fusion.service.dedup import SeqWindows
    from fusion.service.ingest import Ingest

    ing = Ingest(Allowlist(), SeqWindows())
    frame = zmq.Frame(protocol.encode(make_batch("s", 1)))
    assert ing.handle([zmq.Frame(b"id"), frame], time.time()) is None
    assert ing.rejects == {"unauthenticated": 1}
