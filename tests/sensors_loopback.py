"""A loopback stand-in for the fusion service's ingest socket, for the adapter tests.

A ROUTER on 127.0.0.1 that decodes each frame with fusion.protocol, keeps what it received,
and answers each detection batch with `Ack(sensor, highest seq seen)` (one connection keeps
order, so this equals the highest contiguous seq here), dropping duplicates by (sensor, seq).
It can be stopped and started again on the same port to play a fusion node that goes away and
comes back.
"""

from __future__ import annotations

import threading
import time

import zmq

from fusion import protocol
from fusion.messages import Ack, Detections, Heartbeat


class LoopbackFusion:
    def __init__(self, port: int | None = None, *, server_secret: bytes | None = None) -> None:
        self._ctx = zmq.Context.instance()
        self._secret = server_secret
        self.port = port or self._free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.batches: list[Detections] = []
        self.heartbeats: list[Heartbeat] = []
        self.bad = 0
        self._seen: set[tuple[str, int]] = set()
        self._acked: dict[str, int] = {}
        self.duplicates = 0
        self.mute = False  # True: receive but never answer (a hung fusion)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _free_port(self) -> int:
        s = self._ctx.socket(zmq.ROUTER)
        port = s.bind_to_random_port("tcp://127.0.0.1")
        s.close(linger=0)
        return port

    def start(self) -> LoopbackFusion:
        self._stop.clear()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(5.0), "loopback fusion did not bind"
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _run(self, ready: threading.Event) -> None:
        s = self._ctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.LINGER, 0)
        if self._secret is not None:
            s.curve_server = True
            s.curve_secretkey = self._secret
        for _ in range(100):  # the port may linger a moment after a stop
            try:
                s.bind(self.endpoint)
                break
            except zmq.ZMQError:
                time.sleep(0.02)
        ready.set()
        try:
            while not self._stop.is_set():
                if not s.poll(10):
                    continue
                ident, frame = s.recv_multipart()
                try:
                    msg = protocol.decode(frame)
                except protocol.ProtocolError:
                    self.bad += 1
                    continue
                if isinstance(msg, Heartbeat):
                    with self._lock:
                        self.heartbeats.append(msg)
                    continue
                if not isinstance(msg, Detections):
                    continue
                with self._lock:
                    key = (msg.sensor, msg.seq)
                    if key in self._seen:
                        self.duplicates += 1
                    else:
                        self._seen.add(key)
                        self.batches.append(msg)
                    ack_seq = max(self._acked.get(msg.sensor, msg.seq), msg.seq)
                    self._acked[msg.sensor] = ack_seq
                if self.mute:
                    continue
                s.send_multipart([ident, protocol.encode(Ack(msg.sensor, ack_seq))])
        finally:
            s.close(linger=0)

    def received(self) -> list[Detections]:
        with self._lock:
            return list(self.batches)

    def wait_for(self, n_detections: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(len(b) for b in self.received()) >= n_detections:
                return True
            time.sleep(0.01)
        return False
