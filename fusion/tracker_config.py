"""TrackerConfig: every parameter of the tracker core, with documented per-class defaults.

This module owns the tracker's settings and nothing else: the values are declared once here
(frozen dataclasses) and turned into small per-class arrays (`class_arrays`) indexed by the
class codes of `fusion.messages` (CLS_UNKNOWN=0, CLS_AIR=1, CLS_SURFACE=2, CLS_GROUND=3), so
the numba kernels read a parameter of a track with one index and no Python object.

Units: metres, seconds, m/s; process noise as the power spectral density of a white
acceleration, (m/s^2)^2 / Hz = m^2/s^3, separately for the horizontal and the vertical axes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
from scipy.stats import chi2

from fusion.messages import CLASS_NAMES, CLS_AIR, CLS_GROUND, CLS_SURFACE, CLS_UNKNOWN


@dataclass(frozen=True)
class ClassParams:
    """Tracking parameters of one target class.

    q_h_m2s3, q_v_m2s3: white-acceleration spectral density, horizontal and vertical axes.
    gate_prob: probability that a true detection falls inside the chi-square gate.
    confirm_m, confirm_n: a tentative track is confirmed with M hits in its first N scans in
        coverage; it is deleted as soon as M can no longer be reached.
    max_misses: consecutive misses inside coverage that delete a confirmed track.
    max_coast_s: time without any update that deletes a track, whatever the sensor.
    max_pos_sigma_m: a track whose predicted position standard deviation (sqrt of the trace of
        the position block) exceeds this is deleted: it no longer says where the target is.
    init_vel_sigma_mps: velocity standard deviation per axis of a new track when the sensor
        reports no velocity (the velocity starts at zero).
    grid_cell_m: edge of the square cells of the gating grid; about the typical gate radius.
    imm: run the IMM (constant velocity + coordinated turns) for this class.
    tentative_coast_s: a tentative track seen only by sensors that count no misses (no known
        coverage: position reports come at each target's own pace) cannot be scored M-of-N
        by scans; it is deleted after this long without an update (0: never by this rule).
    vel_check: a reported velocity is tested against the track's predicted velocity before
        the update (`TrackerConfig.vel_check_d2`) and left out when it fails.
    merge_stationary: two duplicate firm tracks of this class are merged whatever their
        speed (otherwise both must move at `TrackerConfig.merge_min_speed_mps`).
    q_h_per_speed2_s: the horizontal process noise grows with the track's speed v by this
        times v^2 (1/s; `fusion.tracker_speed_q`; 0 = off).
    q_h_speed_floor_mps: with it (> 0), the speed term counts only the speed above this:
        (v - floor)^2 (`fusion.tracker_speed_q`; 0 = the whole speed).
    repeat_gap_s: a report of this class repeating a position its sensor sent is a re-sent
        position (dropped, `TrackerConfig.repeat_window_s`) only if that position was last
        sent within this many seconds; after a longer pause it is fresh
        (`fusion.tracker_repeats`; 0 = the window alone).
    reacquire_q_h_m2s3: a tentative track may continue a firm track of this class that its
        object has just left (`fusion.tracker_reacquire`), tested with this manoeuvre noise
        on the firm track's prediction (m^2/s^3; 0 = never).
    vel_gate_mps: a report whose velocity differs from a track's by more than this (plus
        three sigmas of the track's velocity) is not gated to it (`fusion.tracker_vgate`;
        0 = off).
    """

    q_h_m2s3: float
    q_v_m2s3: float
    gate_prob: float
    confirm_m: int
    confirm_n: int
    max_misses: int
    max_coast_s: float
    max_pos_sigma_m: float
    init_vel_sigma_mps: float
    grid_cell_m: float
    imm: bool = False
    tentative_coast_s: float = 0.0
    vel_check: bool = True
    merge_stationary: bool = False
    q_h_per_speed2_s: float = 0.0
    vel_gate_mps: float = 0.0
    q_h_speed_floor_mps: float = 0.0
    repeat_gap_s: float = 0.0
    reacquire_q_h_m2s3: float = 0.0


def _default_classes() -> dict[str, ClassParams]:
    # Air: fast and able to turn hard, so a large horizontal process noise, a long velocity
    # prior and the IMM; the gate is wide enough for a 3-D measurement at 99.9 %. Vertical
    # motion is smooth (climbs and descents at steady rates): a small vertical noise lets the
    # radars' poor elevation (0.01 rad, 100 m at 10 km) average out (GOSPA on the demo's radar
    # plots 1,264 -> 1,188 m with these and imm_p_stay 0.98, benchmarks/results/evaluation.md);
    # six misses before deletion ride out a drone's brief fades at the edge of a site radar.
    # An air track of ADS-B reports that lost its aircraft (a gap in reception, a turn) is
    # continued by the aircraft's new tentative track as a ground one is (reacquire_q_h_m2s3
    # below; fusion.tracker_reacquire; radar tracks never, as the rule leaves out the
    # sensors that count misses): Paris all records 0.964 / 1.31 -> 0.962 / 1.25, airborne
    # only 0.9997 / 0.48 -> 0.9997 / 0.46.
    air = ClassParams(
        q_h_m2s3=4.0,
        q_v_m2s3=0.03,
        gate_prob=0.999,
        confirm_m=3,
        confirm_n=5,
        max_misses=6,
        max_coast_s=30.0,
        max_pos_sigma_m=5_000.0,
        init_vel_sigma_mps=250.0,
        grid_cell_m=3_000.0,
        imm=True,
        tentative_coast_s=30.0,
        reacquire_q_h_m2s3=100.0,
    )
    # Surface vessels: slow, smooth; AIS reports every few seconds to minutes, so long coasts.
    # The horizontal noise is small so that a moored vessel's prediction stays tight between
    # its reports (3 minutes apart: 0.003 m^2/s^3 gives 76 m of position sigma there, 0.01
    # gave 140 m and took in the neighbours); a manoeuvring vessel's position error is covered
    # by the speed term of the AIS measurement sigma (sensors.ais) and its velocity follows
    # its reported velocity, which is therefore not vetted (vel_check): the vessel's own GNSS
    # velocity, measured with its position, is never stale the way a state vector's is, and
    # with a small noise the vetting refused a turning ferry's velocities until its track
    # lost it. Duplicates merge even when stationary (merge_stationary): with the AIS sigma of
    # a few metres two moored vessels' tracks differ far beyond the merge test, one vessel's
    # two tracks do not. Confirmation takes 3 hits of 5 (was 2 of 3): a new track that one
    # stray report of another vessel (or a moored vessel's report, 3 minutes apart) would
    # have confirmed no longer becomes a firm track that then takes its neighbours' reports.
    # Solent AIS (benchmarks/results/evaluation.md), with the AIS measurement model: purity
    # 0.892 -> 0.954, identity switches 1.89 -> 1.44 per object-hour (2 of 3: 0.952 and
    # 2.33). 4 of 6 did better on the Solent (0.92-0.96, 0.9-1.2 per object-hour) but never
    # confirms a simulated vessel reporting every 6 s to a receiver with declared coverage
    # (tests/test_replay.py): each of its batches is a scan there.
    # Two rules of this round (Solent: identity switches 142 -> 93, 1.32 -> 0.87 per
    # object-hour, purity 0.954 -> 0.963): the horizontal noise grows with speed, 0.003 v^2
    # (fusion.tracker_speed_q: a ferry at 10 m/s gets 0.3 m^2/s^3, a turn of 3 deg/s
    # accelerates it by 0.5 m/s^2, while a moored vessel keeps 0.003; 1e-3 gave 0.956 /
    # 1.13 with the velocity gate at 2 m/s, 1e-2 0.951 / 0.93, 5e-3 0.952 / 0.92); and a
    # report whose velocity differs by more than 3 m/s (plus three sigmas of the track's)
    # is not gated to the track (fusion.tracker_vgate: a track at rest no longer takes a
    # passing vessel's reports, which the speed term alone let it do: 0.934 / 0.96; 2 m/s
    # 0.961 / 0.93, 4 m/s 0.948 / 0.87; the gate alone 0.948 / 1.32). They hold together.
    surface = ClassParams(
        q_h_m2s3=0.003,
        q_v_m2s3=1e-4,
        gate_prob=0.999,
        confirm_m=3,
        confirm_n=5,
        max_misses=5,
        max_coast_s=300.0,
        max_pos_sigma_m=2_000.0,
        init_vel_sigma_mps=15.0,
        grid_cell_m=1_000.0,
        tentative_coast_s=60.0,
        vel_check=False,
        merge_stationary=True,
        q_h_per_speed2_s=0.003,
        vel_gate_mps=3.0,
    )
    # Ground vehicles: slow, start and stop often. Aircraft on the ground (ADS-B on-ground
    # reports) are tracked in this class too: parked and taxiing they need its small noise
    # (stands tens of metres apart), but a landing roll-out or a take-off roll brakes or
    # accelerates at 2-3 m/s^2, so the noise grows with the speed above 20 m/s (taxi speeds
    # stay under it): 0.01 (v - 20)^2, 16 m^2/s^3 more at 60 m/s (fusion.tracker_speed_q).
    # Paris ADS-B all records, on top of the on-ground velocity and R changes of sensors.adsb
    # (purity 0.968, 1.97 identity switches per object-hour): 0.967 / 1.74. The whole speed
    # (no floor) 0.958 / 1.46, floor 5 m/s 0.954 / 1.65, 10 m/s 0.961 / 1.78, 0.03 over
    # 20 m/s 0.965 / 1.89: the floor keeps a taxiing aircraft's gate off its parked
    # neighbours and the purity margin (benchmarks/results/evaluation.md).
    # ADS-B surface positions come on a grid of a few metres, so an aircraft taxiing behind
    # another along a centre line sends, bit for bit, positions the leader sent 10-20 s
    # before: they are re-sent positions only while they keep coming, within 5 s
    # (repeat_gap_s, fusion.tracker_repeats; a parked aircraft re-sends every second or
    # two). Paris all records 0.967 / 1.74 -> 0.972 / 1.56; 3 s 0.973 / 1.57, 10 s
    # 0.972 / 1.62; the same gap for every class took the Solent's purity under 0.95
    # (0.947: moored vessels re-send every 3 minutes).
    # A ground track that moved (5 m/s or more) and lost its aircraft (a roll-out or a turn
    # off a runway: its reports fall out of the gate and start a tentative track) is
    # continued by that tentative track when it lies within the firm track's prediction
    # under a manoeuvre noise of 100 m^2/s^3 (reacquire_q_h_m2s3, fusion.tracker_reacquire):
    # Paris all records 0.972 / 1.56 -> 0.964 / 1.31; 30: 0.968 / 1.43, 300: 0.962 / 1.36.
    ground = ClassParams(
        q_h_m2s3=0.5,
        q_v_m2s3=0.01,
        gate_prob=0.999,
        confirm_m=3,
        confirm_n=5,
        max_misses=4,
        max_coast_s=60.0,
        max_pos_sigma_m=1_000.0,
        init_vel_sigma_mps=25.0,
        grid_cell_m=500.0,
        tentative_coast_s=10.0,
        q_h_per_speed2_s=0.01,
        q_h_speed_floor_mps=20.0,
        repeat_gap_s=5.0,
        reacquire_q_h_m2s3=100.0,
    )
    # Unknown: between ground and air; used by radars that do not classify. Its wide velocity
    # prior makes a new track's second gate large (about 1 km at 2 s), so clutter pairs up
    # more easily: confirmation asks for 4 of 6 (3 of 5 confirms roughly one clutter track per
    # 100 scans at 60 false plots per 10,000 km^2).
    unknown = ClassParams(
        q_h_m2s3=1.0,
        q_v_m2s3=0.1,
        gate_prob=0.999,
        confirm_m=4,
        confirm_n=6,
        max_misses=4,
        max_coast_s=60.0,
        max_pos_sigma_m=3_000.0,
        init_vel_sigma_mps=100.0,
        grid_cell_m=1_000.0,
        tentative_coast_s=5.0,
    )
    return {"unknown": unknown, "air": air, "surface": surface, "ground": ground}


@dataclass(frozen=True)
class TrackerConfig:
    """The tracker core's configuration.

    classes: ClassParams per class name (unknown, air, surface, ground).
    default_sensor_range_m: coverage radius around the site of a polar or bearing sensor that
        has not been given its own (`Tracker.set_coverage`); misses count only inside coverage.
    imm_turn_rate_rps: turn rate of the two coordinated-turn models of the IMM (CV, CT(+w),
        CT(-w); `fusion.models.ImmModelSet.cv_ct`); 5 deg/s is a 2.3 g turn at 250 m/s.
    imm_p_stay: probability that the IMM keeps its model from one update to the next (the rest
        is shared equally among the other models).
    imm_mu0: initial model probabilities (CV, CT+, CT-) of a new IMM track.
    ident_exclusive: a detection carrying a cooperative identity never joins a track holding a
        different identity (always true in the design; kept as a switch for tests).
    initial_capacity: slots preallocated in the TrackTable (it doubles when full).
    pack_every: every this many steps (0 = never), and only above `pack_min_tracks`, the
        table is repacked in spatial order (tracks sorted by their grid cell, column by
        column: `fusion.kernels.scan.spatial_order`), so that neighbouring tracks sit in
        neighbouring memory and gating misses the cache less. New tracks are born in the
        same order, and gating visits tracks in table order, so the table stays mostly in
        order between repacks (deletions leave holes that births refill). Ids and results
        do not change.
    pack_min_tracks: below this many tracks (about 1.7 MB of table) it fits in cache and is
        never repacked.
    order_min_batch: a position batch of at least this many detections (without identities)
        is first reordered in the table's spatial order, so that its updates read it nearly in
        sequence (below this size it fits in cache and the sort would cost more than it saves).
    merge_every_s, merge_checks, merge_d2, merge_sep_m: duplicate tracks
        (`fusion.tracker_prune`): every `merge_every_s` of tracker time, two firm tracks
        within `merge_sep_m` whose 6-D state difference has a Mahalanobis square under
        `merge_d2` (sum of their covariances) are a candidate pair; a pair found on
        `merge_checks` consecutive checks is merged into the older track (0 checks = never).
    merge_min_speed_mps: only tracks moving at least this fast are merged: stationary
        neighbours (moored vessels, parked aircraft) are common and look alike.
    repeat_window_s: a state-vector report (velocity or identity in its batch) repeating, bit
        for bit, a horizontal position its sensor sent within this window is a re-sent stale
        position and is dropped (`fusion.tracker_repeats`; 0 = off).
    vel_check_d2: a reported velocity whose Mahalanobis square against the track's
        predicted velocity exceeds this is not used in the update
        (`fusion.kernels.velocity_check`).
    burst_sep_m: a batch of position reports from a sensor that counts no misses, holding
        two reports closer than this (plus the distance their speed covers between their
        times), is processed in parts, one after the other, so that one object's two reports
        in a batch do not start a duplicate track (`fusion.tracker_bursts`; 0 = off). 50 m:
        well above the spread of one vessel's reports within a second (a few metres, plus
        the speed term); two distinct objects that close are only taken in turn, which
        changes nothing for a sensor whose silence counts no misses.
    reclass_air_ground: an updated track takes the class of its report when one is air and
        the other ground (`fusion.tracker_reclass`): a landed aircraft becomes a ground
        track (ground noise, no IMM), so that parked its gate stays small between re-sent
        positions instead of taking its neighbours' reports; it is air again on take-off.
    reacquire_window_s, reacquire_min_hits, reacquire_min_speed_mps, reacquire_gate2: a
        tentative track with at least `reacquire_min_hits` updates continues (takes the id
        of) a firm track of a class with `ClassParams.reacquire_q_h_m2s3` that moved at
        `reacquire_min_speed_mps` or more and had its last update at most
        `reacquire_window_s` before the tentative track's first, none since, when its
        position is inside the chi-square gate `reacquire_gate2` (2 degrees of freedom) of
        the firm track's prediction (`fusion.tracker_reacquire`).
    reacquire_rest_starts: a firm track slower than `reacquire_min_speed_mps` (at rest) may
        be continued too, by a young track that moves at that speed and has no other firm
        track nearer (`fusion.tracker_reacquire`): an aircraft leaving a stand or a holding
        point after its re-sent position stayed put for 10-30 s (its first fresh position
        lies 100-500 m away). A parked neighbour that starts reporting does not move, and a
        moving one passing by is nearer to its own track. Paris all records: 0.962 / 1.25
        -> 0.958 / 1.17 (139 -> 130 switches), Solent unchanged (surface: no rule).
    reacquire_near_q_scale: such a pair (the young track moves, the firm track is the
        nearest, moving or not) is tested with this many times the manoeuvre noise: the
        nearness is evidence of its own, and a taxiing aircraft's reports jump 150-500 m
        within a few seconds. Paris all records 0.958 / 1.17 -> 0.957 / 1.11 (123
        switches); 5: 0.954 / 1.12, 10: 0.953 / 1.10; 3 with a window of 30 s: 0.946 /
        1.09 (purity under 0.95).
    """

    classes: dict[str, ClassParams] = field(default_factory=_default_classes)
    default_sensor_range_m: float = 150_000.0
    imm_turn_rate_rps: float = 0.08726646259971647  # 5 deg/s
    imm_p_stay: float = 0.98
    imm_mu0: tuple[float, float, float] = (0.8, 0.1, 0.1)
    ident_exclusive: bool = True
    initial_capacity: int = 1024
    pack_every: int = 32
    pack_min_tracks: int = 4_096
    order_min_batch: int = 4_096
    merge_every_s: float = 2.0
    merge_checks: int = 3
    merge_d2: float = 16.81  # chi-square, 6 degrees of freedom, 99 %
    merge_sep_m: float = 500.0
    merge_min_speed_mps: float = 2.0
    repeat_window_s: float = 30.0
    vel_check_d2: float = 16.27  # chi-square, 3 degrees of freedom, 99.9 %
    burst_sep_m: float = 50.0
    reclass_air_ground: bool = True
    reacquire_window_s: float = 15.0
    reacquire_min_hits: int = 2
    reacquire_min_speed_mps: float = 5.0
    reacquire_gate2: float = 13.82  # chi-square, 2 degrees of freedom, 99.9 %
    reacquire_rest_starts: bool = True  # the docstring above: taxi starts after a frozen fix
    reacquire_near_q_scale: float = 3.0  # the docstring above: the nearest track's gate

    def __post_init__(self) -> None:
        missing = [n for n in CLASS_NAMES if n not in self.classes]
        if missing:
            raise ValueError(f"TrackerConfig.classes lacks {missing}")
        for name, c in self.classes.items():
            if not 0.0 < c.gate_prob < 1.0:
                raise ValueError(f"{name}: gate_prob must be in (0, 1), got {c.gate_prob}")
            if not 1 <= c.confirm_m <= c.confirm_n <= 15:
                raise ValueError(f"{name}: need 1 <= confirm_m <= confirm_n <= 15")
            if c.max_misses < 1 or c.max_coast_s <= 0 or c.max_pos_sigma_m <= 0:
                raise ValueError(f"{name}: max_misses, max_coast_s, max_pos_sigma_m must be > 0")
            if c.grid_cell_m <= 0 or c.init_vel_sigma_mps <= 0:
                raise ValueError(f"{name}: grid_cell_m and init_vel_sigma_mps must be > 0")
        if not 0.0 < self.imm_p_stay < 1.0:
            raise ValueError("imm_p_stay must be in (0, 1)")
        if self.initial_capacity < 1:
            raise ValueError("initial_capacity must be >= 1")

    def with_class(self, name: str, **changes: Any) -> TrackerConfig:
        """A copy with some parameters of one class changed."""
        classes = dict(self.classes)
        classes[name] = replace(classes[name], **changes)
        return replace(self, classes=classes)

    def with_all_classes(self, **changes: Any) -> TrackerConfig:
        """A copy with some parameters changed in every class."""
        return replace(self, classes={k: replace(v, **changes) for k, v in self.classes.items()})

    def class_arrays(self) -> dict[str, np.ndarray]:
        """Per-class parameters as arrays indexed by class code, for the kernels.

        Adds `gate2_pos` (chi-square threshold for a 3-D measurement), `gate2_1d`, `gate2_2d`.
        """
        order = [CLS_UNKNOWN, CLS_AIR, CLS_SURFACE, CLS_GROUND]
        by_code = {code: self.classes[CLASS_NAMES[code]] for code in order}
        out: dict[str, np.ndarray] = {}
        for f in fields(ClassParams):
            vals = [getattr(by_code[c], f.name) for c in range(len(CLASS_NAMES))]
            dtype = np.int64 if f.type in ("int", int) else np.float64
            if f.name in ("imm", "vel_check", "merge_stationary"):
                dtype = np.bool_
            out[f.name] = np.asarray(vals, dtype=dtype)
        p = out["gate_prob"]
        for dim, key in ((1, "gate2_1d"), (2, "gate2_2d"), (3, "gate2_pos")):
            out[key] = np.asarray(chi2.ppf(p, dim), dtype=np.float64)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for snapshots and logs."""
        d: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        d["classes"] = {
            k: {f.name: getattr(v, f.name) for f in fields(v)} for k, v in self.classes.items()
        }
        d["imm_mu0"] = list(self.imm_mu0)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrackerConfig:
        """The inverse of `to_dict`; missing keys take their defaults."""
        d = dict(d)
        classes = _default_classes()
        for name, params in (d.pop("classes", None) or {}).items():
            classes[name] = replace(classes.get(name, classes["unknown"]), **params)
        if "imm_mu0" in d:
            d["imm_mu0"] = tuple(d["imm_mu0"])
        return TrackerConfig(classes=classes, **d)
