"""Wire protocol version 1: the msgpack codec and the validator of every message.

A frame is one msgpack map with ``v`` (the version) and ``type``. Numeric arrays travel as
msgpack extension type 1 whose payload is the array's raw bytes behind a small header::

    u8 len(dtype) | dtype string, ascii (e.g. "<f8") | u8 ndim | ndim x u32 LE shape | raw bytes

so a batch of 10,000 detections decodes with `numpy.frombuffer`, without a Python loop per
detection. The arrays returned by `decode` are read-only views of the frame.

Everything a peer sends goes through `decode`, which either returns a valid message or raises
`ProtocolError` with a short reason code (counted in metrics by that code): never another
exception, whatever the bytes. docs/protocol.md documents every field; a test keeps it and
`FIELDS` in agreement.
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from fusion.kernels.validate import SPD_ASYMMETRIC, SPD_NON_FINITE, SPD_NOT_POSITIVE, spd_status
from fusion.messages import (
    IDENT_DTYPE,
    KIND_BEARING,
    KIND_EVENT,
    KIND_POLAR,
    KIND_POS,
    KINDS,
    VERSION,
    Z_WIDTH,
    Ack,
    CueEvent,
    Detections,
    Heartbeat,
    Message,
    Status,
    TrackUpdate,
)

EXT_NDARRAY = 1
_ALLOWED_DTYPES = {"<f8", "<i8", "|u1"}  # plus |S1 .. |S24 for identities
CUE_STATES = ("open", "update", "close")

# The reason codes ProtocolError carries, each a metrics label.
REASONS = (
    "decode",  # not msgpack, truncated, trailing bytes, bad extension payload
    "oversized",  # frame or batch larger than the limits
    "version",  # v is not a supported version
    "type",  # unknown message type
    "missing_field",
    "unknown_field",
    "field_type",  # a field of the wrong Python/msgpack type
    "shape",  # an array of the wrong shape, or an empty batch
    "dtype",  # an array of a dtype other than the one the field requires
    "non_finite",  # NaN or infinity
    "lat_lon_range",  # latitude outside [-90, 90] or longitude outside [-180, 180]
    "covariance",  # not symmetric positive definite
    "future_time",  # measurement time too far ahead of the receiver's clock
    "value",  # any other out-of-range value (negative range, bad class code, ...)
)


class ProtocolError(ValueError):
    """A frame that is not a valid version-1 message. `reason` is one of REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    """Bounds on what one frame may carry; the service may configure them."""

    max_frame_bytes: int = 16 * 1024 * 1024
    max_detections: int = 100_000
    max_future_s: float = 300.0  # clock skew tolerated between a sensor and fusion
    max_meta_entries: int = 32
    max_string_len: int = 256
    max_tracks: int = 1_000_000


DEFAULT_LIMITS = Limits()

# Field tables: name -> (required, description of the wire type). docs/protocol.md lists the
# same names; tests/test_protocol_doc.py holds the two together.
FIELDS: dict[str, dict[str, tuple[bool, str]]] = {
    "det": {
        "v": (True, "int"),
        "type": (True, "str"),
        "sensor": (True, "str"),
        "seq": (True, "int"),
        "kind": (True, "str"),
        "t": (True, "ndarray <f8 (n,)"),
        "z": (True, "ndarray <f8 (n, m)"),
        "R": (True, "ndarray <f8 (n, m, m)"),
        "site": (False, "[lat_deg, lon_deg, alt_m]"),
        "vel": (False, "ndarray <f8 (n, 3)"),
        "vel_R": (False, "ndarray <f8 (n, 3, 3)"),
        "ident": (False, "ndarray |S24 (n,)"),
        "cls": (False, "ndarray |u1 (n,)"),
        "meta": (False, "map"),
    },
    "hb": {
        "v": (True, "int"),
        "type": (True, "str"),
        "sensor": (True, "str"),
        "t_s": (True, "float"),
        "status": (True, "str"),
        "site": (False, "[lat_deg, lon_deg, alt_m]"),
        "coverage": (False, "map"),
    },
    "ack": {
        "v": (True, "int"),
        "type": (True, "str"),
        "sensor": (True, "str"),
        "seq": (True, "int"),
    },
    "trk": {
        "v": (True, "int"),
        "type": (True, "str"),
        "t_s": (True, "float"),
        "id": (True, "ndarray <i8 (n,)"),
        "pos": (True, "ndarray <f8 (n, 3)"),
        "vel": (True, "ndarray <f8 (n, 3)"),
        "P": (True, "ndarray <f8 (n, 6, 6)"),
        "status": (True, "ndarray |u1 (n,)"),
        "ident": (True, "ndarray |S24 (n,)"),
        "cls": (True, "ndarray |u1 (n,)"),
        "n_sensors": (True, "ndarray |u1 (n,)"),
    },
    "cue": {
        "v": (True, "int"),
        "type": (True, "str"),
        "body": (True, "map"),
    },
    "status": {
        "v": (True, "int"),
        "type": (True, "str"),
        "t_s": (True, "float"),
        "sensors": (True, "map"),
        "counters": (True, "map"),
    },
}
# Keys a cue body must carry (the rest of the body is free-form evidence, bounded in size).
CUE_REQUIRED = {"id": str, "rule": str, "state": str, "site": str, "t_s": float}
HB_STATUSES = ("ok", "degraded", "down")

_SENSOR_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


# --------------------------------------------------------------------------- encoding


def _pack_array(a: np.ndarray) -> msgpack.ExtType:
    """Normalises an array to its wire dtype (little-endian float64, int64, uint8 or bytes)."""
    if a.dtype.kind == "f":
        a = np.ascontiguousarray(a, dtype="<f8")
    elif a.dtype.kind in "iu" and a.dtype.itemsize == 1:
        a = np.ascontiguousarray(a, dtype="|u1")
    elif a.dtype.kind in "iu":
        a = np.ascontiguousarray(a, dtype="<i8")
    elif a.dtype.kind == "S":
        a = np.ascontiguousarray(a)
    else:
        raise TypeError(f"cannot encode an array of dtype {a.dtype}")
    return ext_of(a)


def ext_of(a: np.ndarray) -> msgpack.ExtType:
    """The extension value of an array exactly as it is (tests use it to forge bad dtypes)."""
    a = np.ascontiguousarray(a)
    dtype = a.dtype.str.encode("ascii")
    header = struct.pack(f"<B{len(dtype)}sB{a.ndim}I", len(dtype), dtype, a.ndim, *a.shape)
    return msgpack.ExtType(EXT_NDARRAY, header + a.tobytes())


def _site_list(site: tuple[float, float, float] | None) -> list[float] | None:
    return None if site is None else [float(v) for v in site]


def to_wire(msg: Message) -> dict[str, Any]:
    """The msgpack map of a message (arrays as numpy arrays, packed by `encode`)."""
    m: dict[str, Any] = {"v": VERSION, "type": msg.type}
    if isinstance(msg, Detections):
        m.update(sensor=msg.sensor, seq=int(msg.seq), kind=msg.kind, t=msg.t, z=msg.z, R=msg.R)
        for name in ("vel", "vel_R", "ident", "cls"):
            value = getattr(msg, name)
            if value is not None:
                m[name] = value
        if msg.site is not None:
            m["site"] = _site_list(msg.site)
        if msg.meta:
            m["meta"] = msg.meta
    elif isinstance(msg, Heartbeat):
        m.update(sensor=msg.sensor, t_s=float(msg.t_s), status=msg.status)
        if msg.site is not None:
            m["site"] = _site_list(msg.site)
        if msg.coverage:
            m["coverage"] = msg.coverage
    elif isinstance(msg, Ack):
        m.update(sensor=msg.sensor, seq=int(msg.seq))
    elif isinstance(msg, TrackUpdate):
        m.update(
            t_s=float(msg.t_s),
            id=msg.id,
            pos=msg.pos,
            vel=msg.vel,
            P=msg.P,
            status=msg.status,
            ident=msg.ident,
            cls=msg.cls,
            n_sensors=msg.n_sensors,
        )
    elif isinstance(msg, CueEvent):
        m["body"] = msg.body
    elif isinstance(msg, Status):
        m.update(t_s=float(msg.t_s), sensors=msg.sensors, counters=msg.counters)
    else:
        raise TypeError(f"not a protocol message: {type(msg).__name__}")
    return m


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return _pack_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def encode(msg: Message) -> bytes:
    """The frame of one message."""
    return msgpack.packb(to_wire(msg), default=_default, use_bin_type=True, strict_types=False)


# --------------------------------------------------------------------------- decoding


def _ext_hook(code: int, data: bytes) -> np.ndarray:
    if code != EXT_NDARRAY:
        raise ProtocolError("decode", f"unknown extension type {code}")
    try:
        n = data[0]
        dtype = data[1 : 1 + n].decode("ascii")
        ndim = data[1 + n]
        off = 2 + n
        shape = struct.unpack_from(f"<{ndim}I", data, off)
        off += 4 * ndim
    except (IndexError, UnicodeDecodeError, struct.error) as exc:
        raise ProtocolError("decode", f"bad array header: {exc}") from None
    if dtype not in _ALLOWED_DTYPES and not (
        dtype.startswith("|S") and dtype[2:].isdigit() and 1 <= int(dtype[2:]) <= 24
    ):
        raise ProtocolError("dtype", f"array dtype {dtype!r} is not allowed")
    dt = np.dtype(dtype)
    count = math.prod(shape)
    if count * dt.itemsize != len(data) - off:
        raise ProtocolError(
            "decode",
            f"array of shape {shape} and dtype {dtype} needs "
            f"{count * dt.itemsize} bytes, got {len(data) - off}",
        )
    return np.frombuffer(data, dtype=dt, count=count, offset=off).reshape(shape)


def decode(
    frame: bytes | memoryview,
    *,
    now_s: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Message:
    """Decodes and validates one frame. `now_s` is the receiver's clock for the future-time check
    (None: the wall clock; pass the replay's clock in replay mode, or `math.inf` to skip)."""
    if len(frame) > limits.max_frame_bytes:
        raise ProtocolError("oversized", f"frame of {len(frame)} bytes")
    try:
        m = msgpack.unpackb(
            frame,
            ext_hook=_ext_hook,
            raw=False,
            strict_map_key=True,
        )
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack raises a zoo of types on hostile bytes
        raise ProtocolError("decode", f"{type(exc).__name__}: {exc}") from None
    return from_wire(m, now_s=now_s, limits=limits)


def from_wire(m: Any, *, now_s: float | None = None, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Validates a decoded msgpack map and builds the message."""
    if not isinstance(m, dict):
        raise ProtocolError("decode", f"a frame is a map, got {type(m).__name__}")
    v = m.get("v")
    if v is None:
        raise ProtocolError("missing_field", "v")
    if type(v) is not int or v != VERSION:
        raise ProtocolError("version", f"version {v!r} is not supported (this is {VERSION})")
    kind = m.get("type")
    if not isinstance(kind, str) or kind not in FIELDS:
        raise ProtocolError("type", f"unknown message type {kind!r}")
    fields = FIELDS[kind]
    for name, (required, _) in fields.items():
        if required and name not in m:
            raise ProtocolError("missing_field", f"{kind}.{name}")
    for name in m:
        if name not in fields:
            raise ProtocolError("unknown_field", f"{kind}.{name!s:.40}")
    if now_s is None:
        now_s = time.time()
    return _BUILDERS[kind](m, now_s, limits)


def validate(msg: Message, now_s: float | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raises ProtocolError when a message built in Python would not pass `decode`."""
    decode(encode(msg), now_s=now_s, limits=limits)


# --------------------------------------------------------------------------- field checks


def _str(m: dict, name: str, limits: Limits) -> str:
    value = m[name]
    if not isinstance(value, str):
        raise ProtocolError("field_type", f"{name} must be a string")
    if not value or len(value) > limits.max_string_len:
        raise ProtocolError("value", f"{name} must have 1 to {limits.max_string_len} characters")
    return value


def _sensor(m: dict, limits: Limits) -> str:
    value = _str(m, "sensor", limits)
    if len(value) > 64 or not _SENSOR_CHARS.issuperset(value):
        raise ProtocolError("value", "sensor id: at most 64 of [A-Za-z0-9_.:-]")
    return value


def _int(m: dict, name: str) -> int:
    value = m[name]
    if type(value) is not int:
        raise ProtocolError("field_type", f"{name} must be an integer")
    if not 0 <= value < 2**63:
        raise ProtocolError("value", f"{name} out of range")
    return value


def _float(m: dict, name: str) -> float:
    value = m[name]
    if type(value) not in (int, float):
        raise ProtocolError("field_type", f"{name} must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise ProtocolError("non_finite", name)
    return value


def _time(m: dict, name: str, now_s: float, limits: Limits) -> float:
    t_s = _float(m, name)
    if t_s < 0:
        raise ProtocolError("value", f"{name} before the epoch")
    if t_s > now_s + limits.max_future_s:
        raise ProtocolError("future_time", f"{name} {t_s - now_s:.0f} s ahead of the clock")
    return t_s


def _site(m: dict) -> tuple[float, float, float] | None:
    if "site" not in m:
        return None
    site = m["site"]
    if (
        not isinstance(site, list)
        or len(site) != 3
        or any(type(v) not in (int, float) for v in site)
    ):
        raise ProtocolError("field_type", "site must be [lat_deg, lon_deg, alt_m]")
    lat, lon, alt = (float(v) for v in site)
    if not all(math.isfinite(v) for v in (lat, lon, alt)):
        raise ProtocolError("non_finite", "site")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ProtocolError("lat_lon_range", f"site ({lat}, {lon})")
    return (lat, lon, alt)


def _map(m: dict, name: str, limits: Limits, max_depth: int = 3) -> dict:
    value = m[name]
    if not isinstance(value, dict):
        raise ProtocolError("field_type", f"{name} must be a map")
    _check_plain(value, name, limits, max_depth)
    return value


def _check_plain(value: Any, where: str, limits: Limits, depth: int) -> None:
    """Small, plain data only: bounded size and depth, no arrays inside free-form maps."""
    if isinstance(value, dict):
        if depth <= 0 or len(value) > 4 * limits.max_meta_entries:
            raise ProtocolError("value", f"{where} too large or too deep")
        for k, v in value.items():
            if not isinstance(k, str):
                raise ProtocolError("field_type", f"{where} keys must be strings")
            _check_plain(v, where, limits, depth - 1)
    elif isinstance(value, list):
        if depth <= 0 or len(value) > 4096:
            raise ProtocolError("value", f"{where} too large or too deep")
        for v in value:
            _check_plain(v, where, limits, depth - 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ProtocolError("non_finite", where)
    elif isinstance(value, str | bytes):
        if len(value) > 16 * limits.max_string_len:
            raise ProtocolError("value", f"{where} string too long")
    elif value is not None and not isinstance(value, bool | int):
        raise ProtocolError("field_type", f"{where} holds a {type(value).__name__}")


def _array(
    m: dict, name: str, dtype: str, shape: tuple[int | None, ...], finite: bool = True
) -> np.ndarray:
    a = m[name]
    if not isinstance(a, np.ndarray):
        raise ProtocolError("field_type", f"{name} must be an array")
    if dtype == "S":
        if a.dtype.kind != "S":
            raise ProtocolError("dtype", f"{name} must be bytes strings, got {a.dtype.str}")
    elif a.dtype.str != dtype:
        raise ProtocolError("dtype", f"{name} must be {dtype}, got {a.dtype.str}")
    if a.ndim != len(shape) or any(
        s is not None and s != d for s, d in zip(shape, a.shape, strict=False)
    ):
        raise ProtocolError("shape", f"{name} has shape {a.shape}, expected {shape}")
    if finite and a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ProtocolError("non_finite", name)
    return a


def _spd(name: str, A: np.ndarray) -> None:
    """Symmetric positive definite, every matrix of a stack (n, m, m), in one compiled pass."""
    status = spd_status(A, 1e-9)
    if status == SPD_NON_FINITE:
        raise ProtocolError("non_finite", name)
    if status == SPD_ASYMMETRIC:
        raise ProtocolError("covariance", f"{name} is not symmetric")
    if status == SPD_NOT_POSITIVE:
        raise ProtocolError("covariance", f"{name} is not positive definite")


def _lat_lon(name: str, lat_deg: np.ndarray, lon_deg: np.ndarray) -> None:
    if (np.abs(lat_deg) > 90.0).any() or (np.abs(lon_deg) > 180.0).any():
        raise ProtocolError("lat_lon_range", f"{name} latitude or longitude out of range")


# --------------------------------------------------------------------------- builders


def _build_det(m: dict, now_s: float, limits: Limits) -> Detections:
    sensor = _sensor(m, limits)
    seq = _int(m, "seq")
    kind = _str(m, "kind", limits)
    if kind not in KINDS:
        raise ProtocolError("value", f"unknown detection kind {kind!r}")
    t = m["t"]
    if not isinstance(t, np.ndarray):
        raise ProtocolError("field_type", "t must be an array")
    n = t.shape[0] if t.ndim == 1 else -1
    if n > limits.max_detections:
        raise ProtocolError("oversized", f"{n} detections, at most {limits.max_detections}")
    t = _array(m, "t", "<f8", (None,))
    if n == 0:
        raise ProtocolError("shape", "empty batch")
    z = _array(m, "z", "<f8", (n, None))
    width = z.shape[1]
    if width not in Z_WIDTH[kind]:
        raise ProtocolError("shape", f"{kind} z has {width} columns, expected {Z_WIDTH[kind]}")
    R = _array(m, "R", "<f8", (n, width, width), finite=False)  # _spd checks finiteness
    if (t < 0).any():
        raise ProtocolError("value", "t before the epoch")
    if t.max() > now_s + limits.max_future_s:
        raise ProtocolError("future_time", f"t {t.max() - now_s:.0f} s ahead of the clock")
    _spd("R", R)
    site = _site(m)
    if kind in (KIND_POS, KIND_EVENT):
        _lat_lon("z", z[:, 0], z[:, 1])
    else:
        if site is None:
            raise ProtocolError("missing_field", f"det.site is required for kind {kind}")
        if kind == KIND_POLAR and (z[:, 0] < 0).any():
            raise ProtocolError("value", "negative range")
    if kind != KIND_BEARING and (np.abs(z[:, 2 if kind != KIND_POLAR else 0]) > 1e7).any():
        raise ProtocolError("value", "altitude or range beyond 10,000 km")
    vel = vel_R = ident = cls = None
    if "vel" in m:
        vel = _array(m, "vel", "<f8", (n, 3))
        if (np.abs(vel) > 1e4).any():
            raise ProtocolError("value", "velocity beyond 10 km/s")
    if "vel_R" in m:
        if vel is None:
            raise ProtocolError("missing_field", "det.vel_R given without det.vel")
        vel_R = _array(m, "vel_R", "<f8", (n, 3, 3), finite=False)
        _spd("vel_R", vel_R)
    if "ident" in m:
        ident = _array(m, "ident", "S", (n,)).astype(IDENT_DTYPE)
    if "cls" in m:
        cls = _array(m, "cls", "|u1", (n,))
        if (cls > 3).any():
            raise ProtocolError("value", "class code above 3")
    meta = None
    if "meta" in m:
        meta = _map(m, "meta", limits)
        if len(meta) > limits.max_meta_entries:
            raise ProtocolError("value", "meta has too many entries")
    return Detections(sensor, seq, kind, t, z, R, site, vel, vel_R, ident, cls, meta)


def _build_hb(m: dict, now_s: float, limits: Limits) -> Heartbeat:
    sensor = _sensor(m, limits)
    t_s = _time(m, "t_s", now_s, limits)
    status = _str(m, "status", limits)
    if status not in HB_STATUSES:
        raise ProtocolError("value", f"heartbeat status {status!r} not in {HB_STATUSES}")
    coverage = _map(m, "coverage", limits) if "coverage" in m else {}
    r = coverage.get("max_range_m")
    if r is not None and (type(r) not in (int, float) or not 0 < r < 1e7):
        raise ProtocolError("value", "coverage.max_range_m must be a positive number")
    polygon = coverage.get("polygon")
    if polygon is not None:
        try:
            ring = np.asarray(polygon, dtype=np.float64)
        except (TypeError, ValueError):
            raise ProtocolError(
                "field_type", "coverage.polygon must be [[lat, lon], ...]"
            ) from None
        if ring.ndim != 2 or ring.shape[1] != 2 or ring.shape[0] < 3:
            raise ProtocolError("shape", "coverage.polygon needs 3 or more [lat, lon] pairs")
        if not np.isfinite(ring).all():
            raise ProtocolError("non_finite", "coverage.polygon")
        _lat_lon("coverage.polygon", ring[:, 0], ring[:, 1])
    return Heartbeat(sensor, t_s, status, _site(m), coverage)


def _build_ack(m: dict, now_s: float, limits: Limits) -> Ack:
    return Ack(_sensor(m, limits), _int(m, "seq"))


def _build_trk(m: dict, now_s: float, limits: Limits) -> TrackUpdate:
    t_s = _time(m, "t_s", now_s, limits)
    ids = m["id"]
    n = ids.shape[0] if isinstance(ids, np.ndarray) and ids.ndim == 1 else -1
    if n > limits.max_tracks:
        raise ProtocolError("oversized", f"{n} tracks")
    ids = _array(m, "id", "<i8", (None,))
    pos = _array(m, "pos", "<f8", (n, 3))
    _lat_lon("pos", pos[:, 0], pos[:, 1])
    return TrackUpdate(
        t_s=t_s,
        id=ids,
        pos=pos,
        vel=_array(m, "vel", "<f8", (n, 3)),
        P=_array(m, "P", "<f8", (n, 6, 6)),
        status=_array(m, "status", "|u1", (n,)),
        ident=_array(m, "ident", "S", (n,)).astype(IDENT_DTYPE),
        cls=_array(m, "cls", "|u1", (n,)),
        n_sensors=_array(m, "n_sensors", "|u1", (n,)),
    )


def _build_cue(m: dict, now_s: float, limits: Limits) -> CueEvent:
    body = _map(m, "body", limits, max_depth=4)
    for name, kind in CUE_REQUIRED.items():
        if name not in body:
            raise ProtocolError("missing_field", f"cue.body.{name}")
        value = body[name]
        ok = type(value) in (int, float) if kind is float else isinstance(value, kind)
        if not ok:
            raise ProtocolError("field_type", f"cue.body.{name}")
    if body["state"] not in CUE_STATES:
        raise ProtocolError("value", f"cue state {body['state']!r} not in {CUE_STATES}")
    return CueEvent(body)


def _build_status(m: dict, now_s: float, limits: Limits) -> Status:
    return Status(
        _time(m, "t_s", now_s, limits),
        _map(m, "sensors", limits),
        _map(m, "counters", limits),
    )


_BUILDERS = {
    "det": _build_det,
    "hb": _build_hb,
    "ack": _build_ack,
    "trk": _build_trk,
    "cue": _build_cue,
    "status": _build_status,
}
