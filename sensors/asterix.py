"""ASTERIX radar and ADS-B reports: CAT048 target reports as `polar`, CAT021 as `pos`.

This module owns decoding ASTERIX data blocks (from a UDP datagram, a raw file or a pcap
record) into `Measurement`s. Parsing is libasterix's (`asterix.generated` specifications);
CAT048 also has a struct-based reader of just the items we use (`sensors.cat048`), checked
record by record against libasterix in the tests, because libasterix, pure Python, decodes a
few thousand records per second and a busy radar feed needs more. Blocks that the fast reader
does not accept are handed to libasterix, so the fast path never loses a record libasterix
would have read. It must not open sockets or files (sensors.sources does).

CAT048: I010 SAC/SIC selects the radar site (from config); I140 time of day (1/128 s, UTC) is
resolved to a full time as the instant nearest a reference time (the pcap capture time, the
receipt time, or noon of a configured date), so midnight roll-over is handled; I040 RHO/THETA
become range_m and az_rad; the elevation comes from I090 flight level when present (spherical
earth, 4/3 radius for refraction) with sigma from 100 m of height error, else 0 rad with a
0.35 rad sigma (no information, kept finite); I220 is the identity ``icao:<hex>``.

CAT021: I080 target address, I130/I131 position, I073/I071 time of applicability, I140
geometric height or I145 flight level, I160 ground vector. R as in sensors.adsb.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Iterator

import asterix.generated as gen
from asterix.base import Bits, RawDatablock

from fusion.messages import CLS_AIR, CLS_UNKNOWN, KIND_POLAR
from sensors import cat048
from sensors.adsb import AdsbDecoder, velocity
from sensors.batching import FOOT_M, Measurement

NM_M = 1852.0
DAY_S = 86400.0
EARTH_RADIUS_M = 6_371_008.8
REFRACTION_K = 4.0 / 3.0
SIGMA_RANGE_M, SIGMA_AZ_DEG = 50.0, 0.15
SIGMA_EL_NO_HEIGHT_RAD = 0.35
SIGMA_HEIGHT_M = 100.0
CAT048_SPEC = gen.Cat_048_1_32
CAT021_SPEC = gen.Cat_021_2_6

OUTCOMES = (
    "datablocks",
    "records_048",
    "records_021",
    "polar",  # CAT048 plots emitted
    "positions",  # CAT021 positions emitted (AdsbDecoder counts them under "positions" too)
    "other_category",  # data blocks of other categories (CAT034 service messages, ...)
    "bad_block",  # data blocks or records libasterix refuses (truncated, garbage)
    "no_position",  # records without I040 (CAT048) or I130/I131 (CAT021)
    "no_time",  # records without I140 (CAT048) or any time item (CAT021)
    "unknown_radar",  # CAT048 from a SAC/SIC with no configured site
    "fast_fallback",  # CAT048 blocks the fast reader passed to libasterix
)


def resolve_time_of_day(tod_s: float, ref_t_s: float) -> float:
    """The UTC instant with time of day `tod_s` nearest `ref_t_s`."""
    day0 = math.floor(ref_t_s / DAY_S) * DAY_S
    t = day0 + tod_s
    if t - ref_t_s > DAY_S / 2:
        t -= DAY_S
    elif ref_t_s - t > DAY_S / 2:
        t += DAY_S
    return t


def elevation_from_height(range_m: float, height_m: float, site_alt_m: float) -> float:
    """Elevation angle of a target at `height_m` and slant `range_m` seen from `site_alt_m`,
    on a sphere of 4/3 the earth's radius (standard refraction)."""
    re = EARTH_RADIUS_M * REFRACTION_K
    a, b = re + site_alt_m, re + height_m
    s = (b * b - a * a - range_m * range_m) / (2.0 * a * range_m)
    return math.asin(max(-1.0, min(1.0, s)))


class AsterixDecoder:
    """Decodes ASTERIX datagrams. `sites` maps (SAC, SIC) to the radar's (lat, lon, alt_m);
    `default_site` serves any other SAC/SIC (None: such records are counted and skipped)."""

    def __init__(
        self,
        *,
        sites: dict[tuple[int, int], tuple[float, float, float]] | None = None,
        default_site: tuple[float, float, float] | None = None,
        date: str | None = None,
        sigma_range_m: float = SIGMA_RANGE_M,
        sigma_az_deg: float = SIGMA_AZ_DEG,
        engine: str = "fast",
    ) -> None:
        if engine not in ("fast", "libasterix"):
            raise ValueError("engine must be 'fast' or 'libasterix'")
        self.stats: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.sites = {k: tuple(map(float, v)) for k, v in (sites or {}).items()}
        self.default_site = tuple(map(float, default_site)) if default_site else None
        self.engine = engine
        self._ref_date_s = None
        if date:
            y, m, d = (int(x) for x in date.split("-"))
            self._ref_date_s = calendar.timegm((y, m, d, 12, 0, 0, 0, 0, 0))
        self._var_r = sigma_range_m**2
        self._var_az = math.radians(sigma_az_deg) ** 2
        self._adsb = AdsbDecoder(plausibility=False)

    def feed(self, data: bytes, ref_t_s: float) -> list[Measurement]:
        """Decodes every data block of one datagram; `ref_t_s` is its capture/receipt time."""
        ref = self._ref_date_s if self._ref_date_s is not None else ref_t_s
        out: list[Measurement] = []
        off, n = 0, len(data)
        while off < n:
            if n - off < 3:
                self.stats["bad_block"] += 1
                return out
            cat = data[off]
            length = (data[off + 1] << 8) | data[off + 2]
            if length < 3 or off + length > n:
                self.stats["bad_block"] += 1
                return out  # the length is untrustworthy: nothing after it can be framed
            block = data[off : off + length]
            off += length
            self.stats["datablocks"] += 1
            if cat == 48:
                self._cat048(block, ref, out)
            elif cat == 21:
                self._cat021(block, ref, out)
            else:
                self.stats["other_category"] += 1
        return out

    # -- CAT048 -------------------------------------------------------------------------

    def _cat048(self, block: bytes, ref: float, out: list[Measurement]) -> None:
        if self.engine == "fast":
            records = cat048.read_block(block)
            if records is None:
                self.stats["fast_fallback"] += 1
                records = self._cat048_libasterix(block)
        else:
            records = self._cat048_libasterix(block)
        if records is None:
            self.stats["bad_block"] += 1
            return
        for rec in records:
            self.stats["records_048"] += 1
            m = self._plot(rec, ref)
            if m is not None:
                out.append(m)

    def _cat048_libasterix(self, block: bytes) -> list[cat048.Plot] | None:
        """The same fields as `cat048.read_block`, read by libasterix."""
        dbs = RawDatablock.parse(Bits.from_bytes(block))
        if isinstance(dbs, ValueError) or len(dbs) != 1:
            return None
        recs = CAT048_SPEC.cv_uap.parse(dbs[0].get_raw_records())
        if isinstance(recs, ValueError):
            return None
        return [libasterix_plot(r) for r in recs]

    def _plot(self, p: cat048.Plot, ref: float) -> Measurement | None:
        sac, sic, tod_s, rho_nm, theta_deg, fl, address = p
        if rho_nm is None:
            self.stats["no_position"] += 1
            return None
        if tod_s is None:
            self.stats["no_time"] += 1
            return None
        site = self.sites.get((sac, sic), self.default_site) if sac is not None else None
        if site is None:
            self.stats["unknown_radar"] += 1
            return None
        range_m = rho_nm * NM_M
        if fl is not None and range_m > 0.0:
            el = elevation_from_height(range_m, fl * 100.0 * FOOT_M, site[2])
            var_el = (SIGMA_HEIGHT_M / max(range_m, 1000.0)) ** 2
        else:
            el, var_el = 0.0, SIGMA_EL_NO_HEIGHT_RAD**2
        self.stats["polar"] += 1
        return Measurement(
            KIND_POLAR,
            resolve_time_of_day(tod_s, ref),
            (range_m, math.radians(theta_deg), el),
            (self._var_r, self._var_az, var_el),
            b"" if address is None else b"icao:%06x" % address,
            CLS_AIR if address is not None else CLS_UNKNOWN,
            None,
            None,
            site,
        )

    # -- CAT021 -------------------------------------------------------------------------

    def _cat021(self, block: bytes, ref: float, out: list[Measurement]) -> None:
        dbs = RawDatablock.parse(Bits.from_bytes(block))
        if isinstance(dbs, ValueError) or len(dbs) != 1:
            self.stats["bad_block"] += 1
            return
        recs = CAT021_SPEC.cv_uap.parse(dbs[0].get_raw_records())
        if isinstance(recs, ValueError):
            self.stats["bad_block"] += 1
            return
        for r in recs:
            self.stats["records_021"] += 1
            m = self._adsb_report(r, ref)
            if m is not None:
                out.append(m)

    def _adsb_report(self, r, ref: float) -> Measurement | None:
        i080 = r.get_item("080")
        pos = r.get_item("131") or r.get_item("130")
        if i080 is None or pos is None:
            self.stats["no_position"] += 1
            return None
        tod = None
        for name in ("073", "071", "075"):
            item = r.get_item(name)
            if item is not None:
                tod = item.variation.content.as_quantity("s")
                break
        if tod is None:
            self.stats["no_time"] += 1
            return None
        lat = pos.variation.get_item("LAT").variation.content.as_quantity("°")
        lon = pos.variation.get_item("LON").variation.content.as_quantity("°")
        alt_m, geometric = None, False
        i140, i145 = r.get_item("140"), r.get_item("145")
        if i140 is not None:
            alt_m, geometric = i140.variation.content.as_quantity("ft") * FOOT_M, True
        elif i145 is not None:
            alt_m = i145.variation.content.as_quantity("FL") * 100.0 * FOOT_M
        vel = var = None
        i160 = r.get_item("160")
        if i160 is not None:
            gs = i160.variation.get_item("GS").variation.content.as_quantity("NM/s")
            ta = i160.variation.get_item("TA").variation.content.as_quantity("°")
            vel, var = velocity(gs * NM_M, ta, None)
        m = self._adsb.measurement(
            resolve_time_of_day(tod, ref),
            f"{i080.variation.content.as_uint():06x}",
            lat,
            lon,
            alt_m,
            geometric=geometric,
            vel=vel,
            vel_var=var,
        )
        if m is None:
            self.stats["no_position"] += 1
        else:
            self.stats["positions"] += 1
        return m


def libasterix_plot(r) -> cat048.Plot:
    """The CAT048 fields we use from a libasterix record (the reference for `cat048`)."""
    i010, i140, i040 = r.get_item("010"), r.get_item("140"), r.get_item("040")
    i090, i220 = r.get_item("090"), r.get_item("220")
    sac = sic = tod = rho = theta = fl = address = None
    if i010 is not None:
        sac = i010.variation.get_item("SAC").as_uint()
        sic = i010.variation.get_item("SIC").as_uint()
    if i140 is not None:
        tod = i140.variation.content.as_quantity("s")
    if i040 is not None:
        rho = i040.variation.get_item("RHO").variation.content.as_quantity("NM")
        theta = i040.variation.get_item("THETA").variation.content.as_quantity("°")
    if i090 is not None:
        v = i090.variation
        if v.get_item("V").as_uint() == 0 and v.get_item("G").as_uint() == 0:
            fl = v.get_item("FL").variation.content.as_quantity("FL")
    if i220 is not None:
        address = i220.variation.content.as_uint()
    return cat048.Plot(sac, sic, tod, rho, theta, fl, address)


def decode_datagrams(
    datagrams: Iterable[tuple[float, bytes]], decoder: AsterixDecoder
) -> Iterator[Measurement]:
    for t, data in datagrams:
        yield from decoder.feed(data, t)


def raw_file_datagrams(path: str) -> Iterator[tuple[float, bytes]]:
    """A raw ASTERIX file (data blocks back to back) as one datagram per data block, stamped
    with the file's modification time (pass `date` to the decoder to override)."""
    import os

    with open(path, "rb") as f:
        data = f.read()
    t = os.path.getmtime(path)
    off = 0
    while off + 3 <= len(data):
        length = (data[off + 1] << 8) | data[off + 2]
        if length < 3:
            yield t, data[off:]  # garbage: the decoder counts it
            return
        yield t, data[off : off + length]
        off += length
    if off < len(data):
        yield t, data[off:]
