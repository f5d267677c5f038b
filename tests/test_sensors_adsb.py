"""ADS-B decoders on the OpenSky recordings, and SBS-1 lines rendered from them."""

from __future__ import annotations

import csv
import gzip
import json
import math

import pytest

from fusion.messages import CLS_AIR, KIND_POS
from sensors.adsb import (
    AdsbDecoder,
    SbsDecoder,
    decode_opensky_csv,
    decode_opensky_json,
    decode_sbs,
    sbs_line,
)
from sensors.batching import FOOT_M, KNOT_MPS
from sensors.sources import file_lines


@pytest.fixture(scope="module")
def paris(request):
    from tests.conftest import data_dir

    path = data_dir() / "adsb" / "opensky_paris_20211007.json.gz"
    if not path.exists():
        pytest.skip(f"{path} not found (set FUSION_DATA_DIR)")
    with gzip.open(path) as f:
        records = json.load(f)
    dec = AdsbDecoder()
    return path, records, list(decode_opensky_json(path, dec)), dec


def test_opensky_json_counts(paris):
    _, records, ms, dec = paris
    assert len(records) == 284505
    assert len(ms) == 283300 and len({m.ident for m in ms}) == 213
    # four reports claim 30+ km of altitude; fifteen jump further than any aircraft flies,
    # 1,186 have an altitude further from the aircraft's last than it can climb or descend
    assert dec.stats["out_of_range"] == 4 and dec.stats["implausible"] == 15 + 1186
    assert dec.stats["alt_missing"] == 50665  # on the ground without altitude: kept, alt 0
    assert all(m.kind == KIND_POS and m.cls == CLS_AIR for m in ms[:1000])


def test_opensky_json_values_against_raw_fields(paris):
    _, records, ms, _ = paris
    by_key = {(m.ident, m.t_s): m for m in ms}
    checked = stale = 0
    for r in records[:: len(records) // 500]:
        m = by_key.get(((f"icao:{r['icao24']}").encode(), r["timestamp"] / 1000))
        if m is None:
            continue
        checked += 1
        assert m.z[0] == r["latitude"] and m.z[1] == r["longitude"]
        if r["altitude"] is None:
            assert m.z[2] == 0.0 and m.r_diag[2] == 300.0**2
        else:
            assert m.z[2] == pytest.approx(r["altitude"] * 0.3048)
        if m.vel is None and r["groundspeed"] is not None:
            stale += 1  # a stale velocity, repeated bit for bit (sensors.adsb)
            continue
        if r["groundspeed"] is not None:
            tr = math.radians(r["track"])
            gs = r["groundspeed"] * 1852 / 3600
            assert m.vel[0] == pytest.approx(gs * math.sin(tr))
            assert m.vel[1] == pytest.approx(gs * math.cos(tr))
            assert m.vel[2] == pytest.approx(r["vertical_rate"] * 0.3048 / 60)
    assert checked >= 450 and stale <= checked // 5


def test_opensky_csv_counts_and_velocity_matches_its_own_xy_columns(shared_data):
    path = shared_data / "adsb" / "opensky_uk_states_20210712.csv"
    dec = AdsbDecoder()
    ms = list(decode_opensky_csv(file_lines(path), dec))
    assert len(ms) == 5393 and len({m.ident for m in ms}) == 84  # 14 altitudes implausible
    assert dec.stats["stale"] == 645  # rows repeating a position not updated since
    rows = list(csv.DictReader(open(path, newline="")))
    by_key = {(m.ident, m.t_s): m for m in ms}
    checked = stale = 0
    for row in rows[::20]:
        m = by_key.get(((f"icao:{row['icao24']}").encode(), float(row["lastposupdate"])))
        if m is None:
            continue
        checked += 1
        assert m.z[0] == float(row["lat"]) and m.z[1] == float(row["lon"])
        if row["geoaltitude"]:
            assert m.z[2] == float(row["geoaltitude"])
        if m.vel is None:  # a stale velocity, repeated bit for bit (sensors.adsb)
            stale += 1
            continue
        # the file's own x_speed/y_speed columns are the east/north components
        assert m.vel[0] == pytest.approx(float(row["x_speed"]), abs=1e-3)
        assert m.vel[1] == pytest.approx(float(row["y_speed"]), abs=1e-3)
    assert checked >= 200 and stale <= checked // 5


def test_sbs_round_trip_from_recorded_states(paris):
    _, records, _, _ = paris
    lines, expect = [], []
    for r in records[:3000]:
        if r["latitude"] is None or r["altitude"] is None or r["groundspeed"] is None:
            continue
        t = r["timestamp"] / 1000
        kw = dict(gs_kt=r["groundspeed"], track_deg=r["track"], vrate_fpm=r["vertical_rate"])
        lines.append((0.0, sbs_line(r["icao24"], t, msg_type=4, **kw)))
        lines.append(
            (
                0.0,
                sbs_line(
                    r["icao24"], t, alt_ft=r["altitude"], lat=r["latitude"], lon=r["longitude"]
                ),
            )
        )
        expect.append(r)
    dec = SbsDecoder()
    ms = list(decode_sbs(lines, dec))
    assert dec.stats["velocities"] == len(expect)
    assert len(ms) + dec.stats["implausible"] == len(expect)
    m, r = ms[0], expect[0]
    assert m.ident == b"icao:" + r["icao24"].encode()
    assert m.t_s == r["timestamp"] / 1000
    assert m.z[0] == pytest.approx(r["latitude"], abs=1e-5)
    assert m.z[2] == pytest.approx(r["altitude"] * FOOT_M)
    gs = round(r["groundspeed"], 1) * KNOT_MPS
    assert math.hypot(m.vel[0], m.vel[1]) == pytest.approx(gs)


def test_sbs_garbage_is_counted_and_skipped():
    good = sbs_line("4ca1fa", 1.6e9, alt_ft=35000, lat=53.1, lon=-6.2)
    feed = [
        b"",
        b"garbage",
        b"MSG,3,1,1,ZZZZZZ,1,2021/10/07,12:00:00.000,,,,35000,,,53.1,-6.2,,,,,,0",
        b"MSG,3,1,1,4CA1FA,1,2021/13/07,xx:00:00.000,,,,35000,,,53.1,-6.2,,,,,,0",
        good[:40],  # truncated
        b"MSG,1,1,1,4CA1FA,1,2021/10/07,12:00:00.000,2021/10/07,12:00:00.000,RYR1,,,,,,,,,,,0",
        b"MSG,3,1,1,4CA1FA,1,2021/10/07,12:00:00.000,,,,35000,,,95.0,-6.2,,,,,,0",
        b"\xff\xfe\x00",
        good,
    ]
    dec = SbsDecoder()
    out = [m for line in feed for m in dec.feed(line, 0.0)]
    assert len(out) == 1 and out[0].ident == b"icao:4ca1fa"
    assert out[0].z == pytest.approx((53.1, -6.2, 35000 * FOOT_M))
    s = dec.stats
    assert s["empty"] == 1 and s["other_types"] == 1 and s["out_of_range"] == 1
    assert s["undecodable"] == 5
