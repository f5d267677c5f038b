"""ASTERIX CAT048/CAT021 decoding on the recorded pcap and raw block, checked by hand."""

from __future__ import annotations

import calendar
import math
import struct

import asterix.generated as gen
import pytest

from fusion.messages import KIND_POLAR, KIND_POS
from sensors import cat048
from sensors.asterix import (
    AsterixDecoder,
    decode_datagrams,
    elevation_from_height,
    raw_file_datagrams,
    resolve_time_of_day,
)
from sensors.sources import PcapError, pcap_udp

SITE = (48.7, 2.3, 120.0)


def _blocks(datagrams):
    for _t, dg in datagrams:
        off = 0
        while off < len(dg):
            n = (dg[off + 1] << 8) | dg[off + 2]
            yield dg[off : off + n]
            off += n


def test_pcap_counts(shared_data):
    stats = {}
    dgs = list(pcap_udp(shared_data / "asterix" / "cat034_cat048_sample.pcap", stats))
    assert stats == {"datagrams": 100}
    dec = AsterixDecoder(default_site=SITE)
    ms = list(decode_datagrams(dgs, dec))
    assert dec.stats["records_048"] == 128
    assert dec.stats["polar"] == 126 and dec.stats["no_position"] == 2
    assert dec.stats["other_category"] == 34  # CAT034 service messages
    assert dec.stats["bad_block"] == 0 and dec.stats["fast_fallback"] == 0
    idents = {m.ident for m in ms if m.ident}
    assert len(idents) == 62  # Mode S addresses; the other plots carry no I220
    assert all(m.kind == KIND_POLAR and m.site == SITE for m in ms)
    # I140 resolved against the capture time: within a few seconds of it, across the file
    for (t, dg), _ in zip(dgs, range(10), strict=False):
        for m in dec.feed(dg, t):
            assert abs(m.t_s - t) < 5.0


def test_fast_reader_equals_libasterix_on_every_record(shared_data):
    dgs = list(pcap_udp(shared_data / "asterix" / "cat034_cat048_sample.pcap"))
    ref = AsterixDecoder(engine="libasterix")
    n = 0
    for block in _blocks(dgs):
        if block[0] != 48:
            continue
        fast = cat048.read_block(block)
        slow = ref._cat048_libasterix(block)
        assert fast == slow
        n += len(slow)
    assert n == 128


def test_raw_block_decoded_by_hand(shared_data):
    path = shared_data / "asterix" / "cat048_sample.raw"
    raw = path.read_bytes()
    # By hand, from the CAT048 specification (EUROCONTROL, edition 1.2x-1.3x):
    cat, length = struct.unpack(">BH", raw[:3])
    assert (cat, length) == (48, len(raw))
    fspec = raw[3:6]  # fd f7 02: FRN 1-6, (FX), 8-11, 13-14, (FX), 21
    assert fspec == bytes.fromhex("fdf702")
    sac, sic = raw[6], raw[7]  # I010
    tod_s = int.from_bytes(raw[8:11], "big") / 128  # I140, LSB 1/128 s
    assert raw[11] & 1 == 0  # I020, one octet
    rho_nm = struct.unpack(">H", raw[12:14])[0] / 256  # I040 RHO, LSB 1/256 NM
    theta_deg = struct.unpack(">H", raw[14:16])[0] * 360 / 2**16  # I040 THETA
    fl_raw = struct.unpack(">H", raw[18:20])[0]  # I090 (after I070 at 16:18)
    fl = (fl_raw & 0x3FFF) / 4
    address = int.from_bytes(raw[20:23], "big")  # I220
    assert (sac, sic) == (25, 201)
    assert tod_s == 27354.6015625 and rho_nm == 197.68359375 and theta_deg == 340.13671875
    assert fl == 330.0 and address == 0x3C660C

    dec = AsterixDecoder(sites={(25, 201): SITE}, date="2016-05-05")
    (m,) = list(decode_datagrams(raw_file_datagrams(str(path)), dec))
    assert m.kind == KIND_POLAR and m.site == SITE
    assert m.t_s == calendar.timegm((2016, 5, 5, 0, 0, 0)) + tod_s
    assert m.z[0] == rho_nm * 1852.0
    assert m.z[1] == math.radians(theta_deg)
    assert m.z[2] == pytest.approx(elevation_from_height(m.z[0], 330 * 100 * 0.3048, 120.0))
    assert m.ident == b"icao:3c660c"
    assert m.r_diag[0] == 50.0**2 and m.r_diag[1] == pytest.approx(math.radians(0.15) ** 2)


def test_unknown_radar_skipped_and_garbage_counted(shared_data):
    raw = (shared_data / "asterix" / "cat048_sample.raw").read_bytes()
    dec = AsterixDecoder(sites={(1, 2): SITE})
    assert dec.feed(raw, 1.46e9) == [] and dec.stats["unknown_radar"] == 1

    dec = AsterixDecoder(default_site=SITE)
    bad_record = bytearray(raw)
    bad_record[3] = 0xFF  # FSPEC now announces I130 whose bytes are not there
    feeds = [
        b"",
        b"\x30",  # shorter than a header
        b"\x30\x00\x02",  # length below the header's own
        b"\x30\x01\x00" + raw[3:],  # length past the datagram
        bytes(bad_record),
        raw[:-5] + struct.pack(">H", 0)[:0],  # truncated block (length says more)
        b"\x22\x00\x0b\xf0\x19\xcd\x02\x35\x6e\x4b\xf8\x88\x88",  # CAT034 then junk tail
        bytes(range(256)),
    ]
    out = []
    for f in feeds:
        out += dec.feed(f, 1.46e9)
    assert out == [] or all(m.kind == KIND_POLAR for m in out)
    assert dec.stats["bad_block"] >= 5
    # still decodes a good block afterwards
    assert len(dec.feed(raw, 1.4624e9)) == 1


def test_cat021_report_from_libasterix_encoding():
    spec = gen.Cat_021_2_6
    rec = spec.cv_record.create(
        {
            "010": (("SAC", 1), ("SIC", 2)),
            "080": 0xABCDEF,
            "130": (("LAT", (48.5, "°")), ("LON", (2.25, "°"))),
            "073": (3600.5, "s"),
            "140": (1000.0, "ft"),
            "160": (("RE", 0), ("GS", (0.05, "NM/s")), ("TA", (90.0, "°"))),
        }
    )
    block = spec.create([rec]).unparse().to_bytes()
    dec = AsterixDecoder()
    (m,) = dec.feed(block, calendar.timegm((2024, 3, 1, 1, 0, 0)))
    assert m.kind == KIND_POS and m.ident == b"icao:abcdef"
    assert m.t_s == calendar.timegm((2024, 3, 1, 1, 0, 0)) + 0.5
    assert m.z[0] == pytest.approx(48.5, abs=1e-5) and m.z[1] == pytest.approx(2.25, abs=1e-5)
    assert m.z[2] == pytest.approx(1000 * 0.3048)
    assert m.vel[0] == pytest.approx(0.05 * 1852, rel=1e-3) and abs(m.vel[1]) < 1e-6
    assert dec.stats["records_021"] == 1 and dec.stats["positions"] == 1


def test_time_of_day_resolves_across_midnight():
    day = calendar.timegm((2024, 1, 2, 0, 0, 0))
    assert resolve_time_of_day(86399.0, day + 1.0) == day - 1.0
    assert resolve_time_of_day(1.0, day - 1.0) == day + 1.0
    assert resolve_time_of_day(43000.0, day + 43000.5) == day + 43000.0


def test_pcap_reader_rejects_other_files_and_counts_truncation(tmp_path, shared_data):
    p = tmp_path / "x.pcap"
    p.write_bytes(b"not a pcap at all" * 3)
    with pytest.raises(PcapError):
        list(pcap_udp(p))
    data = (shared_data / "asterix" / "cat034_cat048_sample.pcap").read_bytes()
    p.write_bytes(data[:-10])
    stats = {}
    assert len(list(pcap_udp(p, stats))) == 99 and stats["truncated"] == 1
