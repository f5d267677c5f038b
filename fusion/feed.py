"""Feed files: recorded wire frames, as the service accepted them or as `sensors convert` made them.

A feed file is the 8-byte magic ``b"CFFEED1\\n"`` followed by records, each a little-endian
header ``<dI`` (receipt time in s since the epoch, frame length in bytes) and the frame: the
exact bytes of one protocol message (`fusion.protocol.encode`). Replaying a feed therefore
exercises the same decoder and validator as the live service. The reader never loads a whole
file; a truncated last record (a writer killed mid-write) ends the feed and is counted.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

MAGIC = b"CFFEED1\n"
_HEADER = struct.Struct("<dI")
MAX_FRAME_BYTES = 64 * 1024 * 1024


class FeedError(ValueError):
    """The file is not a feed file, or a record is damaged beyond the last good one."""


class FeedWriter:
    """Appends frames to feed files, rotating to a new file past `rotate_bytes`.

    Files are named ``<prefix>-<index:05d>.feed`` in `directory`; with `rotate_bytes=None`
    a single file at `path` is written.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rotate_bytes: int | None = None,
        fsync: bool = False,
    ) -> None:
        self._base = Path(path)
        self._rotate_bytes = rotate_bytes
        self._fsync = fsync
        self._index = 0
        self._file = None
        self._size = 0
        self.records = 0
        self.paths: list[Path] = []
        self._open_next()

    def _open_next(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._rotate_bytes is None:
            path = self._base
        else:
            self._base.mkdir(parents=True, exist_ok=True)
            while True:
                path = self._base / f"feed-{self._index:05d}.feed"
                self._index += 1
                if not path.exists():
                    break
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._file.write(MAGIC)
        self._size = len(MAGIC)
        self.paths.append(path)

    def write(self, frame: bytes, recv_t_s: float) -> None:
        if len(frame) > MAX_FRAME_BYTES:
            raise FeedError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
        if self._rotate_bytes is not None and self._size >= self._rotate_bytes:
            self._open_next()
        self._file.write(_HEADER.pack(float(recv_t_s), len(frame)))
        self._file.write(frame)
        self._size += _HEADER.size + len(frame)
        self.records += 1

    def flush(self) -> None:
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None

    def __enter__(self) -> FeedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def feed_paths(path: str | os.PathLike[str]) -> list[Path]:
    """A feed file, or every ``*.feed`` file of a directory in name order."""
    p = Path(path)
    if p.is_dir():
        return sorted(p.glob("*.feed"))
    if not p.exists():
        raise FeedError(f"{p}: no such feed file or directory")
    return [p]


def read_feed(
    path: str | os.PathLike[str], stats: dict | None = None
) -> Iterator[tuple[float, bytes]]:
    """Yields (recv_t_s, frame) from a feed file or a directory of them, in file order.

    `stats`, when given, receives ``truncated`` (records cut short at the end of a file).
    """
    for p in feed_paths(path):
        with open(p, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise FeedError(f"{p}: not a feed file (bad magic)")
            while True:
                header = f.read(_HEADER.size)
                if not header:
                    break
                if len(header) < _HEADER.size:
                    _count(stats, "truncated")
                    break
                recv_t_s, n = _HEADER.unpack(header)
                if n > MAX_FRAME_BYTES:
                    raise FeedError(f"{p}: record of {n} bytes exceeds {MAX_FRAME_BYTES}")
                frame = f.read(n)
                if len(frame) < n:
                    _count(stats, "truncated")
                    break
                yield recv_t_s, frame


def _count(stats: dict | None, key: str) -> None:
    if stats is not None:
        stats[key] = stats.get(key, 0) + 1
