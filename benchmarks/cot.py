"""CoT bridge: latency from the service's publish to a TAK listener, and event throughput.

The path measured is the production one: `fusion.service.publisher.Publisher.publish_cue` on a
ZeroMQ PUB socket (loopback TCP) -> `fusion.client` Subscription -> `CotBridge` -> TCP and UDP
senders -> a TAK-like listener (loopback) that parses each event as XML. Latency is taken
from just before `publish_cue` to the listener having the whole event, one cue at a time with
a pause between them (an unloaded system), then a burst for throughput.

    python -m benchmarks.cot [--cues 300] [--burst 3000] [--tracks 1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import threading
import time
import xml.etree.ElementTree as ET

import numpy as np
import zmq

from fusion.client import FusionClient
from fusion.cot import circular_error_m
from fusion.cot_bridge import CotBridge
from fusion.cot_transport import MultiSender, open_sender
from fusion.messages import TrackUpdate
from fusion.service.publisher import Publisher


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
        t = time.perf_counter()
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


def _cue(k: int, seq: int) -> dict:
    # the client drops a cue whose store seq it has already seen: seq must increase
    return {
        "id": f"bench:{k}",
        "seq": seq,
        "state": "open",
        "rule": "incursion",
        "site": "port-alpha",
        "t_s": time.time(),
        "track": k,
        "pos": [46.5 + 1e-4 * k, 31.0, 0.0],
        "sigma_m": 30.0,
        "severity": "high",
        "confidence": 0.9,
        "text": f"Track {k} entered Port Alpha.",
    }


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def run(n_cues: int, burst: int, n_tracks: int) -> dict:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    publisher = Publisher(pub, time.time)
    client = FusionClient("tcp://127.0.0.1:1", f"tcp://127.0.0.1:{port}", context=ctx)
    sub = client.subscribe(["cue"], catch_up=False)
    lst = Listener()
    sender = MultiSender(
        [
            open_sender(f"tcp://127.0.0.1:{lst.tcp.getsockname()[1]}"),
            open_sender(f"udp://127.0.0.1:{lst.udp.getsockname()[1]}"),
        ]
    )
    bridge = CotBridge(sender.send)
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            r = sub.next(timeout_s=0.1)
            if r is not None:
                bridge.on_message(r.topic, r.message)

    th = threading.Thread(target=pump, daemon=True)
    th.start()
    # the slow joiner: publish until the subscription carries a message end to end
    seq = 0
    deadline = time.monotonic() + 10
    while not lst.arrivals["tcp"] and time.monotonic() < deadline:
        seq += 1
        publisher.publish_cue({**_cue(-seq, seq), "id": f"warm:{seq}"})
        time.sleep(0.05)
    # unloaded latency: one cue at a time
    sent: dict[str, float] = {}
    for k in range(n_cues):
        seq += 1
        body = _cue(k, seq)
        sent[f"fusion.cue.{body['id']}"] = time.perf_counter()
        publisher.publish_cue(body)
        time.sleep(0.01)
    time.sleep(0.3)
    lat = {kind: [] for kind in ("tcp", "udp")}
    for kind in lat:
        for uid, t0 in sent.items():
            t1 = lst.arrivals[kind].get(uid)
            if t1 is not None:
                lat[kind].append((t1 - t0) * 1000.0)
    # throughput: a burst of cues as fast as the publisher goes
    burst_ids = []
    t_start = time.perf_counter()
    for k in range(n_cues, n_cues + burst):
        seq += 1
        body = _cue(k, seq)
        burst_ids.append(f"fusion.cue.{body['id']}")
        publisher.publish_cue(body)
    end = time.monotonic() + 30
    while time.monotonic() < end and not all(u in lst.arrivals["tcp"] for u in burst_ids):
        time.sleep(0.01)
    got = [lst.arrivals["tcp"][u] for u in burst_ids if u in lst.arrivals["tcp"]]
    burst_s = (max(got) - t_start) if got else float("nan")
    stop.set()
    lst.stop.set()
    th.join(timeout=2)
    sub.close()
    sender.close()
    pub.close()
    ctx.term()

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
        "latency_tcp": summary(lat["tcp"]),
        "latency_udp": summary(lat["udp"]),
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
    ap.add_argument("--burst", type=int, default=3000, help="cues in the throughput burst")
    ap.add_argument("--tracks", type=int, default=1000, help="tracks per update (XML rate)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    res = run(args.cues, args.burst, args.tracks)
    for kind in ("tcp", "udp"):
        s = res[f"latency_{kind}"]
        print(
            f"publish -> TAK {kind}: n={s['n']} p50 {s['p50_ms']:.2f} ms, p95 {s['p95_ms']:.2f}"
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
