"""Cursor on Target (CoT) events from fused tracks and breach cues.

This module owns the translation of the fusion node's outputs into CoT 2.0 XML, the format TAK
clients (ATAK, WinTAK, TAK Server) read: one `<event>` per track or cue, with the schema's
required attributes (version, uid, type, time, start, stale, how) and `<point lat lon hae ce le>`.
The stateful part (stale times from update rates, withdrawals) is `fusion.cot_bridge`; bytes
leave through `fusion.cot_transport`.

Error figures. The CoT schema defines `ce` as the circular error in metres which, when it is an
error, is "the one sigma point for a zero mean normal distribution", and `le` likewise for the
height. For an anisotropic horizontal covariance there is no single sigma, so `ce` here is the
radius of the circle, centred on the estimate, that holds the same probability as a circle of
radius sigma does for a circular normal: 1 - exp(-1/2) = 39.35 %. That is exact for circular
covariances (ce = sigma) and computed exactly, not approximated, for elliptical ones. `le` is the
1-sigma vertical error sqrt(P_uu). Both come from the covariance rotated into the local
east-north-up frame at the track, so they do not depend on where the theatre origin is.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fusion.messages import (
    CLASS_NAMES,
    CLS_AIR,
    CLS_GROUND,
    CLS_SURFACE,
    TRACK_STATUS_NAMES,
    TrackUpdate,
)
from fusion.picture import TrackPicture

# Probability held by a radius-sigma circle under a circular normal distribution.
CE_ONE_SIGMA_P = 1.0 - math.exp(-0.5)
HOW_FUSED = "m-f"  # machine-generated, fused
COT_VERSION = "2.0"
TYPE_DELETE = "t-x-d-d"
UNKNOWN_ERROR_M = 9999999.0  # CoT's value for an unknown ce / le / hae
# Breach rules (DESIGN.md) become "geofence breached" alarms; the outage of a sensor is an alarm
# about our own coverage, not about a target, so it gets the plain alarm type.
DEFAULT_CUE_TYPES: dict[str, str] = {
    "incursion": "b-a-g",
    "approach": "b-a-g",
    "line_crossing": "b-a-g",
    "loiter": "b-a-g",
    "dark_target": "b-a-g",
    "fire_event": "b-a-g",
    "sensor_outage": "b-a",
}
# Rules whose subject is treated as hostile while such a cue is open on its track.
DEFAULT_HOSTILE_RULES = frozenset({"line_crossing", "fire_event"})
_N_PHI = 256  # quadrature points on a quarter circle; the integrand is smooth and periodic


# --------------------------------------------------------------------------- error figures


def circular_error_m(P_h: np.ndarray, p: float = CE_ONE_SIGMA_P) -> np.ndarray:
    """Radius r of the circle holding probability `p` of a zero-mean normal with horizontal
    covariance `P_h` (n, 2, 2) in m^2; returns (n,) metres.

    With eigen-sigmas a >= b the probability inside radius r is, in the polar coordinates of
    the whitened variable, P(r) = 1 - (2/pi) * int_0^{pi/2} exp(-r^2 / (2 (a^2 cos^2 phi +
    b^2 sin^2 phi))) dphi, evaluated by the midpoint rule and inverted by bisection.
    """
    P_h = np.asarray(P_h, dtype=np.float64)
    if P_h.ndim != 3 or P_h.shape[1:] != (2, 2):
        raise ValueError(f"P_h must be (n, 2, 2), got {P_h.shape}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    sxx, syy = P_h[:, 0, 0], P_h[:, 1, 1]
    sxy = 0.5 * (P_h[:, 0, 1] + P_h[:, 1, 0])
    mean = 0.5 * (sxx + syy)
    half_diff = np.sqrt((0.5 * (sxx - syy)) ** 2 + sxy**2)
    a2 = np.maximum(mean + half_diff, 0.0)  # (n,) larger eigenvalue
    b2 = np.maximum(mean - half_diff, 0.0)
    phi = (np.arange(_N_PHI) + 0.5) * (0.5 * np.pi / _N_PHI)
    denom = 2.0 * (a2[:, None] * np.cos(phi) ** 2 + b2[:, None] * np.sin(phi) ** 2)  # (n, K)
    with np.errstate(divide="ignore"):
        inv = np.where(denom > 0.0, 1.0 / np.where(denom > 0.0, denom, 1.0), np.inf)
    # Circular normals with sigma b and a are more and less concentrated than ours: their
    # p-radii bracket r, and 44 halvings leave an error below 1e-13 of the bracket.
    k = math.sqrt(-2.0 * math.log1p(-p))
    lo = np.sqrt(b2) * k
    hi = np.sqrt(a2) * k
    for _ in range(44):
        mid = 0.5 * (lo + hi)
        with np.errstate(invalid="ignore"):
            expo = np.exp(-(mid[:, None] ** 2) * inv)
        expo = np.where(np.isfinite(inv), expo, 0.0)
        prob = 1.0 - expo.mean(axis=1)
        below = prob < p
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def linear_error_m(var_u_m2: np.ndarray, z: float = 1.0) -> np.ndarray:
    """Vertical error: z-sigma of the up component (z = 1 is CoT's one-sigma `le`)."""
    return z * np.sqrt(np.maximum(np.asarray(var_u_m2, dtype=np.float64), 0.0))


# --------------------------------------------------------------------------- formatting


def cot_time(t_s: float) -> str:
    """CoT timestamp: ISO 8601 UTC with milliseconds and a Z."""
    ms = int(round(float(t_s) * 1000.0))
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def _num(x: float) -> str:
    """Shortest text that reads back to the same float64: full coordinate precision."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"non-finite value in CoT point: {x}")
    return repr(x)


def _err(x: float) -> str:
    return f"{max(float(x), 0.0):.2f}"


def course_speed(vel_enu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Course in degrees clockwise from true north in [0, 360) and ground speed in m/s."""
    v = np.asarray(vel_enu, dtype=np.float64).reshape(-1, 3)
    course = np.degrees(np.arctan2(v[:, 0], v[:, 1])) % 360.0
    speed = np.hypot(v[:, 0], v[:, 1])
    return course, speed


# --------------------------------------------------------------------------- type policy


@dataclass(frozen=True)
class AffiliationPolicy:
    """Chooses the CoT affiliation letter of a track.

    `f` friend: the identity is in `friendly` (exact, or a prefix ending in ':' or '*');
    `h` hostile: an open cue of a rule in `hostile_rules` names the track;
    `n` neutral: a cooperative identity (AIS, ADS-B) not known as friendly;
    `u` unknown: everything else, including dark targets.
    """

    friendly: frozenset[str] = frozenset()
    hostile_rules: frozenset[str] = DEFAULT_HOSTILE_RULES

    def is_friendly(self, ident: str) -> bool:
        for f in self.friendly:
            if f.endswith(("*", ":")):
                if ident.startswith(f.rstrip("*")):
                    return True
            elif ident == f:
                return True
        return False

    def letter(self, ident: str, open_rules: Iterable[str] = ()) -> str:
        if ident and self.is_friendly(ident):
            return "f"
        if any(r in self.hostile_rules for r in open_rules):
            return "h"
        if ident:
            return "n"
        return "u"


def dimension_letter(cls: int, ident: str, alt_m: float, speed_mps: float) -> str:
    """CoT battle dimension from the class code: A air, S sea surface, G ground. An
    unclassified track takes the dimension its cooperative identity implies (ICAO -> air,
    MMSI -> surface), else air when it flies high or fast, else ground."""
    if cls == CLS_AIR:
        return "A"
    if cls == CLS_SURFACE:
        return "S"
    if cls == CLS_GROUND:
        return "G"
    if ident.startswith("icao:"):
        return "A"
    if ident.startswith("mmsi:"):
        return "S"
    # 300 m above the ellipsoid or 80 m/s is beyond what ground traffic here does.
    if alt_m > 300.0 or speed_mps > 80.0:
        return "A"
    return "G"


# --------------------------------------------------------------------------- event builders


@dataclass(frozen=True)
class TrackRow:
    """One track, already in geodetic terms, ready to become a CoT event."""

    id: int
    t_s: float
    lat_deg: float
    lon_deg: float
    alt_m: float
    vel_enu: tuple[float, float, float]
    ce_m: float
    le_m: float
    status: int
    ident: str
    cls: int
    n_sensors: int


def _event(uid: str, cot_type: str, now_s: float, start_s: float, stale_s: float, how: str):
    return ET.Element(
        "event",
        {
            "version": COT_VERSION,
            "uid": uid,
            "type": cot_type,
            "time": cot_time(now_s),
            "start": cot_time(start_s),
            "stale": cot_time(stale_s),
            "how": how,
        },
    )


def _point(ev: ET.Element, lat: float, lon: float, hae: float, ce: float, le: float) -> None:
    ET.SubElement(
        ev,
        "point",
        {"lat": _num(lat), "lon": _num(lon), "hae": _num(hae), "ce": _err(ce), "le": _err(le)},
    )


_XML_DECL = "<?xml version='1.0' encoding='UTF-8'?>\n"
_ATTR_ESC = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\n": "&#10;",
        "\r": "&#13;",
        "\t": "&#09;",
    }
)
_TEXT_ESC = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _xml(el: ET.Element, parts: list[str]) -> None:
    # ElementTree's own writer costs most of a track event's time; CoT needs no namespaces
    # or comments, so a direct serialiser of tag, attributes, text and children suffices.
    attrs = "".join(f' {k}="{str(v).translate(_ATTR_ESC)}"' for k, v in el.attrib.items())
    if len(el) == 0 and not el.text:
        parts.append(f"<{el.tag}{attrs}/>")
    else:
        parts.append(f"<{el.tag}{attrs}>")
        if el.text:
            parts.append(el.text.translate(_TEXT_ESC))
        for child in el:
            _xml(child, parts)
        parts.append(f"</{el.tag}>")
    if el.tail:
        parts.append(el.tail.translate(_TEXT_ESC))


def _bytes(ev: ET.Element) -> bytes:
    parts = [_XML_DECL]
    _xml(ev, parts)
    return "".join(parts).encode("utf-8")


def track_event(
    row: TrackRow, uid: str, cot_type: str, now_s: float, stale_s: float, callsign: str = ""
) -> bytes:
    """A track as an `a-<affiliation>-<dimension>` event; `stale_s` is the absolute stale
    time. `start` is the time of the track's state, `time` the time of sending."""
    ev = _event(uid, cot_type, now_s, min(row.t_s, now_s), stale_s, HOW_FUSED)
    _point(ev, row.lat_deg, row.lon_deg, row.alt_m, row.ce_m, row.le_m)
    detail = ET.SubElement(ev, "detail")
    ve, vn = row.vel_enu[0], row.vel_enu[1]
    course = round(math.degrees(math.atan2(ve, vn)) % 360.0, 2) % 360.0  # never "360.00"
    ET.SubElement(
        detail, "track", {"course": f"{course:.2f}", "speed": f"{math.hypot(ve, vn):.3f}"}
    )
    ET.SubElement(detail, "contact", {"callsign": callsign or f"T{row.id}"})
    status = TRACK_STATUS_NAMES[row.status] if row.status < len(TRACK_STATUS_NAMES) else "?"
    cls_name = CLASS_NAMES[row.cls] if row.cls < len(CLASS_NAMES) else "unknown"
    ET.SubElement(
        detail,
        "_fusion_track",
        {
            "id": str(row.id),
            "status": status,
            "class": cls_name,
            "ident": row.ident,
            "sensors": str(row.n_sensors),
            "ce_level": "1-sigma (39.35% circle)",
        },
    )
    remarks = (
        f"fused track {row.id} ({status}, {cls_name}"
        + (f", {row.ident}" if row.ident else ", no cooperative identity")
        + f", {row.n_sensors} sensor{'s' if row.n_sensors != 1 else ''})"
    )
    ET.SubElement(detail, "remarks").text = remarks
    return _bytes(ev)


def cue_point(body: dict[str, Any]) -> tuple[float, float, float, float, float] | None:
    """(lat, lon, hae, ce, le) of a cue body, None when it has no position; pos may be
    [lat, lon(, alt)] or a mapping."""
    pos = body.get("pos")
    if isinstance(pos, dict):
        lat, lon = pos.get("lat", pos.get("lat_deg")), pos.get("lon", pos.get("lon_deg"))
        alt = pos.get("alt", pos.get("alt_m", 0.0))
    elif isinstance(pos, list | tuple | np.ndarray) and len(pos) >= 2:
        lat, lon = pos[0], pos[1]
        alt = pos[2] if len(pos) > 2 else 0.0
    else:
        return None
    if lat is None or lon is None:
        return None
    sigma = body.get("sigma_m")
    if sigma is None:
        ce = le = 0.0
    elif isinstance(sigma, list | tuple | np.ndarray):
        # per-axis sigmas (east, north[, up]): same equal-probability circle as for tracks
        s = [float(v) for v in sigma]
        ce = float(circular_error_m(np.diag([s[0] ** 2, s[1] ** 2])[None])[0])
        le = s[2] if len(s) > 2 else 0.0
    else:
        ce, le = float(sigma), 0.0
    return float(lat), float(lon), float(alt if alt is not None else 0.0), ce, le


def cue_event(
    body: dict[str, Any],
    uid: str,
    cot_type: str,
    now_s: float,
    stale_s: float,
    track_link: tuple[str, str] | None = None,
    point: tuple[float, float, float, float, float] | None = None,
) -> bytes:
    """A cue as an alert event: the cue's sentence in `<remarks>`, its fields in
    `<_fusion_cue>`, and a link to the track's event when there is one. A cue without a
    position (a sensor outage, say) is placed at `point` (lat, lon, hae, ce, le) when given,
    else at 0, 0 with CoT's "unknown" errors (9999999 m)."""
    lat, lon, hae, ce, le = (
        cue_point(body) or point or (0.0, 0.0, 0.0, UNKNOWN_ERROR_M, UNKNOWN_ERROR_M)
    )
    start = float(body.get("t_s", now_s))
    ev = _event(uid, cot_type, now_s, min(start, now_s), stale_s, HOW_FUSED)
    _point(ev, lat, lon, hae, ce, le)
    detail = ET.SubElement(ev, "detail")
    rule = str(body.get("rule", "cue"))
    site = str(body.get("site", "") or "")
    where = str(body.get("site_name") or site)
    ET.SubElement(detail, "contact", {"callsign": f"{rule.upper()} {where}".strip()})
    attrs = {
        k: str(body[k])
        for k in ("id", "seq", "state", "rule", "site", "track", "severity", "confidence")
        if body.get(k) is not None
    }
    ET.SubElement(detail, "_fusion_cue", attrs)
    if track_link is not None:
        ET.SubElement(
            detail, "link", {"uid": track_link[0], "type": track_link[1], "relation": "p-p"}
        )
    text = str(body.get("text", "") or f"{rule} at {site}")
    state = str(body.get("state", "open"))
    ET.SubElement(detail, "remarks").text = text if state != "close" else f"CLOSED: {text}"
    return _bytes(ev)


def delete_event(target_uid: str, target_type: str, now_s: float, uid: str) -> bytes:
    """A `t-x-d-d` tasking event asking receivers to remove `target_uid` at once."""
    ev = _event(uid, TYPE_DELETE, now_s, now_s, now_s + 20.0, "h-g-i-g-o")
    _point(ev, 0.0, 0.0, 0.0, UNKNOWN_ERROR_M, UNKNOWN_ERROR_M)
    detail = ET.SubElement(ev, "detail")
    ET.SubElement(detail, "link", {"uid": target_uid, "type": target_type, "relation": "none"})
    ET.SubElement(detail, "__forcedelete")
    return _bytes(ev)


def withdrawn(event_xml: bytes, now_s: float) -> bytes:
    """The same event with start = stale = time = now, which makes receivers drop it."""
    ev = ET.fromstring(event_xml)
    stamp = cot_time(now_s)
    ev.set("time", stamp)
    ev.set("start", stamp)
    ev.set("stale", stamp)
    return _bytes(ev)


# --------------------------------------------------------------------------- geodesy glue


def _to_local(frame: Any, llh: np.ndarray, vel: np.ndarray, P: np.ndarray):
    """Rotate theatre-frame velocities (n,3) and covariances (n,6,6) into the ENU frame at
    each track, so that ce and le mean horizontal and vertical there."""
    Rt = np.transpose(frame.rotation_at(llh), (0, 2, 1))  # theatre -> local at the track
    T = np.zeros((llh.shape[0], 6, 6))
    T[:, :3, :3] = Rt
    T[:, 3:, 3:] = Rt
    return np.einsum("nij,nj->ni", Rt, vel), T @ P @ np.transpose(T, (0, 2, 1))


def update_geodetic(
    upd: TrackUpdate, frame: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(llh (n,3), vel (n,3), P (n,6,6)) of a TrackUpdate, velocity and covariance in the ENU
    frame at each track when the theatre `frame` is given (see rows_from_update)."""
    llh = np.asarray(upd.pos, dtype=np.float64).reshape(-1, 3)
    P = np.asarray(upd.P, dtype=np.float64).reshape(-1, 6, 6)
    vel = np.asarray(upd.vel, dtype=np.float64).reshape(-1, 3)
    if frame is not None and llh.shape[0]:
        vel, P = _to_local(frame, llh, vel, P)
    return llh, vel, P


def rows_from_update(upd: TrackUpdate, frame: Any = None) -> list[TrackRow]:
    """TrackUpdate positions are geodetic already; its P (and vel) are in the theatre ENU frame
    (docs/protocol.md), rotated to the track's local frame when the theatre `frame`
    (a fusion.geo.LocalFrame) is known. Without it they are used as they are: within a
    theatre of a few hundred kilometres the frames differ by a rotation of a few degrees."""
    n = len(upd)
    if n == 0:
        return []
    _, vel, P = update_geodetic(upd, frame)
    ce = circular_error_m(P[:, :2, :2])
    le = linear_error_m(P[:, 2, 2])
    return [
        TrackRow(
            id=int(upd.id[i]),
            t_s=float(upd.t_s),
            lat_deg=float(upd.pos[i, 0]),
            lon_deg=float(upd.pos[i, 1]),
            alt_m=float(upd.pos[i, 2]),
            vel_enu=tuple(float(v) for v in vel[i]),
            ce_m=float(ce[i]),
            le_m=float(le[i]),
            status=int(upd.status[i]),
            ident=ident_str(upd.ident[i]),
            cls=int(upd.cls[i]),
            n_sensors=int(upd.n_sensors[i]),
        )
        for i in range(n)
    ]


def ident_str(raw: Any) -> str:
    if isinstance(raw, bytes | np.bytes_):
        return bytes(raw).rstrip(b"\0").decode("ascii", "replace")
    return str(raw)


def picture_geodetic(pic: TrackPicture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(llh (n,3), vel local ENU (n,3), P local ENU (n,6,6)) of a TrackPicture, rotating the
    theatre-frame state into the east-north-up frame at each track."""
    from fusion.geo import LocalFrame  # lazy: geo is heavy to compile and optional for tests

    frame = LocalFrame(*pic.origin)
    n = len(pic)
    if n == 0:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 6, 6))
    llh = frame.to_geodetic(np.ascontiguousarray(pic.x[:, :3]))
    vel, P = _to_local(frame, llh, np.asarray(pic.x[:, 3:6]), np.asarray(pic.P))
    return llh, vel, P


def rows_from_picture(pic: TrackPicture) -> list[TrackRow]:
    llh, vel, P = picture_geodetic(pic)
    ce = circular_error_m(P[:, :2, :2]) if len(pic) else np.zeros(0)
    le = linear_error_m(P[:, 2, 2]) if len(pic) else np.zeros(0)
    return [
        TrackRow(
            id=int(pic.id[i]),
            t_s=float(pic.t_upd_s[i]),
            lat_deg=float(llh[i, 0]),
            lon_deg=float(llh[i, 1]),
            alt_m=float(llh[i, 2]),
            vel_enu=tuple(float(v) for v in vel[i]),
            ce_m=float(ce[i]),
            le_m=float(le[i]),
            status=int(pic.status[i]),
            ident=ident_str(pic.ident[i]),
            cls=int(pic.cls[i]),
            n_sensors=int(pic.n_sensors[i]),
        )
        for i in range(len(pic))
    ]
