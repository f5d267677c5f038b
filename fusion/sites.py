"""Protected sites, zones and lines of contact: loaded from GeoJSON, validated, held in ENU.

This module owns the site file format and the geometry the rules test tracks against. A file
is a GeoJSON FeatureCollection; each Feature's `properties` carry:

- `id` (unique, required), `name` (defaults to the id), `kind` (see fusion.rules.params.KINDS:
  power_plant, port, bridge, depot, site, corridor, exclusion_zone, line_of_contact);
- `buffer_m` (default by kind), `priority` (1 lowest .. 5 most critical, default 3);
- Point sites: `radius_m` (> 0), the site is the disc of that radius;
- lines of contact (LineString): `protected_side`, "left" or "right" of the line as drawn
  (walking from its first to its last point);
- `requires_ident` (zones default to true): a dark target there is cued;
- `rules`: per-rule parameters or `false`, e.g. {"loiter": {"dwell_s": 300}, "approach": false}.

The collection's own `properties` may give `origin` [lat_deg, lon_deg, alt_m], the theatre
frame used when no frame is passed. Geometry is converted once into the frame's ENU metres;
per-scan queries (fusion.kernels.sites) run over all tracks at once. A bad file raises
SiteError naming the feature (index and id) and the reason. Nothing here knows about cues.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon, box, shape
from shapely.ops import split

from fusion.geo import LocalFrame
from fusion.kernels import sites as K
from fusion.rules.params import AREA_RULES, KINDS, LINE_RULES, RULE_DEFAULTS, RULES

__all__ = ["Site", "SiteSet", "SiteError", "AreaPairs", "load_sites", "parse_sites"]

_CIRCLE_QUAD_SEGS = 32  # display polygon of a Point site's disc (the tests use the exact disc)
# (track, site) pairs are keyed by track_id * 65536 + site index (fusion.rules.base.PairMemory)
_MAX_SITES = 65535
_LINE_EXTEND_M = 1.0e6  # the half-plane box reaches this far beyond a line of contact


class SiteError(ValueError):
    """A site file that cannot be used. `index` and `site_id` name the feature (None for the
    whole file), `reason` says why."""

    def __init__(self, reason: str, index: int | None = None, site_id: str | None = None):
        self.reason = reason
        self.index = index
        self.site_id = site_id
        where = "site file"
        if index is not None:
            where = f"feature {index}" + (f" (id {site_id!r})" if site_id else "")
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, eq=False)
class Site:
    id: str
    name: str
    kind: str
    index: int  # position in SiteSet.sites
    geometry: Any  # shapely geometry in ENU metres (a Point site: its disc, as a polygon)
    geometry_ll: Any  # shapely geometry as given, lon/lat degrees
    buffer_m: float
    priority: int
    requires_ident: bool
    rules: dict[str, dict[str, float]]  # enabled rules -> parameters merged with defaults
    radius_m: float | None = None  # Point sites
    protected_side: str | None = None  # lines of contact
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def is_line(self) -> bool:
        return KINDS[self.kind][0] == "line"


@dataclass(frozen=True, eq=False)
class AreaPairs:
    """(track, area) pairs near enough to matter, with their exact geometry. Arrays (p,)."""

    i: np.ndarray  # int64 row of the track in the query arrays
    a: np.ndarray  # int64 area number (SiteSet.area_site[a] is the site index)
    site: np.ndarray  # int64 site index
    d_now_m: np.ndarray  # distance to the site now, 0 inside
    inside: np.ndarray  # bool inside the site proper (not only its buffer)
    u: np.ndarray  # (p, 2) unit vector from the nearest boundary point towards the track
    d_cpa_m: np.ndarray  # closest predicted distance within the site's approach horizon
    t_cpa_s: np.ndarray  # time from now of that closest approach
    d_edge_m: np.ndarray  # distance to the boundary (inside or out)


class SiteSet:
    """All sites of a theatre, with the arrays the kernels need. Not thread-safe (a scratch
    array is reused between queries)."""

    def __init__(self, sites: list[Site], frame: LocalFrame, geojson: dict | None = None):
        self.frame = frame
        self.sites: tuple[Site, ...] = tuple(sites)
        self.by_id = {s.id: s for s in self.sites}
        self.geojson = geojson
        self._build_areas()
        self._build_lines()

    def __len__(self) -> int:
        return len(self.sites)

    def __iter__(self):
        return iter(self.sites)

    def __getitem__(self, key: str | int) -> Site:
        return self.by_id[key] if isinstance(key, str) else self.sites[key]

    # -- precomputation -----------------------------------------------------------------------

    def _build_areas(self) -> None:
        areas = [s for s in self.sites if not s.is_line]
        A = len(areas)
        self.area_site = np.array([s.index for s in areas], dtype=np.int64)
        self.site_type = np.zeros(A, np.int64)
        self.circle = np.zeros((A, 3))
        self.bound = np.zeros((A, 3))  # bounding circles
        self.buffer_m = np.array([s.buffer_m for s in areas], dtype=np.float64)
        self.horizon_s = np.zeros(A)
        self.reach_m = np.zeros(A)
        edge_rows: list[np.ndarray] = []
        self.edge_start = np.zeros(A + 1, np.int64)
        grid_reach = np.zeros(A)
        bounds = np.zeros((A, 4))
        for a, s in enumerate(areas):
            margin = 0.0
            for rule in ("incursion", "dark_target", "loiter"):
                if rule in s.rules:
                    margin = max(margin, s.rules[rule]["exit_margin_m"])
            if "approach" in s.rules:
                p = s.rules["approach"]
                self.horizon_s[a] = p["horizon_s"]
                margin = max(margin, p["max_slack_m"] + p["exit_margin_m"])
            self.reach_m[a] = s.buffer_m + margin
            fire = s.rules["fire_event"]["range_m"] if "fire_event" in s.rules else 0.0
            grid_reach[a] = max(self.reach_m[a], fire)
            if s.radius_m is not None:
                # the disc's exact centre: the ENU image of the given point
                cx, cy = _enu_xy(self.frame, np.array(s.geometry_ll.coords))[0]
                self.site_type[a] = K.AREA_CIRCLE
                self.circle[a] = (cx, cy, s.radius_m)
                self.bound[a] = self.circle[a]
            else:
                self.site_type[a] = K.AREA_POLYGON
                edge_rows.append(_polygon_edges(s.geometry))
                xy = edge_rows[-1][:, :2]
                c = 0.5 * (xy.min(axis=0) + xy.max(axis=0))
                # a hair larger than the farthest vertex, so rounding never excludes a pair
                r = float(np.sqrt(((xy - c) ** 2).sum(axis=1)).max()) * (1 + 1e-9) + 1e-6
                self.bound[a] = (c[0], c[1], r)
            self.edge_start[a + 1] = self.edge_start[a] + (
                0 if s.radius_m is not None else edge_rows[-1].shape[0]
            )
            bounds[a] = s.geometry.bounds
        self.edges = np.concatenate(edge_rows) if edge_rows else np.zeros((0, 4))
        self._build_grid(bounds, grid_reach)
        self._mark = np.full(A, -1, np.int64)
        self._cap = 1024

    def _build_grid(self, bounds: np.ndarray, reach: np.ndarray) -> None:
        A = bounds.shape[0]
        if A == 0:
            self.grid = np.array([0.0, 0.0, 1.0, 1.0, 1.0])
            self.cell_start = np.zeros(2, np.int64)
            self.cell_sites = np.zeros(0, np.int64)
            return
        lo = bounds[:, :2] - reach[:, None]
        hi = bounds[:, 2:] + reach[:, None]
        x0, y0 = lo.min(axis=0)
        x1, y1 = hi.max(axis=0)
        # about 64 cells along the longer side, never below 500 m: a few sites per cell
        cell_m = max(max(x1 - x0, y1 - y0) / 64.0, 500.0)
        nx = int(math.floor((x1 - x0) / cell_m)) + 1
        ny = int(math.floor((y1 - y0) / cell_m)) + 1
        members: list[list[int]] = [[] for _ in range(nx * ny)]
        for a in range(A):
            i0 = int((lo[a, 0] - x0) // cell_m)
            i1 = int((hi[a, 0] - x0) // cell_m)
            k0 = int((lo[a, 1] - y0) // cell_m)
            k1 = int((hi[a, 1] - y0) // cell_m)
            for k in range(k0, min(k1, ny - 1) + 1):
                for i in range(i0, min(i1, nx - 1) + 1):
                    members[k * nx + i].append(a)
        self.grid = np.array([x0, y0, cell_m, float(nx), float(ny)])
        self.cell_start = np.zeros(nx * ny + 1, np.int64)
        self.cell_start[1:] = np.cumsum([len(m) for m in members])
        self.cell_sites = np.array([a for m in members for a in m], dtype=np.int64)

    def _build_lines(self) -> None:
        lines = [s for s in self.sites if s.is_line]
        self.line_site = np.array([s.index for s in lines], dtype=np.int64)
        rows, side_rows = [], []
        self.line_start = np.zeros(len(lines) + 1, np.int64)
        self.side_start = np.zeros(len(lines) + 1, np.int64)
        self.line_band_box = np.zeros((len(lines), 4))
        self.line_bounds = np.array([s.geometry.bounds for s in lines]).reshape(len(lines), 4)
        self.side_polygon: list[Polygon] = []
        for n, s in enumerate(lines):
            xy = np.asarray(s.geometry.coords)[:, :2]
            e = np.hstack([xy[:-1], xy[1:]])
            rows.append(e)
            side = _protected_side_polygon(s.geometry, s.protected_side)
            self.side_polygon.append(side)
            se = _polygon_edges(side)
            side_rows.append(se)
            self.line_start[n + 1] = self.line_start[n] + e.shape[0]
            self.side_start[n + 1] = self.side_start[n] + se.shape[0]
            band = s.rules.get("line_crossing", RULE_DEFAULTS["line_crossing"])["band_m"]
            if "fire_event" in s.rules:
                band = max(band, s.rules["fire_event"]["range_m"])
            b = s.geometry.bounds
            self.line_band_box[n] = (b[0] - band, b[1] - band, b[2] + band, b[3] + band)
        self.line_edges = np.concatenate(rows) if rows else np.zeros((0, 4))
        self.side_edges = np.concatenate(side_rows) if side_rows else np.zeros((0, 4))

    # -- per-scan queries ---------------------------------------------------------------------

    def area_pairs(self, xy: np.ndarray, v: np.ndarray) -> AreaPairs:
        """All (track, area) pairs whose distance now, or along the straight-line prediction
        within the area's approach horizon, is within the area's reach (buffer plus the rules'
        margins). xy, v: (n, 2) ENU metres and m/s."""
        xy = np.ascontiguousarray(xy, dtype=np.float64)
        v = np.ascontiguousarray(v, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2 or v.shape != xy.shape:
            raise ValueError(f"area_pairs: xy and v must be (n, 2), got {xy.shape}, {v.shape}")
        max_h = float(self.horizon_s.max()) if self.horizon_s.size else 0.0
        while True:
            out_i = np.empty(self._cap, np.int64)
            out_j = np.empty(self._cap, np.int64)
            out_f = np.empty((self._cap, 7))
            count = K.track_site_pairs(
                xy, v, self.grid, self.cell_start, self.cell_sites, self.site_type,
                self.circle, self.edge_start, self.edges, self.bound, self.reach_m,
                self.horizon_s,
                max_h, self._mark, out_i, out_j, out_f,
            )  # fmt: skip
            if count <= self._cap:
                break
            self._cap = int(count * 1.5) + 16
        f = out_f[:count]
        a = out_j[:count]
        return AreaPairs(
            i=out_i[:count],
            a=a,
            site=self.area_site[a],
            d_now_m=f[:, 0],
            inside=f[:, 1] > 0.5,
            u=f[:, 2:4],
            d_cpa_m=f[:, 4],
            t_cpa_s=f[:, 5],
            d_edge_m=f[:, 6],
        )

    def points_near_areas(self, xy: np.ndarray, reach_m: np.ndarray) -> AreaPairs:
        """(point, area) pairs with the point within reach_m[a] of area a (no prediction);
        for located events. reach_m (A,) must not exceed what the grid was built for (the
        fire_event range or the rules' reach)."""
        xy = np.ascontiguousarray(xy, dtype=np.float64)
        saved = self.reach_m, self.horizon_s
        try:
            self.reach_m = np.ascontiguousarray(reach_m, dtype=np.float64)
            self.horizon_s = np.zeros_like(saved[1])
            return self.area_pairs(xy, np.zeros_like(xy))
        finally:
            self.reach_m, self.horizon_s = saved

    def entry_times(
        self, pairs: AreaPairs, sel: np.ndarray, xy: np.ndarray, v: np.ndarray,
        dist_m: np.ndarray, t_max_s: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        """First time (s from now) at which the straight path of the selected pairs comes
        within dist_m of the area, searched over [0, t_max_s]."""
        out = np.empty(int(np.count_nonzero(sel)) if sel.dtype == bool else len(sel))
        K.entry_times(
            pairs.i[sel], pairs.a[sel], np.ascontiguousarray(xy, dtype=np.float64),
            np.ascontiguousarray(v, dtype=np.float64), self.site_type, self.circle,
            self.edge_start, self.edges, np.ascontiguousarray(dist_m, dtype=np.float64),
            np.ascontiguousarray(t_max_s, dtype=np.float64), out,
        )  # fmt: skip
        return out

    def line_sides(self, n: int, xy: np.ndarray, band_m: float | None = None):
        """Signed distances of points to line of contact number n (SiteSet.line_site[n]),
        positive on the protected side, for the points within the line's band box.
        Returns (idx (k,) int64 rows of xy, s (k,) m, u (k, 2) unit normal towards the point)."""
        xy = np.ascontiguousarray(xy, dtype=np.float64)
        b = self.line_band_box[n]
        if band_m is not None:
            g = self.line_bounds[n]
            b = np.array([g[0] - band_m, g[1] - band_m, g[2] + band_m, g[3] + band_m])
        idx = np.empty(xy.shape[0], np.int64)
        out = np.empty((xy.shape[0], 3))
        m = K.line_band_signed_distance(
            xy, b, self.line_edges, self.line_start[n], self.line_start[n + 1],
            self.side_edges, self.side_start[n], self.side_start[n + 1], idx, out,
        )  # fmt: skip
        return idx[:m], out[:m, 0], out[:m, 1:3]

    def to_enu_xy(self, llh: np.ndarray) -> np.ndarray:
        """(n, 2) east, north metres of geodetic points (n, 3)."""
        return self.frame.to_enu(np.atleast_2d(np.asarray(llh, dtype=np.float64)))[:, :2]


# -- loading ----------------------------------------------------------------------------------


def load_sites(path: str | Path, frame: LocalFrame | None = None) -> SiteSet:
    """Read and validate a GeoJSON site file. Without `frame`, the collection's
    `properties.origin` [lat_deg, lon_deg, alt_m] defines it."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SiteError(f"not JSON: {exc}") from exc
    return parse_sites(doc, frame)


def parse_sites(doc: Any, frame: LocalFrame | None = None) -> SiteSet:
    """Validate a GeoJSON FeatureCollection (already parsed) into a SiteSet."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise SiteError("expected a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise SiteError("'features' must be a list")
    if len(features) > _MAX_SITES:
        raise SiteError(f"{len(features)} features: at most {_MAX_SITES} sites per theatre")
    if frame is None:
        origin = (doc.get("properties") or {}).get("origin")
        if not (isinstance(origin, list | tuple) and len(origin) in (2, 3)):
            raise SiteError("no frame given and no properties.origin [lat, lon, alt] in file")
        try:
            frame = LocalFrame(*[float(x) for x in origin])
        except (TypeError, ValueError) as exc:
            raise SiteError(f"bad properties.origin: {exc}") from exc
    sites: list[Site] = []
    seen: dict[str, int] = {}
    for index, feat in enumerate(features):
        site = _parse_feature(feat, index, len(sites), frame)
        if site.id in seen:
            raise SiteError(f"duplicate id (also feature {seen[site.id]})", index, site.id)
        seen[site.id] = index
        sites.append(site)
    return SiteSet(sites, frame, doc)


def _parse_feature(feat: Any, index: int, slot: int, frame: LocalFrame) -> Site:
    if not isinstance(feat, dict) or feat.get("type") != "Feature":
        raise SiteError("not a GeoJSON Feature", index)
    props = feat.get("properties")
    if not isinstance(props, dict):
        raise SiteError("missing properties", index)
    sid = props.get("id", feat.get("id"))
    if sid is None or (isinstance(sid, str) and not sid.strip()):
        raise SiteError("missing id", index)
    if not isinstance(sid, str | int) or isinstance(sid, bool):
        raise SiteError(f"id must be a string, got {type(sid).__name__}", index)
    sid = str(sid)

    def fail(reason: str) -> SiteError:
        return SiteError(reason, index, sid)

    kind = props.get("kind")
    if kind not in KINDS:
        raise fail(f"unknown kind {kind!r} (expected one of {', '.join(sorted(KINDS))})")
    family, buffer_default, ident_default, rules_default, kind_params = KINDS[kind]

    geom_json = feat.get("geometry")
    if not isinstance(geom_json, dict):
        raise fail("missing geometry")
    try:
        geom = shape(geom_json)
    except Exception as exc:  # shapely raises several types on malformed GeoJSON
        raise fail(f"malformed geometry: {exc}") from exc
    coords = shapely.get_coordinates(geom)
    if coords.size == 0 or geom.is_empty:
        raise fail("empty geometry")
    if not np.isfinite(coords).all():
        raise fail("non-finite coordinate")
    bad_lon = np.abs(coords[:, 0]) > 180.0
    bad_lat = np.abs(coords[:, 1]) > 90.0
    if bad_lon.any() or bad_lat.any():
        k = int(np.flatnonzero(bad_lon | bad_lat)[0])
        lon, lat = coords[k]
        raise fail(
            f"coordinates out of range at vertex {k}: lon {lon}, lat {lat} "
            "(GeoJSON order is [lon, lat]; lon in [-180, 180], lat in [-90, 90])"
        )

    gtype = geom.geom_type
    radius_m = None
    protected_side = None
    if family == "line":
        if gtype != "LineString":
            raise fail(f"a {kind} must be a LineString, got {gtype}")
        if len(np.unique(coords, axis=0)) < 2:
            raise fail("a line needs two distinct points")
        if not geom.is_simple:
            raise fail("self-intersecting line")
        protected_side = props.get("protected_side")
        if protected_side not in ("left", "right"):
            raise fail("protected_side must be 'left' or 'right' (of the line as drawn)")
    else:
        if gtype == "Point":
            radius_m = _number(props.get("radius_m"), "radius_m", fail)
            if radius_m is None or radius_m <= 0.0:
                raise fail("a Point site needs radius_m > 0")
        elif gtype in ("Polygon", "MultiPolygon"):
            if not geom.is_valid:
                reason = shapely.is_valid_reason(geom)
                if reason.startswith(("Self-intersection", "Ring Self-intersection")):
                    raise fail(f"self-intersecting polygon ({reason})")
                raise fail(f"invalid polygon ({reason})")
            if geom.area <= 0.0:
                raise fail("polygon has no area")
        else:
            raise fail(f"a {kind} must be a Polygon, MultiPolygon or Point, got {gtype}")

    buffer_m = _number(props.get("buffer_m"), "buffer_m", fail)
    buffer_m = buffer_default if buffer_m is None else buffer_m
    if buffer_m < 0.0:
        raise fail("buffer_m must be >= 0")
    priority = props.get("priority", 3)
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 5:
        raise fail(f"priority must be an integer 1..5, got {priority!r}")
    requires_ident = props.get("requires_ident", ident_default)
    if not isinstance(requires_ident, bool):
        raise fail("requires_ident must be true or false")
    name = props.get("name", sid)
    if not isinstance(name, str) or not name.strip():
        raise fail("name must be a non-empty string")

    rules = _parse_rules(props.get("rules", {}), family, rules_default, kind_params, fail)
    if requires_ident and family == "area" and "dark_target" not in rules:
        rules["dark_target"] = dict(RULE_DEFAULTS["dark_target"])

    # ENU, horizontal: the rules work in the plane tangent at the theatre origin.
    if radius_m is not None:
        cx, cy = _enu_xy(frame, coords[:1])[0]
        geom_enu = Point(cx, cy).buffer(radius_m, quad_segs=_CIRCLE_QUAD_SEGS)
    else:
        geom_enu = shapely.transform(geom, lambda c: _enu_xy(frame, c))
        if family == "area" and not geom_enu.is_valid:
            raise fail(f"polygon invalid once in ENU ({shapely.is_valid_reason(geom_enu)})")
    if family == "line":
        try:
            _protected_side_polygon(geom_enu, protected_side)
        except ValueError as exc:
            raise fail(str(exc)) from exc
    return Site(
        id=sid,
        name=name,
        kind=kind,
        index=slot,
        geometry=geom_enu,
        geometry_ll=geom,
        buffer_m=float(buffer_m),
        priority=priority,
        requires_ident=requires_ident,
        rules=rules,
        radius_m=radius_m,
        protected_side=protected_side,
        properties=dict(props),
    )


def _parse_rules(raw: Any, family: str, defaults: tuple[str, ...], kind_params, fail):
    if not isinstance(raw, dict):
        raise fail("rules must be an object of rule name -> parameters or false")
    allowed = LINE_RULES if family == "line" else AREA_RULES
    enabled = {r: {**RULE_DEFAULTS[r], **kind_params.get(r, {})} for r in defaults}
    for rule, value in raw.items():
        if rule not in RULES:
            raise fail(f"unknown rule {rule!r} in rules")
        if rule not in allowed:
            raise fail(f"rule {rule!r} does not apply to a {family}")
        if value is False:
            enabled.pop(rule, None)
            continue
        if value is True:
            value = {}
        if not isinstance(value, dict):
            raise fail(f"rules.{rule} must be an object or false")
        params = {**RULE_DEFAULTS[rule], **kind_params.get(rule, {})}
        for key, x in value.items():
            if key not in RULE_DEFAULTS[rule]:
                raise fail(f"unknown parameter rules.{rule}.{key}")
            num = _number(x, f"rules.{rule}.{key}", fail)
            if num is None or num < 0.0:
                raise fail(f"rules.{rule}.{key} must be a number >= 0")
            params[key] = num
        enabled[rule] = params
    return {r: enabled[r] for r in RULES if r in enabled}


def _number(x: Any, name: str, fail) -> float | None:
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise fail(f"{name} must be a finite number, got {x!r}")
    return float(x)


def _enu_xy(frame: LocalFrame, lonlat: np.ndarray) -> np.ndarray:
    lonlat = np.asarray(lonlat, dtype=np.float64)
    llh = np.zeros((lonlat.shape[0], 3))
    llh[:, 0] = lonlat[:, 1]
    llh[:, 1] = lonlat[:, 0]
    return frame.to_enu(llh)[:, :2].copy()


def _polygon_edges(geom) -> np.ndarray:
    """(E, 4) edges ax, ay, bx, by of every ring of every part."""
    rows = []
    for part in shapely.get_parts(geom):
        for ring in shapely.get_rings(part):
            c = shapely.get_coordinates(ring)
            rows.append(np.hstack([c[:-1], c[1:]]))
    return np.concatenate(rows) if rows else np.zeros((0, 4))


def _protected_side_polygon(line: LineString, protected_side: str | None) -> Polygon:
    """The half of the plane (a large box) on the protected side of the line, extended at
    both ends along its end segments."""
    c = np.asarray(line.coords)[:, :2]
    # drop repeated vertices so the end directions are defined
    keep = np.ones(len(c), bool)
    keep[1:] = np.any(np.diff(c, axis=0) != 0.0, axis=1)
    c = c[keep]
    d0 = c[0] - c[1]
    d1 = c[-1] - c[-2]
    x0, y0 = c.min(axis=0)
    x1, y1 = c.max(axis=0)
    # the ends must leave the box: it extends _LINE_EXTEND_M beyond the line's bounds, the
    # extension reaches twice that plus the line's own extent
    reach = 2.0 * _LINE_EXTEND_M + (x1 - x0) + (y1 - y0)
    ext = np.vstack([c[0] + d0 / np.hypot(*d0) * reach, c, c[-1] + d1 / np.hypot(*d1) * reach])
    ext_line = LineString(ext)
    if not ext_line.is_simple:
        raise ValueError("line of contact folds back: its extension crosses the line")
    m = _LINE_EXTEND_M
    frame_box = box(x0 - m, y0 - m, x1 + m, y1 + m)
    pieces = list(split(frame_box, ext_line).geoms)
    if len(pieces) != 2:
        raise ValueError(f"line of contact does not split the plane in two ({len(pieces)})")
    seg = c[1] - c[0]
    left_normal = np.array([-seg[1], seg[0]]) / np.hypot(*seg)
    probe = Point(*(0.5 * (c[0] + c[1]) + left_normal * 1e-3 * max(1.0, np.hypot(*seg))))
    left = pieces[0] if pieces[0].contains(probe) else pieces[1]
    right = pieces[1] if left is pieces[0] else pieces[0]
    return left if protected_side == "left" else right
