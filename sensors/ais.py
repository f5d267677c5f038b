"""AIS: NMEA 0183 `!AIVDM`/`!AIVDO` sentences, and already-decoded AIS CSV, into `pos` reports.

This module owns turning AIS text into `Measurement`s: sentence parsing and payload decoding
by pyais, multi-sentence assembly, measurement time, and the AIS-specific choices below. It
must not open sockets or files (sensors.sources does) nor batch (sensors.batching does).

Time of a report, best first: the `c:` field of an NMEA 4.10 tag block on the sentence; the
`$PGHP` (Gatehouse) sentence that precedes it; the receiver's GPS clock from the last `$--ZDA`
or `$--RMC` sentence in the stream (a boat's receiver log); otherwise the receipt time.

Position reports of class A (types 1, 2, 3) and class B (18, 19) become `pos` measurements
with identity ``mmsi:<n>``, class surface, altitude 0 m on the ellipsoid, and a reported
velocity from SOG and COG when both are available. Choices, documented for the tracker:
- R horizontal: (2 m)^2 + (SOG x 2 s)^2 on each axis (`position_variance`). Derived from the
  Solent recording (18,622 reports; the residual of each report against the straight line
  between its two neighbours, reports at most 30 s apart): a vessel at rest scatters by
  about 1 m (residual std 1.1 m along, 0.8 m across, median absolute deviation 0.1 m), far
  below the 30 m the accuracy flag's "> 10 m" used to be given; a moving vessel's residual
  grows with speed and mostly along its course (std 3-7 m along, 2-4 m across at 2-20 m/s)
  because the time of a report is its reception, not its fix: successive displacements of
  a ferry at 10 m/s stay at 20 m while the stamped intervals jitter between 1.4 and 2.4 s.
  The speed term (2 s: the timing jitter plus a manoeuvre's drift between reports a few
  seconds apart) keeps moving vessels in their gates. The 2 m floor (about twice the
  scatter at rest) puts two vessels moored 16 m apart, as two in the Solent are, outside
  each other's 99.9 % gate even for a new track (Mahalanobis square 256 / (2 x 2^2) = 32
  > 16.3); with 5 m one new track took both. The covariance travels as a diagonal, so the
  speed term is written on both axes. Other floors and times measured on the same
  recording are in benchmarks/results/evaluation.md. The DGNSS flag changes nothing here:
  its "< 10 m" bounds a bias that is the same for successive reports, not their scatter.
- R horizontal, positions given to 0.01 arc-minute: a quarter of the Solent reports (7
  vessels, 4,234 reports, among them two harbour ferries) have both coordinates on that
  grid (18.5 m of latitude, 11.7 m of longitude there) instead of AIS's 0.0001'. Under way
  their rounding error changes from report to report like noise, uniform over one step:
  step^2 / 12 is added per axis (`coarse_grid_variance`: 28.6 m^2 north, 11.4 m^2 east
  at 50.8 N). At rest (SOG under 0.5 m/s) the rounded position does not change and the
  error is a fixed offset that the track absorbs, so nothing is added: the moored
  neighbours keep their tight gates. A fine position on the grid by chance (1 in 10^4)
  only gets a few metres more sigma. Solent: identity switches 154 -> 142 at purity 0.954
  (added at rest too: 141 switches at purity 0.942).
- R vertical: (50 m)^2; AIS has no height and the sea surface lies within tens of metres of
  the ellipsoid (geoid undulation), so the altitude is weakly informative on purpose.
- A SOG under 0.5 m/s without a course (COG 360): velocity zero, variance speed^2 + (0.1
  m/s)^2 per horizontal axis (any direction at that speed): the vessel is at rest, which
  the velocity gate of the surface class (fusion.tracker_vgate) uses; before, such a report
  had no velocity.
- Velocity variance: speed sigma 0.1 m/s (SOG comes in 0.1 kn steps; a moored vessel reports
  0-0.4 kn), course sigma 3 deg (`velocity_variance`).

Every input line is counted under one outcome in `stats` (see `OUTCOMES`); nothing raises.
"""

from __future__ import annotations

import calendar
import functools
import math
import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from pyais.exceptions import AISBaseException
from pyais.messages import AISSentence, NMEASentenceFactory

from fusion.messages import CLS_SURFACE, KIND_POS
from sensors.batching import KNOT_MPS, Measurement, enu_velocity, velocity_variance
from sensors.csv_rows import read_header, row_fields
from sensors.plausible import JumpFilter

POSITION_TYPES = frozenset((1, 2, 3, 18, 19))
SIGMA_FLOOR_M, TIME_SIGMA_S, SIGMA_ALT_M = 2.0, 2.0, 50.0  # see the module docstring
SPEED_SIGMA_MPS, COURSE_SIGMA_DEG = 0.1, 3.0
# Positions rounded to 0.01 arc-minute (about a quarter of the Solent reports): the
# variance of that rounding is added to R (see the module docstring).
COARSE_STEPS_PER_DEG = 6000.0
COARSE_STEP_M = 18.52  # 0.01 nautical mile: 0.01' of latitude
COARSE_GRID_TOL_STEPS = 1e-6  # float noise of a decimal text; a fine position misses by >= 0.01
COARSE_MIN_SPEED_MPS = 0.5
# A vessel reporting SOG under this without a course (COG 360, "not available": 988 Solent
# reports, nearly all at 0-0.4 kn) is given a zero velocity whose variance covers any
# direction at its speed: that it is at rest is worth telling the tracker.
COURSELESS_MAX_SPEED_MPS = 0.5
MAX_SURFACE_SPEED_MPS = 60.0  # about 117 kn: faster than any vessel, slower than any jump
MAX_OPEN_GROUPS = 64

OUTCOMES = (
    "positions",  # position reports emitted
    "fragments",  # sentences of a multi-sentence message other than its last
    "other_types",  # valid AIS messages that carry no position report (static data, ...)
    "timestamps",  # $PGHP / ZDA / RMC sentences used as time
    "other_nmea",  # valid non-AIS sentences (GPS, depth, ...) ignored
    "empty",  # blank lines
    "checksum",  # checksum mismatch
    "undecodable",  # not NMEA, not ASCII, bad fields, payload that pyais refuses
    "incomplete",  # multi-sentence messages missing a part (interleaved or truncated)
    "no_position",  # position reports with lat/lon "not available"
    "out_of_range",  # latitude or longitude outside their ranges
    "implausible",  # a jump no vessel can make (sensors.plausible)
)


class _Group:
    __slots__ = ("parts", "t_s")

    def __init__(self, t_s: float | None) -> None:
        self.parts: list[AISSentence] = []
        self.t_s = t_s


def _xor(data: bytes) -> int:
    # reduce over the bytes runs the loop in C: several times faster than a Python loop
    return functools.reduce(operator.xor, data, 0)


def _nmea_checksum_ok(line: bytes) -> bool:
    star = line.rfind(b"*")
    if star < 1 or len(line) < star + 3:
        return False
    try:
        return _xor(line[1:star]) == int(line[star + 1 : star + 3], 16)
    except ValueError:
        return False


class AisDecoder:
    """Stateful NMEA AIS decoder: feed it lines in arrival order."""

    def __init__(self, *, plausibility: bool = True, clock_s: float | None = None) -> None:
        self.stats: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._groups: OrderedDict[tuple, _Group] = OrderedDict()
        self._pghp_t: float | None = None  # time of the $PGHP just before the next sentence
        self._gps_t: float | None = clock_s  # receiver GPS clock (ZDA/RMC)
        self._days: dict[tuple[bytes, bytes, bytes], int] = {}
        self._jumps = JumpFilter(MAX_SURFACE_SPEED_MPS) if plausibility else None

    def feed(self, line: bytes, recv_t_s: float) -> list[Measurement]:
        """Decodes one line; returns the position reports it completes (zero or one)."""
        line = line.strip()
        if not line:
            self.stats["empty"] += 1
            return []
        if line[:1] == b"$" and line[3:6] not in (b"VDM", b"VDO"):
            if line[1:5] == b"PGHP":
                self._pghp(line)
            else:
                self._other_sentence(line)
            return []
        if line[:1] == b"!" and self._skip_unwanted(line):
            return []
        try:
            s = NMEASentenceFactory.produce(line)
        except (AISBaseException, ValueError, UnicodeDecodeError, IndexError):
            self.stats["undecodable"] += 1
            self._pghp_t = None
            return []
        if not s.is_valid:
            self.stats["checksum"] += 1
            self._pghp_t = None
            return []
        t_s = self._time_of(s, recv_t_s)
        if s.frag_cnt == 1:
            return self._decode(s, t_s)
        return self._assemble(s, t_s)

    def _skip_unwanted(self, line: bytes) -> bool:
        """A single-sentence message whose type carries no position (static data, base station
        reports, ...) is checked and counted without building pyais's decoder state: a quarter
        of a typical feed, and nothing of it is used. Returns True when the line was handled."""
        f = line.split(b",", 7)
        if len(f) < 7 or f[1] != b"1" or not f[5]:
            return False
        c = f[5][0] - 48
        if c > 40:
            c -= 8
        if c in POSITION_TYPES or not 0 <= c < 64:
            return False  # positions, and anything odd, take the full path
        self._pghp_t = None
        if not _nmea_checksum_ok(line):
            self.stats["checksum"] += 1
        elif 1 <= c <= 27:
            self.stats["other_types"] += 1
        else:
            self.stats["undecodable"] += 1
        return True

    # -- sentences other than AIS ------------------------------------------------------

    def _pghp(self, line: bytes) -> None:
        """``$PGHP,1,yyyy,m,d,h,m,s,ms,...``: Gatehouse's time stamp of the next sentence.
        Read here rather than by pyais's GatehouseSentence, which builds a datetime and is
        most of the cost on a Gatehouse feed (every AIS sentence has one)."""
        self._pghp_t = None
        if not _nmea_checksum_ok(line):
            self.stats["checksum"] += 1
            return
        f = line.split(b",", 9)
        try:
            if f[1] != b"1":
                raise ValueError("PGHP message type")
            key = (f[2], f[3], f[4])
            day = self._days.get(key)
            if day is None:
                day = calendar.timegm((int(f[2]), int(f[3]), int(f[4]), 0, 0, 0, 0, 0, 0))
                if not 1 <= int(f[3]) <= 12 or not 1 <= int(f[4]) <= 31:
                    raise ValueError("PGHP date")
                self._days[key] = day
            h, mi, s, ms = int(f[5]), int(f[6]), int(f[7]), int(f[8])
            if not (0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 61 and 0 <= ms < 1000):
                raise ValueError("PGHP time")
        except (ValueError, IndexError):
            self.stats["undecodable"] += 1
            return
        self._pghp_t = day + h * 3600 + mi * 60 + s + ms * 1e-3
        self.stats["timestamps"] += 1

    def _other_sentence(self, line: bytes) -> None:
        if not _nmea_checksum_ok(line):
            self.stats["checksum"] += 1
            return
        kind = line[3:6]
        try:
            if kind == b"ZDA":
                self._zda(line)
            elif kind == b"RMC":
                self._rmc(line)
            else:
                self.stats["other_nmea"] += 1
                return
        except (ValueError, IndexError):
            self.stats["undecodable"] += 1
            return
        self.stats["timestamps"] += 1

    def _zda(self, line: bytes) -> None:
        f = line[: line.rfind(b"*")].split(b",")
        hms, day, month, year = f[1], int(f[2]), int(f[3]), int(f[4])
        if year < 100:  # some receivers write two digits
            year += 2000 if year < 80 else 1900
        self._gps_t = _utc(year, month, day, hms)

    def _rmc(self, line: bytes) -> None:
        f = line[: line.rfind(b"*")].split(b",")
        hms, date = f[1], f[9]
        if f[2] != b"A" or len(date) != 6:  # no fix: the clock is not trustworthy
            raise ValueError("RMC without a valid fix")
        day, month, yy = int(date[:2]), int(date[2:4]), int(date[4:6])
        self._gps_t = _utc(2000 + yy if yy < 80 else 1900 + yy, month, day, hms)

    # -- AIS ----------------------------------------------------------------------------

    def _time_of(self, s: AISSentence, recv_t_s: float) -> float:
        t_s = None
        if s.tag_block is not None:
            try:
                s.tag_block.init()
                c = s.tag_block.receiver_timestamp
                if c:
                    t_s = float(c)
                    if t_s > 1e11:  # some receivers write milliseconds
                        t_s *= 1e-3
            except (ValueError, AISBaseException):
                t_s = None
        if t_s is None and self._pghp_t is not None:
            t_s = self._pghp_t
        self._pghp_t = None  # a $PGHP applies to the one sentence that follows it
        if t_s is None:
            t_s = self._gps_t if self._gps_t is not None else recv_t_s
        return t_s

    def _assemble(self, s: AISSentence, t_s: float) -> list[Measurement]:
        key = (s.talker_id, s.type, s.channel, s.seq_id, s.frag_cnt)
        group = self._groups.get(key)
        if s.frag_num == 1:
            if group is not None:  # a new message began before the last one ended
                self.stats["incomplete"] += 1
            group = _Group(t_s)
            self._groups[key] = group
            self._groups.move_to_end(key)
            while len(self._groups) > MAX_OPEN_GROUPS:
                self._groups.popitem(last=False)
                self.stats["incomplete"] += 1
        elif group is None or len(group.parts) != s.frag_num - 1:
            # a continuation without its beginning, or out of order: drop the message
            if group is not None:
                del self._groups[key]
            self.stats["incomplete"] += 1
            return []
        group.parts.append(s)
        if len(group.parts) < s.frag_cnt:
            self.stats["fragments"] += 1
            return []
        del self._groups[key]
        try:
            whole = AISSentence.assemble_from_iterable(group.parts)
        except (AISBaseException, ValueError):
            self.stats["undecodable"] += 1
            return []
        return self._decode(whole, group.t_s if group.t_s is not None else t_s)

    def _decode(self, s: AISSentence, t_s: float) -> list[Measurement]:
        if s.ais_id not in POSITION_TYPES:
            if 1 <= s.ais_id <= 27:
                self.stats["other_types"] += 1
            else:
                self.stats["undecodable"] += 1
            return []
        try:
            msg = s.decode()
            lat, lon = msg.lat, msg.lon
            mmsi = int(msg.mmsi)
        except (AISBaseException, ValueError, TypeError, IndexError):
            self.stats["undecodable"] += 1
            return []
        m = self.measurement(t_s, mmsi, lat, lon, msg.speed, msg.course)
        return [m] if m is not None else []

    def measurement(
        self,
        t_s: float,
        mmsi: int,
        lat_deg: float | None,
        lon_deg: float | None,
        sog_kt: float | None,
        cog_deg: float | None,
    ) -> Measurement | None:
        """A position report as a `Measurement`, or None (counted) when it must be dropped."""
        if lat_deg is None or lon_deg is None or lat_deg == 91.0 or lon_deg == 181.0:
            self.stats["no_position"] += 1
            return None
        if not (-90.0 <= lat_deg <= 90.0 and -180.0 <= lon_deg <= 180.0):
            self.stats["out_of_range"] += 1
            return None
        ident = b"mmsi:%d" % mmsi
        if self._jumps is not None and not self._jumps.accept(ident, t_s, lat_deg, lon_deg):
            self.stats["implausible"] += 1
            return None
        vel = vel_var = None
        speed = 0.0
        # SOG 102.3 kn and COG 360 deg mean "not available"
        if sog_kt is not None and cog_deg is not None and sog_kt < 102.2 and cog_deg < 360.0:
            speed = sog_kt * KNOT_MPS
            vel = enu_velocity(speed, cog_deg)
            vel_var = velocity_variance(speed, SPEED_SIGMA_MPS, COURSE_SIGMA_DEG, 0.01)
        elif sog_kt is not None and sog_kt < 102.2:
            speed = sog_kt * KNOT_MPS  # a speed without a course still widens the sigma
            if speed < COURSELESS_MAX_SPEED_MPS:  # at rest the course does not matter
                vel = (0.0, 0.0, 0.0)
                h = speed * speed + SPEED_SIGMA_MPS**2  # any direction up to `speed`
                vel_var = (h, h, 0.01)
        h_var = position_variance(speed)
        e_var = n_var = 0.0
        if speed >= COARSE_MIN_SPEED_MPS:  # at rest the rounding is a fixed offset
            e_var, n_var = coarse_grid_variance(lat_deg, lon_deg)
        self.stats["positions"] += 1
        return Measurement(
            KIND_POS,
            float(t_s),
            (float(lat_deg), float(lon_deg), 0.0),
            (h_var + e_var, h_var + n_var, SIGMA_ALT_M * SIGMA_ALT_M),
            ident,
            CLS_SURFACE,
            vel,
            vel_var,
        )


def position_variance(speed_mps: float) -> float:
    """Horizontal variance (m^2, each axis) of an AIS position reported at `speed_mps`: the
    fix's scatter plus the distance covered in the report time's uncertainty."""
    return SIGMA_FLOOR_M**2 + (speed_mps * TIME_SIGMA_S) ** 2


def coarse_grid_variance(lat_deg: float, lon_deg: float) -> tuple[float, float]:
    """Variance (m^2: east, north) of the rounding of a position given to 0.01 arc-minute
    (18.5 m of latitude), zero for a position off that grid (AIS resolution: 0.0001')."""
    lat_steps, lon_steps = lat_deg * COARSE_STEPS_PER_DEG, lon_deg * COARSE_STEPS_PER_DEG
    tol = COARSE_GRID_TOL_STEPS
    if abs(lat_steps - round(lat_steps)) > tol or abs(lon_steps - round(lon_steps)) > tol:
        return 0.0, 0.0
    n_var = COARSE_STEP_M**2 / 12.0  # uniform rounding error over one step
    return n_var * math.cos(math.radians(lat_deg)) ** 2, n_var


def _utc(year: int, month: int, day: int, hms: bytes) -> float:
    hh, mm, ss = int(hms[0:2]), int(hms[2:4]), float(hms[4:])
    if not (0 <= hh < 24 and 0 <= mm < 60 and 0 <= ss < 61 and 1 <= month <= 12):
        raise ValueError("bad time")
    return calendar.timegm((year, month, day, hh, mm, 0, 0, 0, 0)) + ss


def first_clock_s(lines: Iterable[tuple[float, bytes]], max_lines: int = 5000) -> float | None:
    """The first GPS clock time (ZDA or RMC) in the first `max_lines` of a log, so that a file
    whose AIS sentences precede the receiver's first clock sentence is stamped in its own time
    rather than the time of reading."""
    probe = AisDecoder(plausibility=False)
    for i, (t, line) in enumerate(lines):
        if i >= max_lines:
            break
        if line[:1] == b"$" and line[3:6] in (b"ZDA", b"RMC"):
            probe.feed(line, t)
            if probe._gps_t is not None:
                return probe._gps_t
    return None


def decode_lines(
    lines: Iterable[tuple[float, bytes]], decoder: AisDecoder | None = None
) -> Iterator[Measurement]:
    """Measurements from (recv_t_s, line) pairs; a recorded NMEA log or a live source."""
    dec = decoder or AisDecoder()
    for t, line in lines:
        yield from dec.feed(line, t)


# -- decoded AIS as CSV (Stone Soup's Solent recording) ------------------------------------

CSV_COLUMNS = ("Time", "MMSI", "Latitude_degrees", "Longitude_degrees", "COG_degrees", "SOG_knots")


def is_ais_csv(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf").startswith(b"Time,MMSI,")


def decode_csv(
    lines: Iterable[tuple[float, bytes]], decoder: AisDecoder | None = None
) -> Iterator[Measurement]:
    """Measurements from decoded AIS CSV rows (`CSV_COLUMNS`, times in UTC).

    Bad rows (wrong column count, unparsable numbers, positions out of range or implausible)
    are counted in `decoder.stats` and skipped."""
    dec = decoder or AisDecoder()
    it = iter(lines)
    header = read_header(it)
    if header is None:
        return
    try:
        cols = [header.index(c) for c in CSV_COLUMNS]
    except ValueError as e:
        raise ValueError(f"not an AIS CSV: header {header!r}") from e
    for f in row_fields(it, dec.stats):
        try:
            t_s = _csv_time(f[cols[0]])
            mmsi = int(f[cols[1]])
            lat, lon = float(f[cols[2]]), float(f[cols[3]])
            cog = float(f[cols[4]]) if f[cols[4]] else None
            sog = float(f[cols[5]]) if f[cols[5]] else None
        except (ValueError, IndexError):
            dec.stats["undecodable"] += 1
            continue
        if not all(math.isfinite(v) for v in (lat, lon)):
            dec.stats["out_of_range"] += 1
            continue
        m = dec.measurement(t_s, mmsi, lat, lon, sog, cog)
        if m is not None:
            yield m


def _csv_time(text: str) -> float:
    # "2016-01-12 13:02:11.218": parsed by hand, datetime.strptime is the slow part otherwise
    date, _, clock = text.strip().partition(" ")
    y, mo, d = date.split("-")
    h, mi, s = clock.split(":")
    return calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), 0, 0, 0, 0)) + float(s)
