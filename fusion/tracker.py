"""Tracker: one sensor batch at a time through predict, gate, assign, update, initiate, delete.

This module owns the order of the tracking steps and the conversion of a batch into the
theatre frame; the arithmetic lives in the kernels (`fusion.kernels.*`), the memory in
`fusion.tracks.TrackTable`, the settings in `fusion.tracker_config`. It produces
`fusion.picture.TrackPicture` for everything downstream.

One `step(batch)`:

1. Convert (`fusion.tracker_batch`): `pos` detections go from WGS84 to theatre ENU with
   their local-ENU covariance rotated into the theatre frame (and a reported velocity
   likewise); `polar` detections keep (range, az, el) for the EKF update and get a converted
   position (and covariance) for the gating grid and for starting tracks; `bearing`
   detections only update existing tracks (one bearing does not locate a target); `event`
   batches are not tracked and come back untouched in `StepResult.events`.
2. Coverage: the tracks that can be in the sensor's coverage (within its range of the site,
   at the batch's time; everywhere for a `pos` sensor with no declared coverage).
3. Identity first: a detection whose cooperative identity is held by a track goes to it. Of
   several detections of one identity in a batch only the latest is used (`superseded`).
4. Gate the other detections against the other tracks in coverage (grid, then chi-square),
   never pairing two different identities; assign by GNN per cluster (Jonker-Volgenant).
5. Update: each assigned track is predicted from the time of its state to the time of its
   own detection and updated there (Joseph form; EKF for polar and bearing; IMM for the
   classes that run it). A batch spans several measurement times (a radar sweep): every
   pair is gated and updated at the detection's own time, so the batch needs no common
   time. A detection older than its track's state is taken at the state's time (dt = 0):
   the service's reorder buffer makes this rare, and a negative predict would be wrong.
6. Score the scan: hits for updated tracks; misses for unupdated tracks in coverage, only
   for sensors whose silence means something: a known coverage (declared by heartbeat or
   `set_coverage`, or a polar/bearing sensor's default range), and not a batch carrying
   identities (cooperative reporters); confirm by M-of-N.
7. Start tentative tracks from unassigned `pos` and `polar` detections (reported velocity
   when the batch has one, else zero with the class's velocity sigma).
8. Delete: misses, coast time, position sigma, tentative tracks that cannot reach M-of-N,
   tentative tracks seen only by sensors that count no misses after `tentative_coast_s`
   (`fusion.kernels.prune`); every `merge_every_s`, duplicate firm tracks of one moving
   target merged into the older (`fusion.tracker_prune`).

Before step 3, a state-vector report (velocity or identity in its batch) re-sending a
position its sensor already sent is dropped (`fusion.tracker_repeats`); before step 5, a
reported velocity inconsistent with its track is not used (`fusion.kernels.velocity_check`).

Determinism: every step is a pure function of the table and the batch; kernels iterate in
index order and sorts are stable, so the same batches in the same order give bit-identical
tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from fusion.geo import LocalFrame
from fusion.kernels import lifecycle
from fusion.kernels.assignment import gnn_clusters
from fusion.kernels.extended import (
    MEAS_BEARING,
    MEAS_POS,
    MEAS_POS_VEL,
    update_measurements,
)
from fusion.kernels.frames import finite_rows
from fusion.kernels.gating import gate, ident_words
from fusion.kernels.imm import imm_predict, imm_update
from fusion.kernels.kalman import predict_per_row, predict_update_pos
from fusion.kernels.prune import deleted_slots
from fusion.kernels.scan import (
    birth_and_delete_pos,
    new_track_dets,
    order_batch,
    scan_pos,
    scan_step_pos,
    spatial_order,
)
from fusion.kernels.velocity_check import discount_stale_velocity
from fusion.messages import (
    CLS_UNKNOWN,
    KIND_BEARING,
    KIND_EVENT,
    KIND_POLAR,
    KIND_POS,
    Detections,
)
from fusion.models import ImmModelSet
from fusion.picture import TrackPicture
from fusion.tracker_batch import theatre_batch
from fusion.tracker_bursts import burst_parts, combined, subset
from fusion.tracker_config import TrackerConfig
from fusion.tracker_prune import DuplicatePruner
from fusion.tracker_reacquire import reacquire
from fusion.tracker_reclass import reclass_air_ground
from fusion.tracker_repeats import RepeatFilter
from fusion.tracker_speed_q import track_q_h
from fusion.tracker_vgate import velocity_gate
from fusion.tracks import (
    COASTING,
    CONFIRMED,
    TrackTable,
)

SNAPSHOT_VERSION = 1

# The sensor transform of a batch without a site (the kernels only read it).
_EYE3 = np.eye(3)
_ZERO3 = np.zeros(3)


@dataclass
class StepResult:
    """What one `Tracker.step` did."""

    t_s: float
    assigned: int = 0  # detections that updated a track
    initiated: int = 0  # tentative tracks started
    confirmed: int = 0  # tracks confirmed in this step
    deleted: int = 0  # tracks deleted in this step
    superseded: int = 0  # detections dropped for a later one of the same identity
    repeated: int = 0  # reports dropped as re-sent positions (fusion.tracker_repeats)
    rejected: int = 0  # detections dropped for a non-finite time, value or covariance
    late: int = 0  # assigned detections older than their track's state (taken at dt = 0)
    pairs: int = 0  # gated (track, detection) pairs
    clusters: int = 0  # assignment clusters solved
    deleted_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    events: Detections | None = None  # an `event` batch, untouched, for the rules


@dataclass(frozen=True)
class _Coverage:
    site_enu: np.ndarray | None  # (3,) theatre ENU of the site, None = everywhere
    max_range_m: float
    counts_misses: bool = True  # False: silence says nothing (coverage not known)


class Tracker:
    """The multi-target, multi-sensor tracker of one theatre.

    `origin` is the theatre's (lat0_deg, lon0_deg, alt0_m): the origin of the ENU frame in
    which tracks live. Call `step` with each sensor batch in measurement-time order.
    """

    def __init__(
        self,
        config: TrackerConfig | None = None,
        origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> None:
        self.config = config or TrackerConfig()
        self.origin = (float(origin[0]), float(origin[1]), float(origin[2]))
        self.frame = LocalFrame(*self.origin)
        self.table = TrackTable(self.config.initial_capacity, imm_modes=3)
        self._p = self.config.class_arrays()
        self.t_now_s = -math.inf
        self.sensor_index: dict[str, int] = {}
        self._coverage: dict[str, tuple[tuple[float, float, float] | None, float]] = {}
        self._transforms: dict[tuple[float, float, float], tuple[np.ndarray, np.ndarray]] = {}
        self._imm_sets: dict[int, ImmModelSet] = {}
        self._steps = 0
        self._stats = np.zeros(5, np.int64)
        # Sensors that have counted misses (bits as in tab.sensors); duplicate pruning.
        self._miss_mask = np.uint64(0)
        cfg = self.config
        self._pruner = DuplicatePruner(
            cfg.merge_every_s,
            cfg.merge_checks,
            cfg.merge_d2,
            cfg.merge_sep_m,
            cfg.merge_min_speed_mps,
        )
        self._repeats = RepeatFilter(cfg.repeat_window_s)
        self._site_enu: dict[tuple[float, float, float], np.ndarray] = {}
        # Per-sensor values fixed between coverage declarations, not rebuilt every batch.
        self._bits: dict[str, np.uint64] = {}
        self._coverage_cache: dict[tuple[str, str], _Coverage] = {}
        self._idw_src: np.ndarray | None = None
        self._idw = np.zeros((0, 3), np.uint64)
        self._adopted = np.empty(0, np.int64)
        # Duplicate pairs found by the fused scan kernel (_scan_step_pos): the first
        # _dup_n of each, -1 when that step did not look for them.
        self._dup_a = np.empty(64, np.int64)
        self._dup_b = np.empty(64, np.int64)
        self._dup_n = -1
        # Cell of the table's spatial order (fusion.kernels.scan.spatial_order): the gating
        # grid's cell of the default class.
        self._order_cell_m = float(self._p["grid_cell_m"][CLS_UNKNOWN])
        self._load_rare_kernels()

    def _load_rare_kernels(self) -> None:
        """Call, on nothing, the kernels that a plain batch needs only when the table grows
        during its births (`birth_and_delete_pos` on its own) or when duplicates merge
        (`TrackTable.free`): the first call of a kernel in a process loads it from numba's
        cache, a few milliseconds that would otherwise fall in the middle of a scan."""
        f8, u8 = np.zeros(0), np.zeros(0, np.uint8)
        none = StepResult(t_s=0.0)
        self._birth_and_delete_pos(
            none, np.zeros(0, np.bool_), f8, np.zeros((0, 3)), np.zeros((0, 3, 3)), f8, u8, u8,
            np.uint64(0),
        )  # fmt: skip
        self.table.free(np.zeros(0, np.int64))

    # -- sensors ----------------------------------------------------------------------------
    def set_coverage(
        self,
        sensor: str,
        max_range_m: float,
        site: tuple[float, float, float] | None = None,
    ) -> None:
        """Declare a sensor's coverage: `max_range_m` around `site` (or the batch's site)."""
        if not max_range_m > 0:
            raise ValueError(f"max_range_m must be > 0, got {max_range_m}")
        self._coverage[sensor] = (None if site is None else tuple(site), float(max_range_m))
        self._coverage_cache.clear()

    def apply_heartbeat(self, hb) -> None:
        """Take a heartbeat's coverage ({"max_range_m": r} around its site) if it has one."""
        r = (hb.coverage or {}).get("max_range_m")
        if r is not None and float(r) > 0:
            self.set_coverage(hb.sensor, float(r), hb.site)

    def _sensor_bit(self, sensor: str) -> np.uint64:
        bit = self._bits.get(sensor)
        if bit is None:  # a sensor's bit is fixed once it has an index: built once
            idx = self.sensor_index.setdefault(sensor, len(self.sensor_index))
            bit = self._bits[sensor] = np.uint64(1) << np.uint64(idx % 64)
        return bit

    def _transform(self, site: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        key = (float(site[0]), float(site[1]), float(site[2]))
        if key not in self._transforms:
            self._transforms[key] = self.frame.sensor_transform(np.asarray(key))
        return self._transforms[key]

    def _coverage_of(self, batch: Detections) -> _Coverage:
        """Where the sensor looks, and whether a track there that it did not detect misses.

        Misses count only inside a coverage the tracker knows: declared (heartbeat or
        `set_coverage`), or the default range around the site of a polar or bearing sensor
        (a radar or array sees what is in range). A position-report sensor without declared
        coverage (an AIS or ADS-B receiver, a feed of plots) never counts misses: reports come
        at each target's own pace, so its silence about a track says nothing; such tracks end
        by coast time or covariance growth.
        """
        declared = self._coverage.get(batch.sensor)
        if declared is None:
            if batch.kind == KIND_POS or batch.site is None:
                return _Coverage(None, math.inf, counts_misses=False)
            site, rng = batch.site, self.config.default_sensor_range_m
        else:
            site, rng = declared[0] if declared[0] is not None else batch.site, declared[1]
        if site is None:
            return _Coverage(None, math.inf, counts_misses=False)
        key = (float(site[0]), float(site[1]), float(site[2]))
        site_enu = self._site_enu.get(key)
        if site_enu is None:  # a site's ENU is fixed: converted once, not every batch
            site_enu = self.frame.to_enu(np.asarray(key, dtype=np.float64).reshape(1, 3))[0]
            self._site_enu[key] = site_enu
        return _Coverage(site_enu, rng)

    def _batch_coverage(self, batch: Detections) -> _Coverage:
        """`_coverage_of(batch)`, kept per (sensor, kind) for a siteless batch, whose coverage
        depends on nothing else (cleared by `set_coverage`)."""
        if batch.site is not None:
            return self._coverage_of(batch)
        cov = self._coverage_cache.get((batch.sensor, batch.kind))
        if cov is None:
            cov = self._coverage_cache[(batch.sensor, batch.kind)] = self._coverage_of(batch)
        return cov

    # -- the step ---------------------------------------------------------------------------
    def step(self, batch: Detections) -> StepResult:
        """Process one sensor batch; see the module docstring for the order of things."""
        if batch.kind == KIND_EVENT:
            return StepResult(t_s=self.t_now_s, events=batch)
        if batch.kind not in (KIND_POS, KIND_POLAR, KIND_BEARING):
            raise ValueError(f"unknown detection kind {batch.kind!r}")
        n = len(batch)
        t = np.ascontiguousarray(batch.t, dtype=np.float64)
        z = np.ascontiguousarray(batch.z, dtype=np.float64)
        R = np.ascontiguousarray(batch.R, dtype=np.float64)
        m = z.shape[1] if z.ndim == 2 else -1
        if z.shape[0] != n or R.shape != (n, m, m) or t.shape != (n,):
            raise ValueError(f"batch shapes disagree: t {t.shape}, z {z.shape}, R {R.shape}")
        if batch.kind in (KIND_POLAR, KIND_BEARING) and batch.site is None:
            raise ValueError(f"a {batch.kind} batch needs the sensor's site")
        if n == 0:
            return StepResult(t_s=self.t_now_s)
        finite = np.empty(n, dtype=np.bool_)
        bad, t_batch = finite_rows(t, z, R, finite)
        if batch.vel is not None:
            finite &= np.isfinite(np.asarray(batch.vel, dtype=np.float64)).all(axis=1)
            bad = n - int(finite.sum())
        if bad:
            # The validator should have refused these; never let a NaN into a track.
            keep = np.flatnonzero(finite)
            sub = replace(batch, t=t[keep], z=z[keep], R=R[keep])
            for name in ("vel", "vel_R", "ident", "cls"):
                v = getattr(batch, name)
                if v is not None:
                    setattr(sub, name, np.asarray(v)[keep])
            res = self.step(sub)
            res.rejected += int(n - keep.shape[0])
            return res
        cov = self._batch_coverage(batch)
        if not cov.counts_misses:  # fusion.tracker_bursts
            parts = burst_parts(batch, self.config.burst_sep_m)
            if parts is not None:
                return combined([self.step(subset(batch, k)) for k in parts])
        self.t_now_s = max(self.t_now_s, t_batch)
        p = self._p
        tab = self.table
        res = StepResult(t_s=self.t_now_s)

        # 1. Convert into the theatre frame (fusion.tracker_batch).
        M, c = (_EYE3, _ZERO3) if batch.site is None else self._transform(batch.site)
        tb = theatre_batch(batch, t, z, R, self.frame, M, c, p["q_h_m2s3"].shape[0])
        meas, z_meas, R_meas, pos, R_pos, det_tr = tb.meas, tb.z, tb.R, tb.pos, tb.R_pos, tb.det_tr
        vel, vel_R, dident, has_id, cooperative = (
            tb.vel,
            tb.vel_R,
            tb.ident,
            tb.has_id,
            tb.cooperative,
        )
        dcls, kind_bits, usable = tb.cls, tb.kind_bits, tb.usable
        res.superseded = tb.superseded
        sensor_bit = self._sensor_bit(batch.sensor)

        # 2. Coverage (cov, above; for the fused path, inside its kernel).
        if cov.counts_misses and not cooperative:
            self._miss_mask |= sensor_bit
        if batch.kind == KIND_POS and (batch.vel is not None or cooperative):
            # State-vector reports: drop re-sent positions (fusion.tracker_repeats).
            res.repeated = self._repeats.mark(batch.sensor, z, t, usable, p["repeat_gap_s"][dcls])
        # imm_used stays empty until a first IMM track: no reduction in the common case.
        fused = (
            meas == MEAS_POS
            and not cooperative
            and not (tab.imm_used.shape[0] and tab.imm_used.any())
        )
        plain = fused and batch.cls is None and not p["imm"][CLS_UNKNOWN]
        if not fused:
            active = tab.active_slots()
            if cov.site_enu is None:
                in_cov = active
            else:
                dt = np.maximum(t_batch - tab.t_s[active], 0.0)
                e = tab.x[active, 0] + dt * tab.x[active, 3] - cov.site_enu[0]
                nn = tab.x[active, 1] + dt * tab.x[active, 4] - cov.site_enu[1]
                in_cov = active[e * e + nn * nn <= cov.max_range_m**2]

        if fused:
            if n >= self.config.order_min_batch:
                pos, R_pos, t, det_tr, dcls, kind_bits, usable = order_batch(
                    pos, R_pos, t, det_tr, dcls, kind_bits, usable, self._order_cell_m
                )
                z_meas, R_meas = pos, R_pos
            # 3-6 fused for the common batch (fusion.kernels.scan): the same kernels in the
            # same order as below, without the glue between them; with 7 and 8 when the
            # detections carry no class.
            if plain:
                gone = self._scan_step_pos(
                    res, cov, t_batch, usable, z_meas, R_meas, t, det_tr, dcls, kind_bits,
                    sensor_bit,
                )  # fmt: skip
            else:
                self._scan_pos(
                    res, cov, t_batch, usable, z_meas, R_meas, t, det_tr, dcls, kind_bits,
                    sensor_bit,
                )  # fmt: skip
        else:
            # 3. Identity first.
            det_of_slot_rows: list[np.ndarray] = []
            det_of_slot_dets: list[np.ndarray] = []
            taken_slot = np.zeros(tab.capacity, dtype=np.bool_)
            if cooperative:
                tid = tab.ident[active]
                holders = active[tid != b""]
                if holders.shape[0]:
                    order = np.argsort(tab.ident[holders], kind="stable")
                    sorted_ids = tab.ident[holders][order]
                    cand = np.flatnonzero(has_id & usable)
                    pos_in = np.searchsorted(sorted_ids, dident[cand])
                    pos_in = np.minimum(pos_in, sorted_ids.shape[0] - 1)
                    hit = sorted_ids[pos_in] == dident[cand]
                    dets_id = cand[hit]
                    slots_id = holders[order[pos_in[hit]]]
                    det_of_slot_rows.append(slots_id)
                    det_of_slot_dets.append(dets_id)
                    taken_slot[slots_id] = True
                    usable[dets_id] = False  # assigned: out of gating and initiation

            # 4. Gate and assign the rest: confirmed (and coasting) tracks first, then tentative
            # tracks with the detections left over, so a young track's wide gate never takes a
            # detection from an established one (as Stone Soup's initiator holds its tentative
            # tracks apart).
            rest = in_cov[~taken_slot[in_cov]]
            firm = (tab.status[rest] == CONFIRMED) | (tab.status[rest] == COASTING)
            for gate_rows in (rest[firm], rest[~firm]):
                gate_dets = np.flatnonzero(usable)
                if gate_rows.shape[0] == 0 or gate_dets.shape[0] == 0:
                    continue
                pairs, clusters, trk, dets = self._associate(
                    gate_rows,
                    gate_dets,
                    meas,
                    m,
                    z_meas,
                    R_meas,
                    t,
                    pos,
                    det_tr,
                    M,
                    c,
                    dident if cooperative else None,
                )
                res.pairs += pairs
                res.clusters += clusters
                det_of_slot_rows.append(trk)
                det_of_slot_dets.append(dets)
                usable[dets] = False

            # 5. Update, in slot order.
            if det_of_slot_rows:
                rows = np.concatenate(det_of_slot_rows).astype(np.int64)
                cols = np.concatenate(det_of_slot_dets).astype(np.int64)
                order = np.argsort(rows, kind="stable")
                rows, cols = rows[order], cols[order]
            else:
                rows = cols = np.zeros(0, np.int64)
            if rows.shape[0]:
                res.late = int(np.count_nonzero(t[cols] < tab.t_s[rows]))
                if meas == MEAS_POS_VEL:  # a stale reported velocity updates nothing
                    vet = p["vel_check"][tab.cls[rows]]  # per class (TrackerConfig)
                    discount_stale_velocity(
                        rows[vet],
                        cols[vet],
                        t,
                        tab.x,
                        tab.P,
                        tab.t_s,
                        tab.cls,
                        p["q_h_m2s3"],
                        p["q_v_m2s3"],
                        z_meas,
                        R_meas,
                        self.config.vel_check_d2,
                    )
                self._update(rows, cols, t, z_meas, R_meas, meas, M, c)
                res.assigned = int(rows.shape[0])
                # Bookkeeping of the updated tracks: sensors, kinds, identity, class.
                tab.sensors[rows] |= sensor_bit
                tab.kinds[rows] |= kind_bits[cols]
                if cooperative:
                    adopt = (tab.ident[rows] == b"") & has_id[cols]
                    tab.ident[rows[adopt]] = dident[cols[adopt]]
                new_cls = (tab.cls[rows] == CLS_UNKNOWN) & (dcls[cols] != CLS_UNKNOWN)
                tab.cls[rows[new_cls]] = dcls[cols[new_cls]]
                self._start_imm(rows[new_cls])
                if self.config.reclass_air_ground:
                    _, to_air = reclass_air_ground(tab, rows, dcls[cols])
                    self._start_imm(to_air)

            # 6. Score the scan for the tracks in coverage and the updated ones.
            updated = np.zeros(tab.capacity, dtype=np.bool_)
            updated[rows] = True
            scored_mask = updated.copy()
            scored_mask[in_cov] = True
            scored = np.flatnonzero(scored_mask)
            res.confirmed += int(
                lifecycle.score_scan(
                    scored,
                    updated[scored],
                    cov.counts_misses and not cooperative,
                    tab.status,
                    tab.hist,
                    tab.nscan,
                    tab.misses,
                    tab.hits,
                    tab.cls,
                    p["confirm_m"],
                    p["confirm_n"],
                )
            )

        # 7 and 8. Initiate from what is left, then delete (fusion.kernels.lifecycle
        # .deletion_mask and prune.tentative_timeouts).
        if not plain:  # (a plain batch was done with its scan: _scan_step_pos)
            if batch.kind != KIND_BEARING:
                dets = new_track_dets(usable, det_tr, pos, self._order_cell_m)
                if dets.shape[0]:
                    slots = tab.alloc(int(dets.shape[0]))
                    lifecycle.initiate(
                        slots,
                        dets,
                        pos,
                        R_pos,
                        vel if vel is not None else np.zeros((n, 3)),
                        vel_R if vel_R is not None else np.zeros((n, 3, 3)),
                        vel is not None,
                        t,
                        dcls,
                        p["init_vel_sigma_mps"],
                        tab.x,
                        tab.P,
                        tab.t_s,
                        tab.t0_s,
                        tab.status,
                        tab.hist,
                        tab.nscan,
                        tab.misses,
                        tab.hits,
                        tab.cls,
                    )
                    if cooperative:
                        tab.ident[slots] = dident[dets]
                    tab.sensors[slots] = sensor_bit
                    tab.kinds[slots] = kind_bits[dets]
                    if batch.cls is not None or p["imm"][CLS_UNKNOWN]:
                        self._start_imm(slots)
                    res.initiated = int(slots.shape[0])
                    res.confirmed += int(
                        lifecycle.confirm_new(slots, tab.status, tab.cls, p["confirm_m"])
                    )

            gone = deleted_slots(
                self.t_now_s, tab.x, tab.P, tab.t_s, tab.status, tab.hist, tab.nscan, tab.misses,
                tab.cls, tab.sensors, self._miss_mask, p["confirm_m"], p["confirm_n"],
                p["max_misses"], p["max_coast_s"], p["max_pos_sigma_m"], p["q_h_m2s3"],
                p["q_v_m2s3"], p["tentative_coast_s"],
            )  # fmt: skip
            res.deleted_ids = tab.id[gone]  # fancy indexing: a copy
            tab.free(gone)
            reacquire(tab, p, self.config, self._miss_mask)  # fusion.tracker_reacquire
        if self._pruner.due(self.t_now_s):  # duplicates (fusion.tracker_prune)
            n_dup = self._dup_n if plain else -1
            if n_dup >= 0:  # found by the scan kernel
                merged = self._pruner.merge(
                    tab, self._dup_a[:n_dup], self._dup_b[:n_dup], self.t_now_s
                )
            else:
                merged = self._pruner.check(tab, p, self.t_now_s, self._ident_words())
            if merged.shape[0]:
                res.deleted_ids = np.concatenate([res.deleted_ids, tab.id[merged]])
                tab.free(merged)
                gone = np.concatenate([gone, merged])
        res.deleted = int(gone.shape[0])
        self._steps += 1
        cfg = self.config
        if (
            cfg.pack_every
            and self._steps % cfg.pack_every == 0
            and tab.n_active >= cfg.pack_min_tracks
        ):
            self._pack()
        return res

    def _scan_pos(self, res, cov, t_batch, usable, z, R, t, det_tr, dcls, kind_bits, sensor_bit):
        """Steps 2 to 6 of a position batch without identities, no IMM track in the table."""
        tab, p = self.table, self._p
        stats = self._stats
        adopted = np.empty(t.shape[0], np.int64)
        site = _ZERO3 if cov.site_enu is None else cov.site_enu
        rows, _ = scan_pos(
            cov.site_enu is not None, site, cov.max_range_m**2, t_batch, usable, tab.x, tab.P,
            tab.t_s, tab.status, tab.cls, tab.hist, tab.nscan, tab.misses, tab.hits,
            tab.sensors, tab.kinds, self._ident_words(), z, R, t,
            det_tr, dcls, CLS_UNKNOWN, kind_bits, sensor_bit, cov.counts_misses, p["gate2_pos"],
            p["q_h_m2s3"], p["q_v_m2s3"], p["grid_cell_m"], p["confirm_m"], p["confirm_n"],
            adopted, stats,
        )  # fmt: skip
        res.pairs, res.clusters, res.late, res.confirmed, n_adopted = stats.tolist()
        res.assigned = int(rows.shape[0])
        if n_adopted:
            self._start_imm(adopted[:n_adopted])

    def _scan_step_pos(self, res, cov, t_batch, usable, z, R, t, det_tr, dcls, kind_bits, bit):
        """Steps 3 to 8 of a plain position batch (no identity, velocity or class, no IMM
        track) in one kernel call, with the duplicate pairs when a check is due (in
        self._dup_a, _dup_b, _dup_n); returns the deleted slots."""
        tab, p, pr = self.table, self._p, self._pruner
        stats = self._stats
        site = _ZERO3 if cov.site_enu is None else cov.site_enu
        n_rows, k, confirmed, ids, gone, self._dup_n = scan_step_pos(
            cov.site_enu is not None, site, cov.max_range_m**2, t_batch, usable, z, R, t,
            det_tr, dcls, kind_bits, bit, cov.counts_misses, CLS_UNKNOWN, p["gate2_pos"],
            p["q_h_m2s3"], p["q_v_m2s3"], p["grid_cell_m"], p["confirm_m"], p["confirm_n"],
            p["init_vel_sigma_mps"], self._order_cell_m, tab.next_id,
            tab.capacity - tab.n_active, self.t_now_s, self._miss_mask, p["max_misses"],
            p["max_coast_s"], p["max_pos_sigma_m"], p["tentative_coast_s"], tab.id, tab.x,
            tab.P, tab.t_s, tab.t0_s, tab.status, tab.cls, tab.hist, tab.nscan, tab.misses,
            tab.hits, self._ident_words(), tab.sensors, tab.kinds, tab.imm_slot, tab.imm_used,
            self._adopted_buffer(t.shape[0]), stats, pr.due(self.t_now_s), pr.d2_max, pr.sep_m,
            pr.min_speed_mps, p["merge_stationary"], self._dup_a, self._dup_b,
        )  # fmt: skip
        if self._dup_n > self._dup_a.shape[0]:  # not written: the check runs on its own
            self._dup_a = np.empty(2 * self._dup_n, np.int64)
            self._dup_b = np.empty(2 * self._dup_n, np.int64)
            self._dup_n = -1
        res.pairs, res.clusters, res.late, res.confirmed, _ = stats.tolist()
        res.assigned = n_rows
        if k < 0:  # the scan is done; the births need room first
            tab.grow(tab.n_active - k)
            return self._birth_and_delete_pos(res, usable, det_tr, z, R, t, dcls, kind_bits, bit)
        tab.next_id += k
        tab.n_active += k - int(gone.shape[0])
        res.initiated = k
        res.confirmed += confirmed
        res.deleted_ids = ids
        return gone

    def _adopted_buffer(self, n: int) -> np.ndarray:
        """Scratch (n,) int64 for the rows that adopt a class (none in a plain batch)."""
        if self._adopted.shape[0] < n:
            self._adopted = np.empty(max(n, 2 * self._adopted.shape[0]), np.int64)
        return self._adopted

    def _birth_and_delete_pos(self, res, usable, det_tr, pos, R_pos, t, dcls, kind_bits, bit):
        """Steps 7 and 8 of the fused path in one kernel call; returns the deleted slots."""
        tab, p = self.table, self._p
        for _ in range(2):  # a second time only after growing the table for the births
            k, confirmed, ids, gone = birth_and_delete_pos(
                usable, det_tr, pos, R_pos, t, dcls, kind_bits, bit, self._order_cell_m,
                p["init_vel_sigma_mps"], p["confirm_m"], tab.next_id,
                tab.capacity - tab.n_active, self.t_now_s, self._miss_mask, p["confirm_n"],
                p["max_misses"], p["max_coast_s"], p["max_pos_sigma_m"], p["q_h_m2s3"],
                p["q_v_m2s3"], p["tentative_coast_s"], tab.id, tab.x, tab.P, tab.t_s, tab.t0_s,
                tab.status, tab.cls, tab.hist, tab.nscan, tab.misses, tab.hits,
                self._ident_words(), tab.sensors, tab.kinds, tab.imm_slot, tab.imm_used,
            )  # fmt: skip
            if k >= 0:
                break
            tab.grow(tab.n_active - k)  # room for the births, as the general path's alloc
        tab.next_id += k
        tab.n_active += k - int(gone.shape[0])
        res.initiated = k
        res.confirmed += confirmed
        res.deleted_ids = ids
        return gone

    def _ident_words(self) -> np.ndarray:
        """`ident_words(table.ident)`, a view: rebuilt only when the table's array changes."""
        ident = self.table.ident
        if self._idw_src is not ident:
            if not (ident.flags.c_contiguous and ident.dtype == np.dtype("S24")):
                return ident_words(ident)  # a copy: not kept
            self._idw_src, self._idw = ident, ident_words(ident)
        return self._idw

    def _pack(self) -> None:
        """Repack the table in `spatial_order` of the tracks (see TrackerConfig.pack_every)."""
        tab = self.table
        active = tab.active_slots()
        tab.pack(active[spatial_order(tab.x[active], self._order_cell_m)])

    def _associate(self, gate_rows, gate_dets, meas, m, z, R, t, pos, det_tr, M, c, dident):
        """Gate `gate_rows` against `gate_dets` and solve GNN per cluster.

        Returns (pairs gated, clusters, assigned table rows, their detection indices).
        """
        tab, p = self.table, self._p
        c_tr = tab.cls[gate_rows]
        key = "gate2_pos" if meas != MEAS_BEARING else ("gate2_1d" if m == 1 else "gate2_2d")
        w = 3 if meas == MEAS_POS_VEL else m  # gate on position only when velocity came too
        if gate_dets.shape[0] == z.shape[0]:  # every detection: no copies
            zg, Rg, tg, pg, trg = z[:, :w], R[:, :w, :w], t, pos, det_tr
        else:
            zg, Rg = z[gate_dets, :w], R[gate_dets][:, :w, :w]
            tg, pg, trg = t[gate_dets], pos[gate_dets], det_tr[gate_dets]
        gate2 = p[key][c_tr]
        pt, pd, d2 = gate(
            meas if meas != MEAS_POS_VEL else MEAS_POS,
            gate_rows,
            tab.x,
            tab.P,
            tab.t_s,
            track_q_h(tab, gate_rows, p),  # fusion.tracker_speed_q
            p["q_v_m2s3"][c_tr],
            gate2,
            np.ascontiguousarray(zg),
            np.ascontiguousarray(Rg),
            tg,
            np.ascontiguousarray(pg),
            trg,
            M,
            c,
            ident_words(tab.ident),
            ident_words(dident[gate_dets])
            if dident is not None
            else np.zeros((gate_dets.shape[0], 3), np.uint64),
            float(p["grid_cell_m"][int(np.bincount(c_tr).argmax())]),
            alt=self._imm_gate_states(gate_rows, float(t.min())),
        )
        if meas == MEAS_POS_VEL:  # fusion.tracker_vgate
            vz, vR = z[gate_dets, 3:6], R[gate_dets, 3:6, 3:6]
            pt, pd, d2 = velocity_gate(tab, gate_rows, pt, pd, d2, vz, vR, p)
        det_of_track = np.empty(gate_rows.shape[0], np.int64)
        track_of_det = np.empty(gate_dets.shape[0], np.int64)
        clusters = gnn_clusters(
            gate_rows.shape[0],
            gate_dets.shape[0],
            pt,
            pd,
            d2,
            gate2,
            det_of_track,
            track_of_det,
        )
        ok = det_of_track >= 0
        return int(pt.shape[0]), int(clusters), gate_rows[ok], gate_dets[det_of_track[ok]]

    # -- filtering --------------------------------------------------------------------------
    def _update(self, rows, cols, t, z, R, meas, M, c) -> None:
        """Predict each assigned track to its detection's time, then update it there."""
        tab, p = self.table, self._p
        imm = tab.imm_slot[rows] >= 0
        if meas == MEAS_POS and not imm.any():
            # The common case in one kernel: CV predict, Joseph update, state time.
            predict_update_pos(
                tab.x, tab.P, tab.t_s, tab.cls, rows, cols, t, z, R, p["q_h_m2s3"], p["q_v_m2s3"]
            )
            return
        dt = np.maximum(t[cols] - tab.t_s[rows], 0.0)
        plain = ~imm
        if plain.any():
            r_, c_ = rows[plain], cols[plain]
            cls = tab.cls[r_]
            predict_per_row(tab.x, tab.P, r_, dt[plain], track_q_h(tab, r_, p), p["q_v_m2s3"][cls])
            d2 = np.empty(r_.shape[0])
            update_measurements(meas, tab.x, tab.P, r_, c_, z, R, M, c, d2)
        if imm.any():
            # The IMM kernels index x, P and mu by one row: run them on compact copies of the
            # IMM tracks (mu lives in the side table), then write the results back.
            r_, c_ = rows[imm], cols[imm]
            for code in np.unique(tab.cls[r_]):
                sel = tab.cls[r_] == code
                rr, cc = r_[sel], c_[sel]
                mrows = tab.imm_slot[rr].astype(np.int64)
                local = np.arange(rr.shape[0], dtype=np.int64)
                x, P, mu = tab.x[rr], tab.P[rr], tab.imm_mu[mrows]
                ms = self._imm_models(int(code))
                imm_predict(
                    x,
                    P,
                    mu,
                    tab.imm_x,
                    tab.imm_P,
                    local,
                    mrows,
                    dt[imm][sel],
                    ms.omega_rad_s,
                    ms.q_h,
                    ms.q_v,
                    ms.transition,
                )
                d2 = np.empty(rr.shape[0])
                imm_update(meas, x, P, mu, tab.imm_x, tab.imm_P, local, mrows, cc, z, R, M, c, d2)
                tab.x[rr], tab.P[rr], tab.imm_mu[mrows] = x, P, mu
        tab.t_s[rows] = np.maximum(t[cols], tab.t_s[rows])

    def _imm_gate_states(self, rows: np.ndarray, t_ref_s: float):
        """Mode predictions (to the batch's first time) of the IMM tracks among `rows`, for
        gating: a manoeuvring track is gated where one of its models expects it (the combined
        estimate alone lags a turn's onset). Nothing is written to the table."""
        tab = self.table
        is_imm = tab.imm_slot[rows] >= 0
        if not is_imm.any():
            return None
        r = tab.imm_modes
        idx = np.flatnonzero(is_imm)
        alt0 = np.zeros(rows.shape[0], np.int64)
        altn = np.zeros(rows.shape[0], np.int64)
        alt0[idx] = np.arange(idx.shape[0]) * r
        altn[idx] = r
        rr = rows[idx]
        mrows = tab.imm_slot[rr].astype(np.int64)
        xa, Pa, mu = tab.x[rr], tab.P[rr], tab.imm_mu[mrows]
        xm, Pm = tab.imm_x[mrows], tab.imm_P[mrows]
        t0 = np.maximum(tab.t_s[rr], t_ref_s)
        dt = t0 - tab.t_s[rr]
        local = np.arange(rr.shape[0], dtype=np.int64)
        for code in np.unique(tab.cls[rr]):
            sel = local[tab.cls[rr] == code]
            ms = self._imm_models(int(code))
            imm_predict(
                xa,
                Pa,
                mu,
                xm,
                Pm,
                sel,
                sel,
                dt[sel],
                ms.omega_rad_s,
                ms.q_h,
                ms.q_v,
                ms.transition,
            )
        return (
            alt0,
            altn,
            np.ascontiguousarray(xm.reshape(-1, 6)),
            np.ascontiguousarray(Pm.reshape(-1, Pm.shape[-1])),
            np.repeat(t0, r),
        )

    def _imm_models(self, code: int) -> ImmModelSet:
        """The IMM model set of a class: CV plus turns at +/- the configured rate."""
        if code not in self._imm_sets:
            cfg = self.config
            self._imm_sets[code] = ImmModelSet.cv_ct(
                omega_rad_s=cfg.imm_turn_rate_rps,
                q_h=float(self._p["q_h_m2s3"][code]),
                q_v=float(self._p["q_v_m2s3"][code]),
                p_stay=cfg.imm_p_stay,
            )
        return self._imm_sets[code]

    def _start_imm(self, slots: np.ndarray) -> None:
        """Mode-conditioned states of new tracks of IMM classes: every mode = the track."""
        tab = self.table
        imm_slots = slots[self._p["imm"][tab.cls[slots]] & (tab.imm_slot[slots] < 0)]
        if imm_slots.shape[0] == 0:
            return
        tab.alloc_imm(imm_slots)
        mrows = tab.imm_slot[imm_slots].astype(np.int64)
        # As fusion.kernels.imm.imm_init, on the side table's own rows (mu lives there).
        tab.imm_mu[mrows] = np.asarray(self.config.imm_mu0, dtype=np.float64)
        tab.imm_x[mrows] = tab.x[imm_slots][:, None, :]
        tab.imm_P[mrows] = tab.P[imm_slots][:, None, :]

    # -- outputs ----------------------------------------------------------------------------
    def picture(self, confirmed_only: bool = True) -> TrackPicture:
        """The tracks as a TrackPicture (confirmed and coasting ones by default)."""
        tab, p = self.table, self._p
        slots, quality, n_sensors = lifecycle.picture_rows(
            tab.status, confirmed_only, tab.hist, tab.cls, p["confirm_n"], tab.P,
            p["max_pos_sigma_m"], tab.sensors,
        )  # fmt: skip
        # Fancy indexing copies: the picture shares no memory with the table.
        return TrackPicture(
            t_s=float(self.t_now_s) if math.isfinite(self.t_now_s) else 0.0,
            origin=self.origin,
            id=tab.id[slots],
            x=tab.x[slots],
            P=tab.covariance(slots),
            t_upd_s=tab.t_s[slots],
            status=tab.status[slots],
            ident=tab.ident[slots],
            cls=tab.cls[slots],
            n_sensors=n_sensors,
            sensor_kinds=tab.kinds[slots],
            hits=tab.hits[slots],
            quality=quality,
        )

    def __len__(self) -> int:
        return int(self.table.n_active)

    # -- snapshots --------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Plain arrays and values from which `Tracker.restore` rebuilds this tracker."""
        d = self.table.to_arrays()
        d.update(
            version=SNAPSHOT_VERSION,
            origin=list(self.origin),
            t_now_s=float(self.t_now_s),
            sensor_names=sorted(self.sensor_index, key=self.sensor_index.__getitem__),
            coverage={
                k: [None if s is None else list(s), r] for k, (s, r) in self._coverage.items()
            },
            miss_mask=int(self._miss_mask),
            merge_pairs=self._pruner.to_list(),
            merge_last_check_s=float(self._pruner.last_check_s),
            repeats=self._repeats.to_dict(),
        )
        return d

    @classmethod
    def restore(cls, snapshot: dict, config: TrackerConfig | None = None) -> Tracker:
        """A tracker that carries on from `snapshot` (same ids, states and counters)."""
        if int(snapshot.get("version", -1)) != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snapshot.get('version')!r} is not supported")
        tr = cls(config, origin=tuple(snapshot["origin"]))
        tr.table = TrackTable.from_arrays(snapshot, capacity=tr.config.initial_capacity)
        tr.t_now_s = float(snapshot["t_now_s"])
        tr.sensor_index = {name: i for i, name in enumerate(snapshot["sensor_names"])}
        for k, (s, r) in snapshot.get("coverage", {}).items():
            tr._coverage[k] = (None if s is None else tuple(s), float(r))
        tr._miss_mask = np.uint64(int(snapshot.get("miss_mask", 0)))
        tr._pruner.load(
            snapshot.get("merge_pairs", []), float(snapshot.get("merge_last_check_s", -math.inf))
        )
        tr._repeats.load(snapshot.get("repeats", {}))
        return tr
