"""The PUB side of the service: track, cue and status streams.

Frame layout of every published message (three frames)::

    topic   ascii: "trk.<class>" | "cue.<rule>.<site>" | "status"
    header  16 bytes little-endian "<Qd": per-topic sequence number (1, 2, ...), publish time s
    body    the bytes of fusion.protocol.encode(message)

Subscribers filter by topic prefix (ZeroMQ prefix subscriptions). The per-topic sequence
number lets a subscriber see exactly how many messages of a topic it missed: a slow subscriber
never slows the service (PUB drops at the high-water mark instead of blocking, and the socket
is only ever written with NOBLOCK), but PUB drops silently, so the drop count is kept where it
can be seen: each subscriber counts its gaps and reports them on the query socket
(`fusion.client`), and the service adds those reports to `reported_drops`. Sends that fail
locally (EAGAIN) are counted in `local_drops`.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import zmq

from fusion import protocol
from fusion.messages import CLASS_NAMES, CueEvent, Status, TrackUpdate

HEADER = struct.Struct("<Qd")
TOPIC_STATUS = "status"


def cue_topic(body: dict[str, Any]) -> str:
    return f"cue.{_topic_part(body.get('rule'))}.{_topic_part(body.get('site'))}"


def _topic_part(value: Any) -> str:
    # Dots separate topic levels; a site id with a dot would break prefix filters.
    return str(value if value is not None else "none").replace(".", "_").replace(" ", "_")


class Publisher:
    def __init__(self, sock: zmq.Socket, clock: Any) -> None:
        self.sock = sock
        self.clock = clock
        self.seq: dict[str, int] = {}
        self.sent: dict[str, int] = {}  # by family: trk, cue, status
        self.local_drops: dict[str, int] = {}
        self.reported_drops = 0
        self.bytes_out = 0

    def publish(self, topic: str, body: bytes) -> bool:
        seq = self.seq.get(topic, 0) + 1
        self.seq[topic] = seq
        family = topic.split(".", 1)[0]
        header = HEADER.pack(seq, self.clock())
        try:
            self.sock.send_multipart(
                [topic.encode("ascii", "replace"), header, body],
                flags=zmq.NOBLOCK,
                copy=len(body) < 65536,
            )
        except zmq.Again:
            self.local_drops[family] = self.local_drops.get(family, 0) + 1
            return False
        self.sent[family] = self.sent.get(family, 0) + 1
        self.bytes_out += len(body)
        return True

    def publish_cue(self, body: dict[str, Any]) -> bool:
        return self.publish(cue_topic(body), protocol.encode(CueEvent(body=body)))

    def publish_tracks(self, update: TrackUpdate) -> int:
        """One message per class present (topic trk.<class>); returns messages sent."""
        n = 0
        if len(update) == 0:
            return 0
        for code in np.unique(update.cls):
            m = update.cls == code
            name = CLASS_NAMES[int(code)] if int(code) < len(CLASS_NAMES) else "unknown"
            part = TrackUpdate(
                t_s=update.t_s,
                id=update.id[m],
                pos=update.pos[m],
                vel=update.vel[m],
                P=update.P[m],
                status=update.status[m],
                ident=update.ident[m],
                cls=update.cls[m],
                n_sensors=update.n_sensors[m],
            )
            n += self.publish(f"trk.{name}", protocol.encode(part))
        return n

    def publish_status(self, status: Status) -> bool:
        return self.publish(TOPIC_STATUS, protocol.encode(status))

    @property
    def drops(self) -> int:
        return sum(self.local_drops.values()) + self.reported_drops


def parse(frames: list[bytes]) -> tuple[str, int, float, bytes]:
    """(topic, seq, publish time, body) of one received message; ValueError when malformed."""
    if len(frames) != 3 or len(frames[1]) != HEADER.size:
        raise ValueError(f"expected 3 frames with a {HEADER.size}-byte header")
    seq, t_pub = HEADER.unpack(frames[1])
    return bytes(frames[0]).decode("ascii", "replace"), seq, t_pub, frames[2]
