"""The reorder buffer: holds accepted batches for a lag and releases them in measurement-time order.

This module owns the release order of batches and the late-batch policy; it knows nothing of
sockets or of the tracker. Time is passed in (`now_s`, the receipt clock), so tests drive it
with a fake clock.

Rule: each batch is keyed by its latest measurement time (the moment the batch is complete)
and held at least `lag_s` of receipt time. The release watermark is the largest key among
batches received `lag_s` ago or earlier; every held batch with a key at or below the watermark
is released, smallest key first (ties: arrival order). The hold is bounded by `lag_s` of wall
time whatever the sensors' clocks say, so one sensor with a fast clock cannot stall or flush
the others.

Late policy: a batch whose key is below the key of a batch already released is late (it
arrived more than `lag_s` after younger data). It is counted in `late` and then either
released at the next call ahead of everything else (`process`, the default: a detection is
worth more than strict ordering, and the tracker's update then starts from the track's newer
state) or discarded (`drop`, counted in `late_dropped`).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Hashable
from typing import Any


class ReorderBuffer:
    def __init__(self, lag_s: float, late_policy: str = "process") -> None:
        if lag_s < 0:
            raise ValueError("lag_s must be >= 0")
        if late_policy not in ("process", "drop"):
            raise ValueError(f"late_policy must be process or drop, not {late_policy!r}")
        self.lag_s = float(lag_s)
        self.late_policy = late_policy
        self._heap: list[tuple[float, int, Any]] = []
        self._arrivals: deque[tuple[float, float]] = deque()  # (recv_s, key), arrival order
        self._late: list[Any] = []
        self._counter = 0
        self._watermark = float("-inf")  # the largest key that may be released
        self.released_key = float("-inf")  # the largest key released so far
        self.late = 0
        self.late_dropped = 0
        self.released = 0

    def __len__(self) -> int:
        return len(self._heap) + len(self._late)

    @property
    def depth(self) -> int:
        return len(self)

    def push(self, item: Any, key_s: float, recv_s: float) -> bool:
        """Holds `item`; returns False when it was late and dropped by the policy."""
        if key_s < self.released_key:
            self.late += 1
            if self.late_policy == "drop":
                self.late_dropped += 1
                return False
            self._late.append(item)
            return True
        self._counter += 1
        heapq.heappush(self._heap, (key_s, self._counter, item))
        self._arrivals.append((recv_s, key_s))
        return True

    def next_release_s(self) -> float | None:
        """The receipt-clock time at which the next batch becomes due (None: nothing held)."""
        if self._late:
            return float("-inf")
        if not self._arrivals:
            return None if not self._heap else float("-inf")
        return self._arrivals[0][0] + self.lag_s

    def pop_ready(self, now_s: float) -> list[Any]:
        """The batches due at `now_s`, in release order."""
        out = self._late
        self._late = []
        cutoff = now_s - self.lag_s
        arrivals = self._arrivals
        wm = self._watermark
        while arrivals and arrivals[0][0] <= cutoff:
            _, key = arrivals.popleft()
            if key > wm:
                wm = key
        self._watermark = wm
        heap = self._heap
        while heap and heap[0][0] <= wm:
            key, _, item = heapq.heappop(heap)
            if key > self.released_key:
                self.released_key = key
            out.append(item)
        self.released += len(out)
        return out

    def drain(self) -> list[Any]:
        """Everything held, in key order (shutdown)."""
        out = self._late
        self._late = []
        while self._heap:
            key, _, item = heapq.heappop(self._heap)
            if key > self.released_key:
                self.released_key = key
            out.append(item)
        self._arrivals.clear()
        self.released += len(out)
        return out

    def min_pending(self, key_fn: Any) -> dict[Hashable, int]:
        """For each group `key_fn(item) -> (group, seq)`, the smallest seq still held."""
        best: dict[Hashable, int] = {}
        for entry in self._heap:
            group, seq = key_fn(entry[2])
            if group not in best or seq < best[group]:
                best[group] = seq
        for item in self._late:
            group, seq = key_fn(item)
            if group not in best or seq < best[group]:
                best[group] = seq
        return best
