"""Per-sensor sequence windows: which (sensor, seq) pairs have been seen, with bounded memory.

This module owns the duplicate rule and nothing else. A sensor's window keeps its highest
sequence number `hwm` and the set of seqs seen in the last `window` numbers below it (the
jupyter_client pattern: sequence numbers per sender and a bounded history). A seq is new when
it is above the window's floor and not in the set; a seq at or below ``hwm - window`` is
treated as already seen (an adapter never holds that many unacknowledged batches).

Adapters send in order over one connection and resend in order after reconnecting, so gaps in
seq are batches the adapter itself dropped (its buffer overflowed, or it restarted with a new
time-based seq); a gap never blocks anything here.
"""

from __future__ import annotations

from collections import deque


class SeqWindow:
    """The seen seqs of one sensor."""

    __slots__ = ("hwm", "window", "_recent", "_order")

    def __init__(self, window: int = 4096) -> None:
        self.hwm: int | None = None
        self.window = int(window)
        self._recent: set[int] = set()
        self._order: deque[int] = deque()  # the seqs of _recent, oldest first

    def seen(self, seq: int) -> bool:
        hwm = self.hwm
        if hwm is None:
            return False
        if seq > hwm:
            return False
        return seq <= hwm - self.window or seq in self._recent

    def add(self, seq: int) -> None:
        """Marks `seq` seen (call only when `seen(seq)` is False)."""
        if self.hwm is None or seq > self.hwm:
            self.hwm = seq
        self._recent.add(seq)
        self._order.append(seq)
        floor = self.hwm - self.window
        order, recent = self._order, self._recent
        # Forget what fell below the floor, or the oldest beyond `window` entries.
        while order and (order[0] <= floor or len(order) > self.window):
            recent.discard(order.popleft())

    def check_and_add(self, seq: int) -> bool:
        """True (and recorded) when `seq` is new; False for a duplicate."""
        if self.seen(seq):
            return False
        self.add(seq)
        return True

    def to_state(self) -> tuple[int | None, list[int]]:
        return self.hwm, list(self._order)

    @classmethod
    def from_state(cls, state: tuple[int | None, list[int]], window: int = 4096) -> SeqWindow:
        w = cls(window)
        hwm, recent = state
        for seq in recent:
            w.add(int(seq))
        if hwm is not None and (w.hwm is None or hwm > w.hwm):
            w.hwm = int(hwm)
        return w

    def copy(self) -> SeqWindow:
        return SeqWindow.from_state(self.to_state(), self.window)


class SeqWindows:
    """SeqWindow per sensor."""

    def __init__(self, window: int = 4096) -> None:
        self.window = int(window)
        self.by_sensor: dict[str, SeqWindow] = {}

    def get(self, sensor: str) -> SeqWindow:
        w = self.by_sensor.get(sensor)
        if w is None:
            w = self.by_sensor[sensor] = SeqWindow(self.window)
        return w

    def check_and_add(self, sensor: str, seq: int) -> bool:
        return self.get(sensor).check_and_add(seq)

    def to_state(self) -> dict[str, tuple[int | None, list[int]]]:
        return {s: w.to_state() for s, w in self.by_sensor.items()}

    @classmethod
    def from_state(cls, state: dict, window: int = 4096) -> SeqWindows:
        ws = cls(window)
        for sensor, st in state.items():
            ws.by_sensor[sensor] = SeqWindow.from_state(st, window)
        return ws

    def copy(self) -> SeqWindows:
        return SeqWindows.from_state(self.to_state(), self.window)
