"""TrackTable slots, growth, ids, memory and snapshots; TrackerConfig validation."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.kernels.packed import TRI, pack, tri, unpack
from fusion.messages import CLS_AIR, CLS_SURFACE, TRACK_STATUS_NAMES
from fusion.tracker_config import TrackerConfig
from fusion.tracks import (
    COASTING,
    CONFIRMED,
    FIELD_NAMES,
    FREE,
    IMM_BYTES_PER_MODE,
    MAIN_BYTES_PER_SLOT,
    TENTATIVE,
    TrackTable,
)


def test_status_codes_match_the_wire_names():
    names = dict(enumerate(TRACK_STATUS_NAMES))
    assert names[FREE] == "free" and names[TENTATIVE] == "tentative"
    assert names[CONFIRMED] == "confirmed" and names[COASTING] == "coasting"


def test_alloc_grows_by_doubling_and_keeps_contents():
    t = TrackTable(4)
    s = t.alloc(3)
    t.x[s, 0] = [1.0, 2.0, 3.0]
    s2 = t.alloc(6)
    assert t.capacity == 16
    assert np.array_equal(s, [0, 1, 2]) and np.array_equal(s2, np.arange(3, 9))
    assert np.array_equal(t.x[:3, 0], [1.0, 2.0, 3.0])
    assert np.array_equal(t.id[:9], np.arange(1, 10))
    assert t.n_active == 9 and np.array_equal(t.active_slots(), np.arange(9))
    assert np.all(t.status[:9] == TENTATIVE) and np.all(t.status[9:] == FREE)


def test_ids_are_never_reused_and_free_slots_are_reused_lowest_first():
    t = TrackTable(8)
    t.alloc(5)
    t.ident[2] = b"mmsi:1"
    t.free(np.array([1, 2]))
    assert t.status[1] == FREE and t.id[2] == 0 and t.ident[2] == b""
    s = t.alloc(3)
    assert np.array_equal(s, [1, 2, 5])
    assert np.array_equal(t.id[s], [6, 7, 8])
    assert t.n_active == 6


def test_memory_per_track_is_under_one_kib():
    t = TrackTable(1 << 14)
    per_slot = t.nbytes() / t.capacity
    assert per_slot == MAIN_BYTES_PER_SLOT == 287
    assert IMM_BYTES_PER_MODE == 8 + 48 + 168
    # An IMM (air) track: its slot plus three modes in the side table, measured on a table
    # whose side table is exactly full (no doubling slack).
    t = TrackTable(64, imm_modes=3)
    t.alloc_imm(t.alloc(64))
    assert t.imm_x.shape[0] == 64
    per_imm_track = t.nbytes() / 64  # the side table's 1-byte `imm_used` flag included
    assert per_imm_track == MAIN_BYTES_PER_SLOT + 3 * IMM_BYTES_PER_MODE + 1 == 960 < 1024


def test_packed_covariances_round_trip_and_index_the_upper_triangle():
    rng = np.random.default_rng(11)
    A = rng.normal(size=(5, 6, 6))
    P = A @ A.transpose(0, 2, 1)
    P = 0.5 * (P + P.transpose(0, 2, 1))  # exactly symmetric
    Pp = pack(P)
    assert Pp.shape == (5, 21)
    assert np.array_equal(unpack(Pp), P)
    for a in range(6):
        for b in range(6):
            assert np.array_equal(Pp[:, TRI[a, b]], P[:, a, b])
            if a <= b:
                assert TRI[a, b] == tri(a, b)
    assert np.array_equal(Pp[:, :6], P[:, 0, :])  # the first row, as is
    with pytest.raises(ValueError, match="symmetric"):
        pack(P + np.triu(np.full((6, 6), 1e-9), 1), check_symmetric=True)
    t = TrackTable(8)
    s = t.alloc(5)
    t.set_covariance(s, P)
    assert np.array_equal(t.covariance(s), P) and np.array_equal(t.P[s], Pp)


def test_imm_side_table_rows_follow_the_tracks():
    t = TrackTable(4, imm_modes=3)
    s = t.alloc(4)
    t.alloc_imm(s[[1, 3]])
    assert t.imm_slot[1] >= 0 and t.imm_slot[3] >= 0 and t.imm_slot[0] == -1
    t.imm_x[t.imm_slot[3], 2, 0] = 42.0
    t.free(np.array([1]))
    assert t.imm_slot[1] == -1 and int(t.imm_used.sum()) == 1
    more = t.alloc(20)
    t.alloc_imm(more)
    assert t.imm_x[t.imm_slot[3], 2, 0] == 42.0  # survives the side table's growth
    assert len(set(t.imm_slot[t.imm_slot >= 0].tolist())) == 21


def test_snapshot_round_trip():
    rng = np.random.default_rng(3)
    t = TrackTable(4)
    s = t.alloc(7)
    t.x[s] = rng.normal(size=(7, 6))
    t.set_covariance(s, np.eye(6) * rng.uniform(1, 2, size=(7, 1, 1)))
    t.ident[s[2]] = b"icao:4ca1fa"
    t.cls[s] = CLS_SURFACE
    t.cls[s[4]] = CLS_AIR
    t.alloc_imm(s[[4]])
    t.imm_mu[t.imm_slot[s[4]]] = [0.5, 0.25, 0.25]
    t.free(s[[0, 5]])
    d = t.to_arrays()
    u = TrackTable.from_arrays(d)
    keep = t.active_slots()
    for name in FIELD_NAMES:
        if name == "imm_slot":
            continue
        assert np.array_equal(getattr(u, name)[: len(keep)], getattr(t, name)[keep]), name
    assert u.next_id == t.next_id == 8
    k = int(np.flatnonzero(keep == s[4])[0])
    assert np.array_equal(u.imm_mu[u.imm_slot[k]], [0.5, 0.25, 0.25])
    bad = dict(d, next_id=3)
    with pytest.raises(ValueError, match="next_id"):
        TrackTable.from_arrays(bad)
    with pytest.raises(ValueError, match="shape"):
        TrackTable.from_arrays(dict(d, x=np.zeros((2, 6))))
    # Snapshots carry full covariances (the layout before packing): they restore exactly, and
    # one that is not symmetric is refused rather than silently halved.
    assert np.asarray(d["P"]).shape == (5, 6, 6)
    assert np.array_equal(u.covariance(np.arange(5)), t.covariance(keep))
    skew = np.array(d["P"])
    skew[1, 0, 3] += 1.0
    with pytest.raises(ValueError, match="symmetric"):
        TrackTable.from_arrays(dict(d, P=skew))


def test_config_defaults_and_validation():
    c = TrackerConfig()
    a = c.class_arrays()
    assert a["imm"][CLS_AIR] and not a["imm"][CLS_SURFACE]
    assert a["gate2_pos"][0] == pytest.approx(16.266, abs=1e-3)
    assert a["q_h_m2s3"][CLS_AIR] > a["q_h_m2s3"][CLS_SURFACE]
    assert TrackerConfig.from_dict(c.to_dict()) == c
    assert c.with_class("air", confirm_m=2).classes["air"].confirm_m == 2
    with pytest.raises(ValueError, match="confirm_m"):
        c.with_class("ground", confirm_m=6, confirm_n=5)
    with pytest.raises(ValueError, match="gate_prob"):
        c.with_all_classes(gate_prob=1.0)
