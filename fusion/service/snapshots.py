"""The service's snapshot file and the thread that writes it off the loop.

This module owns how a snapshot reaches the disk: the loop serialises its state (cheap) and
hands the bytes over; a writer thread writes them to a temporary file, syncs it, renames it
over the previous snapshot and syncs the directory, so the file on disk is always one whole
snapshot, old or new. Only then does the loop learn that the snapshot is durable and send the
acknowledgements it covers. The loop never waits for the disk, except at shutdown.

File layout: magic ``b"CFSNAP1\\n"``, little-endian ``<dQI`` (snapshot time s, blob length,
CRC-32 of the blob), then the blob.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections import deque
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGIC = b"CFSNAP1\n"
_HEADER = struct.Struct("<dQI")


class SnapshotFile:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def write(self, blob: bytes, t_s: float) -> None:
        """Atomically replaces the snapshot; durable when it returns."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            f.write(_HEADER.pack(float(t_s), len(blob), zlib.crc32(blob)))
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def load(self) -> tuple[bytes, float] | None:
        """(blob, t_s), or None when there is no snapshot; ValueError when it is damaged."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _HEADER.size:
            raise ValueError(f"{self.path}: not a snapshot file")
        t_s, n, crc = _HEADER.unpack_from(data, len(MAGIC))
        blob = data[len(MAGIC) + _HEADER.size :]
        if len(blob) != n or zlib.crc32(blob) != crc:
            raise ValueError(f"{self.path}: snapshot damaged (length or checksum)")
        return blob, t_s


class SnapshotWriter:
    """One writer thread. `submit` never blocks: while a write is in progress the newest
    submitted snapshot waits (older waiting ones are superseded). `completed()` returns the
    tokens of snapshots that are now on disk, oldest first."""

    def __init__(self, file: SnapshotFile) -> None:
        self.file = file
        self.written = 0
        self.failed = 0
        self.superseded = 0
        self.last_write_s = 0.0
        self._cv = threading.Condition()
        self._next: tuple[bytes, float, Any] | None = None
        self._busy = False
        self._done: deque[Any] = deque()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="snapshot-writer", daemon=True)
        self._thread.start()

    def submit(self, blob: bytes, t_s: float, token: Any) -> None:
        with self._cv:
            if self._next is not None:
                self.superseded += 1
            self._next = (blob, t_s, token)
            self._cv.notify()

    def completed(self) -> list[Any]:
        out = []
        while self._done:
            out.append(self._done.popleft())
        return out

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Waits until nothing is waiting or being written."""
        with self._cv:
            return self._cv.wait_for(lambda: self._next is None and not self._busy, timeout_s)

    def close(self) -> None:
        self.flush()
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(5.0)

    def _run(self) -> None:
        import time

        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._next is not None or self._stop)
                if self._next is None:
                    return
                blob, t_s, token = self._next
                self._next = None
                self._busy = True
            t0 = time.perf_counter()
            try:
                self.file.write(blob, t_s)
                self.written += 1
                self._done.append(token)
            except Exception:
                self.failed += 1
                log.exception("snapshot write failed; its acknowledgements are held back")
            self.last_write_s = time.perf_counter() - t0
            with self._cv:
                self._busy = False
                self._cv.notify_all()
