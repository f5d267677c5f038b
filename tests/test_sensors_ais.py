"""AIS decoder on the recorded NMEA logs and the Solent CSV; bad input counted and skipped.

The few NMEA lines kept inline below come from dma-ais/AisLib test resources (Apache-2.0).
"""

from __future__ import annotations

import calendar
import math

import pytest
from pyais import decode as pyais_decode
from pyais.messages import NMEASentenceFactory

from fusion.messages import CLS_SURFACE, KIND_POS
from sensors.ais import AisDecoder, decode_csv, decode_lines, first_clock_s
from sensors.batching import KNOT_MPS
from sensors.sources import file_lines

PGHP = b"$PGHP,1,2010,6,11,11,46,12,470,219,,2190064,1,5D*57"
POS = b"!BSVDM,1,1,,A,13:WB@0vC2PmgjpP`WO=DbdF0<0U,0*5D"
MULTI = (
    b"!AIVDM,2,1,1,,53cMa3@000010WSW?V105=<45B2222222222220t388151:9e2UiDm851DTh,0*65",
    b"!AIVDM,2,2,1,,j1C32CQp888,2*17",
)


def _lines(path):
    return list(file_lines(path))


def test_dma_stream_counts_and_values_match_pyais(shared_data):
    path = shared_data / "ais" / "dma_stream_example.nmea"
    dec = AisDecoder()
    ms = list(decode_lines(_lines(path), dec))
    idents = {m.ident for m in ms}
    assert len(ms) == 2962
    assert len(idents) == 1388
    assert dec.stats["timestamps"] == 4051  # every $PGHP used
    assert dec.stats["checksum"] == 2 and dec.stats["incomplete"] == 0
    assert dec.stats["implausible"] == 1 and dec.stats["no_position"] == 23
    # every line is accounted for under exactly one outcome (fragments count their parts)
    assert sum(dec.stats.values()) == len(_lines(path))

    # Independent decode: pyais's top-level decode of every valid single-sentence position
    # report, in file order, with the $PGHP time that precedes it.
    expected = []
    pghp_t = None
    for line in path.read_bytes().splitlines():
        if line.startswith(b"$PGHP"):
            f = line.split(b",")
            y, mo, d, h, mi, s, ms_ = (int(x) for x in f[2:9])
            pghp_t = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + ms_ / 1000
            continue
        t, pghp_t = pghp_t, None
        if not line.startswith(b"!") or line.split(b",")[1] != b"1":
            continue
        if not NMEASentenceFactory.produce(line).is_valid:
            continue
        msg = pyais_decode(line)
        if msg.msg_type in (1, 2, 3, 18, 19) and msg.lat != 91.0 and msg.lon != 181.0:
            expected.append((t, msg))
    ours = {(m.ident, m.t_s): m for m in ms}
    checked = coarse = 0
    for t, msg in expected:
        m = ours.get((b"mmsi:%d" % msg.mmsi, t))
        if m is None:
            continue  # the one implausible jump
        checked += 1
        assert m.kind == KIND_POS and m.cls == CLS_SURFACE
        assert m.z[0] == pytest.approx(msg.lat, abs=1e-9)
        assert m.z[1] == pytest.approx(msg.lon, abs=1e-9)
        if msg.speed < 102.2 and msg.course < 360:
            speed = math.hypot(m.vel[0], m.vel[1])
            assert speed == pytest.approx(msg.speed * KNOT_MPS, abs=1e-9)
            if msg.speed > 0:
                course = math.degrees(math.atan2(m.vel[0], m.vel[1])) % 360
                assert course == pytest.approx(msg.course, abs=1e-6)
        elif msg.speed < 102.2 and msg.speed * KNOT_MPS < 0.5:
            assert m.vel == (0.0, 0.0, 0.0)  # at rest without a course (sensors.ais)
        else:
            assert m.vel is None
        # 2 m floor plus the distance covered in 2 s at the reported speed (sensors.ais),
        # plus, under way, the rounding of a position given to 0.01 arc-minute
        v = msg.speed * KNOT_MPS if msg.speed < 102.2 else 0.0
        sigma2 = 2.0**2 + (2.0 * v) ** 2
        e_var = n_var = 0.0
        lat_steps, lon_steps = msg.lat * 6000.0, msg.lon * 6000.0
        if v >= 0.5 and abs(lat_steps - round(lat_steps)) < 1e-6:
            if abs(lon_steps - round(lon_steps)) < 1e-6:
                n_var = 18.52**2 / 12.0
                e_var = n_var * math.cos(math.radians(msg.lat)) ** 2
                coarse += 1
        assert m.r_diag[:2] == (pytest.approx(sigma2 + e_var), pytest.approx(sigma2 + n_var))
    assert checked >= 2500
    assert coarse > 0  # some DMA vessels give 0.01 arc-minute positions (13 under way)


def test_dma_first_report_time_from_pghp(shared_data):
    lines = _lines(shared_data / "ais" / "dma_stream_example.nmea")[:4]
    # line 1 is $PGHP 2010-06-11 11:46:11.390, line 2 a type 4 (no position); line 3/4 likewise
    dec = AisDecoder()
    for t, line in lines:
        dec.feed(line, t)
    m = dec.feed(PGHP, 0.0) + dec.feed(POS, 0.0)
    assert len(m) == 1
    assert m[0].t_s == pytest.approx(calendar.timegm((2010, 6, 11, 11, 46, 12)) + 0.470)
    assert m[0].ident == b"mmsi:212456000"


def test_signalk_mixed_gps_and_ais(shared_data):
    path = shared_data / "ais" / "signalk_gofree_merrimac.nmea"
    lines = _lines(path)
    clock = first_clock_s(lines)
    assert clock == calendar.timegm((2014, 4, 16, 19, 57, 19))
    dec = AisDecoder(clock_s=clock)
    ms = list(decode_lines(lines, dec))
    assert len(ms) == 1322
    assert len({m.ident for m in ms}) == 162
    assert dec.stats["other_nmea"] == 4533  # GPS, depth, heading: ignored, never fatal
    assert dec.stats["undecodable"] == 0 and dec.stats["checksum"] == 0
    # times follow the receiver's GPS clock: the log spans about two minutes of 2014-04-16
    ts = [m.t_s for m in ms]
    assert min(ts) >= clock and max(ts) - min(ts) < 300


def test_solent_csv_rejects_the_bad_longitude(shared_data):
    dec = AisDecoder()
    ms = list(decode_csv(_lines(shared_data / "ais" / "solent_ais_20160112.csv"), dec))
    assert len(ms) == 18622 and dec.stats["implausible"] == 1
    assert len({m.ident for m in ms}) == 91
    assert not any(m.z[1] > 0 for m in ms)  # the 54.8 deg longitude row is gone
    first = ms[0]  # 2016-01-12 13:02:11.218,235070762,50.7730133333333,-1.092935,157.8,5.9
    assert first.ident == b"mmsi:235070762"
    assert first.t_s == pytest.approx(calendar.timegm((2016, 1, 12, 13, 2, 11)) + 0.218)
    assert first.z[:2] == (50.7730133333333, -1.092935)
    c = math.radians(157.8)
    assert first.vel[0] == pytest.approx(5.9 * KNOT_MPS * math.sin(c))
    assert first.vel[1] == pytest.approx(5.9 * KNOT_MPS * math.cos(c))


def test_garbage_truncated_and_interleaved_input_is_counted_and_skipped():
    dec = AisDecoder()
    bad_checksum = POS[:-2] + b"00"
    feed = [
        b"",
        b"\x00\xff\xfe garbage \x80",
        b"!AIVDM,1,1,,A,13:WB@0vC2Pm",  # truncated sentence
        bad_checksum,
        b"hello world",
        MULTI[1],  # a continuation without its first part
        MULTI[0],
        POS,  # a single sentence between the parts of a multi-sentence message: fine
        MULTI[1],
        MULTI[0],
        MULTI[0],  # restarts: the first is incomplete
        b"x" * 100_000,
        b"!AIVDM,1,1,,A,13:WB@0vC2PmgjpP`WO=DbdF0<0U,7*5A",  # fill bits out of range
        POS,
    ]
    out = []
    for line in feed:
        out += dec.feed(line, 1.0e9)
    assert [m.ident for m in out] == [b"mmsi:212456000"] * 2
    s = dec.stats
    assert s["empty"] == 1
    assert s["checksum"] == 1
    assert s["incomplete"] == 2  # the orphan continuation and the restarted message
    assert s["undecodable"] >= 3
    assert s["other_types"] == 1  # the one assembled type 5 (static data)
    # and the decoder still works after all of that
    assert dec.feed(POS, 2.0e9)[0].t_s == 2.0e9


def test_tag_block_time_is_used():
    dec = AisDecoder()
    body = b"!BSVDM,1,1,,A,13:WB@0vC2PmgjpP`WO=DbdF0<0U,0*5D"
    tag = b"c:1671533231"
    x = 0
    for ch in tag:
        x ^= ch
    line = b"\\" + tag + b"*%02X\\" % x + body
    (m,) = dec.feed(line, 5.0)
    assert m.t_s == 1671533231.0


def test_jump_filter_memory_is_bounded_and_recovers_from_a_bad_first_report():
    from sensors.plausible import JumpFilter

    f = JumpFilter(60.0, max_idents=100)
    for i in range(1000):
        assert f.accept(b"mmsi:%d" % i, float(i), 50.0, -1.0)
    assert len(f._last) <= 100
    # a bad first report: the next three consistent ones win
    g = JumpFilter(60.0)
    assert g.accept(b"x", 0.0, 50.0, 54.8)
    assert not g.accept(b"x", 10.0, 50.0, -1.0)
    assert not g.accept(b"x", 20.0, 50.0, -1.0)
    assert g.accept(b"x", 30.0, 50.0, -1.0)
    assert g.accept(b"x", 40.0, 50.0, -1.0)
