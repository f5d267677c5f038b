"""CoT bridge: latency from the service's publish to a TAK listener, and event throughput.

The path measured is the production one, on loopback with CURVE: an adapter's batch ->
`FusionService` (ingest, reorder, a counting core that makes one cue per batch, cue store,
PUB) -> `fusion.client` subscription -> `CotBridge` -> TCP and UDP senders -> a TAK-like
listener that parses each event as XML. Latency is taken from the publish time the service
stamps in each message's header to the listener holding the whole event (and, separately,
from the adapter's send), one cue at a time with a pause between them, then a burst.

    python -m benchmarks.cot [--cues 300] [--burst 3000] [--tracks 1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from fusion.cot import circular_error_m
from fusion.cot_bridge import CotBridge
from fusion.cot_transport import MultiSender, open_sender
from fusion.messages import TrackUpdate
from fusion.service.server import FusionService, run_in_thread
from fusion.service.testing import (
    CountingCore,
    RawAdapter,
    make_batch,
    subscriber_client,
    write_config,
)


class Listener:
    """TCP and UDP TAK inputs recording (arrival time, uid) of each parsed event."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.arrivals: dict[str, dict[str, float]] = {"tcp": {}, "udp": {}}
        self.bad = 0
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._tcp, daemon=True),
            threading.Thread(target=self._udp, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _record(self, kind: str, xml: bytes) -> None:
        t = time.time()  # the publisher stamps wall-clock time; same host, same clock
        try:
            uid = ET.fromstring(xml).get("uid")
        except ET.ParseError:
            self.bad += 1
            return
        self.arrivals[kind].setdefault(uid, t)

    def _tcp(self) -> None:
        self.tcp.settimeout(0.2)
        while True:
            try:
                conn, _ = self.tcp.accept()
                break
            except TimeoutError:
                if self.stop.is_set():
                    return
        conn.settimeout(0.2)
        buf = b""
        while not self.stop.is_set():
            try:
                chunk = conn.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                return
            buf += chunk
            while b"</event>" in buf:
                one, buf = buf.split(b"</event>", 1)
                self._record("tcp", one + b"</event>")

    def _udp(self) -> None:
        self.udp.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data, _ = self.udp.recvfrom(1 << 16)
            except TimeoutError:
                continue
            self._record("udp", data)


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def run(n_cues: int, burst: int, n_tracks: int) -> dict:
    tmp = tempfile.TemporaryDirectory()
    config, _ = write_config(Path(tmp.name), adapters={"adapter": ["s1"]})
    svc = FusionService(config, core=CountingCore(cue_every=1))
    svc.start()
    svc_thread = run_in_thread(svc)
    adapter = RawAdapter.for_config(config, svc.endpoints["ingest"], "adapter")
    client = subscriber_client(config, svc)
    sub = client.subscribe(["cue"])
    lst = Listener()
    sender = MultiSender(
        [
            open_sender(f"tcp://127.0.0.1:{lst.tcp.getsockname()[1]}"),
            open_sender(f"udp://127.0.0.1:{lst.udp.getsockname()[1]}"),
        ]
    )
    bridge = CotBridge(sender.send)
    stop = threading.Event()
    t_pub: dict[str, float] = {}

    def pump() -> None:
        while not stop.is_set():
            r = sub.next(timeout_s=0.1)
            if r is not None:
                if hasattr(r.message, "body"):
                    t_pub[f"fusion.cue.{r.message.body['id']}"] = r.t_pub_s
                bridge.on_message(r.topic, r.message)

    th = threading.Thread(target=pump, daemon=True)
    th.start()
    # warm-up: one cue through everything (TCP connect, first compiles and imports)
    adapter.send_msg(make_batch("s1", 1, n=1))
    deadline = time.monotonic() + 10
    while not lst.arrivals["tcp"] and time.monotonic() < deadline:
        time.sleep(0.01)
    # unloaded latency: one cue at a time
    t_send: dict[str, float] = {}
    for seq in range(2, n_cues + 2):
        t_send[f"fusion.cue.s1-{seq}"] = time.time()
        adapter.send_msg(make_batch("s1", seq, n=1))
        time.sleep(0.02)
    end = time.monotonic() + 5
    while time.monotonic() < end and not all(u in lst.arrivals["tcp"] for u in t_send):
        time.sleep(0.01)
    time.sleep(0.2)
    lat = {k: [] for k in ("tcp", "udp", "send_tcp")}
    for uid, t0 in t_send.items():
        for kind in ("tcp", "udp"):
            t1 = lst.arrivals[kind].get(uid)
            if t1 is not None and uid in t_pub:
                lat[kind].append((t1 - t_pub[uid]) * 1000.0)
        t1 = lst.arrivals["tcp"].get(uid)
        if t1 is not None:
            lat["send_tcp"].append((t1 - t0) * 1000.0)
    # throughput: a burst of batches, one cue each, as fast as the adapter sends them
    burst_ids = []
    t_start = time.time()
    for seq in range(n_cues + 2, n_cues + 2 + burst):
        burst_ids.append(f"fusion.cue.s1-{seq}")
        adapter.send_msg(make_batch("s1", seq, n=1))
    end = time.monotonic() + 60
    while time.monotonic() < end and not all(u in lst.arrivals["tcp"] for u in burst_ids):
        time.sleep(0.01)
    got = [lst.arrivals["tcp"][u] for u in burst_ids if u in lst.arrivals["tcp"]]
    burst_s = (max(got) - t_start) if got else float("nan")
    stop.set()
    lst.stop.set()
    th.join(timeout=2)
    sub.close()
    client.close()
    sender.close()
    adapter.close()
    svc.request_stop()
    svc_thread.join(15)
    tmp.cleanup()

    # track events: XML building and ce computation, no sockets
    rng = np.random.default_rng(3)
    A = rng.normal(size=(n_tracks, 6, 6)) * 10
    upd = TrackUpdate(
        t_s=time.time(),
        id=np.arange(n_tracks, dtype=np.int64),
        pos=np.column_stack(
            [
                46.5 + rng.uniform(0, 1, n_tracks),
                31 + rng.uniform(0, 1, n_tracks),
                np.zeros(n_tracks),
            ]
        ),
        vel=rng.normal(size=(n_tracks, 3)),
        P=A @ np.transpose(A, (0, 2, 1)),
        status=np.full(n_tracks, 2, np.uint8),
        ident=np.zeros(n_tracks, "S24"),
        cls=np.full(n_tracks, 3, np.uint8),
        n_sensors=np.ones(n_tracks, np.uint8),
    )
    out: list[bytes] = []
    b2 = CotBridge(out.append)
    t0 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        b2.on_tracks(upd)
    track_rate = reps * n_tracks / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    circular_error_m(upd.P[:, :2, :2])
    ce_rate = n_tracks / (time.perf_counter() - t0)

    def summary(xs: list[float]) -> dict:
        return {
            "n": len(xs),
            "p50_ms": _pct(xs, 50),
            "p95_ms": _pct(xs, 95),
            "p99_ms": _pct(xs, 99),
            "max_ms": max(xs) if xs else float("nan"),
            "mean_ms": statistics.fmean(xs) if xs else float("nan"),
            "within_100ms": sum(x <= 100.0 for x in xs),
        }

    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "cues": n_cues,
        "reorder_lag_s": config.service.reorder_lag_s,
        "latency_tcp": summary(lat["tcp"]),
        "latency_udp": summary(lat["udp"]),
        "latency_send_to_tcp": summary(lat["send_tcp"]),
        "lost_tcp": n_cues - len(lat["tcp"]),
        "lost_udp": n_cues - len(lat["udp"]),
        "burst": {
            "cues": burst,
            "received": len(got),
            "seconds": burst_s,
            "cues_per_s": len(got) / burst_s if got else 0.0,
        },
        "track_events_per_s": track_rate,
        "ce_per_s": ce_rate,
        "bad_xml": lst.bad,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cues", type=int, default=300, help="cues for the latency run")
    ap.add_argument("--burst", type=int, default=2000, help="cues in the throughput burst")
    ap.add_argument("--tracks", type=int, default=1000, help="tracks per update (XML rate)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    res = run(args.cues, args.burst, args.tracks)
    for kind in ("tcp", "udp", "send_to_tcp"):
        s = res[f"latency_{kind}"]
        print(
            f"{'adapter send' if kind == 'send_to_tcp' else 'publish'} -> TAK {kind}: "
            f"n={s['n']} p50 {s['p50_ms']:.2f} ms, p95 {s['p95_ms']:.2f}"
            f" ms, p99 {s['p99_ms']:.2f} ms, max {s['max_ms']:.2f} ms;"
            f" within 100 ms {s['within_100ms']}/{res['cues']}"
        )
    b = res["burst"]
    print(
        f"burst: {b['received']}/{b['cues']} cues in {b['seconds']:.3f} s "
        f"({b['cues_per_s']:.0f}/s over TCP)"
    )
    print(f"track events: {res['track_events_per_s']:.0f}/s; ce: {res['ce_per_s']:.0f}/s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
