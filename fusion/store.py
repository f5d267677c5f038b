"""The durable cue archive and the latest track snapshot, in one SQLite file (WAL mode).

This module owns the on-disk form of cue events: every lifecycle step (open, update, close) the
rule engine produces is appended here, and committed, before the service publishes it, so a
cue that was ever published can be read back after a crash. Each appended event gets a
strictly increasing sequence number (`seq`) that late joiners use to catch up (`since`).
It also keeps one row holding the service's latest track snapshot (an opaque blob).

It must not know how cues are made (fusion.cues) or how snapshots are encoded (the service).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["CueStore", "StoreError"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cues (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    state TEXT NOT NULL,
    rule TEXT NOT NULL,
    site TEXT NOT NULL,
    track INTEGER,
    t_s REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cues_t ON cues (t_s);
CREATE INDEX IF NOT EXISTS cues_site ON cues (site, t_s);
CREATE INDEX IF NOT EXISTS cues_rule ON cues (rule, t_s);
CREATE INDEX IF NOT EXISTS cues_id ON cues (id, seq);
CREATE TABLE IF NOT EXISTS tracks_snapshot (
    slot INTEGER PRIMARY KEY CHECK (slot = 1),
    t_s REAL NOT NULL,
    blob BLOB NOT NULL
);
"""

_STATES = ("open", "update", "close")
_REQUIRED = ("id", "state", "rule", "site", "t_s")


class StoreError(ValueError):
    """A cue body that cannot be stored (missing field, unknown state, not JSON-serialisable)."""


class CueStore:
    """SQLite cue archive. Safe to share between threads (one connection behind a lock).

    `synchronous=FULL` with WAL: a commit is on disk when `append` returns, so neither a killed
    process nor a power cut loses an event that was appended (and then published).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    # -- cues ---------------------------------------------------------------------------------

    def append(self, body: dict[str, Any]) -> int:
        """Store one cue event and return its sequence number; durable before returning.

        `body["seq"]` is ignored on input: the store assigns it, and the returned body from
        `since`/`query` carries it.
        """
        row = _row(body)
        with self._lock:
            cur = self._db.execute(_INSERT, row)
            # isolation_level=None: the INSERT is its own transaction, committed here.
            return int(cur.lastrowid)

    def append_many(self, bodies: list[dict[str, Any]]) -> list[int]:
        """Store several cue events in one transaction (one disk sync) and return their
        sequence numbers, in order; all of them are durable when it returns, none if it raises.
        The service uses it for the cues of one scan, so a burst costs one sync, not one each.
        """
        rows = [_row(body) for body in bodies]
        seqs = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    seqs.append(int(self._db.execute(_INSERT, row).lastrowid))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return seqs

    def since(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Events with a sequence number greater than `seq`, oldest first, at most `limit`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, body FROM cues WHERE seq > ? ORDER BY seq LIMIT ?",
                (int(seq), int(limit)),
            ).fetchall()
        return [_body(s, b) for s, b in rows]

    def query(
        self,
        t_from_s: float | None = None,
        t_to_s: float | None = None,
        site: str | None = None,
        rule: str | None = None,
        state: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Events filtered by time range [t_from_s, t_to_s], site id, rule and state, by seq."""
        where, args = [], []
        for clause, value in (
            ("t_s >= ?", t_from_s),
            ("t_s <= ?", t_to_s),
            ("site = ?", site),
            ("rule = ?", rule),
            ("state = ?", state),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = "SELECT seq, body FROM cues"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_body(s, b) for s, b in rows]

    def open_cues(self) -> list[dict[str, Any]]:
        """The latest event of every cue that has not closed, by seq."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.seq, c.body FROM cues c JOIN "
                "(SELECT id, MAX(seq) AS last FROM cues GROUP BY id) m "
                "ON c.seq = m.last WHERE c.state != 'close' ORDER BY c.seq"
            ).fetchall()
        return [_body(s, b) for s, b in rows]

    def last_seq(self) -> int:
        """The highest sequence number stored, 0 when empty."""
        with self._lock:
            (seq,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM cues").fetchone()
        return int(seq)

    # -- track snapshot -----------------------------------------------------------------------

    def save_snapshot(self, blob: bytes, t_s: float) -> None:
        """Replace the stored track snapshot; durable before returning."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO tracks_snapshot (slot, t_s, blob) VALUES (1, ?, ?)",
                (float(t_s), sqlite3.Binary(bytes(blob))),
            )

    def load_snapshot(self) -> tuple[bytes, float] | None:
        """The stored snapshot as (blob, t_s), or None when there is none."""
        with self._lock:
            row = self._db.execute(
                "SELECT blob, t_s FROM tracks_snapshot WHERE slot = 1"
            ).fetchone()
        return None if row is None else (bytes(row[0]), float(row[1]))

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> CueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_INSERT = "INSERT INTO cues (id, state, rule, site, track, t_s, body) VALUES (?, ?, ?, ?, ?, ?, ?)"


def _row(body: dict[str, Any]) -> tuple:
    """The table row of a cue body, after checking what the store relies on."""
    for key in _REQUIRED:
        if key not in body or body[key] is None:
            raise StoreError(f"cue body lacks {key!r}")
    if body["state"] not in _STATES:
        raise StoreError(f"unknown cue state {body['state']!r}")
    stored = {k: v for k, v in body.items() if k != "seq"}
    try:
        text = json.dumps(stored, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"cue body is not JSON-serialisable: {exc}") from exc
    track = body.get("track")
    return (
        str(body["id"]),
        body["state"],
        str(body["rule"]),
        str(body["site"]),
        None if track is None else int(track),
        float(body["t_s"]),
        text,
    )


def _body(seq: int, text: str) -> dict[str, Any]:
    body = json.loads(text)
    body["seq"] = int(seq)
    return body
