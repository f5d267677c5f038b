"""End-to-end pipeline benchmark: adapters -> fusion service -> subscriber, on loopback, CURVE on.

The service runs as `fusion run` in its own process with the demo sites (tracker and every rule
on); several adapters (one process, one DEALER each with its own key and sensor id) send `pos`
scans of their own targets, stamped with the wall clock at sending; one subscriber takes the
cue and track streams. Two phases, each on a fresh service:

1. throughput: the adapters send as fast as the service acknowledges (a window of
   unacknowledged detections per adapter, as a real link holds); sustained rate = detections
   processed by the service (its own counter) per second over the steady part of the run;
2. latency: the adapters send at a fixed total rate (50,000 detections/s by default); the
   service's histogram of receipt -> cue publication (the newest batch behind the cue) gives
   p50/p99; the subscriber also measures measurement time -> cue received.

    python -m benchmarks.pipeline [--adapters 4] [--targets 500] [--duration 15]
                                  [--rate 50000] [--lag 0.0] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SITES = ROOT / "configs" / "sites" / "demo.geojson"
# Adapter regions (theatre ENU m): each touches demo sites (port, plant, depot, bridge, line).
CENTRES_M = ((0.0, 0.0), (-10e3, 30e3), (15e3, 20e3), (-20e3, -20e3), (20e3, -10e3), (-25e3, 10e3))
COVERAGE_M = 15_000.0
PROFILE = bool(os.environ.get("FUSION_BENCH_PROFILE"))  # cProfile the service (service.prof)


def _service(
    tmp: Path, n_adapters: int, lag_s: float, plaintext: bool = False
) -> tuple[subprocess.Popen, Path]:
    from fusion.demo import free_ports
    from fusion.service.testing import write_config

    adapters = {f"adapter{i}": [f"radar-{i}"] for i in range(n_adapters)}
    extra = f'[theatre]\norigin = [46.5, 31.0, 0.0]\nsites = "{SITES}"\n'
    _, path = write_config(
        tmp,
        adapters=adapters,
        plaintext=plaintext,
        service={
            "reorder_lag_s": lag_s,
            "snapshot_interval_s": 0.5,
            "status_interval_s": 1.0,
            "track_publish_hz": 2.0,
            "pub_hwm": 100_000,
        },
        extra=extra,
    )
    text = path.read_text()
    for port in free_ports(3):
        text = text.replace('"tcp://127.0.0.1:*"', f'"tcp://127.0.0.1:{port}"', 1)
    path.write_text(text)
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    prof = ["-m", "cProfile", "-o", str(tmp / "service.prof")] if PROFILE else []
    proc = subprocess.Popen(
        [
            sys.executable,
            *prof,
            "-m",
            "fusion.cli",
            "run",
            "--config",
            str(path),
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stderr=open(tmp / "service.log", "ab"),  # noqa: SIM115 - the child owns it
    )
    return proc, path


def _adapters(
    config_path: str,
    n: int,
    targets: int,
    duration_s: float,
    rate: float,
    window: int,
    out: mp.Queue,
) -> None:
    """The adapters' process: n DEALERs; rate=0 means as fast as acknowledgements allow."""
    import zmq

    from fusion import protocol
    from fusion.config import load_config
    from fusion.geo import LocalFrame
    from fusion.messages import Ack, Detections, Heartbeat
    from fusion.security import load_keypair, load_secret, secure_client

    config = load_config(config_path)
    kd = config.security.keys_dir
    plaintext = config.security.plaintext_loopback
    server = None if plaintext else load_keypair(kd / "fusion.key").public
    ctx = zmq.Context(io_threads=1)
    frame = LocalFrame(46.5, 31.0, 0.0)
    rng = np.random.default_rng(5)
    socks, p0, v, sites = [], [], [], []
    for i in range(n):
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.sndhwm = 0
        if not plaintext:
            secure_client(s, load_secret(f"adapter{i}", kd), server)
        s.connect(config.service.ingest)
        socks.append(s)
        # Each adapter covers its own region (15 km around its site, declared in heartbeats,
        # so its silence about the others' targets is no miss for them); the regions touch
        # the demo sites, so the rules have work.
        centre = CENTRES_M[i % len(CENTRES_M)]
        r = 12e3 * np.sqrt(rng.uniform(0, 1, targets))
        a = rng.uniform(0, 2 * np.pi, targets)
        p0.append(
            np.column_stack(
                [centre[0] + r * np.sin(a), centre[1] + r * np.cos(a), np.zeros(targets)]
            )
        )
        site = frame.to_geodetic(np.array([[centre[0], centre[1], 0.0]]))[0]
        sites.append((float(site[0]), float(site[1]), 0.0))
        heading = rng.uniform(0, 2 * np.pi, targets)
        speed = rng.uniform(3, 15, targets)
        v.append(
            np.column_stack([speed * np.sin(heading), speed * np.cos(heading), np.zeros(targets)])
        )
    R = np.tile(np.diag([100.0, 100.0, 400.0]), (targets, 1, 1))
    seq = [0] * n
    acked = [0] * n
    sent_det = [0] * n
    t_start = time.time()
    for i, s in enumerate(socks):
        s.send(
            protocol.encode(
                Heartbeat(
                    sensor=f"radar-{i}",
                    t_s=time.time(),
                    site=sites[i],
                    coverage={"max_range_m": COVERAGE_M},
                )
            )
        )
    time.sleep(1.0)  # CURVE handshakes, coverage declared before the first scan
    t_begin = time.time()
    period = targets * n / rate if rate > 0 else 0.0
    next_send = time.monotonic()
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    next_hb = 0.0
    while time.time() - t_begin < duration_s:
        if time.monotonic() >= next_hb:
            next_hb = time.monotonic() + 1.0
            for i, s in enumerate(socks):
                hb = Heartbeat(
                    sensor=f"radar-{i}",
                    t_s=time.time(),
                    site=sites[i],
                    coverage={"max_range_m": COVERAGE_M},
                )
                s.send(protocol.encode(hb))
        for i, s in enumerate(socks):
            if rate <= 0 and seq[i] - acked[i] >= window:
                continue
            now = time.time()
            enu = p0[i] + v[i] * (now - t_start) + rng.normal(0, 8.0, (targets, 3))
            seq[i] += 1
            det = Detections(
                sensor=f"radar-{i}",
                seq=seq[i],
                kind="pos",
                t=np.full(targets, now),
                z=frame.to_geodetic(enu),
                R=R,
                cls=np.full(targets, 2, np.uint8),
            )
            s.send(protocol.encode(det), copy=False)
            sent_det[i] += targets
        if rate > 0:
            next_send += period
            wait_ms = max(0, int((next_send - time.monotonic()) * 1000))
        else:
            wait_ms = 0 if any(seq[i] - acked[i] < window for i in range(n)) else 20
        for s, _ in poller.poll(wait_ms):
            while True:
                try:
                    msg = protocol.decode(s.recv(zmq.NOBLOCK))
                except zmq.Again:
                    break
                if isinstance(msg, Ack):
                    i = int(msg.sensor.split("-")[1])
                    acked[i] = max(acked[i], msg.seq)
        if rate > 0:
            while time.monotonic() < next_send:
                time.sleep(max(0.0, next_send - time.monotonic()))
    out.put(
        {
            "sent_detections": int(sum(sent_det)),
            "batches": int(sum(seq)),
            "seconds": time.time() - t_begin,
        }
    )
    for s in socks:
        s.close(0)
    ctx.term()


def _phase(args: argparse.Namespace, rate: float, label: str) -> dict:
    from fusion.client import FusionClient, QueryError
    from fusion.config import load_config
    from fusion.messages import CueEvent

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    proc, path = _service(tmp, args.adapters, args.lag, args.plaintext)
    config = load_config(path)
    client = FusionClient.from_config(config, key="subscriber", timeout_s=5.0)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client.status()
                break
            except QueryError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"service did not start; see {tmp}/service.log") from None
        sub = client.subscribe(["cue", "trk"], catch_up=False, rcvhwm=100_000)
        q: mp.Queue = mp.get_context("spawn").Queue()
        p = mp.get_context("spawn").Process(
            target=_adapters,
            args=(str(path), args.adapters, args.targets, args.duration, rate, args.window, q),
        )
        p.start()
        samples = []  # (wall, processed detections)
        lat_sub = []
        n_cues = n_trk = 0
        t_end = time.monotonic() + args.duration + 3.0
        next_sample = time.monotonic()
        while time.monotonic() < t_end:
            m = sub.next(timeout_s=0.05)
            if m is not None:
                if isinstance(m.message, CueEvent):
                    n_cues += 1
                    lat_sub.append(time.time() - float(m.message.body["t_s"]))
                else:
                    n_trk += 1
            if time.monotonic() >= next_sample:
                next_sample += 0.5
                c = client.status().counters
                samples.append((time.time(), sum(c["processed_detections"].values())))
        p.join(30)
        sent = q.get(timeout=10)
        c = client.status().counters
        sub.close()
    finally:
        proc.terminate()
        code = proc.wait(60)
        client.close()
    # Sustained rate: processed detections per second over the middle of the run.
    ts = np.array([s[0] for s in samples])
    ns = np.array([s[1] for s in samples], float)
    active = np.flatnonzero(np.diff(ns) > 0)
    if len(active) >= 4:
        a, b = active[1], active[-1]  # skip the ramp-up sample and the tail
        sustained = (ns[b] - ns[a]) / (ts[b] - ts[a])
    else:
        sustained = float("nan")
    lat = c["latency"]
    res = {
        "offered_rate_det_s": rate if rate > 0 else None,
        "sent_detections": sent["sent_detections"],
        "processed_detections": int(sum(c["processed_detections"].values())),
        "sustained_det_s": round(float(sustained), 0),
        "late_batches": c["late"],
        "rejects": c["rejects"],
        "tracks": c["tracks"],
        "cue_events": int(sum(c["cue_events"].values())),
        "cues_received": n_cues,
        "track_messages_received": n_trk,
        "publish_drops": c["publish_drops"],
        "receipt_to_cue_p50_ms": None if lat["cue_p50_s"] is None else lat["cue_p50_s"] * 1e3,
        "receipt_to_cue_p99_ms": None if lat["cue_p99_s"] is None else lat["cue_p99_s"] * 1e3,
        "batch_processing_p50_ms": None if lat["batch_p50_s"] is None else lat["batch_p50_s"] * 1e3,
        "batch_processing_p99_ms": None if lat["batch_p99_s"] is None else lat["batch_p99_s"] * 1e3,
        "measurement_to_subscriber_p50_ms": float(np.percentile(lat_sub, 50) * 1e3)
        if lat_sub
        else None,
        "measurement_to_subscriber_p99_ms": float(np.percentile(lat_sub, 99) * 1e3)
        if lat_sub
        else None,
        "service_exit_code": code,
    }
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapters", type=int, default=4)
    ap.add_argument("--targets", type=int, default=500, help="targets per adapter = batch size")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of sending per phase")
    ap.add_argument("--rate", type=float, default=50_000.0, help="latency phase det/s")
    ap.add_argument("--lag", type=float, default=0.0, help="reorder_lag_s of the service")
    ap.add_argument("--window", type=int, default=150, help="unacked batches per adapter")
    ap.add_argument("--plaintext", action="store_true", help="CURVE off (for comparison)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    out = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "curve": not args.plaintext,
    }
    if not args.skip_throughput:
        out["throughput"] = _phase(args, 0.0, "throughput")
        print("throughput", json.dumps(out["throughput"]), flush=True)
    if not args.skip_latency:
        out["latency"] = _phase(args, args.rate, "latency")
        print("latency", json.dumps(out["latency"]), flush=True)
    t = out.get("throughput", {})
    lat = out.get("latency", {"receipt_to_cue_p99_ms": None})
    out["targets"] = {
        "throughput_250k_det_s": bool(t and t["sustained_det_s"] >= 250_000),
        "p99_receipt_to_cue_under_50ms_at_rate": bool(
            lat["receipt_to_cue_p99_ms"] is not None
            and lat["receipt_to_cue_p99_ms"] < 50.0
            and lat["sustained_det_s"] >= 0.9 * args.rate
        ),
    }
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out["targets"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
