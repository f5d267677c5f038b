"""ADS-B: SBS-1 BaseStation lines (dump1090/readsb port 30003) and OpenSky state-vector files.

This module owns turning ADS-B text into `pos` `Measurement`s with identity ``icao:<hex>`` and
class air. It must not open sockets (sensors.sources does) nor batch (sensors.batching does).

Choices, documented for the tracker (these feeds carry no NACp, so R is fixed):
- R horizontal (50 m)^2: NACp 8 (EPU < 92.6 m at 95 %), the common case, as a 1-sigma bound.
- R vertical (100 m)^2 for barometric altitude (pressure altitude differs from height above
  the ellipsoid by the geoid and the day's pressure), (50 m)^2 for geometric altitude, and
  (300 m)^2 with altitude 0 when a report has no altitude at all (aircraft on the ground).
- Velocity from ground speed (kt) and track (deg) and vertical rate (ft/min); variance from
  speed sigma 2 m/s, track sigma 2 deg, vertical rate sigma 1.5 m/s.
- A report flagged on the ground (OpenSky `onground`, an SBS surface position MSG,2 or the
  SBS ground flag) is class ground, not air: a parked or taxiing aircraft moves like a ground
  vehicle. Its horizontal R is (10 m)^2 + (ground speed x 0.5 s)^2 on both axes
  (`surface_variance`), not the airborne 50 m: surface positions are far more precise
  (NACp 9-10, EPU < 30 m and < 10 m at 95 %; on the Paris recording the interpolation
  residual of a ground position between its neighbours is 1.0 m median and 3.7 m at the 90th
  percentile, 2.7 m / 7.6 m at 15-40 m/s), and parked aircraft stand tens of metres apart,
  so a 50 m sigma joins them in one gate. The speed term bounds the along-track error of a
  report time known to about a second (OpenSky stamps state vectors to the second) and a
  taxiing aircraft's turns between reports; it is written on both axes since the
  measurement covariance travels as a diagonal. Paris, all records (identities stripped):
  10 m and 2 s gave purity 0.968 and 5.74 identity switches per object-hour; 10 m and 1 s
  0.968 / 6.79, 5 m and 2 s 0.968 / 6.13, 3 m and 2 s 0.967 / 6.53, 5 m and 3 s 0.967 / 5.86
  (benchmarks/results/evaluation.md). The time term is 0.5 s since the on-ground stale
  velocities are left out after 1 s (below) and the speed comes from the displacement: with
  2 s a braking or accelerating aircraft's R (60 m/s: 120 m) let its lagging track take
  every position without correcting it, until one report with a small R fell 200-400 m out
  of its gate (the figures with each value: benchmarks/results/evaluation.md). Class is not
  used in gating: a landing aircraft's ground reports update its air track (then
  `fusion.tracker_reclass` moves the track to the ground class).
- OpenSky: a reported velocity repeated bit for bit for STALE_VEL_S (10 s) or more by a moving
  aircraft (1 m/s or faster) is stale and left out (the position is kept, its on-ground R
  without the speed term, the stale speed overstating the real one): a measured
  ground speed and track change in their last digits from one update to the next, but the
  OpenSky state vectors repeat the last received velocity (on the Paris recording, an
  aircraft that landed kept 53 m/s while it slowed to 25 m/s, and one turning by 40 deg kept
  its 177.55 deg track for 40 s); the tracker's own check of a velocity against its track
  misses these when the track took the stale velocity from the start. Paris, all records:
  identity switches 5.74 -> 2.72 per object-hour, purity 0.968 -> 0.969; airborne only
  0.95 -> 0.48 per object-hour (5 s: purity 0.917 with the stale speed in R, 0.950 without;
  7 s 0.969 / 2.63; 15 s 0.976 / 2.82).
- On the ground the same holds after STALE_GROUND_VEL_S (1 s): an on-ground velocity repeated
  bit for bit by the next report is left out. A landing aircraft's state vectors keep the
  touch-down speed (75 m/s at Paris) for ten seconds and more while it brakes to 40 m/s, and
  with a 2 m/s sigma those ten seconds pinned its track's velocity: the track ran 100-300 m
  ahead of its positions and the next report started a new track (on the Paris recording the
  largest group of identity switches, landing roll-outs and take-off rolls). A taxiing
  aircraft's real velocity changes in its last digits from one report to the next, and a
  parked one's zero is never left out (under STALE_MIN_SPEED_MPS).

- An altitude that lies further from the aircraft's last plausible altitude (at most
  ALT_REF_MAX_AGE_S, 60 s, old) than ALT_JUMP_SLACK_M (300 m) plus MAX_VRATE_MPS (60 m/s,
  beyond any airliner's climb or descent) per second since is implausible, and its report
  is dropped (counted `implausible`). On the Paris recording (1,186 reports of 53 aircraft)
  some aircraft's reports alternate between their altitude and one 4-11 km off at the same
  horizontal position: the off ones made a second track, confirmed, and the reports
  switched between the two every second or so; and a landed aircraft's frozen last
  airborne position came back with an altitude 10 km off. Paris all records: identity
  switches 123 -> 109 (1.11 -> 0.98 per object-hour), purity 0.957 unchanged. Keeping
  such reports with a vertical sigma of 10 km instead gave 127 switches.

SBS: MSG,3 (airborne position) and MSG,2 (surface position) give positions; MSG,4 (airborne
velocity) gives a velocity, attached to the same aircraft's positions for `VEL_MAX_AGE_S`.
Times are the message's "generated" date and time, read as UTC plus `utc_offset_s` (dump1090
writes the host's local time; readsb can write UTC).

OpenSky: the JSON list (altitude ft, groundspeed kt, track deg, timestamp ms) and the CSV
state vectors (SI units; `lastposupdate` is the position's time, and a row whose position has
not been updated since the last row of the same aircraft is stale and skipped).
"""

from __future__ import annotations

import calendar
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from fusion.messages import CLS_AIR, CLS_GROUND, KIND_POS
from sensors.batching import FOOT_M, KNOT_MPS, Measurement, enu_velocity, velocity_variance
from sensors.csv_rows import read_header, row_fields
from sensors.plausible import JumpFilter
from sensors.sources import open_maybe_gzip

SIGMA_H_M, SIGMA_BARO_M, SIGMA_GEO_M, SIGMA_NO_ALT_M = 50.0, 100.0, 50.0, 300.0
SIGMA_SURFACE_M, SURFACE_TIME_SIGMA_S = 10.0, 0.5  # on-ground reports (see the docstring)
STALE_VEL_S, STALE_MIN_SPEED_MPS = 10.0, 1.0  # stale reported velocities (see the docstring)
STALE_GROUND_VEL_S = 1.0  # the same for on-ground reports (see the docstring)
# An on-ground report without a usable velocity takes the speed term of its R from its
# displacement since the aircraft's previous distinct position, when that is this recent:
# a take-off roll whose stale velocity was left out would otherwise get R for rest.
DISPLACEMENT_MAX_S = 3.0
EARTH_RADIUS_M = 6_371_000.0
SPEED_SIGMA_MPS, TRACK_SIGMA_DEG, VRATE_SIGMA_MPS = 2.0, 2.0, 1.5
FPM_MPS = FOOT_M / 60.0
MAX_AIR_SPEED_MPS = 400.0
# An altitude further from the aircraft's last plausible one (at most ALT_REF_MAX_AGE_S old)
# than ALT_JUMP_SLACK_M plus MAX_VRATE_MPS per second since is implausible: the report is
# dropped (see the docstring).
MAX_VRATE_MPS, ALT_JUMP_SLACK_M, ALT_REF_MAX_AGE_S = 60.0, 300.0, 60.0
VEL_MAX_AGE_S = 5.0

OUTCOMES = (
    "positions",  # position reports emitted
    "velocities",  # SBS MSG,4 velocity reports kept for the next positions
    "other_types",  # valid SBS lines without a position (ident, squawk, ...)
    "no_position",  # position messages or rows without latitude/longitude
    "alt_missing",  # positions emitted without altitude (counted in positions too)
    "stale",  # OpenSky rows repeating an old position
    "empty",
    "undecodable",  # not SBS, wrong field count, unparsable numbers or times
    "out_of_range",
    "implausible",
    "stale_velocity",  # positions emitted without their stale velocity (counted in positions)
)


class AdsbDecoder:
    """Shared state of the ADS-B decoders: counters, last velocities, plausibility filter."""

    def __init__(self, *, plausibility: bool = True, utc_offset_s: float = 0.0) -> None:
        self.stats: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.utc_offset_s = float(utc_offset_s)
        self._vel: dict[str, tuple[float, tuple, tuple]] = {}  # icao -> (t_s, vel, vel_var)
        self._jumps = JumpFilter(MAX_AIR_SPEED_MPS, slack_m=1000.0) if plausibility else None
        # icao -> (velocity, time it was first reported): a velocity repeated bit for bit
        # since STALE_VEL_S is a state vector's stale one (see the module docstring)
        self._vel_seen: dict[bytes, tuple[tuple, float]] = {}
        self._day_cache: dict[bytes, int] = {}
        # icao -> (t_s, lat, lon, speed) of its last distinct position (on-ground R's speed)
        self._last_pos: dict[bytes, tuple[float, float, float, float]] = {}
        # icao -> (t_s, altitude m) of its last plausible altitude
        self._last_alt: dict[bytes, tuple[float, float]] = {}

    def measurement(
        self,
        t_s: float,
        icao: str,
        lat_deg: float | None,
        lon_deg: float | None,
        alt_m: float | None,
        *,
        geometric: bool = False,
        vel: tuple | None = None,
        vel_var: tuple | None = None,
        on_ground: bool = False,
        stale_check: bool = False,
    ) -> Measurement | None:
        """A position as a `Measurement`, or None (counted) when it must be dropped.
        `on_ground`: the report says the aircraft is on the ground (class ground, tight R).
        `stale_check`: leave out a velocity repeated bit for bit (state vectors whose values
        carry full precision, OpenSky; not SBS, whose speeds and tracks are rounded)."""
        if lat_deg is None or lon_deg is None:
            self.stats["no_position"] += 1
            return None
        if not (-90.0 <= lat_deg <= 90.0 and -180.0 <= lon_deg <= 180.0) or (
            alt_m is not None and not -2000.0 <= alt_m <= 30000.0
        ):
            self.stats["out_of_range"] += 1
            return None
        ident = ("icao:" + icao.strip().lower()).encode("ascii", "replace")
        if self._jumps is not None and not self._jumps.accept(ident, t_s, lat_deg, lon_deg):
            self.stats["implausible"] += 1
            return None
        min_age_s = STALE_GROUND_VEL_S if on_ground else STALE_VEL_S
        if vel is not None and stale_check and self._stale_velocity(ident, t_s, vel, min_age_s):
            self.stats["stale_velocity"] += 1
            speed = 0.0  # the real speed is unknown; the stale one overstates it
            vel = vel_var = None
        else:
            speed = math.hypot(vel[0], vel[1]) if vel is not None else 0.0
        if alt_m is None:
            self.stats["alt_missing"] += 1
            alt_m, sigma_v = 0.0, SIGMA_NO_ALT_M
        elif self._implausible_altitude(ident, t_s, alt_m):
            self.stats["implausible"] += 1
            return None
        else:
            sigma_v = SIGMA_GEO_M if geometric else SIGMA_BARO_M
        self.stats["positions"] += 1
        if on_ground:  # every on-ground position is remembered, used without a velocity
            moved_mps = self._displacement_speed(ident, t_s, lat_deg, lon_deg)
            if vel is None:
                speed = moved_mps
        h_var = surface_variance(speed) if on_ground else SIGMA_H_M**2
        return Measurement(
            KIND_POS,
            float(t_s),
            (float(lat_deg), float(lon_deg), float(alt_m)),
            (h_var, h_var, sigma_v * sigma_v),
            ident,
            CLS_GROUND if on_ground else CLS_AIR,
            vel,
            vel_var,
        )

    def _implausible_altitude(self, ident: bytes, t_s: float, alt_m: float) -> bool:
        """The altitude lies further from the aircraft's last plausible one than it can
        climb or descend since (module docstring); a plausible one becomes the reference."""
        last = self._last_alt.get(ident)
        if last is not None and 0.0 <= t_s - last[0] <= ALT_REF_MAX_AGE_S:
            if abs(alt_m - last[1]) > ALT_JUMP_SLACK_M + MAX_VRATE_MPS * (t_s - last[0]):
                return True
        if len(self._last_alt) >= 50_000 and ident not in self._last_alt:
            self._last_alt.clear()  # bounded memory; a first altitude is plausible
        self._last_alt[ident] = (t_s, alt_m)
        return False

    def _displacement_speed(self, ident: bytes, t_s: float, lat_deg: float, lon_deg: float):
        """Ground speed (m/s) from the displacement since this aircraft's previous distinct
        position, at most DISPLACEMENT_MAX_S old; a re-sent position keeps the last speed
        that long."""
        last = self._last_pos.get(ident)
        if last is not None and last[1] == lat_deg and last[2] == lon_deg:
            # re-sent: the last speed while recent (then the aircraft has come to rest)
            return last[3] if t_s - last[0] <= DISPLACEMENT_MAX_S else 0.0
        speed = 0.0
        if last is not None and 0.0 < t_s - last[0] <= DISPLACEMENT_MAX_S:
            north_m = math.radians(lat_deg - last[1]) * EARTH_RADIUS_M
            east_m = (
                math.radians(lon_deg - last[2]) * EARTH_RADIUS_M * math.cos(math.radians(lat_deg))
            )
            speed = math.hypot(north_m, east_m) / (t_s - last[0])
        if len(self._last_pos) >= 50_000 and ident not in self._last_pos:
            self._last_pos.clear()  # bounded memory; a first position gives speed 0
        self._last_pos[ident] = (t_s, lat_deg, lon_deg, speed)
        return speed

    def _stale_velocity(self, ident: bytes, t_s: float, vel: tuple, min_age_s: float) -> bool:
        """Whether `vel` repeats, bit for bit, the velocity this aircraft first reported at
        least `min_age_s` ago (a moving aircraft's measured ground speed and track change
        in their last digits from one update to the next)."""
        seen = self._vel_seen.get(ident)
        if seen is None or seen[0] != vel:
            if len(self._vel_seen) >= 50_000 and ident not in self._vel_seen:
                self._vel_seen.clear()  # bounded memory; a velocity seen anew is not stale
            self._vel_seen[ident] = (vel, t_s)
            return False
        moving = vel[0] * vel[0] + vel[1] * vel[1] >= STALE_MIN_SPEED_MPS**2
        return moving and t_s - seen[1] >= min_age_s


def surface_variance(speed_mps: float) -> float:
    """Horizontal variance (m^2, each axis) of an on-ground position: the fix's own error
    plus the distance covered in the report time's uncertainty at the reported ground speed."""
    return SIGMA_SURFACE_M**2 + (speed_mps * SURFACE_TIME_SIGMA_S) ** 2


def velocity(gs_mps: float | None, track_deg: float | None, vrate_mps: float | None):
    """(vel, vel_var) from ground speed, track and vertical rate, or (None, None)."""
    if gs_mps is None or track_deg is None:
        return None, None
    vr = vrate_mps if vrate_mps is not None else 0.0
    vr_var = VRATE_SIGMA_MPS**2 if vrate_mps is not None else 10.0**2
    return enu_velocity(gs_mps, track_deg, vr), velocity_variance(
        gs_mps, SPEED_SIGMA_MPS, TRACK_SIGMA_DEG, vr_var
    )


# -- SBS-1 BaseStation ---------------------------------------------------------------------


def _num(b: bytes) -> float | None:
    return float(b) if b else None


class SbsDecoder(AdsbDecoder):
    """Decodes SBS-1 lines: ``MSG,type,session,aircraft,hex,flight,date,time,date,time,
    callsign,alt_ft,gs_kt,track_deg,lat,lon,vrate_fpm,squawk,alert,emergency,spi,ground``."""

    def feed(self, line: bytes, recv_t_s: float) -> list[Measurement]:
        line = line.strip()
        if not line:
            self.stats["empty"] += 1
            return []
        f = line.split(b",")
        if len(f) < 16 or f[0] != b"MSG":
            self.stats["undecodable"] += 1
            return []
        tt = f[1]
        if tt not in (b"2", b"3", b"4"):
            if tt in (b"1", b"5", b"6", b"7", b"8"):
                self.stats["other_types"] += 1
            else:
                self.stats["undecodable"] += 1
            return []
        try:
            icao = f[4].decode("ascii")
            if len(icao) != 6:
                raise ValueError("icao")
            int(icao, 16)
            t_s = self._time(f[6], f[7]) + self.utc_offset_s
            if tt == b"4":
                gs, trk, vr = _num(f[12]), _num(f[13]), _num(f[16])
                vel, var = velocity(
                    None if gs is None else gs * KNOT_MPS,
                    trk,
                    None if vr is None else vr * FPM_MPS,
                )
                if vel is None:
                    self.stats["other_types"] += 1
                else:
                    if len(self._vel) >= 50_000 and icao not in self._vel:
                        # bounded memory: forget velocities too old to be attached anyway
                        self._vel = {
                            k: v for k, v in self._vel.items() if t_s - v[0] <= VEL_MAX_AGE_S
                        }
                    self._vel[icao] = (t_s, vel, var)
                    self.stats["velocities"] += 1
                return []
            alt_ft, lat, lon = _num(f[11]), _num(f[14]), _num(f[15])
            vel = var = None
            if tt == b"2":  # surface position carries its own speed and track
                gs, trk = _num(f[12]), _num(f[13])
                vel, var = velocity(None if gs is None else gs * KNOT_MPS, trk, 0.0)
            else:
                last = self._vel.get(icao)
                if last is not None and abs(t_s - last[0]) <= VEL_MAX_AGE_S:
                    vel, var = last[1], last[2]
        except (ValueError, UnicodeDecodeError):
            self.stats["undecodable"] += 1
            return []
        if lat is not None and not (math.isfinite(lat) and math.isfinite(lon or 0.0)):
            self.stats["out_of_range"] += 1
            return []
        # MSG,2 is a surface position; the last field is dump1090's on-ground flag (-1 / 1).
        on_ground = tt == b"2" or (len(f) > 21 and f[21] in (b"-1", b"1"))
        m = self.measurement(
            t_s,
            icao,
            lat,
            lon,
            None if alt_ft is None else alt_ft * FOOT_M,
            vel=vel,
            vel_var=var,
            on_ground=on_ground,
        )
        return [m] if m is not None else []

    def _time(self, date: bytes, clock: bytes) -> float:
        day = self._day_cache.get(date)
        if day is None:
            y, mo, d = date.split(b"/")
            day = calendar.timegm((int(y), int(mo), int(d), 0, 0, 0, 0, 0, 0))
            if len(self._day_cache) > 16:
                self._day_cache.clear()
            self._day_cache[date] = day
        h, mi, s = clock.split(b":")
        hh, mm, ss = int(h), int(mi), float(s)
        if not (0 <= hh < 24 and 0 <= mm < 60 and 0 <= ss < 61):
            raise ValueError("time")
        return day + hh * 3600 + mm * 60 + ss


def sbs_line(
    icao: str,
    t_s: float,
    *,
    msg_type: int = 3,
    alt_ft: float | None = None,
    lat: float | None = None,
    lon: float | None = None,
    gs_kt: float | None = None,
    track_deg: float | None = None,
    vrate_fpm: float | None = None,
    callsign: str = "",
) -> bytes:
    """One SBS-1 line as dump1090 writes it (used to render recordings into SBS and in tests)."""
    whole = math.floor(t_s)
    tm = __import__("time").gmtime(whole)
    date = f"{tm.tm_year:04d}/{tm.tm_mon:02d}/{tm.tm_mday:02d}"
    clock = f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}.{int((t_s - whole) * 1000):03d}"

    def g(v: float | None, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    fields = [
        "MSG",
        str(msg_type),
        "1",
        "1",
        icao.upper(),
        "1",
        date,
        clock,
        date,
        clock,
        callsign,
        g(alt_ft, ".0f"),
        g(gs_kt, ".1f"),
        g(track_deg, ".1f"),
        g(lat, ".5f"),
        g(lon, ".5f"),
        g(vrate_fpm, ".0f"),
        "",
        "",
        "",
        "",
        "0",
    ]
    return ",".join(fields).encode("ascii")


def decode_sbs(
    lines: Iterable[tuple[float, bytes]], decoder: SbsDecoder | None = None
) -> Iterator[Measurement]:
    dec = decoder or SbsDecoder()
    for t, line in lines:
        yield from dec.feed(line, t)


# -- OpenSky state vectors -----------------------------------------------------------------


def _opt_float(v: object) -> float | None:
    if v is None or v == "":
        return None
    x = float(v)  # type: ignore[arg-type]
    return x if math.isfinite(x) else None


def _flag(v: object) -> bool:
    """An on-ground flag as the feeds write it: JSON true/false, CSV "True"/"False"/1/0."""
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "t", "yes")
    return bool(v)


def decode_opensky_json(
    path: str | Path, decoder: AdsbDecoder | None = None
) -> Iterator[Measurement]:
    """Measurements from an OpenSky/traffic JSON(.gz) list of state records."""
    dec = decoder or AdsbDecoder()
    with open_maybe_gzip(path) as f:
        records = json.load(f)
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    for r in records:
        try:
            t_s = float(r["timestamp"]) * 1e-3
            icao = str(r["icao24"])
            lat, lon = _opt_float(r.get("latitude")), _opt_float(r.get("longitude"))
            alt_ft = _opt_float(r.get("altitude"))
            gs, trk, vr = (
                _opt_float(r.get("groundspeed")),
                _opt_float(r.get("track")),
                _opt_float(r.get("vertical_rate")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            dec.stats["undecodable"] += 1
            continue
        vel, var = velocity(
            None if gs is None else gs * KNOT_MPS, trk, None if vr is None else vr * FPM_MPS
        )
        m = dec.measurement(
            t_s,
            icao,
            lat,
            lon,
            None if alt_ft is None else alt_ft * FOOT_M,
            vel=vel,
            vel_var=var,
            on_ground=_flag(r.get("onground")),
            stale_check=True,
        )
        if m is not None:
            yield m


def decode_opensky_csv(
    lines: Iterable[tuple[float, bytes]], decoder: AdsbDecoder | None = None
) -> Iterator[Measurement]:
    """Measurements from OpenSky state-vector CSV rows (``time,icao24,lat,lon,velocity,
    heading,vertrate,callsign,onground,...,baroaltitude,geoaltitude,lastposupdate,...``)."""
    dec = decoder or AdsbDecoder()
    it = iter(lines)
    header = read_header(it)
    if header is None:
        return
    col = {name: i for i, name in enumerate(header)}
    need = ("time", "icao24", "lat", "lon", "velocity", "heading", "vertrate", "baroaltitude")
    if any(n not in col for n in need):
        raise ValueError(f"not an OpenSky state-vector CSV: header {header!r}")
    geo, lastpos, onground = col.get("geoaltitude"), col.get("lastposupdate"), col.get("onground")
    last_fix: dict[str, float] = {}
    for f in row_fields(it, dec.stats):
        try:
            icao = f[col["icao24"]]
            t_s = float(f[lastpos]) if lastpos is not None and f[lastpos] else float(f[col["time"]])
            lat, lon = _opt_float(f[col["lat"]]), _opt_float(f[col["lon"]])
            geo_m = _opt_float(f[geo]) if geo is not None else None
            baro_m = _opt_float(f[col["baroaltitude"]])
            gs, trk, vr = (
                _opt_float(f[col["velocity"]]),
                _opt_float(f[col["heading"]]),
                _opt_float(f[col["vertrate"]]),
            )
            on_ground = onground is not None and _flag(f[onground])
        except (ValueError, IndexError):
            dec.stats["undecodable"] += 1
            continue
        if last_fix.get(icao) == t_s:
            dec.stats["stale"] += 1
            continue
        last_fix[icao] = t_s
        vel, var = velocity(gs, trk, vr)
        m = dec.measurement(
            t_s,
            icao,
            lat,
            lon,
            geo_m if geo_m is not None else baro_m,
            geometric=geo_m is not None,
            vel=vel,
            vel_var=var,
            on_ground=on_ground,
            stale_check=True,
        )
        if m is not None:
            yield m
