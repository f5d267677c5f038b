"""GeoJSON export of the picture: current tracks, open cues and sites in one FeatureCollection.

This module owns the GeoJSON form of the fusion outputs, for GIS tools and for the map page:
every feature carries `properties.layer` (`site`, `line`, `buffer`, `track`, `track_ellipse`,
`cue`) so a consumer can style or filter without guessing. Coordinates are [lon, lat(, alt)] in
WGS84 degrees per RFC 7946, at full float64 precision. Track uncertainty is given twice: `ce_m`
(CoT's 1-sigma circular error, fusion.cot) and the 95 % ellipse (`ellipse_a_m`, `ellipse_b_m`,
`ellipse_bearing_deg`, also drawn as a `track_ellipse` polygon).

Inputs: a TrackUpdate or TrackPicture, cue bodies (a lifecycle stream is folded to the cues
still open), and a SiteSet, a GeoJSON dict or a site file. `fusion.replay_output` reads a
replay's output directory; the query socket gives the same through `fusion.client`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from fusion.cot import circular_error_m, course_speed, ident_str, picture_geodetic, update_geodetic
from fusion.mapstate import ELLIPSE_LEVEL, cue_view, error_ellipse, jsonable
from fusion.messages import CLASS_NAMES, TRACK_STATUS_NAMES, TrackUpdate
from fusion.picture import TrackPicture

ELLIPSE_POINTS = 36  # vertices of a track's ellipse polygon
_M_PER_DEG_LAT = 111_132.954  # metres per degree of latitude near mid latitudes (ellipse only)


def open_cues(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cues still open after a lifecycle stream (open/update/close events, in order),
    each at its latest state, in the order they opened."""
    latest: dict[str, dict[str, Any]] = {}
    for body in events:
        cid = str(body["id"])
        if body.get("state") == "close":
            latest.pop(cid, None)
        else:
            latest[cid] = body
    return list(latest.values())


def _feature(geometry: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": jsonable(properties)}


def _ellipse_ring(lat: float, lon: float, a_m: float, b_m: float, bearing_deg: float):
    """Polygon ring [lon, lat] of an ellipse, by a local tangent-plane offset: at track
    scales (metres to kilometres) the flat-earth error is far below the ellipse's own size."""
    th = math.radians(bearing_deg)
    ux, uy = math.sin(th), math.cos(th)  # major axis, east/north
    vx, vy = uy, -ux
    m_per_deg_lon = _M_PER_DEG_LAT * math.cos(math.radians(lat))
    ring = []
    for k in range(ELLIPSE_POINTS + 1):
        t = 2.0 * math.pi * (k % ELLIPSE_POINTS) / ELLIPSE_POINTS
        e = a_m * math.cos(t) * ux + b_m * math.sin(t) * vx
        n = a_m * math.cos(t) * uy + b_m * math.sin(t) * vy
        ring.append([lon + e / max(m_per_deg_lon, 1e-9), lat + n / _M_PER_DEG_LAT])
    return ring


def track_features(
    tracks: TrackUpdate | TrackPicture,
    *,
    frame: Any = None,
    ellipses: bool = True,
    confirmed_only: bool = True,
) -> list[dict[str, Any]]:
    """Point features (and 95 % ellipse polygons) of the tracks. A TrackUpdate's covariance is
    rotated to each track's local frame when the theatre `frame` is given (fusion.cot)."""
    if isinstance(tracks, TrackPicture):
        llh, vel, P = picture_geodetic(tracks)
        t_upd = np.asarray(tracks.t_upd_s, dtype=np.float64)
    else:
        llh, vel, P = update_geodetic(tracks, frame)
        t_upd = np.full(len(tracks), float(tracks.t_s))
    n = len(tracks)
    if n == 0:
        return []
    ce = circular_error_m(P[:, :2, :2])
    course, speed = course_speed(vel)
    out: list[dict[str, Any]] = []
    for i in np.argsort(np.asarray(tracks.id), kind="stable"):
        status = int(tracks.status[i])
        name = TRACK_STATUS_NAMES[status] if status < len(TRACK_STATUS_NAMES) else "?"
        if name == "free" or (confirmed_only and name == "tentative"):
            continue
        a_m, b_m, bearing = error_ellipse(P[i, :2, :2])
        cls = int(tracks.cls[i])
        props = {
            "layer": "track",
            "id": int(tracks.id[i]),
            "t_s": float(t_upd[i]),
            "status": name,
            "class": CLASS_NAMES[cls] if cls < len(CLASS_NAMES) else "unknown",
            "ident": ident_str(tracks.ident[i]),
            "n_sensors": int(tracks.n_sensors[i]),
            "alt_m": float(llh[i, 2]),
            "vel_enu_mps": [float(v) for v in vel[i]],
            "speed_mps": float(speed[i]),
            "course_deg": float(course[i]),
            "ce_m": float(ce[i]),
            "le_m": float(math.sqrt(max(P[i, 2, 2], 0.0))),
            "ellipse_level": ELLIPSE_LEVEL,
            "ellipse_a_m": a_m,
            "ellipse_b_m": b_m,
            "ellipse_bearing_deg": bearing,
        }
        lat, lon, alt = (float(v) for v in llh[i])
        out.append(_feature({"type": "Point", "coordinates": [lon, lat, alt]}, props))
        if ellipses:
            ring = _ellipse_ring(lat, lon, a_m, b_m, bearing)
            out.append(
                _feature(
                    {"type": "Polygon", "coordinates": [ring]},
                    {"layer": "track_ellipse", "id": props["id"], "level": ELLIPSE_LEVEL},
                )
            )
    return out


def cue_features(cues: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Point features of cues (pass open cues, e.g. `open_cues(events)`); cues without a
    position are kept with a null geometry, as RFC 7946 allows."""
    out = []
    for body in cues:
        view = cue_view(body)
        props = {"layer": "cue", **{k: v for k, v in view.items() if k not in ("lat", "lon")}}
        for k in ("evidence", "vel", "topic"):
            if k in body:
                props[k] = body[k]
        pos = body.get("pos")
        alt = pos[2] if isinstance(pos, list | tuple) and len(pos) > 2 else None
        if view["lat"] is None or view["lon"] is None:
            geom = None
        else:
            coords = [float(view["lon"]), float(view["lat"])]
            if alt is not None:
                coords.append(float(alt))
            geom = {"type": "Point", "coordinates": coords}
        out.append(_feature(geom, props))
    return out


def sites_geojson(sites: Any, *, buffers: bool = True) -> dict[str, Any]:
    """A FeatureCollection of the sites: each feature as given, tagged `layer` `site` or
    `line`; with `buffers` and a SiteSet, each area's buffer as a `buffer` polygon too.
    `sites` is a SiteSet, a GeoJSON dict, a path to a site file, or None."""
    if sites is None:
        return {"type": "FeatureCollection", "features": []}
    siteset = None
    if isinstance(sites, str | Path):
        from fusion.sites import load_sites

        siteset = load_sites(sites)
        doc = siteset.geojson
    elif isinstance(sites, dict):
        doc = sites
    else:
        siteset = sites
        doc = getattr(sites, "geojson", None) or {"type": "FeatureCollection", "features": []}
    features = []
    for f in doc.get("features", []):
        g = f.get("geometry") or {}
        layer = "line" if g.get("type") in ("LineString", "MultiLineString") else "site"
        features.append(
            {
                "type": "Feature",
                "geometry": g,
                "properties": {**(f.get("properties") or {}), "layer": layer},
            }
        )
    if buffers and siteset is not None:
        features.extend(_buffer_features(siteset))
    out = {"type": "FeatureCollection", "features": features}
    if doc.get("properties"):
        out["properties"] = doc["properties"]
    return out


def _buffer_features(siteset: Any) -> list[dict[str, Any]]:
    """Each area site's outline grown by its buffer_m, computed in the theatre ENU frame (where
    the rules measure it) and mapped back to WGS84."""
    out = []
    for s in siteset:
        if s.is_line or not s.buffer_m or s.buffer_m <= 0:
            continue
        grown = s.geometry.buffer(float(s.buffer_m), quad_segs=8)
        polys = list(getattr(grown, "geoms", [grown]))
        rings = []
        for poly in polys:
            xy = np.asarray(poly.exterior.coords, dtype=np.float64)
            enu = np.column_stack([xy[:, 0], xy[:, 1], np.zeros(len(xy))])
            llh = siteset.frame.to_geodetic(enu)
            rings.append([[[float(p[1]), float(p[0])] for p in llh]])
        geom = (
            {"type": "Polygon", "coordinates": rings[0]}
            if len(rings) == 1
            else {"type": "MultiPolygon", "coordinates": rings}
        )
        out.append(
            _feature(geom, {"layer": "buffer", "id": s.id, "name": s.name, "buffer_m": s.buffer_m})
        )
    return out


def to_geojson(
    tracks: TrackUpdate | TrackPicture | None = None,
    cues: Iterable[dict[str, Any]] = (),
    sites: Any = None,
    *,
    t_s: float | None = None,
    frame: Any = None,
    ellipses: bool = True,
    buffers: bool = True,
) -> dict[str, Any]:
    """One FeatureCollection: sites first (drawn underneath), then tracks, then open cues.
    `cues` may be a lifecycle stream: only the cues still open are exported."""
    features = list(sites_geojson(sites, buffers=buffers)["features"])
    if tracks is not None:
        features.extend(track_features(tracks, frame=frame, ellipses=ellipses))
        if t_s is None:
            t_s = float(tracks.t_s)
    features.extend(cue_features(open_cues(cues)))
    fc = {"type": "FeatureCollection", "features": features}
    fc["properties"] = {"t_s": t_s, "generator": "fusion export"}
    return fc


def dumps(fc: dict[str, Any], indent: int | None = None) -> str:
    """JSON text; NaN and infinities are not GeoJSON and are refused."""
    return json.dumps(fc, indent=indent, allow_nan=False)
