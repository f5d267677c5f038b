"""Wire protocol v1: exact round trips, and hostile bytes never raise anything but ProtocolError."""

from __future__ import annotations

import math

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fusion import protocol
from fusion.messages import (
    KIND_BEARING,
    KIND_EVENT,
    KIND_POLAR,
    KIND_POS,
    Ack,
    CueEvent,
    Detections,
    Heartbeat,
    Status,
    TrackUpdate,
)
from fusion.protocol import ProtocolError, decode, encode

NOW_S = 1_700_000_000.0


def spd_stack(rng: np.random.Generator, n: int, m: int, scale: float = 1.0) -> np.ndarray:
    A = rng.normal(size=(n, m, m))
    return scale * (A @ A.transpose(0, 2, 1) + m * np.eye(m))


def make_det(rng: np.random.Generator, n: int = 5, kind: str = KIND_POS, full: bool = True):
    t = NOW_S - rng.uniform(0, 10, n)
    if kind in (KIND_POS, KIND_EVENT):
        z = np.column_stack(
            [rng.uniform(-90, 90, n), rng.uniform(-180, 180, n), rng.uniform(-100, 12000, n)]
        )
        m = 3
    elif kind == KIND_POLAR:
        z = np.column_stack(
            [rng.uniform(0, 1e5, n), rng.uniform(-np.pi, np.pi, n), rng.uniform(0, 1, n)]
        )
        m = 3
    else:
        z = rng.uniform(-np.pi, np.pi, (n, 2))
        m = 2
    site = None if kind in (KIND_POS, KIND_EVENT) else (46.5, 31.0, 20.0)
    det = Detections("radar-1", int(rng.integers(0, 2**40)), kind, t, z, spd_stack(rng, n, m))
    det.site = site
    if full:
        det.vel = rng.normal(size=(n, 3)) * 10
        det.vel_R = spd_stack(rng, n, 3)
        det.ident = np.array([f"mmsi:{i}".encode() for i in range(n)], dtype="S24")
        det.cls = rng.integers(0, 4, n).astype(np.uint8)
        det.meta = {"source": "test", "gain": 1.5}
    return det


def make_trk(rng: np.random.Generator, n: int = 4) -> TrackUpdate:
    return TrackUpdate(
        t_s=NOW_S,
        id=np.arange(n, dtype=np.int64) + 100,
        pos=np.column_stack([rng.uniform(-90, 90, n), rng.uniform(-180, 180, n), np.zeros(n)]),
        vel=rng.normal(size=(n, 3)),
        P=spd_stack(rng, n, 6),
        status=np.full(n, 2, np.uint8),
        ident=np.array([b"icao:4ca1fa"] * n, dtype="S24"),
        cls=np.ones(n, np.uint8),
        n_sensors=np.full(n, 2, np.uint8),
    )


def assert_same(a, b) -> None:
    assert type(a) is type(b)
    for name, va in vars(a).items():
        vb = getattr(b, name)
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and va.shape == vb.shape, name
            assert np.array_equal(va, vb), name
        else:
            assert va == vb, name


@pytest.mark.parametrize("kind", [KIND_POS, KIND_POLAR, KIND_BEARING, KIND_EVENT])
def test_detections_round_trip_exactly(kind):
    rng = np.random.default_rng(1)
    det = make_det(rng, 50, kind)
    assert_same(det, decode(encode(det), now_s=NOW_S))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 40),
    kind=st.sampled_from([KIND_POS, KIND_POLAR, KIND_BEARING, KIND_EVENT]),
    full=st.booleans(),
)
def test_every_detection_batch_round_trips(seed, n, kind, full):
    det = make_det(np.random.default_rng(seed), n, kind, full)
    assert_same(det, decode(encode(det), now_s=NOW_S))


@settings(max_examples=40, deadline=None)
@given(
    sensor=st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True),
    seq=st.integers(0, 2**63 - 1),
    t_s=st.floats(0, NOW_S),
    status=st.sampled_from(["ok", "degraded", "down"]),
    r=st.floats(1, 1e6),
)
def test_small_messages_round_trip(sensor, seq, t_s, status, r):
    hb = Heartbeat(sensor, t_s, status, (1.0, 2.0, 3.0), {"max_range_m": r})
    assert_same(hb, decode(encode(hb), now_s=NOW_S))
    ack = Ack(sensor, seq)
    assert_same(ack, decode(encode(ack), now_s=NOW_S))
    st_msg = Status(t_s, {sensor: {"state": "alive", "last_hb_s": t_s}}, {"rejects": {"x": 1}})
    assert_same(st_msg, decode(encode(st_msg), now_s=NOW_S))
    cue = CueEvent(
        {"id": "c1", "rule": "incursion", "state": "open", "site": sensor, "t_s": t_s, "seq": seq}
    )
    assert_same(cue, decode(encode(cue), now_s=NOW_S))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 30))
def test_track_updates_round_trip(seed, n):
    trk = make_trk(np.random.default_rng(seed), n)
    assert_same(trk, decode(encode(trk), now_s=NOW_S))


def _valid_frames() -> list[bytes]:
    rng = np.random.default_rng(7)
    return [
        encode(make_det(rng, 3, KIND_POS)),
        encode(make_det(rng, 2, KIND_POLAR, full=False)),
        encode(Heartbeat("ais-1", NOW_S, "ok", None, {"max_range_m": 5e4})),
        encode(Ack("ais-1", 3)),
        encode(make_trk(rng, 2)),
    ]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_frames_give_a_message_or_the_protocol_error(data):
    frame = bytearray(data.draw(st.sampled_from(_valid_frames())))
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        pos = data.draw(st.integers(0, max(0, len(frame) - 1)))
        if op == "flip" and frame:
            frame[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del frame[pos : pos + data.draw(st.integers(1, 16))]
        elif op == "insert":
            frame[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif frame:
            frame[pos] = data.draw(st.integers(0, 255))
    try:
        msg = decode(bytes(frame), now_s=NOW_S)
    except ProtocolError as exc:
        assert exc.reason in protocol.REASONS
    else:
        assert msg.type in protocol.FIELDS


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=512))
def test_random_bytes_give_a_message_or_the_protocol_error(frame):
    try:
        decode(frame, now_s=NOW_S)
    except ProtocolError as exc:
        assert exc.reason in protocol.REASONS


def _wire(det: Detections) -> dict:
    return msgpack.unpackb(encode(det), ext_hook=protocol._ext_hook, raw=False)


def _reason(m: dict) -> str:
    frame = msgpack.packb(m, default=protocol._default, use_bin_type=True)
    with pytest.raises(ProtocolError) as info:
        decode(frame, now_s=NOW_S)
    return info.value.reason


def test_each_kind_of_bad_input_is_rejected_with_its_reason():
    rng = np.random.default_rng(3)
    good = _wire(make_det(rng, 4, KIND_POS))

    def variant(**changes):
        m = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in good.items()}
        for k, v in changes.items():
            if v is None:
                del m[k]
            else:
                m[k] = v
        return m

    assert _reason(variant(v=2)) == "version"
    assert _reason(variant(type="teleport")) == "type"
    assert _reason(variant(seq=None)) == "missing_field"
    assert _reason(variant(seq="7")) == "field_type"
    assert _reason(variant(colour="red")) == "unknown_field"
    assert _reason(variant(z=good["z"][:, :2].copy())) == "shape"
    assert _reason(variant(t=protocol.ext_of(good["t"].astype("<f4")))) == "dtype"
    assert _reason(variant(t=protocol.ext_of(good["t"].astype(">f8")))) == "dtype"
    z = good["z"].copy()
    z[1, 2] = np.nan
    assert _reason(variant(z=z)) == "non_finite"
    z = good["z"].copy()
    z[0, 0] = 91.0
    assert _reason(variant(z=z)) == "lat_lon_range"
    z = good["z"].copy()
    z[0, 1] = 180.5
    assert _reason(variant(z=z)) == "lat_lon_range"
    R = good["R"].copy()
    R[2, 0, 1] += 1.0
    assert _reason(variant(R=R)) == "covariance"
    R = good["R"].copy()
    R[3] = -np.eye(3)
    assert _reason(variant(R=R)) == "covariance"
    R = good["R"].copy()
    R[0] = np.ones((3, 3))  # symmetric, singular
    assert _reason(variant(R=R)) == "covariance"
    assert _reason(variant(t=good["t"] + 3600.0)) == "future_time"
    assert _reason(variant(kind="polar")) == "missing_field"  # polar needs the sensor site
    assert _reason(variant(sensor="radar 1; drop")) == "value"
    assert _reason(variant(cls=np.full(4, 9, np.uint8))) == "value"
    assert _reason(variant(meta={"x": np.zeros(3)})) == "field_type"


def test_oversized_frames_and_batches_are_rejected():
    rng = np.random.default_rng(4)
    limits = protocol.Limits(max_detections=10)
    with pytest.raises(ProtocolError) as info:
        decode(encode(make_det(rng, 11)), now_s=NOW_S, limits=limits)
    assert info.value.reason == "oversized"
    limits = protocol.Limits(max_frame_bytes=100)
    with pytest.raises(ProtocolError) as info:
        decode(encode(make_det(rng, 11)), now_s=NOW_S, limits=limits)
    assert info.value.reason == "oversized"


def test_array_header_lying_about_its_size_is_a_decode_error():
    a = protocol._pack_array(np.zeros(4))
    forged = msgpack.ExtType(1, a.data[:-8])  # header says 4 doubles, 3 follow
    m = {"v": 1, "type": "ack", "sensor": "s", "seq": forged}
    with pytest.raises(ProtocolError) as info:
        decode(msgpack.packb(m, use_bin_type=True), now_s=NOW_S)
    assert info.value.reason == "decode"


def test_decoded_arrays_are_views_of_the_frame_not_copies():
    det = make_det(np.random.default_rng(5), 1000, KIND_POS, full=False)
    out = decode(encode(det), now_s=NOW_S)
    assert not out.z.flags.owndata and not out.z.flags.writeable
    assert math.isclose(float(out.z.sum()), float(det.z.sum()), rel_tol=0, abs_tol=0)
