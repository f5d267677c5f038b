"""The link from a surveillance node to fusion, shared by every adapter.

This module owns the adapter side of the wire: a ZeroMQ DEALER (CURVE-encrypted unless plain
text on loopback is asked for) that sends `Detections` batches and `Heartbeat`s and receives
`Ack`s. It must not decode any sensor format; decoders hand it `Measurement`s (or whole
`Detections` for replay) through `submit`, which never waits on the network.

Threads: the sensor reader (the caller) puts measurements on a bounded queue; one link thread
batches them (`Batcher`, by size and by age), numbers each batch with a per-sensor `seq` that
only grows, keeps every batch in a bounded buffer until fusion acknowledges it, and sends.

Frame layout: one ZeroMQ frame per message, the bytes of `fusion.protocol.encode(msg)`;
fusion answers `Ack(sensor, seq)`, meaning every batch of that sensor up to `seq` is accepted.

Delivery is at least once. A batch stays in the unacknowledged buffer until acked. When sent
batches go unacknowledged for `ack_timeout_s`, the link closes its socket and opens a new one
after a backoff that doubles up to `backoff_max_s` (the zguide's lazy pirate), then resends
every buffered batch in order; fusion drops duplicates by (sensor, seq). Only when the buffer
holds `unacked_max` batches is the oldest dropped, and counted.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from prometheus_client import CollectorRegistry

from fusion import protocol
from fusion.config import is_loopback
from fusion.messages import Ack, Detections, Heartbeat
from sensors.batching import Batcher, Measurement
from sensors.metrics import LinkCollector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkConfig:
    """Settings of one link. Keys: `client_cert` is the secret certificate file written by
    `zmq.auth.create_certificates` (``<name>.key_secret``); `server_key` is the server's
    public certificate file (``.key``) or its Z85 text (40 characters)."""

    endpoint: str
    sensor: str
    client_cert: str | None = None
    server_key: str | None = None
    plaintext: bool = False  # allowed only on loopback
    batch_max: int = 256
    batch_wait_s: float = 0.05
    queue_max: int = 50_000
    # at most fusion's dedup window (4096 by default): older seqs would be taken as duplicates
    unacked_max: int = 2_000
    overflow: str = "drop_oldest"  # or "block": stop reading input while the buffer is full
    # fusion acknowledges after its reorder lag and next snapshot (about 1.3 s by default)
    ack_timeout_s: float = 5.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    heartbeat_s: float = 1.0
    poll_s: float = 0.005
    seq_start: int | None = None  # None: microseconds since the epoch at start (see _seq_start)
    site: tuple[float, float, float] | None = None
    coverage: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.overflow not in ("drop_oldest", "block"):
            raise ValueError(f"overflow must be drop_oldest or block, not {self.overflow!r}")
        if self.unacked_max < 1 or self.queue_max < 1 or self.batch_max < 1:
            raise ValueError("unacked_max, queue_max and batch_max must be at least 1")
        if not 0.0 <= self.batch_wait_s <= 1.0:
            raise ValueError("batch_wait_s must be within [0, 1] s")
        if self.ack_timeout_s <= 0 or self.backoff_initial_s <= 0:
            raise ValueError("ack_timeout_s and backoff_initial_s must be positive")


def load_curve_keys(client_cert: str, server_key: str) -> tuple[bytes, bytes, bytes]:
    """(client public, client secret, server public) as Z85 bytes, from certificate files as
    `zmq.auth.create_certificates` writes them; `server_key` may also be the Z85 text itself."""
    public, secret = zmq.auth.load_certificate(client_cert)
    if secret is None:
        raise ValueError(f"{client_cert}: no secret key (pass the .key_secret file)")
    if os.path.exists(server_key):
        server_public, _ = zmq.auth.load_certificate(server_key)
    else:
        server_public = server_key.encode("ascii")
    if len(server_public) != 40:
        raise ValueError("server key must be 40 Z85 characters or a certificate file")
    return public, secret, server_public


def _seq_start() -> int:
    # Time-based so that a restarted adapter continues above every seq it sent before
    # (fusion drops batches whose seq it has already seen), without a state file.
    return time.time_ns() // 1000


class Link:
    """A running link to fusion. Use as a context manager or call `start` and `close`."""

    def __init__(
        self,
        config: LinkConfig,
        *,
        context: zmq.Context | None = None,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
        source_stats: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self._protocol = protocol
        self.config = config
        self._clock = clock
        self._ctx = context or zmq.Context.instance()
        if config.client_cert and config.server_key:
            self._keys = load_curve_keys(config.client_cert, config.server_key)
        elif config.plaintext and is_loopback(config.endpoint):
            self._keys = None
            log.warning("link %s: plain text to %s (loopback only)", config.sensor, config.endpoint)
        elif config.plaintext:
            raise ValueError(f"plain text refused: {config.endpoint} is not loopback")
        else:
            raise ValueError("CURVE keys required: set client_cert and server_key")
        start = config.seq_start if config.seq_start is not None else _seq_start()
        self._last_seq: dict[str, int] = {config.sensor: start - 1}
        self._batcher = Batcher(
            config.sensor,
            batch_max=config.batch_max,
            max_wait_s=config.batch_wait_s,
            next_seq=self._take_seq,
        )
        self._in: queue.Queue = queue.Queue(maxsize=config.queue_max)
        # (sensor, seq) -> frame, in send order; the unacknowledged buffer.
        self._pending: OrderedDict[tuple[str, int], tuple[bytes, int]] = OrderedDict()
        self._unsent: deque[tuple[str, int]] = deque()
        self._sock: zmq.Socket | None = None
        self._reconnect_at: float | None = None
        self._inflight_since: float | None = None
        self._backoff_s = config.backoff_initial_s
        self._last_hb = -1e300
        self._losses_at_hb = 0
        self._stop = threading.Event()
        # flush() bookkeeping: items put on the queue (reader side) and taken off it, and
        # whether the batcher and the buffer were empty, as the link thread last saw them
        self._n_submitted = 0
        self._n_taken = 0
        self._quiet = True
        self._thread: threading.Thread | None = None
        self._source_stats = source_stats
        self.status = "ok"
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "measurements_in",
                "batches_out",
                "detections_out",
                "frames_sent",
                "resent",
                "acked_batches",
                "dropped_batches",
                "dropped_detections",
                "queue_full",
                "reconnects",
                "heartbeats",
                "bad_replies",
                "encode_errors",
            ),
            0,
        )
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(LinkCollector(self))

    # -- the reader's side ---------------------------------------------------------------

    def submit(self, item: Measurement | Detections, *, block: bool | None = None) -> bool:
        """Queues one measurement (or a whole batch, for replay) for sending.

        Never waits on the network. With `overflow="block"` (files, replay) it waits for the
        link thread to take items off the queue; otherwise a full queue drops the item, counts
        it and returns False."""
        if block is None:
            block = self.config.overflow == "block"
        if block:
            while not self._stop.is_set():
                try:
                    self._in.put(item, timeout=0.1)
                    self._n_submitted += 1
                    return True
                except queue.Full:
                    continue
            return False
        try:
            self._in.put_nowait(item)
            self._n_submitted += 1
            return True
        except queue.Full:
            self.stats["queue_full"] += 1
            return False

    def set_status(self, status: str) -> None:
        """Heartbeat status: ok, degraded or down."""
        self.status = status

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Link:
        if self._thread is None:
            self._open()
            self._thread = threading.Thread(
                target=self._run, name=f"link-{self.config.sensor}", daemon=True
            )
            self._thread.start()
        return self

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Waits until everything submitted so far is batched, sent and acknowledged."""
        target = self._n_submitted
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._n_taken >= target and self._quiet:
                return True
            time.sleep(0.005)
        return False

    def close(self, drain_s: float = 2.0) -> None:
        """Stops the link: flushes open batches and waits up to `drain_s` for their acks."""
        if self._thread is not None:
            self.flush(drain_s)
            self._stop.set()
            self._thread.join(timeout=drain_s + 1.0)
            self._thread = None
        self._close_socket()

    def __enter__(self) -> Link:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Batches sent or waiting to be sent, not yet acknowledged."""
        return len(self._pending)

    # -- the link thread -------------------------------------------------------------------

    def _take_seq(self, sensor: str) -> int:
        seq = self._last_seq.get(sensor)
        if seq is None:
            seq = self._last_seq[self.config.sensor] if sensor != self.config.sensor else 0
        seq += 1
        self._last_seq[sensor] = seq
        return seq

    def _open(self) -> None:
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        # Queue nothing for a peer that is not there: unsent batches stay in our own
        # bounded buffer instead of ZeroMQ's pipe, where a reconnect would lose them.
        s.setsockopt(zmq.IMMEDIATE, 1)
        s.setsockopt(zmq.RECONNECT_IVL, int(self.config.backoff_initial_s * 1000))
        s.setsockopt(zmq.RECONNECT_IVL_MAX, int(self.config.backoff_max_s * 1000))
        s.setsockopt(zmq.SNDHWM, max(100, self.config.unacked_max))
        if self._keys is not None:
            public, secret, server_public = self._keys
            s.curve_publickey = public
            s.curve_secretkey = secret
            s.curve_serverkey = server_public
        s.connect(self.config.endpoint)
        self._sock = s
        self.stats["resent"] += len(self._pending)  # on first open the buffer is empty
        self._unsent = deque(self._pending.keys())
        self._inflight_since = None

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def _run(self) -> None:
        try:
            while True:
                now = self._clock()
                if self._stop.is_set():
                    for det in self._batcher.flush():
                        self._enqueue(det, now)
                    self._send()
                    break
                self._step(now)
        except Exception:  # the link must not die silently
            log.exception("link %s: thread failed", self.config.sensor)
            raise

    def _step(self, now: float) -> None:
        if self._sock is None and self._reconnect_at is not None and now >= self._reconnect_at:
            self._reconnect_at = None
            self._open()
            self.stats["reconnects"] += 1
        self._drain_input(now)
        for det in self._batcher.due(now):
            self._enqueue(det, now)
        if self._sock is not None:
            self._send()
            self._heartbeat(now)
            if self._sock.poll(int(self.config.poll_s * 1000), zmq.POLLIN):
                self._read_replies()
            self._check_timeout(self._clock())
        else:
            time.sleep(self.config.poll_s)
        self._quiet = len(self._batcher) == 0 and not self._pending

    def _drain_input(self, now: float) -> None:
        block = self.config.overflow == "block"
        for _ in range(self.config.queue_max):
            if block and len(self._pending) >= self.config.unacked_max:
                return
            try:
                item = self._in.get_nowait()
            except queue.Empty:
                return
            self._quiet = False
            if isinstance(item, Detections):
                # A whole batch (replay): flush what waits so order is kept, then renumber.
                for det in self._batcher.flush():
                    self._enqueue(det, now)
                item.seq = self._take_seq(item.sensor)
                self._enqueue(item, now)
            else:
                self.stats["measurements_in"] += 1
                for det in self._batcher.add(item, now):
                    self._enqueue(det, now)
            self._n_taken += 1  # after the item is in the batcher or the buffer (see flush)

    def _enqueue(self, det: Detections, now: float) -> None:
        try:
            frame = self._protocol.encode(det)
        except Exception as e:  # a decoder produced something the codec refuses
            self.stats["encode_errors"] += 1
            log.warning("link %s: batch not encodable: %s", self.config.sensor, e)
            return
        while len(self._pending) >= self.config.unacked_max:
            _, (_, n_old) = self._pending.popitem(last=False)
            self.stats["dropped_batches"] += 1
            self.stats["dropped_detections"] += n_old
        key = (det.sensor, det.seq)
        self._pending[key] = (frame, len(det))
        self._unsent.append(key)
        self.stats["batches_out"] += 1
        self.stats["detections_out"] += len(det)

    def _send(self) -> None:
        s = self._sock
        while self._unsent and s is not None:
            key = self._unsent[0]
            entry = self._pending.get(key)
            if entry is None:  # acked or dropped meanwhile
                self._unsent.popleft()
                continue
            frame = entry[0]
            try:
                s.send(frame, zmq.NOBLOCK, copy=len(frame) < 65536)
            except zmq.Again:
                return
            self._unsent.popleft()
            self.stats["frames_sent"] += 1
            if self._inflight_since is None:
                self._inflight_since = self._clock()

    def _heartbeat(self, now: float) -> None:
        if now - self._last_hb < self.config.heartbeat_s:
            return
        self._last_hb = now
        # Losing data since the last heartbeat (queue full, buffer overflow) degrades an "ok"
        # sensor: fusion should know its picture from this sensor has holes.
        losses = self.stats["queue_full"] + self.stats["dropped_batches"]
        status = self.status
        if status == "ok" and losses > self._losses_at_hb:
            status = "degraded"
        hb = Heartbeat(
            sensor=self.config.sensor,
            t_s=float(now),
            status=status,
            site=self.config.site,
            coverage=dict(self.config.coverage),
        )
        try:
            self._sock.send(self._protocol.encode(hb), zmq.NOBLOCK)
            self.stats["heartbeats"] += 1
            self._losses_at_hb = losses  # reported: the next heartbeat starts afresh
        except zmq.Again:
            # not connected (yet): try again shortly rather than a whole period later
            self._last_hb = now - self.config.heartbeat_s + min(0.1, self.config.heartbeat_s)

    def _read_replies(self) -> None:
        while True:
            try:
                frame = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = self._protocol.decode(frame)
            except Exception:
                self.stats["bad_replies"] += 1
                continue
            if isinstance(msg, Ack):
                self._on_ack(msg)

    def _on_ack(self, ack: Ack) -> None:
        acked = [k for k in self._pending if k[0] == ack.sensor and k[1] <= ack.seq]
        for k in acked:
            del self._pending[k]
        if acked:
            self.stats["acked_batches"] += len(acked)
            self._backoff_s = self.config.backoff_initial_s
            self._inflight_since = self._clock() if self._has_inflight() else None

    def _has_inflight(self) -> bool:
        unsent = set(self._unsent)
        return any(k not in unsent for k in self._pending)

    def _check_timeout(self, now: float) -> None:
        if self._inflight_since is None:
            return
        if not self._pending:
            self._inflight_since = None
            return
        if now - self._inflight_since < self.config.ack_timeout_s:
            return
        # Lazy pirate: no answer in time; drop the socket and come back after a backoff.
        log.info(
            "link %s: no ack for %.1f s, reconnecting in %.2f s",
            self.config.sensor,
            now - self._inflight_since,
            self._backoff_s,
        )
        self._close_socket()
        self._reconnect_at = now + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2.0, self.config.backoff_max_s)
        self._inflight_since = None


def read_key_file(path: str | Path) -> bytes:
    """The Z85 public key of a certificate file."""
    public, _ = zmq.auth.load_certificate(str(path))
    return public
