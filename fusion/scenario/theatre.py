"""The theatre a scenario plays in: the sites file's geometry and rule parameters in ENU.

This module owns the scenario generator's view of a sites file. It loads the file with
`fusion.sites.load_sites` (so the scenario and the rule engine agree on geometry, buffers and
rule parameters) and keeps, per feature, shapely geometry in the local ENU frame at the
theatre origin (m) and the enabled rules with their parameters. It never evaluates rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from fusion.geo import LocalFrame
from fusion.sites import SiteSet, load_sites

ROOT = Path(__file__).resolve().parents[2]
DEMO_SITES = ROOT / "configs" / "sites" / "demo.geojson"


@dataclass(eq=False)
class Feature:
    """One site of the file in ENU: `geom` is the site proper (a Point site's disc),
    `rules` the enabled rules with their parameters merged with the defaults."""

    id: str
    kind: str
    geom: BaseGeometry
    buffer_m: float
    rules: dict[str, dict[str, float]]
    requires_ident: bool = False
    protected_side: str | None = None
    props: dict[str, Any] = field(default_factory=dict)

    @property
    def is_line(self) -> bool:
        return isinstance(self.geom, LineString)

    @property
    def area(self) -> BaseGeometry:
        """The site with its buffer: where `incursion` would fire."""
        return self.geom.buffer(self.buffer_m, 64) if self.buffer_m > 0 else self.geom

    @property
    def centre(self) -> np.ndarray:
        c = self.geom.centroid
        return np.array([c.x, c.y])

    def param(self, rule: str, name: str, default: float = 0.0) -> float:
        return float(self.rules.get(rule, {}).get(name, default))


@dataclass(eq=False)
class Theatre:
    """The sites file in ENU, with the origin it was projected from."""

    origin: tuple[float, float, float]
    frame: LocalFrame
    features: list[Feature] = field(default_factory=list)
    path: Path | None = None
    sites: SiteSet | None = None

    def get(self, fid: str) -> Feature:
        for f in self.features:
            if f.id == fid:
                return f
        raise KeyError(fid)

    @property
    def lines(self) -> list[Feature]:
        return [f for f in self.features if f.is_line]

    @property
    def areas(self) -> list[Feature]:
        return [f for f in self.features if not f.is_line]

    def with_rule(self, rule: str) -> list[Feature]:
        return [f for f in self.features if rule in f.rules]

    def to_geodetic(self, enu: np.ndarray) -> np.ndarray:
        return self.frame.to_geodetic(np.asarray(enu, dtype=np.float64).reshape(-1, 3))


def load_theatre(
    path: str | Path = DEMO_SITES, origin: tuple[float, float, float] | None = None
) -> Theatre:
    """Reads a sites GeoJSON file (validated by `fusion.sites`) at `origin`, else at the
    file's own origin."""
    p = Path(path)
    frame = LocalFrame(*origin) if origin is not None else None
    ss = load_sites(p, frame)
    th = Theatre(origin=tuple(float(v) for v in ss.frame.origin), frame=ss.frame, path=p, sites=ss)
    for s in ss:
        th.features.append(
            Feature(
                id=s.id,
                kind=s.kind,
                geom=s.geometry,
                buffer_m=float(s.buffer_m),
                rules={k: dict(v) for k, v in s.rules.items()},
                requires_ident=bool(s.requires_ident),
                protected_side=s.protected_side,
                props=dict(s.properties),
            )
        )
    return th
