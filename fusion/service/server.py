"""The fusion service: one poller loop over the ingest, query and publish sockets.

This module owns the service's lifecycle and its delivery guarantees; tracking and rules sit
behind `FusionCore.process` (fusion.service.core), the one integration point.

Loop: poll (timeout bounded by the next due batch or periodic task, and by a stop flag) ->
read ingest messages (authenticate, validate, de-duplicate: fusion.service.ingest) -> hold
them in the reorder buffer -> release due batches in measurement-time order -> core.process
(tracker, then rules) -> append cues to the store (durable) -> publish them -> periodically
publish tracks and status, write a snapshot and acknowledge what the snapshot covers.

Exactly once across a crash. An acknowledgement means "this batch's effect is on disk":
the service acknowledges sensor S up to seq A only after a snapshot holding the tracker and
rules state *and* the set of seqs whose batches went into that state (per-sensor SeqWindow of
processed batches) has been committed to the store. A is the highest seq of S processed such
that no lower accepted seq of S is still waiting in the reorder buffer. After a SIGKILL the
service restores that snapshot, so its state and its record of processed seqs agree; the
adapter still holds every batch above A and resends it; batches the snapshot already contains
are dropped as duplicates, and the others are processed once, from the restored state. Work
done between the snapshot and the kill is redone from the same batches. Cues are appended to
the store before they are published; cue events the replay produces again (same id, state and
time as one stored after the snapshot) are neither stored nor published twice.

Shutdown (SIGTERM, SIGINT or `request_stop`): stop reading, release and process everything
held, write the final snapshot, acknowledge, flush the feed, close the store, exit 0.
"""

from __future__ import annotations

import logging
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from fusion import protocol
from fusion.config import FusionConfig
from fusion.feed import FeedWriter
from fusion.messages import Ack, Detections, Heartbeat, Status
from fusion.metrics import (
    LATENCY_BUCKETS_S,
    PROCESSING_BUCKETS_S,
    Histogram,
    register_service,
    serve_metrics,
)
from fusion.security import (
    DOMAIN_INGEST,
    DOMAIN_PUBLISH,
    DOMAIN_QUERY,
    Allowlist,
    ZapHandler,
    load_secret,
    secure_server,
    warn_plaintext,
)
from fusion.service.dedup import SeqWindows
from fusion.service.ingest import Accepted, Ingest
from fusion.service.liveness import Liveness
from fusion.service.publisher import Publisher
from fusion.service.query import QueryHandler
from fusion.service.reorder import ReorderBuffer
from fusion.service.snapshots import SnapshotFile, SnapshotWriter
from fusion.store import CueStore

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
INGEST_RCVHWM = 2_000  # messages queued in ZeroMQ per adapter connection
MAX_HELD_BATCHES = 4096  # reorder buffer + released, beyond it ingest is not read
_HANDSHAKE_OUTCOMES = {
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "ok",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "failed_protocol",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "failed_auth",
}
RECV_BUDGET = 512  # ingest messages read per loop turn before other work gets a chance
PROCESS_CHUNK = 64  # batches per core.process call (rules run at least this often)
QUERY_BUDGET = 32


@dataclass
class ServiceView:
    """Values the metrics thread may read, refreshed by the loop (never the tracker itself)."""

    tracks: dict[str, int] = field(default_factory=dict)
    sensors: dict[str, str] = field(default_factory=dict)


class FusionService:
    def __init__(
        self,
        config: FusionConfig,
        *,
        core: Any | None = None,
        context: zmq.Context | None = None,
        registry: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        svc = config.service
        self.allowlist = Allowlist.from_config(config)
        self.server_keys = (
            None
            if config.security.plaintext_loopback
            else load_secret(config.security.server_key, config.security.keys_dir)
        )
        if core is None:
            from fusion.service.core import FusionCore

            core = FusionCore(config)
        self.core = core
        self.ctx = context or zmq.Context()
        self._own_ctx = context is None
        self.store = CueStore(svc.store)
        self.snapshot_file = SnapshotFile(config.snapshot_path)
        self._snap_writer: SnapshotWriter | None = None
        self.received = SeqWindows(svc.dedup_window)
        self.processed = SeqWindows(svc.dedup_window)
        self.durable_ack: dict[str, int] = {}
        self.processed_detections: dict[str, int] = {}
        self.ingest = Ingest(
            self.allowlist,
            self.received,
            authenticate=True,
            max_detections=svc.max_batch_detections,
            clock=clock,
        )
        self.reorder = ReorderBuffer(svc.reorder_lag_s, svc.late_policy)
        self.liveness = Liveness(svc.heartbeat_late_s, svc.heartbeat_lost_s)
        self.batch_seconds = Histogram(PROCESSING_BUCKETS_S)
        self.cue_latency = Histogram(LATENCY_BUCKETS_S)
        self.cue_events: dict[tuple[str, str], int] = {}
        self._open_cues: dict[str, str] = {}  # cue id -> rule
        self._replayed_cues: set[tuple[str, str, float]] = set()
        self.cues_suppressed = 0
        self.core_errors = 0
        self.restore_errors = 0
        self.snapshots_written = 0
        self.last_snapshot_s = 0.0
        self.restored_from: float | None = None
        self.view = ServiceView()
        self.zap: ZapHandler | None = None
        self.publisher: Publisher | None = None
        self.query = QueryHandler(self)
        self.registry = register_service(self, registry)
        self.endpoints: dict[str, str] = {}
        self._ready: deque[Accepted] = deque()
        self._stop = threading.Event()
        self._started = threading.Event()
        self._metrics_server = None
        self._feed: FeedWriter | None = None
        self._sockets: list[zmq.Socket] = []
        self._monitors: list[zmq.Socket] = []
        self._monitor_domain: dict[zmq.Socket, str] = {}
        self.handshakes: dict[tuple[str, str], int] = {}
        self._next_tracks = self._next_status = self._next_snapshot = 0.0
        self._next_tick = 0.0
        self._states: dict[str, dict[str, Any]] | None = None
        self._states_t_s = 0.0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Warms up, restores the latest snapshot, then binds every socket."""
        cfg = self.config
        t0 = time.perf_counter()
        self._warm_up()
        log.info("warm-up done in %.2f s", time.perf_counter() - t0)
        self._restore()
        self._snap_writer = SnapshotWriter(self.snapshot_file)
        open_cues = self.store.open_cues()
        for body in open_cues:
            self._open_cues[str(body.get("id"))] = str(body.get("rule"))
        restore_cues = getattr(self.core, "restore_cues", None)
        if open_cues and restore_cues is not None:
            log.info("%d open cues continue from the store", restore_cues(open_cues))
        warn_plaintext(cfg)
        self.zap = ZapHandler(self.ctx, self.allowlist).start()
        self.ingest_sock = self._bind(
            zmq.ROUTER, cfg.service.ingest, DOMAIN_INGEST, rcvhwm=INGEST_RCVHWM
        )
        self.query_sock = self._bind(zmq.ROUTER, cfg.service.query, DOMAIN_QUERY)
        pub = self._bind(zmq.PUB, cfg.service.publish, DOMAIN_PUBLISH, hwm=cfg.service.pub_hwm)
        self.publisher = Publisher(pub, self.clock)
        if cfg.recording.enabled:
            self._feed = FeedWriter(
                cfg.recording.dir, rotate_bytes=int(cfg.recording.rotate_mb * 1e6)
            )
        if cfg.service.metrics_port:
            self._metrics_server = serve_metrics(
                self.registry, cfg.service.metrics_host, cfg.service.metrics_port
            )
        now = self.clock()
        self._next_tracks = self._next_status = now
        self._next_snapshot = now + cfg.service.snapshot_interval_s
        self._refresh_view(now)
        self._started.set()
        log.info("fusion service up: %s", self.endpoints)

    def _bind(
        self,
        kind: int,
        endpoint: str,
        domain: str,
        hwm: int | None = None,
        rcvhwm: int | None = None,
    ) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        if hwm is not None:
            sock.sndhwm = hwm
        if rcvhwm is not None:
            sock.rcvhwm = rcvhwm
        secure_server(sock, self.server_keys, domain)
        mon = sock.get_monitor_socket(sum(_HANDSHAKE_OUTCOMES))
        self._monitors.append(mon)
        self._monitor_domain[mon] = domain
        sock.bind(endpoint)
        self.endpoints[domain] = sock.last_endpoint.decode()
        self._sockets.append(sock)
        return sock

    def wait_started(self, timeout_s: float = 30.0) -> bool:
        return self._started.wait(timeout_s)

    def request_stop(self) -> None:
        self._stop.set()

    def serve(self) -> int:
        """start + run with SIGTERM/SIGINT handlers (main thread only); the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        self.start()
        self.run()
        return 0

    def run(self) -> None:
        """The loop; returns after a requested stop, once everything is drained and saved."""
        if not self._started.is_set():
            self.start()
        # Two pollers: with too many batches held, ingest is left unread, so ZeroMQ's queue
        # and then TCP push back on the adapters (which hold their batches) instead of this
        # process growing without bound.
        full, busy = zmq.Poller(), zmq.Poller()
        full.register(self.ingest_sock, zmq.POLLIN)
        for p in (full, busy):
            p.register(self.query_sock, zmq.POLLIN)
            for mon in self._monitors:
                p.register(mon, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                held = self.reorder.depth + len(self._ready)
                poller = full if held < MAX_HELD_BATCHES else busy
                events = dict(poller.poll(self._timeout_ms()))
                if self.ingest_sock in events:
                    self._read_ingest(min(RECV_BUDGET, MAX_HELD_BATCHES - held))
                if self.query_sock in events:
                    self._read_queries()
                for mon in self._monitors:
                    if mon in events:
                        self._read_monitor(mon)
                now = self.clock()
                self._ready.extend(self.reorder.pop_ready(now))
                if self._ready:
                    self._process_ready(budget=PROCESS_CHUNK * 4)
                else:
                    self._idle_tick(now)
                self._periodic(self.clock())
                for acks in self._snap_writer.completed():
                    self._snapshot_durable(acks)
        finally:
            self._shutdown()

    def _read_monitor(self, mon: zmq.Socket) -> None:
        """Counts CURVE handshakes by outcome: a peer without a key, or with the wrong server
        key, fails here before ZAP is ever asked."""
        while True:
            try:
                event = recv_monitor_message(mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return
            outcome = _HANDSHAKE_OUTCOMES.get(event.get("event"))
            if outcome is not None:
                key = (self._monitor_domain[mon], outcome)
                self.handshakes[key] = self.handshakes.get(key, 0) + 1

    def _timeout_ms(self) -> int:
        if self._ready:
            return 0
        now = self.clock()
        due = min(self._next_tracks, self._next_status, self._next_snapshot)
        nxt = self.reorder.next_release_s()
        if nxt is not None:
            due = min(due, nxt)
        return int(min(max(due - now, 0.0), 0.05) * 1000) + (0 if due <= now else 1)

    def _shutdown(self) -> None:
        log.info("fusion service stopping: draining %d held batches", self.reorder.depth)
        try:
            self._ready.extend(self.reorder.drain())
            while self._ready:
                self._process_ready(budget=len(self._ready))
            self._snap_writer.close()
            for acks in self._snap_writer.completed():
                self._snapshot_durable(acks)
            self._snapshot(self.clock(), sync=True)
        finally:
            if self._feed is not None:
                self._feed.close()
            for sock in self._sockets:
                sock.disable_monitor()
                sock.close(linger=100)
            for mon in self._monitors:
                mon.close(linger=0)
            if self.zap is not None:
                self.zap.stop()
            if self._metrics_server is not None:
                self._metrics_server.shutdown()
            self.store.close()
            if self._own_ctx:
                self.ctx.term()
            log.info("fusion service stopped")

    # -- ingest -------------------------------------------------------------------------------

    def _read_ingest(self, budget: int = RECV_BUDGET) -> None:
        sock = self.ingest_sock
        for _ in range(budget):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            now = self.clock()
            result = self.ingest.handle(frames, now)
            if result is None:
                continue
            if result == "duplicate":
                self._send_ack(self.ingest.last_sensor)
                continue
            if isinstance(result, Heartbeat):
                self.liveness.heartbeat(
                    result.sensor, now, result.status, result.site, result.coverage
                )
                hook = getattr(self.core, "heartbeat", None)
                if hook is not None:
                    try:
                        hook(result)
                    except Exception:
                        self.core_errors += 1
                        log.exception("core rejected a heartbeat from %s", result.sensor)
                if self._feed is not None:
                    self._feed.write(frames[1].bytes, now)
                continue
            batch = result.batch
            self.liveness.detections(batch.sensor, now)
            if self._feed is not None:
                self._feed.write(frames[1].bytes, now)
            if not self.reorder.push(result, result.key_s, now):
                # Dropped by the late policy: handled, so it counts as processed.
                self._mark_processed(result)

    def _send_ack(self, sensor: str) -> None:
        seq = self.durable_ack.get(sensor)
        peer = self.ingest.peers.get(sensor)
        if seq is None or peer is None:
            return
        try:
            self.ingest_sock.send_multipart(
                [peer, protocol.encode(Ack(sensor=sensor, seq=seq))], zmq.NOBLOCK
            )
        except zmq.ZMQError:
            pass  # the adapter is gone or slow; it will get the next ack

    # -- processing ---------------------------------------------------------------------------

    def _mark_processed(self, item: Accepted) -> None:
        b = item.batch
        self.processed.get(b.sensor).add(b.seq)
        self.processed_detections[b.sensor] = self.processed_detections.get(b.sensor, 0) + len(b)

    def _process_ready(self, budget: int) -> None:
        done = 0
        while self._ready and done < budget:
            n = min(PROCESS_CHUNK, len(self._ready))
            items = [self._ready.popleft() for _ in range(n)]
            self._process(items)
            done += n

    def _process(self, items: list[Accepted]) -> None:
        """Tracker and rules over one chunk of released batches, then cues out."""
        t0 = time.perf_counter()
        now = self.clock()
        try:
            cues = self.core.process([a.batch for a in items], self.sensor_states(now), now)
        except Exception:
            # A core bug must not stop ingest; the batches count as handled (not retried
            # forever) and the error is visible in the log and the status counters.
            self.core_errors += 1
            log.exception("core failed on %d batches", len(items))
            cues = []
        for item in items:
            self._mark_processed(item)
        elapsed = time.perf_counter() - t0
        self.batch_seconds.observe_many(np.full(len(items), elapsed / len(items)))
        if cues:
            self._emit_cues(cues, max(a.recv_s for a in items))

    def _idle_tick(self, now: float) -> None:
        tick = getattr(self.core, "tick", None)
        if tick is None or now < self._next_tick:
            return
        self._next_tick = now + 0.5
        try:
            cues = tick(self.sensor_states(now), now)
        except Exception:
            self.core_errors += 1
            log.exception("idle scan failed")
            return
        if cues:
            self._emit_cues(cues, None)

    def _emit_cues(self, cues: list[dict[str, Any]], newest_recv_s: float | None) -> None:
        """Store one scan's cue events in one transaction, then publish them, in order."""
        fresh = []
        for body in cues:
            key = (str(body.get("id")), str(body.get("state")), float(body.get("t_s", 0.0)))
            if key in self._replayed_cues:
                # Produced again by batches replayed after a restart: stored and published
                # by the previous run already.
                self._replayed_cues.discard(key)
                self.cues_suppressed += 1
            else:
                fresh.append(body)
        if not fresh:
            return
        try:
            seqs = self.store.append_many(fresh)
        except Exception:
            seqs = None
        if seqs is None:  # one bad body: store the others one by one, skip the bad one
            seqs = []
            for body in fresh:
                try:
                    seqs.append(self.store.append(body))
                except Exception:
                    self.core_errors += 1
                    log.exception("cue not storable, not published: %s", str(body)[:200])
                    seqs.append(None)
        for body, seq in zip(fresh, seqs, strict=True):
            if seq is None:
                continue
            body["seq"] = seq
            self.publisher.publish_cue(body)
            rule, state = str(body.get("rule")), str(body.get("state"))
            self.cue_events[(rule, state)] = self.cue_events.get((rule, state), 0) + 1
            if state == "close":
                self._open_cues.pop(str(body.get("id")), None)
            else:
                self._open_cues[str(body.get("id"))] = rule
        if newest_recv_s is not None:
            latency_s = self.clock() - newest_recv_s
            self.cue_latency.observe_many(np.full(len(fresh), latency_s))

    def sensor_states(self, now_s: float) -> dict[str, dict[str, Any]]:
        """The liveness report the rules read; rebuilt at most every 0.1 s (a scan per batch
        must not pay for a dict per sensor each time)."""
        if self._states is None or now_s - self._states_t_s >= 0.1 or now_s < self._states_t_s:
            self._states = self.liveness.report(now_s)
            self._states_t_s = now_s
        return self._states

    def open_cues_by_rule(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rule in list(self._open_cues.values()):
            out[rule] = out.get(rule, 0) + 1
        return out

    # -- periodic -----------------------------------------------------------------------------

    def _periodic(self, now: float) -> None:
        svc = self.config.service
        if now >= self._next_tracks:
            self._next_tracks = now + 1.0 / svc.track_publish_hz
            try:
                self.publisher.publish_tracks(self.core.track_update())
            except Exception:
                self.core_errors += 1
                log.exception("track publication failed")
        if now >= self._next_status:
            self._next_status = now + svc.status_interval_s
            self._refresh_view(now)
            self.publisher.publish_status(self.query_status())
        if now >= self._next_snapshot:
            self._next_snapshot = now + svc.snapshot_interval_s
            self._snapshot(now)

    def _refresh_view(self, now: float) -> None:
        try:
            tracks = self.core.track_counts()
        except Exception:
            tracks = {}
        self.view = ServiceView(tracks=tracks, sensors=self.liveness.states(now))

    def counters(self) -> dict[str, Any]:
        ing = self.ingest
        return {
            "batches": ing.batches,
            "duplicates": ing.duplicates,
            "heartbeats": ing.heartbeats,
            "rejects": dict(ing.rejects),
            "late": self.reorder.late,
            "late_dropped": self.reorder.late_dropped,
            "reorder_depth": self.reorder.depth,
            "processed_detections": _bounded(self.processed_detections),
            "acked": _bounded(self.durable_ack),
            "tracks": dict(self.view.tracks),
            "cue_events": {f"{r}.{s}": n for (r, s), n in self.cue_events.items()},
            "cues_suppressed": self.cues_suppressed,
            "publish_drops": self.publisher.drops if self.publisher else 0,
            "core_errors": self.core_errors,
            "snapshots": self.snapshots_written,
            "restored_from": self.restored_from,
            "restore_errors": self.restore_errors,
            "latency": {
                "cue_n": self.cue_latency.count,
                "cue_p50_s": _finite(self.cue_latency.quantile(0.5)),
                "cue_p99_s": _finite(self.cue_latency.quantile(0.99)),
                "batch_p50_s": _finite(self.batch_seconds.quantile(0.5)),
                "batch_p99_s": _finite(self.batch_seconds.quantile(0.99)),
                "snapshot_serialise_s": self.last_snapshot_s,
                "snapshot_write_s": self._snap_writer.last_write_s if self._snap_writer else 0.0,
            },
        }

    # -- snapshots and acks ---------------------------------------------------------------------

    def _ack_points(self) -> dict[str, int]:
        """Per sensor, the highest seq such that it and every lower accepted seq are processed."""
        key = lambda a: (a.batch.sensor, a.batch.seq)  # noqa: E731
        pending = self.reorder.min_pending(key)
        for a in self._ready:
            s, q = key(a)
            if s not in pending or q < pending[s]:
                pending[s] = q
        acks = {}
        for sensor, w in self.processed.by_sensor.items():
            if w.hwm is None:
                continue
            ack = w.hwm if sensor not in pending else min(w.hwm, pending[sensor] - 1)
            prev = self.durable_ack.get(sensor)
            acks[sensor] = ack if prev is None else max(prev, ack)
        return acks

    def _snapshot(self, now: float, sync: bool = False) -> None:
        """Serialises the state here; the writer thread makes it durable (`sync`: now), and
        the acknowledgements it covers go out when it is."""
        t0 = time.perf_counter()
        acks = self._ack_points()
        try:
            state = {
                "v": SNAPSHOT_VERSION,
                "t_wall_s": now,
                "core": self.core.snapshot(),
                "processed": self.processed.to_state(),
                "processed_detections": dict(self.processed_detections),
                "acks": acks,
                "cue_seq": self.store.last_seq(),
            }
            blob = pickle.dumps(state, protocol=5)
            if sync:
                self.snapshot_file.write(blob, now)
        except Exception:
            self.core_errors += 1
            log.exception("snapshot failed; acks held back")
            return
        self.last_snapshot_s = time.perf_counter() - t0
        if self._feed is not None:
            self._feed.flush()
        if sync:
            self._snapshot_durable(acks)
        else:
            self._snap_writer.submit(blob, now, acks)

    def _snapshot_durable(self, acks: dict[str, int]) -> None:
        self.snapshots_written += 1
        changed = [s for s, q in acks.items() if self.durable_ack.get(s) != q]
        self.durable_ack = acks
        for sensor in changed:
            self._send_ack(sensor)

    def _restore(self) -> None:
        """The latest snapshot: delivery state (processed seqs, acks, counts) always, the core's
        state only when it is recent enough and readable. Without the core state the tracks
        start empty, but acknowledged batches are still not processed a second time."""
        try:
            loaded = self.snapshot_file.load()
        except (OSError, ValueError):
            log.exception("snapshot unreadable: starting empty")
            self.restore_errors += 1
            return
        if loaded is None:
            return
        blob, t_s = loaded
        try:
            # The blob is this service's own state in its own store file (not peer input).
            state = pickle.loads(blob)
            if state.get("v") != SNAPSHOT_VERSION:
                raise ValueError(f"snapshot version {state.get('v')}")
            window = self.config.service.dedup_window
            processed = SeqWindows.from_state(state["processed"], window)
        except Exception:
            log.exception("snapshot unreadable: starting empty")
            self.restore_errors += 1
            return
        self.processed = processed
        self.received = processed.copy()
        self.ingest.windows = self.received
        self.processed_detections = dict(state.get("processed_detections", {}))
        self.durable_ack = dict(state.get("acks", {}))
        age = self.clock() - t_s
        if age > self.config.service.snapshot_max_age_s:
            log.warning(
                "snapshot is %.0f s old (limit %.0f s): tracks start empty",
                age,
                self.config.service.snapshot_max_age_s,
            )
            return
        try:
            self.core.restore(state["core"])
        except Exception:
            log.exception("tracker/rules state not restorable: tracks start empty")
            self.restore_errors += 1
            return
        for body in self.store.since(int(state.get("cue_seq", 0)), limit=1_000_000):
            self._replayed_cues.add(
                (str(body.get("id")), str(body.get("state")), float(body.get("t_s", 0.0)))
            )
        self.restored_from = t_s
        log.info("restored snapshot of %.1f s ago (%d sensors)", age, len(self.durable_ack))

    def _warm_up(self) -> None:
        """Numba kernels and the decoder compile before any socket is bound."""
        self.core.warm_up()
        det = Detections(
            sensor="warm",
            seq=1,
            kind="pos",
            t=np.array([self.clock()]),
            z=np.array([[*self.config.theatre.origin[:2], 0.0]]),
            R=np.eye(3)[None] * 100.0,
        )
        protocol.decode(protocol.encode(det))

    # -- queries ------------------------------------------------------------------------------

    def _read_queries(self) -> None:
        for _ in range(QUERY_BUDGET):
            try:
                frames = self.query_sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                continue
            reply = self.query.answer(frames[-1])
            try:
                self.query_sock.send_multipart([*frames[:-1], reply], zmq.NOBLOCK)
            except zmq.ZMQError:
                pass

    def query_tracks(self) -> Any:
        return self.core.track_update()

    def query_status(self) -> Status:
        now = self.clock()
        report = self.liveness.report(now)
        if len(report) > 100:  # the protocol bounds map sizes: the sensors in trouble first
            names = sorted(report, key=lambda n: (report[n]["state"] == "alive", n))[:100]
            report = {n: report[n] for n in sorted(names)}
        sensors = {
            name: {"state": r["state"], "reported": r["reported"], "hb_age_s": r["hb_age_s"]}
            for name, r in report.items()
        }
        return Status(t_s=now, sensors=sensors, counters=self.counters())

    def query_open_cues(self) -> list[dict[str, Any]]:
        return self.store.open_cues()

    def query_since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        return self.store.since(seq, limit)

    def last_cue_seq(self) -> int:
        return self.store.last_seq()

    def report_drops(self, missed: int) -> None:
        self.publisher.reported_drops += missed


def _bounded(d: dict[str, int], limit: int = 100) -> dict[str, int]:
    """A per-sensor map small enough for a status message (the protocol bounds map sizes):
    past `limit` sensors, the largest values and the sum of the rest under "_others"."""
    if len(d) <= limit:
        return dict(d)
    items = sorted(d.items(), key=lambda kv: kv[1], reverse=True)
    out = dict(items[: limit - 1])
    out["_others"] = sum(v for _, v in items[limit - 1 :])
    return out


def _finite(x: float) -> float | None:
    return None if x != x else float(x)


def run_in_thread(service: FusionService) -> threading.Thread:
    """Starts `service` in a daemon thread (tests, benchmarks); stop with request_stop()."""
    thread = threading.Thread(target=service.run, name="fusion-service", daemon=True)
    thread.start()
    return thread
