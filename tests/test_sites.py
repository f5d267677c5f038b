"""Site files: loading, validation with reasons, and the vectorised geometry against shapely."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point

from fusion.geo import LocalFrame
from fusion.sites import SiteError, load_sites, parse_sites

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "configs" / "sites" / "demo.geojson"
FRAME = LocalFrame(46.5, 31.0, 0.0)


def _ll(frame: LocalFrame, pts_m) -> list[list[float]]:
    e = np.array([[x, y, 0.0] for x, y in pts_m])
    g = frame.to_geodetic(e)
    return [[float(lon), float(lat)] for lat, lon, _ in g]


def _feature(fid, kind, gtype, coords, **props) -> dict:
    p = {"id": fid, "kind": kind, **props}
    return {"type": "Feature", "properties": p, "geometry": {"type": gtype, "coordinates": coords}}


def _collection(*features) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


def _square(cx, cy, half):
    return [
        _ll(FRAME, [(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half),
                    (cx - half, cy + half), (cx - half, cy - half)])
    ]  # fmt: skip


def test_demo_theatre_loads_with_its_documented_ids():
    sites = load_sites(DEMO)
    assert sites.frame.origin == (46.5, 31.0, 0.0)
    assert [s.id for s in sites] == [
        "loc-east", "plant-north", "port-alpha", "corridor-alpha", "bridge-east", "depot-west",
    ]  # fmt: skip
    doc = json.loads(DEMO.read_text())
    assert set(doc["properties"]["sites"]) == {s.id for s in sites}
    assert sites["corridor-alpha"].requires_ident and "dark_target" in sites["corridor-alpha"].rules
    line = sites["loc-east"]
    assert line.is_line and line.protected_side == "right" and "line_crossing" in line.rules
    # the origin (west of the line) is on the protected side, a point 40 km east is not
    idx, s, _ = sites.line_sides(0, np.array([[0.0, 20000.0], [40000.0, 20000.0]]), 1e6)
    assert list(idx) == [0, 1] and s[0] > 0 > s[1]
    assert sites["loiter" and "plant-north"].rules["loiter"]["dwell_s"] == 300.0
    assert sites["bridge-east"].radius_m == 300.0


def _reject(doc, match: str, index: int | None, site_id: str | None):
    with pytest.raises(SiteError, match=match) as info:
        parse_sites(doc, FRAME)
    assert info.value.index == index and info.value.site_id == site_id
    return info.value


def test_bad_files_are_rejected_with_feature_and_reason():
    good = _feature("a", "depot", "Point", _ll(FRAME, [(0, 0)])[0], radius_m=100)
    # unknown kind
    e = _reject(
        _collection(good, _feature("b", "castle", "Point", [31.0, 46.5], radius_m=5)),
        "unknown kind 'castle'", 1, "b",
    )  # fmt: skip
    assert str(e).startswith("feature 1 (id 'b'): unknown kind")
    # self-intersecting polygon (a bow tie)
    bow = [_ll(FRAME, [(0, 0), (1000, 1000), (1000, 0), (0, 1000), (0, 0)])]
    _reject(_collection(good, _feature("bow", "site", "Polygon", bow)),
            "self-intersecting polygon", 1, "bow")  # fmt: skip
    # missing id
    nid = _feature("x", "site", "Polygon", _square(0, 0, 500))
    del nid["properties"]["id"]
    _reject(_collection(good, nid), "missing id", 1, None)
    # duplicate id
    _reject(_collection(good, _feature("c", "site", "Polygon", _square(0, 0, 500)), good),
            r"duplicate id \(also feature 0\)", 2, "a")  # fmt: skip
    # coordinates out of range: latitude 95, and lat/lon swapped beyond 180
    _reject(_collection(_feature("far", "site", "Point", [31.0, 95.0], radius_m=10)),
            "coordinates out of range", 0, "far")  # fmt: skip
    sq = _square(0, 0, 500)
    sq[0][2] = [190.0, 46.5]
    _reject(_collection(good, _feature("sq", "site", "Polygon", sq)),
            "out of range at vertex 2", 1, "sq")  # fmt: skip
    # and a few more reasons the loader gives
    _reject(_collection(_feature("p", "site", "Point", [31.0, 46.5])), "radius_m > 0", 0, "p")
    line = _feature("l", "line_of_contact", "LineString", [[31.0, 46.5], [31.1, 46.6]])
    _reject(_collection(line), "protected_side", 0, "l")
    bad_rule = _feature("r", "site", "Polygon", _square(0, 0, 500), rules={"loiter": {"dwel": 1}})
    _reject(_collection(bad_rule), "unknown parameter rules.loiter.dwel", 0, "r")
    _reject(_collection(_feature("q", "site", "Polygon", _square(0, 0, 500), priority=9)),
            "priority", 0, "q")  # fmt: skip
    with pytest.raises(SiteError, match="FeatureCollection"):
        parse_sites({"type": "Feature"}, FRAME)
    with pytest.raises(SiteError, match="origin"):
        parse_sites(_collection(good))


def test_bad_file_on_disk(tmp_path):
    p = tmp_path / "bad.geojson"
    p.write_text("{not json")
    with pytest.raises(SiteError, match="not JSON"):
        load_sites(p, FRAME)
    doc = json.loads(DEMO.read_text())
    broken = copy.deepcopy(doc)
    broken["features"][3]["properties"]["kind"] = "moat"
    p.write_text(json.dumps(broken))
    with pytest.raises(SiteError, match=r"feature 3 \(id 'corridor-alpha'\): unknown kind"):
        load_sites(p)


def _random_theatre(rng, n_poly=12, n_disc=12):
    feats = []
    for k in range(n_poly):
        cx, cy = rng.uniform(-30000, 30000, 2)
        # a star-shaped (possibly concave) polygon: valid by construction
        m = int(rng.integers(4, 12))
        # angle gaps below pi keep the star simple
        ang = 2 * np.pi * np.arange(m) / m + rng.uniform(0, np.pi / m, m)
        rad = rng.uniform(300, 3000, m)
        pts = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a, r in zip(ang, rad, strict=True)]
        pts.append(pts[0])
        feats.append(_feature(f"p{k}", "site", "Polygon", [_ll(FRAME, pts)],
                              buffer_m=float(rng.uniform(0, 2000))))  # fmt: skip
    for k in range(n_disc):
        cx, cy = rng.uniform(-30000, 30000, 2)
        feats.append(_feature(f"d{k}", "depot", "Point", _ll(FRAME, [(cx, cy)])[0],
                              radius_m=float(rng.uniform(50, 2000)),
                              buffer_m=float(rng.uniform(0, 2000))))  # fmt: skip
    return parse_sites(_collection(*feats), FRAME)


def _exact_distance(site, xy):
    """Reference: shapely distance to the polygon; the exact disc for Point sites."""
    if site.radius_m is not None:
        c = FRAME.to_enu(np.array([[site.geometry_ll.y, site.geometry_ll.x, 0.0]]))[0, :2]
        return np.maximum(np.hypot(*(xy - c).T) - site.radius_m, 0.0)
    return shapely.distance(site.geometry, shapely.points(xy))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_area_pairs_match_shapely(seed):
    rng = np.random.default_rng(seed)
    sites = _random_theatre(rng)
    n = 3000
    xy = rng.uniform(-36000, 36000, (n, 2))
    v = rng.normal(0, 15, (n, 2))
    v[::7] = 0.0
    pairs = sites.area_pairs(xy, v)
    got = {(int(i), int(s)): k for k, (i, s) in enumerate(zip(pairs.i, pairs.site, strict=True))}
    assert len(got) == len(pairs.i)  # no duplicate pairs from overlapping grid cells
    for a, j in enumerate(sites.area_site):
        site = sites[int(j)]
        d_ref = _exact_distance(site, xy)
        H = sites.horizon_s[a]
        paths = shapely.linestrings(np.stack([xy, xy + v * H], axis=1))
        if site.radius_m is None:
            cpa_ref = shapely.distance(site.geometry, paths)
            cpa_ref[(v == 0).all(1)] = d_ref[(v == 0).all(1)]
        else:
            c = np.array(site.geometry.centroid.coords[0])
            cpa_ref = np.maximum(shapely.distance(Point(c), paths) - site.radius_m, 0.0)
            cpa_ref[(v == 0).all(1)] = d_ref[(v == 0).all(1)]
        want = np.flatnonzero(cpa_ref <= sites.reach_m[a] - 1e-6)
        for i in want:
            assert (int(i), int(j)) in got, (site.id, i, cpa_ref[i], sites.reach_m[a])
        rows = [got[(int(i), int(j))] for i in range(n) if (int(i), int(j)) in got]
        ii = pairs.i[rows]
        np.testing.assert_allclose(pairs.d_now_m[rows], d_ref[ii], atol=1e-6)
        inside_ref = d_ref[ii] == 0.0 if site.radius_m else shapely.contains_xy(
            site.geometry, xy[ii, 0], xy[ii, 1])  # fmt: skip
        assert (pairs.inside[rows] == inside_ref).all()
        np.testing.assert_allclose(pairs.d_cpa_m[rows], cpa_ref[ii], atol=1e-5)
        assert (pairs.d_cpa_m[rows] <= sites.reach_m[a] + 1e-6).all()
        # the reported time of closest approach reproduces the reported distance
        pc = xy[ii] + v[ii] * pairs.t_cpa_s[rows][:, None]
        np.testing.assert_allclose(_exact_distance(site, pc), pairs.d_cpa_m[rows], atol=1e-3)


def test_entry_times_match_dense_sampling():
    rng = np.random.default_rng(5)
    sites = _random_theatre(rng, 8, 8)
    xy = rng.uniform(-36000, 36000, (4000, 2))
    v = rng.normal(0, 25, (4000, 2))
    pairs = sites.area_pairs(xy, v)
    b = sites.buffer_m[pairs.a]
    sel = (pairs.d_cpa_m <= b) & (pairs.d_now_m > b)
    assert sel.sum() > 10
    t = sites.entry_times(pairs, sel, xy, v, b[sel], pairs.t_cpa_s[sel])
    ts = np.linspace(0.0, 1.0, 2001)
    for k, p in enumerate(np.flatnonzero(sel)):
        i, site = pairs.i[p], sites[int(pairs.site[p])]
        samples = xy[i] + v[i] * (ts * pairs.t_cpa_s[p])[:, None]
        d = _exact_distance(site, samples)
        first = ts[np.argmax(d <= b[p] + 1e-6)] * pairs.t_cpa_s[p]
        # bisection may find a later entry for a concave area, never an earlier one
        assert t[k] >= first - pairs.t_cpa_s[p] / 1000 - 1e-2
        assert _exact_distance(site, (xy[i] + v[i] * t[k])[None])[0] <= b[p] + 0.05


def test_line_sides_match_reference():
    rng = np.random.default_rng(3)
    pts = [(-20000, 30000), (-5000, 8000), (3000, 2000), (15000, -9000), (16000, -30000)]
    for side in ("left", "right"):
        doc = _collection(_feature("loc", "line_of_contact", "LineString", _ll(FRAME, pts),
                                   protected_side=side))  # fmt: skip
        sites = parse_sites(doc, FRAME)
        line = LineString(sites["loc"].geometry.coords)
        xy = rng.uniform(-25000, 25000, (5000, 2))
        idx, s, u = sites.line_sides(0, xy, band_m=1e6)
        assert len(idx) == len(xy)
        np.testing.assert_allclose(np.abs(s), shapely.distance(line, shapely.points(xy)),
                                   atol=1e-6)  # fmt: skip
        # reference side: the half plane polygon built independently of the kernel
        left = shapely.buffer(line, 1e6, single_sided=True)  # positive: left side
        is_left = shapely.contains_xy(left, xy[:, 0], xy[:, 1])
        clear = np.abs(s) > 1.0
        want = is_left if side == "left" else ~is_left
        assert ((s > 0) == want)[clear].all()
        np.testing.assert_allclose(np.hypot(*u.T), 1.0, atol=1e-9)


def test_line_band_limits_the_points():
    pts = [(0, -10000), (0, 10000)]
    sites = parse_sites(_collection(_feature("loc", "line_of_contact", "LineString",
                                             _ll(FRAME, pts), protected_side="left",
                                             rules={"line_crossing": {"band_m": 5000}})),
                        FRAME)  # fmt: skip
    xy = np.array([[-4000.0, 0.0], [4000.0, 0.0], [30000.0, 0.0], [0.0, 50000.0]])
    idx, s, _ = sites.line_sides(0, xy)
    # fire_event on a line reaches 10 km by default, so the band is the larger of the two
    assert list(idx) == [0, 1]
    assert s[0] > 0 > s[1]  # drawn south to north, left is west


def test_holes_and_multipolygons_follow_shapely():
    outer = [(-5000, -5000), (5000, -5000), (5000, 5000), (-5000, 5000), (-5000, -5000)]
    hole = [(-2000, -2000), (-2000, 2000), (2000, 2000), (2000, -2000), (-2000, -2000)]
    part2 = [(8000, 0), (9000, 0), (9000, 1000), (8000, 1000), (8000, 0)]
    multi = [[_ll(FRAME, outer), _ll(FRAME, hole)], [_ll(FRAME, part2)]]
    sites = parse_sites(_collection(_feature("m", "site", "MultiPolygon", multi, buffer_m=300,
                                             rules={"approach": False})), FRAME)  # fmt: skip
    geom = sites["m"].geometry
    assert geom.geom_type == "MultiPolygon" and len(geom.geoms[0].interiors) == 1
    rng = np.random.default_rng(7)
    xy = rng.uniform(-7000, 10000, (4000, 2))
    pairs = sites.area_pairs(xy, np.zeros_like(xy))
    d_ref = shapely.distance(geom, shapely.points(xy))
    want = np.flatnonzero(d_ref <= sites.reach_m[0] - 1e-6)
    assert set(pairs.i.tolist()) >= set(want.tolist())
    np.testing.assert_allclose(pairs.d_now_m, d_ref[pairs.i], atol=1e-6)
    assert (pairs.inside == shapely.contains_xy(geom, xy[pairs.i, 0], xy[pairs.i, 1])).all()
    # the centre of the hole is 2 km from the site: outside its 300 m buffer, not in a pair
    centre = sites.area_pairs(np.array([[0.0, 0.0]]), np.zeros((1, 2)))
    assert len(centre.i) == 0
