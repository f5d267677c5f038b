"""The cue store: appends are durable, queries filter, a killed writer loses nothing published."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fusion.store import CueStore, StoreError

ROOT = Path(__file__).resolve().parent.parent


def _cue(i: int, state: str = "open", site: str = "port-alpha", rule: str = "incursion") -> dict:
    return {
        "id": f"cue-{i // 3}",
        "seq": None,
        "state": state,
        "rule": rule,
        "site": site,
        "site_name": "Port Alpha",
        "track": 4821,
        "t_s": 1000.0 + i,
        "opened_t_s": 1000.0,
        "severity": "high",
        "confidence": 0.8,
        "pos": [46.5, 31.0, 0.0],
        "vel": [1.0, 2.0, 0.0],
        "sigma_m": 25.0,
        "evidence": {"n_sensors": 2},
        "text": "Unidentified surface track 4821 entered the 2 km buffer of Port Alpha",
        "topic": f"cue.{rule}.{site}",
    }


def test_append_assigns_increasing_seq_and_roundtrips(tmp_path):
    with CueStore(tmp_path / "c.sqlite") as store:
        seqs = [store.append(_cue(i)) for i in range(5)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        got = store.since(0)
        assert [b["seq"] for b in got] == seqs
        assert got[2]["evidence"] == {"n_sensors": 2} and got[2]["t_s"] == 1002.0
        assert store.since(seqs[2]) == got[3:]
        assert store.since(0, limit=2) == got[:2]
        assert store.last_seq() == seqs[-1]
    mode = sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_query_filters_and_open_cues(tmp_path):
    store = CueStore(tmp_path / "c.sqlite")
    store.append(_cue(0, "open", site="a", rule="incursion"))  # cue-0
    store.append(_cue(1, "update", site="a", rule="incursion"))  # cue-0
    store.append(_cue(3, "open", site="b", rule="approach"))  # cue-1
    store.append(_cue(4, "close", site="b", rule="approach"))  # cue-1
    store.append(_cue(6, "open", site="a", rule="loiter"))  # cue-2
    assert [b["t_s"] for b in store.query(site="a")] == [1000.0, 1001.0, 1006.0]
    assert [b["t_s"] for b in store.query(rule="approach")] == [1003.0, 1004.0]
    assert [b["t_s"] for b in store.query(t_from_s=1001.0, t_to_s=1004.0)] == [
        1001.0,
        1003.0,
        1004.0,
    ]
    assert [b["t_s"] for b in store.query(state="open", site="a")] == [1000.0, 1006.0]
    opened = store.open_cues()
    assert [(b["id"], b["state"]) for b in opened] == [("cue-0", "update"), ("cue-2", "open")]
    store.close()


def test_bad_bodies_are_refused(tmp_path):
    store = CueStore(tmp_path / "c.sqlite")
    with pytest.raises(StoreError, match="lacks 'site'"):
        store.append({k: v for k, v in _cue(0).items() if k != "site"})
    with pytest.raises(StoreError, match="unknown cue state"):
        store.append(_cue(0, state="maybe"))
    with pytest.raises(StoreError, match="JSON"):
        store.append({**_cue(0), "confidence": float("nan")})
    assert store.since(0) == []


def test_append_many_is_one_atomic_transaction(tmp_path):
    store = CueStore(tmp_path / "c.sqlite")
    assert store.append(_cue(0)) == 1
    assert store.append_many([_cue(1), _cue(2, "update"), _cue(3)]) == [2, 3, 4]
    assert [b["t_s"] for b in store.since(1)] == [1001.0, 1002.0, 1003.0]
    with pytest.raises(StoreError, match="unknown cue state"):
        store.append_many([_cue(4), _cue(5, state="maybe")])
    assert store.last_seq() == 4  # nothing of the failed batch was stored
    assert store.append_many([]) == []
    assert store.append(_cue(6)) == 5


def test_snapshot_roundtrip(tmp_path):
    store = CueStore(tmp_path / "c.sqlite")
    assert store.load_snapshot() is None
    store.save_snapshot(b"\x00first", 10.0)
    store.save_snapshot(b"\x01second", 20.0)
    store.close()
    assert CueStore(tmp_path / "c.sqlite").load_snapshot() == (b"\x01second", 20.0)


_WRITER = """
import sys
from fusion.store import CueStore
store = CueStore(sys.argv[1])
i = 0
while True:
    body = {"id": f"cue-{i}", "state": "open", "rule": "incursion", "site": "s",
            "track": i, "t_s": float(i), "text": "x" * (i % 500), "evidence": {"i": i}}
    seq = store.append(body)
    print(seq, i, flush=True)
    i += 1
"""


def test_store_survives_sigkill_mid_write(tmp_path):
    db = tmp_path / "crash.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE, env=env, text=True
    )
    acknowledged: dict[int, int] = {}
    deadline = time.monotonic() + 30.0
    try:
        while len(acknowledged) < 300 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            seq, i = map(int, line.split())
            acknowledged[seq] = i
    finally:
        # The child is still appending as fast as it can: the kill lands mid-write.
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        # Lines printed after the last one read are also acknowledged appends.
        for line in child.stdout.read().splitlines():
            seq, i = map(int, line.split())
            acknowledged[seq] = i
    assert child.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 300, "writer too slow or failed to start"
    store = CueStore(db)
    stored = {b["seq"]: b for b in store.since(0, limit=1_000_000)}
    for seq, i in acknowledged.items():
        assert seq in stored, f"acknowledged seq {seq} lost"
        assert stored[seq]["id"] == f"cue-{i}" and stored[seq]["evidence"] == {"i": i}
    # seqs are contiguous: nothing half-written sits between acknowledged events
    assert sorted(stored) == list(range(1, len(stored) + 1))
    assert store.append({"id": "after", "state": "open", "rule": "r", "site": "s", "t_s": 0.0}) == (
        len(stored) + 1
    )


def test_fusion_cues_command_lists_and_filters(tmp_path, capsys):
    import json as _json

    from fusion.cli import main
    from fusion.commands.cues import parse_when

    db = tmp_path / "c.sqlite"
    with CueStore(db) as store:
        for i in range(6):
            store.append(_cue(i, "open" if i % 3 == 0 else "update",
                              site="a" if i < 3 else "b"))  # fmt: skip
    assert main(["cues", "--db", str(db), "--json", "--site", "b"]) == 0
    rows = _json.loads(capsys.readouterr().out)
    assert [r["seq"] for r in rows] == [4, 5, 6] and rows[0]["site"] == "b"
    assert main(["cues", "--db", str(db), "--json", "--after-seq", "4", "--limit", "1"]) == 0
    assert [r["seq"] for r in _json.loads(capsys.readouterr().out)] == [6]
    assert main(["cues", "--db", str(db), "--json", "--since", "1002.5", "--state", "update"]) == 0
    assert [r["t_s"] for r in _json.loads(capsys.readouterr().out)] == [1004.0, 1005.0]
    assert main(["cues", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "6 cue events" in out and "Port Alpha" in out
    assert main(["cues", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert "no cue store" in capsys.readouterr().err
    assert parse_when("15m", now_s=10_000.0) == 10_000.0 - 900.0
    assert parse_when("1970-01-01T01:00:00Z") == 3600.0
    with pytest.raises(ValueError, match="cannot read time"):
        parse_when("yesterday-ish")
