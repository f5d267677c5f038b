"""Ingest: one ROUTER message in -> an authenticated, validated, de-duplicated batch (or a reject).

This module owns the checks a frame passes before the service trusts it, in this order:
frame layout (routing id + one frame), authenticity (the ZAP User-Id, read from the frame
before anything is decoded), decoding and validation (`fusion.protocol.decode`), the
key -> sensor binding, the message type, and duplicates by (sensor, seq). Every refusal is
counted by reason and logged at a bounded rate; nothing here raises on bad input.

Acknowledgements are not sent here: the service acknowledges a sequence number only once the
batch's effect on the tracker is durable (see fusion.service.server), and re-acknowledges a
duplicate at once with the durable sequence number, so an adapter that resends after a
reconnect learns quickly what it may forget.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from fusion import protocol
from fusion.messages import Detections, Heartbeat
from fusion.security import Allowlist
from fusion.service.dedup import SeqWindows

log = logging.getLogger(__name__)

# Reasons beyond fusion.protocol.REASONS.
REJECT_FRAMES = "frames"  # not [routing id, one frame]
REJECT_UNAUTHENTICATED = "unauthenticated"  # no User-Id: ZAP was bypassed (must not happen)
REJECT_SENSOR_BINDING = "sensor_binding"  # an admitted key speaking for another sensor
REJECT_UNEXPECTED = "unexpected_type"  # a valid message that adapters do not send (ack, trk...)
REJECT_TOO_MANY = "too_many_detections"
REJECT_TOO_MANY_SENSORS = "too_many_sensors"  # a new sensor id beyond MAX_SENSORS
MAX_SENSORS = 10_000  # bounds memory (dedup windows) and metric labels per service
MAX_BINDING_LABELS = 1_000


@dataclass
class Accepted:
    """A batch that passed ingest, waiting in the reorder buffer."""

    batch: Detections
    recv_s: float
    key_s: float  # latest measurement time in the batch
    frame: Any  # the raw frame (recorded to the feed when recording is on)


class _RateLimitedLog:
    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def warn(self, reason: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(reason, -math.inf) >= self.interval_s:
            self._last[reason] = now
            log.warning(msg, *args)


class Ingest:
    def __init__(
        self,
        allowlist: Allowlist,
        windows: SeqWindows,
        *,
        authenticate: bool = True,
        max_detections: int = 100_000,
        limits: protocol.Limits = protocol.DEFAULT_LIMITS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.allowlist = allowlist
        self.windows = windows
        self.authenticate = authenticate
        self.max_detections = max_detections
        self.limits = limits
        self.clock = clock
        self.rejects: dict[str, int] = {}
        self.binding_rejects: dict[tuple[str, str], int] = {}  # (user, claimed sensor)
        self.duplicates = 0
        self.batches = 0
        self.detections: dict[tuple[str, str], int] = {}  # (sensor, kind) -> count
        self.heartbeats = 0
        self.peers: dict[str, bytes] = {}  # sensor -> routing id of its latest connection
        self.last_sensor = ""
        self._log = _RateLimitedLog()

    def reject(self, reason: str, detail: str = "") -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        self._log.warn(reason, "ingest: rejected a frame (%s) %s", reason, detail[:200])

    def handle(self, frames: list[zmq.Frame], now_s: float) -> Accepted | Heartbeat | str | None:
        """Checks one ROUTER message. Returns the Accepted batch, the Heartbeat, the string
        "duplicate" (with the sensor in `last_sensor`) or None when rejected."""
        if len(frames) != 2:
            self.reject(REJECT_FRAMES, f"{len(frames)} frames")
            return None
        ident, frame = frames
        user: str | None = None
        if self.authenticate:
            try:
                user = frame.get("User-Id")
            except (zmq.ZMQError, AttributeError):
                user = None
            if not user:
                self.reject(REJECT_UNAUTHENTICATED)
                return None
        try:
            msg = protocol.decode(frame.buffer, now_s=now_s, limits=self.limits)
        except protocol.ProtocolError as exc:
            self.reject(exc.reason, exc.detail)
            return None
        except Exception as exc:  # the codec promises ProtocolError; a bug must not stop us
            self.reject("decode", f"{type(exc).__name__}: {exc}")
            return None
        sensor = getattr(msg, "sensor", None)
        if not isinstance(msg, Detections | Heartbeat):
            self.reject(REJECT_UNEXPECTED, getattr(msg, "type", "?"))
            return None
        if self.authenticate and not self.allowlist.may_speak_for(user, sensor):
            key = (user, sensor)
            if key not in self.binding_rejects and len(self.binding_rejects) >= MAX_BINDING_LABELS:
                key = (user, "_other")  # the claimed id is the peer's choice: bound the labels
            self.binding_rejects[key] = self.binding_rejects.get(key, 0) + 1
            self.reject(REJECT_SENSOR_BINDING, f"{user!r} may not speak for sensor {sensor!r}")
            return None
        if sensor not in self.peers and len(self.peers) >= MAX_SENSORS:
            self.reject(REJECT_TOO_MANY_SENSORS, sensor)
            return None
        self.peers[sensor] = ident.bytes if hasattr(ident, "bytes") else bytes(ident)
        if isinstance(msg, Heartbeat):
            self.heartbeats += 1
            return msg
        n = len(msg)
        if n > self.max_detections:
            self.reject(REJECT_TOO_MANY, f"{n} detections from {sensor}")
            return None
        self.last_sensor = sensor
        if not self.windows.check_and_add(sensor, msg.seq):
            self.duplicates += 1
            return "duplicate"
        self.batches += 1
        key = (sensor, msg.kind)
        self.detections[key] = self.detections.get(key, 0) + n
        return Accepted(batch=msg, recv_s=now_s, key_s=float(msg.t.max()), frame=frame)
