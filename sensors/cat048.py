"""A fast reader of the few ASTERIX CAT048 items the radar adapter needs.

This module owns walking CAT048 records (FSPEC and the UAP of editions 1.2x-1.3x) with plain
byte arithmetic and reading I010, I140, I040, I090 and I220 from them; every other item is
skipped by its length. It does not replace libasterix: whenever anything does not fit (an
unexpected extension, a length past the block), `read_block` returns None and the caller
parses the block with libasterix. Tests compare it with libasterix on every record of the
recorded pcap.
"""

from __future__ import annotations

from typing import NamedTuple


class Plot(NamedTuple):
    """The fields used from one CAT048 record; None where the item is absent."""

    sac: int | None
    sic: int | None
    tod_s: float | None  # I140, s since midnight UTC
    rho_nm: float | None  # I040
    theta_deg: float | None  # I040
    fl: float | None  # I090, flight levels, only when validated and not garbled
    address: int | None  # I220, Mode S 24-bit address


# Item lengths in UAP order (FRN 1..28). Positive: fixed length in bytes. Negative codes:
_EXT, _REP, _C130, _C120, _EXPL, _REPFX = -1, -2, -3, -4, -5, -6
_UAP = (
    2,  # 1 I010 data source identifier
    3,  # 2 I140 time of day
    _EXT,  # 3 I020 target report descriptor
    4,  # 4 I040 measured position in polar coordinates
    2,  # 5 I070 mode-3/A code
    2,  # 6 I090 flight level
    _C130,  # 7 I130 radar plot characteristics
    3,  # 8 I220 aircraft address
    6,  # 9 I240 aircraft identification
    _REP,  # 10 I250 BDS register data (1 + 8 n)
    2,  # 11 I161 track number
    4,  # 12 I042 calculated position in cartesian coordinates
    4,  # 13 I200 calculated track velocity
    _EXT,  # 14 I170 track status
    4,  # 15 I210 track quality
    _REPFX,  # 16 I030 warning/error conditions
    2,  # 17 I080 mode-3/A code confidence
    4,  # 18 I100 mode-C code and confidence
    2,  # 19 I110 height measured by 3D radar
    _C120,  # 20 I120 radial doppler speed
    2,  # 21 I230 communications capability
    7,  # 22 I260 ACAS resolution advisory
    1,  # 23 I055 mode-1 code
    2,  # 24 I050 mode-2 code
    1,  # 25 I065 mode-1 confidence
    2,  # 26 I060 mode-2 confidence
    _EXPL,  # 27 SP special purpose
    _EXPL,  # 28 RE reserved expansion
)


def read_block(block: bytes) -> list[Plot] | None:
    """The plots of one CAT048 data block (category byte, length, records), or None when the
    block does not walk cleanly (let libasterix decide)."""
    n = len(block)
    if n < 3 or block[0] != 48 or ((block[1] << 8) | block[2]) != n:
        return None
    out: list[Plot] = []
    off = 3
    try:
        while off < n:
            off = _record(block, off, n, out)
            if off < 0:
                return None
    except IndexError:
        return None
    return out


def _record(b: bytes, off: int, n: int, out: list[Plot]) -> int:
    # FSPEC: octets while the low bit (FX) is set; FRN i is bit 0x80 >> ((i - 1) % 7).
    frns: list[int] = []
    base = 1
    while True:
        octet = b[off]
        off += 1
        for k in range(7):
            if octet & (0x80 >> k):
                frns.append(base + k)
        if not octet & 1:
            break
        base += 7
        if base > len(_UAP):
            return -1
    if not frns:
        return -1
    sac = sic = tod = rho = theta = fl = address = None
    for frn in frns:
        if frn > len(_UAP):
            return -1
        size = _UAP[frn - 1]
        if size > 0:
            end = off + size
            if end > n:
                return -1
            if frn == 1:
                sac, sic = b[off], b[off + 1]
            elif frn == 2:
                tod = ((b[off] << 16) | (b[off + 1] << 8) | b[off + 2]) / 128.0
            elif frn == 4:
                rho = ((b[off] << 8) | b[off + 1]) / 256.0
                theta = ((b[off + 2] << 8) | b[off + 3]) * (360.0 / 65536.0)
            elif frn == 6:
                v = (b[off] << 8) | b[off + 1]
                if not v & 0xC000:  # V = 0 (validated), G = 0 (not garbled)
                    raw = v & 0x3FFF
                    fl = (raw - 0x4000 if raw & 0x2000 else raw) / 4.0
            elif frn == 8:
                address = (b[off] << 16) | (b[off + 1] << 8) | b[off + 2]
            off = end
        elif size == _EXT or size == _REPFX:
            while b[off] & 1:
                off += 1
            off += 1
        elif size == _REP:
            off += 1 + 8 * b[off]
        elif size == _C130:
            primary = b[off]
            if primary & 1:
                return -1
            off += 1 + bin(primary & 0xFE).count("1")
        elif size == _C120:
            primary = b[off]
            if primary & 0x3F:  # only CAL and RDS are defined; anything else: libasterix
                return -1
            off += 1
            if primary & 0x80:
                off += 2
            if primary & 0x40:
                off += 1 + 6 * b[off]
        elif size == _EXPL:
            length = b[off]
            if length < 1:
                return -1
            off += length
        if off > n:
            return -1
    out.append(Plot(sac, sic, tod, rho, theta, fl, address))
    return off
