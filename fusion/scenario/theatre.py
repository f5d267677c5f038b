"""The theatre a scenario plays in: the sites file read into plain ENU geometry.

This module owns the scenario generator's reading of a sites GeoJSON file. It deliberately reads
only geometry and a few properties (id, kind, buffer, radius, rule parameters) so that the
generator does not depend on the rule engine; the rules load the same file with
`fusion.sites.load_sites`. Coordinates are in the local ENU frame at the theatre origin (m).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry

from fusion.geo import LocalFrame

ROOT = Path(__file__).resolve().parents[2]
DEMO_SITES = ROOT / "configs" / "sites" / "demo.geojson"


@dataclass(eq=False)
class Feature:
    """One feature of the sites file in ENU: `geom` is a shapely geometry (m)."""

    id: str
    kind: str
    geom: BaseGeometry
    props: dict[str, Any]

    @property
    def buffer_m(self) -> float:
        return float(self.props.get("buffer_m", 0.0) or 0.0)

    @property
    def area(self) -> BaseGeometry:
        """The site with its radius (points) and buffer: where `incursion` would fire."""
        g = self.geom
        if isinstance(g, Point):
            g = g.buffer(float(self.props.get("radius_m", 0.0) or 0.0), 64)
        return g.buffer(self.buffer_m, 64) if self.buffer_m > 0 else g

    @property
    def centre(self) -> np.ndarray:
        c = self.geom.centroid
        return np.array([c.x, c.y])

    def param(self, name: str, default: float) -> float:
        """A rule parameter from the feature's properties (flat or under `rules`)."""
        if name in self.props:
            return float(self.props[name])
        rules = self.props.get("rules")
        if isinstance(rules, dict):
            for v in rules.values():
                if isinstance(v, dict) and name in v:
                    return float(v[name])
        return default


@dataclass(eq=False)
class Theatre:
    """The sites file in ENU, with the origin it was projected from."""

    origin: tuple[float, float, float]
    frame: LocalFrame
    features: list[Feature] = field(default_factory=list)
    path: Path | None = None

    def by_kind(self, *kinds: str) -> list[Feature]:
        return [f for f in self.features if f.kind in kinds]

    def get(self, fid: str) -> Feature:
        for f in self.features:
            if f.id == fid:
                return f
        raise KeyError(fid)

    @property
    def lines(self) -> list[Feature]:
        return [f for f in self.features if isinstance(f.geom, LineString)]

    @property
    def areas(self) -> list[Feature]:
        return [f for f in self.features if not isinstance(f.geom, LineString)]

    def to_geodetic(self, enu: np.ndarray) -> np.ndarray:
        return self.frame.to_geodetic(np.asarray(enu, dtype=np.float64).reshape(-1, 3))

    def to_enu(self, llh: np.ndarray) -> np.ndarray:
        return self.frame.to_enu(np.asarray(llh, dtype=np.float64).reshape(-1, 3))


def _origin_of(doc: dict, coords: list[tuple[float, float]]) -> tuple[float, float, float]:
    props = doc.get("properties") or {}
    o = props.get("origin") or doc.get("origin")
    if isinstance(o, dict):
        return float(o["lat"]), float(o["lon"]), float(o.get("alt", 0.0))
    if isinstance(o, list | tuple) and len(o) >= 2:
        return float(o[0]), float(o[1]), float(o[2]) if len(o) > 2 else 0.0
    lons = [c[0] for c in coords]
    lats = [c[1] for c in coords]
    return round((min(lats) + max(lats)) / 2, 4), round((min(lons) + max(lons)) / 2, 4), 0.0


def _all_coords(geom: dict) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []

    def walk(c: Any) -> None:
        if isinstance(c, list | tuple) and c and isinstance(c[0], int | float):
            out.append((float(c[0]), float(c[1])))
        elif isinstance(c, list | tuple):
            for x in c:
                walk(x)

    walk(geom.get("coordinates", []))
    return out


def load_theatre(
    path: str | Path = DEMO_SITES, origin: tuple[float, float, float] | None = None
) -> Theatre:
    """Reads a sites GeoJSON file into ENU geometry at `origin` (else the file's own origin,
    else the centre of its bounding box)."""
    p = Path(path)
    doc = json.loads(p.read_text())
    feats = doc.get("features", [])
    coords = [c for f in feats for c in _all_coords(f.get("geometry") or {})]
    if not coords:
        raise ValueError(f"{p}: no features with coordinates")
    org = origin if origin is not None else _origin_of(doc, coords)
    frame = LocalFrame(*org)
    th = Theatre(origin=tuple(float(v) for v in org), frame=frame, path=p)
    for i, f in enumerate(feats):
        props = dict(f.get("properties") or {})
        g = shape(f["geometry"])
        th.features.append(
            Feature(
                id=str(props.get("id", f.get("id", f"feature-{i}"))),
                kind=str(props.get("kind", "site")),
                geom=_to_enu(g, frame),
                props=props,
            )
        )
    return th


def _to_enu(g: BaseGeometry, frame: LocalFrame) -> BaseGeometry:
    def fn(lonlat: np.ndarray) -> np.ndarray:
        llh = np.column_stack([lonlat[:, 1], lonlat[:, 0], np.zeros(len(lonlat))])
        return frame.to_enu(llh)[:, :2]

    return shapely.transform(g, fn)


def heading_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Heading from a to b (ENU xy), degrees clockwise from north."""
    return math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 360.0


__all__ = ["DEMO_SITES", "Feature", "Theatre", "load_theatre", "heading_deg", "Polygon"]
