"""Replays a feed file (fusion/feed.py) through a link to fusion: at real time, N times
faster, or as fast as possible.

This module owns pacing and, optionally, shifting recorded times to the present. It sends
each recorded `Detections` batch whole; the link renumbers it with its own per-sensor `seq`
(a replay is new traffic: fusion must not drop it as a duplicate of the recording's seqs).
Other recorded messages (heartbeats, acks, tracks) are counted and not sent. Pacing follows
the feed's receipt times; the clock and the sleep are injectable for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fusion import protocol
from fusion.feed import read_feed
from fusion.messages import Detections


@dataclass
class ReplayStats:
    batches: int = 0
    detections: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0


def replay_feed(
    path: str | Path,
    submit: Callable[[Detections], object],
    *,
    speed: float | None = 1.0,
    retime: bool = False,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    stop: Callable[[], bool] = lambda: False,
) -> ReplayStats:
    """Sends every `Detections` of the feed to `submit`. `speed` None means as fast as
    possible; 1.0 real time; N, N times faster. With `retime`, measurement times are shifted
    by one constant so that the first batch is stamped "now" (a live service would otherwise
    see hours-old data)."""
    if speed is not None and speed <= 0:
        raise ValueError("speed must be positive (or None for as fast as possible)")
    st = ReplayStats()
    feed_stats: dict[str, int] = {}
    start_wall = clock()
    first_recv = None
    shift_s = None
    for recv_t, frame in read_feed(path, feed_stats):
        if stop():
            break
        try:
            msg = protocol.decode(frame, now_s=float("inf"))
        except protocol.ProtocolError as e:
            st.skipped[e.reason] = st.skipped.get(e.reason, 0) + 1
            continue
        if not isinstance(msg, Detections):
            st.skipped[msg.type] = st.skipped.get(msg.type, 0) + 1
            continue
        if first_recv is None:
            first_recv = recv_t
        if speed is not None:
            due = start_wall + (recv_t - first_recv) / speed
            wait = due - clock()
            if wait > 0:
                sleep(wait)
        if retime:
            if shift_s is None:
                shift_s = clock() - float(msg.t.min())
            msg.t = msg.t + shift_s
        submit(msg)
        st.batches += 1
        st.detections += len(msg)
    for k, v in feed_stats.items():
        st.skipped[k] = st.skipped.get(k, 0) + v
    st.wall_s = clock() - start_wall
    return st
