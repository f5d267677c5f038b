"""The service's pieces without sockets: config validation, duplicate windows, the reorder
buffer and its late policy, liveness, histograms, the query handler, cue topics."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from fusion.config import ConfigError, is_loopback, load_config
from fusion.metrics import Histogram
from fusion.service.dedup import SeqWindow, SeqWindows
from fusion.service.liveness import Liveness
from fusion.service.publisher import cue_topic
from fusion.service.query import QueryHandler
from fusion.service.reorder import ReorderBuffer

BASE = """
[service]
ingest = "tcp://127.0.0.1:6001"
"""


def test_demo_config_loads():
    c = load_config("configs/fusion.toml", run_dir="/tmp/r")
    assert c.service.ingest == "tcp://127.0.0.1:5555"
    assert str(c.service.store) == "/tmp/r/cues.sqlite"
    assert str(c.security.keys_dir) == "/tmp/r/keys"
    assert c.theatre.sites is not None and c.theatre.sites.name == "demo.geojson"
    assert [a.name for a in c.security.allow] == ["sim", "subscriber"]
    assert c.security.plaintext_loopback is False


@pytest.mark.parametrize(
    "text, match",
    [
        ("[service]\nbogus = 1\n", r"service\] has unknown key\(s\) bogus"),
        ('[service]\nreorder_lag_s = "x"\n', "service.reorder_lag_s: expected float"),
        ("[service]\nreorder_lag_s = -1\n", "must be >= 0"),
        ("[service]\nmetrics_port = 70000\n", "between 0 and 65535"),
        ('[service]\ningest = "udp://x:1"\n', "must be tcp"),
        ('[service]\nlate_policy = "later"\n', "late_policy"),
        ('[service]\nquery = "tcp://127.0.0.1:5555"\n', "must be distinct"),
        ("[security]\nplaintext_loopback = 1\n", "expected true or false"),
        (
            '[security]\nplaintext_loopback = true\n[service]\npublish = "tcp://0.0.0.0:1"\n',
            "only on loopback",
        ),
        ('[[security.allow]]\nname = "a"\n', "needs the sensor ids"),
        ('[[security.allow]]\nname = "a"\nrole = "boss"\nsensors=["x"]\n', "role"),
        ("[theatre]\norigin = [95, 0, 0]\n", "outside lat/lon"),
        ("[theatre]\norigin = [1, 2]\n", r"\[lat_deg, lon_deg, alt_m\]"),
        ('[recording]\nenabled = "yes"\n', "expected true or false"),
        ("not toml [", "not valid TOML"),
        ("service = 3\n", "expected dict"),
    ],
)
def test_config_errors_name_the_key(text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(text=text)


def test_loopback():
    assert is_loopback("tcp://127.0.0.1:1") and is_loopback("tcp://[::1]:1")
    assert is_loopback("ipc:///tmp/x") and is_loopback("tcp://localhost:5")
    assert not is_loopback("tcp://0.0.0.0:1") and not is_loopback("tcp://10.1.2.3:1")


def test_seq_window_against_a_set():
    rng = np.random.default_rng(3)
    w = SeqWindow(window=64)
    seen: set[int] = set()
    hwm = -1
    for _ in range(5000):
        seq = int(max(0, hwm + rng.integers(-40, 5)))
        new = w.check_and_add(seq)
        # Within the window the answer is exact; below it everything counts as seen.
        expected = seq not in seen and seq > hwm - 64
        assert new == expected, seq
        if new:
            seen.add(seq)
            hwm = max(hwm, seq)
    restored = SeqWindow.from_state(w.to_state(), 64)
    for seq in range(hwm - 70, hwm + 3):
        assert restored.seen(seq) == w.seen(seq)


def test_seq_windows_tolerate_gaps_and_jumps():
    ws = SeqWindows(16)
    assert ws.check_and_add("a", 10**15)  # a time-based first seq
    assert not ws.check_and_add("a", 10**15)
    assert ws.check_and_add("a", 10**15 + 1000)  # the adapter dropped some: no stall
    assert ws.check_and_add("b", 1)
    assert ws.copy().to_state() == ws.to_state()


def test_reorder_releases_in_time_order_after_the_lag():
    rb = ReorderBuffer(lag_s=1.0)
    rb.push("b", key_s=5.0, recv_s=100.0)
    rb.push("a", key_s=3.0, recv_s=100.2)
    rb.push("c", key_s=6.0, recv_s=100.5)
    assert rb.pop_ready(100.9) == []
    assert rb.next_release_s() == pytest.approx(101.0)
    # At 101.0 "b" has been held 1 s: the watermark is 5.0, so "a" (older) goes first.
    assert rb.pop_ready(101.0) == ["a", "b"]
    assert rb.depth == 1
    assert rb.drain() == ["c"]
    assert rb.late == 0


@pytest.mark.parametrize("policy", ["process", "drop"])
def test_reorder_late_policy(policy):
    rb = ReorderBuffer(lag_s=0.5, late_policy=policy)
    rb.push("x", 10.0, 0.0)
    assert rb.pop_ready(1.0) == ["x"]
    kept = rb.push("late", 9.0, 1.1)  # older than what was released
    assert rb.late == 1
    if policy == "process":
        assert kept and rb.pop_ready(1.1) == ["late"]
    else:
        assert not kept and rb.late_dropped == 1 and rb.pop_ready(5.0) == []


def test_reorder_matches_a_sort_on_random_streams():
    rng = np.random.default_rng(7)
    lag = 0.3
    rb = ReorderBuffer(lag_s=lag)
    out = []
    t = 0.0
    for i in range(2000):
        t += rng.exponential(0.01)
        # Measurement times jitter by less than the lag: nothing may come out late.
        key = t - rng.uniform(0, lag * 0.9)
        rb.push((key, i), key, t)
        out += rb.pop_ready(t)
    out += rb.drain()
    assert rb.late == 0
    assert out == sorted(out)
    assert len(out) == 2000


def test_min_pending():
    rb = ReorderBuffer(lag_s=1.0)
    for seq, key in [(5, 1.0), (3, 2.0), (9, 0.5)]:
        rb.push(("s", seq), key, 0.0)
    assert rb.min_pending(lambda it: it) == {"s": 3}


def test_liveness_states():
    lv = Liveness(late_s=5, lost_s=30)
    lv.heartbeat("r1", now_s=100.0)
    assert lv.state("r1", 104.0) == "alive"
    assert lv.state("r1", 110.0) == "late"
    assert lv.state("r1", 131.0) == "lost"
    lv.heartbeat("r1", 131.0, status="down")
    assert lv.state("r1", 131.0) == "lost"
    lv.detections("quiet", 200.0)  # never heartbeats: its data counts as life
    assert lv.state("quiet", 201.0) == "alive"
    assert lv.state("unknown", 0.0) == "lost"
    assert lv.counts(201.0) == {"alive": 1, "late": 0, "lost": 1}


def test_histogram_counts_and_quantiles():
    h = Histogram((0.1, 1.0))
    h.observe_many(np.array([0.05, 0.1, 0.5, 2.0]))
    h.observe(0.01)
    assert h.counts.tolist() == [3, 1, 1]
    assert h.count == 5 and h.sum == pytest.approx(2.66)
    fam = h.family("x_seconds", "doc")
    buckets = {s.labels.get("le"): s.value for s in fam.samples if s.name.endswith("_bucket")}
    assert buckets == {"0.1": 3, "1.0": 4, "+Inf": 5}
    assert h.quantile(0.5) == pytest.approx(0.1)


class _Backend:
    def __init__(self):
        self.cues = [{"seq": i, "id": f"c{i}"} for i in range(1, 8)]
        self.drops = 0

    def query_since(self, seq, limit):
        return [c for c in self.cues if c["seq"] > seq][:limit]

    def last_cue_seq(self):
        return 7

    def query_open_cues(self):
        return self.cues[-2:]

    def report_drops(self, missed):
        self.drops += missed


def _ask(h, req):
    return msgpack.unpackb(h.answer(msgpack.packb(req)), raw=False)


def test_query_handler_pages_and_rejects_bad_requests():
    b = _Backend()
    h = QueryHandler(b)
    r = _ask(h, {"q": "since", "seq": 2, "limit": 3})
    assert [c["seq"] for c in r["cues"]] == [3, 4, 5] and r["more"] and r["last_seq"] == 5
    r = _ask(h, {"q": "since", "seq": 5, "limit": 3})
    assert [c["seq"] for c in r["cues"]] == [6, 7] and not r["more"]
    assert _ask(h, {"q": "open_cues"})["last_seq"] == 7
    assert _ask(h, {"q": "report", "missed": 4})["ok"] and b.drops == 4
    for bad in ({"q": "since", "seq": -1}, {"q": "nope"}, {"x": 1}, {"q": "report", "missed": "a"}):
        assert _ask(h, bad)["ok"] is False
    assert msgpack.unpackb(h.answer(b"\xc1garbage"), raw=False)["error"] == "decode"
    assert msgpack.unpackb(h.answer(b"x" * 10000), raw=False)["error"] == "oversized"


def test_cue_topics_are_prefix_filterable():
    assert cue_topic({"rule": "incursion", "site": "port-alpha"}) == "cue.incursion.port-alpha"
    assert cue_topic({"rule": "loiter", "site": "a.b c"}) == "cue.loiter.a_b_c"


def test_snapshot_file_is_atomic_and_checked(tmp_path):
    from fusion.service.snapshots import SnapshotFile, SnapshotWriter

    f = SnapshotFile(tmp_path / "s" / "x.snapshot")
    assert f.load() is None
    f.write(b"one", 1.0)
    assert f.load() == (b"one", 1.0)
    w = SnapshotWriter(f)
    for i in range(20):
        w.submit(b"blob%d" % i, float(i), i)
    assert w.flush(10)
    done = w.completed()
    assert done[-1] == 19 and done == sorted(done)  # in order; superseded ones skipped
    assert len(done) + w.superseded == 20
    w.close()
    assert f.load() == (b"blob19", 19.0)
    raw = bytearray(f.path.read_bytes())
    raw[-1] ^= 0xFF
    f.path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="damaged"):
        f.load()


def test_store_append_many_is_one_transaction(tmp_path):
    from fusion.store import CueStore, StoreError

    s = CueStore(tmp_path / "c.sqlite")
    body = {"id": "c", "state": "open", "rule": "incursion", "site": "p", "t_s": 1.0}
    assert s.append(body) == 1
    assert s.append_many([dict(body, id=f"c{i}") for i in range(5)]) == [2, 3, 4, 5, 6]
    with pytest.raises(StoreError):
        s.append_many([body, {"id": "broken"}])
    assert s.last_seq() == 6  # nothing of the failed batch was stored
    s.close()


def test_ingest_bounds_sensor_ids_and_binding_labels(monkeypatch):
    import time

    import zmq

    from fusion import protocol
    from fusion.config import AllowEntry
    from fusion.security import Allowlist
    from fusion.service import ingest as ingest_mod
    from fusion.service.ingest import Ingest
    from fusion.service.testing import make_batch

    monkeypatch.setattr(ingest_mod, "MAX_SENSORS", 3)
    monkeypatch.setattr(ingest_mod, "MAX_BINDING_LABELS", 2)
    allow = Allowlist(plaintext=True)
    key, _ = zmq.curve_keypair()
    allow.add(AllowEntry("a", "a", "adapter", ("ok",)), key)
    ing = Ingest(allow, SeqWindows(), authenticate=False)
    for i in range(5):
        ing.handle(
            [zmq.Frame(b"id"), zmq.Frame(protocol.encode(make_batch(f"s{i}", 1)))], time.time()
        )
    assert ing.batches == 3 and ing.rejects == {"too_many_sensors": 2}
    ing2 = Ingest(allow, SeqWindows())
    ing2.authenticate = True

    class F:  # a frame admitted as "a" by ZAP
        def __init__(self, data):
            self.buffer = memoryview(data)

        def get(self, name):
            return "a"

    for i in range(4):
        ing2.handle([zmq.Frame(b"id"), F(protocol.encode(make_batch(f"x{i}", 1)))], time.time())
    assert ing2.binding_rejects == {("a", "x0"): 1, ("a", "x1"): 1, ("a", "_other"): 2}


@pytest.mark.parametrize(
    "extra, match",
    [
        ('[theatre]\nsites = "missing.geojson"\n', "theatre.sites"),
        ('[theatre]\nsites = "sites/demo.geojson"\n[rules]\nbogus = 1\n', r"\[rules\]"),
        ("[tracker]\nbogus = 1\n", r"\[tracker\] has unknown key"),
    ],
)
def test_core_configuration_errors_are_config_errors(tmp_path, extra, match):
    from pathlib import Path

    from fusion.service.core import FusionCore

    config_dir = Path("configs").resolve()
    c = load_config(config_dir / "x.toml", text=extra)
    with pytest.raises(ConfigError, match=match):
        FusionCore(c)
