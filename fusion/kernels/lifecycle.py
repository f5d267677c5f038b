"""Track lifecycle kernels: M-of-N scoring, confirmation, coasting, deletion, initiation.

This module owns the status rules of a track and nothing of filtering or association: it reads
and writes the TrackTable's bookkeeping arrays (status, hist, nscan, misses, hits) and, for a
new track, its first state. Status codes are those of `fusion.tracks` (0 free, 1 tentative,
2 confirmed, 3 coasting).

Rules, per scan of a sensor (one batch):
- a track that took a detection scores a hit (history bit 1, misses reset, coasting becomes
  confirmed again); a track inside the sensor's coverage that took none scores a miss when the
  sensor is one whose silence means something (not cooperative reporters), and a confirmed
  track that misses is coasting;
- a tentative track is confirmed when M of the last N scored scans are hits, and deleted as
  soon as M can no longer be reached within its first N scans;
- any track is deleted after `max_misses` consecutive misses, `max_coast_s` without an update,
  or when its predicted position standard deviation passes `max_pos_sigma_m`.
"""

from __future__ import annotations

import math

import numpy as np

from fusion.jit import njit
from fusion.kernels.gating import pos_trace
from fusion.kernels.packed import tri

FREE, TENTATIVE, CONFIRMED, COASTING = 0, 1, 2, 3


@njit
def popcount16(v):
    n = 0
    while v:
        n += v & 1
        v >>= 1
    return n


@njit
def score_scan(rows, hit, count_miss, status, hist, nscan, misses, hits, cls, confirm_m, confirm_n):
    """Score one scan for the tracks at `rows` (hit (k,) bool); returns the number confirmed.

    count_miss: whether a track without a detection scores a miss (else it is left alone).
    confirm_m, confirm_n: per-class arrays indexed by the class code.
    """
    n_confirmed = 0
    for k in range(rows.shape[0]):
        r = rows[k]
        if hit[k]:
            hist[r] = np.uint16(((int(hist[r]) << 1) | 1) & 0xFFFF)
            misses[r] = 0
            hits[r] += 1
            if status[r] == COASTING:
                status[r] = CONFIRMED
        elif count_miss:
            hist[r] = np.uint16((int(hist[r]) << 1) & 0xFFFF)
            misses[r] = min(int(misses[r]) + 1, 255)
            if status[r] == CONFIRMED:
                status[r] = COASTING
        else:
            continue
        nscan[r] = min(int(nscan[r]) + 1, 255)
        if status[r] == TENTATIVE:
            c = cls[r]
            n_win = confirm_n[c]
            got = popcount16(int(hist[r]) & ((1 << n_win) - 1))
            if got >= confirm_m[c]:
                status[r] = CONFIRMED
                n_confirmed += 1
    return n_confirmed


@njit
def deletion_mask(
    rows,
    t_now_s,
    x,
    P,
    t_s,
    status,
    hist,
    nscan,
    misses,
    cls,
    confirm_m,
    confirm_n,
    max_misses,
    max_coast_s,
    max_pos_sigma_m,
    q_h,
    q_v,
    out,
):
    """out[k] = True when the track at rows[k] must be deleted at time t_now_s."""
    for k in range(rows.shape[0]):
        r = rows[k]
        c = cls[r]
        dt = max(t_now_s - t_s[r], 0.0)
        dead = False
        if status[r] == TENTATIVE:
            n_win = confirm_n[c]
            got = popcount16(int(hist[r]) & ((1 << n_win) - 1))
            left = n_win - int(nscan[r])
            if left < 0:
                left = 0
            if got + left < confirm_m[c]:
                dead = True
        if misses[r] >= max_misses[c] or dt > max_coast_s[c]:
            dead = True
        if not dead:
            if math.sqrt(max(pos_trace(P, r, dt, q_h[c], q_v[c]), 0.0)) > max_pos_sigma_m[c]:
                dead = True
        out[k] = dead


@njit
def picture_rows(status, confirmed_only, hist, cls, confirm_n, P, max_pos_sigma_m, sensors):
    """The slots of a picture (confirmed and coasting tracks, or every active one), ascending,
    with each track's quality (hit fraction of its M-of-N window times how far its position
    sigma, from the packed P (N, 21), is below its class's max_pos_sigma_m) and its number of
    sensors (capped at 255): `fusion.tracker.Tracker.picture` without a numpy call per bit.
    Returns (slots, quality, n_sensors)."""
    slots = np.empty(status.shape[0], np.int64)
    n = 0
    for r in range(status.shape[0]):
        s = status[r]
        if (s == CONFIRMED or s == COASTING) if confirmed_only else s != FREE:
            slots[n] = r
            n += 1
    slots = slots[:n].copy()
    quality = np.empty(n)
    n_sensors = np.empty(n, np.uint8)
    one = np.uint64(1)
    for k in range(n):
        r = slots[k]
        c = cls[r]
        n_win = confirm_n[c]
        hit_frac = popcount16(int(hist[r]) & ((1 << n_win) - 1)) / n_win
        # Trace of the position block: packed elements (0, 0), (1, 1), (2, 2).
        sigma = math.sqrt(max(P[r, 0] + P[r, 6] + P[r, 11], 0.0))
        quality[k] = hit_frac * min(max(1.0 - sigma / max_pos_sigma_m[c], 0.0), 1.0)
        v = sensors[r]
        cnt = 0
        while v:
            cnt += int(v & one)
            v >>= one
        n_sensors[k] = min(cnt, 255)
    return slots, quality, n_sensors


@njit
def initiate(
    slots,
    det,
    pos,
    R_pos,
    vel,
    R_vel,
    has_vel,
    t,
    cls_det,
    init_vel_sigma,
    x,
    P,
    t_s,
    t0_s,
    status,
    hist,
    nscan,
    misses,
    hits,
    cls,
):
    """First state of new tracks: slots[k] from detection det[k], into the table's x (N, 6)
    and packed P (N, 21).

    pos (n, 3), R_pos (n, 3, 3): theatre ENU position and covariance of every detection; vel,
    R_vel: reported velocity and its covariance (read only where has_vel); otherwise the
    velocity starts at zero with `init_vel_sigma[class]` per horizontal axis and a fifth of it
    vertically (targets climb far slower than they move).
    """
    for k in range(slots.shape[0]):
        r = slots[k]
        j = det[k]
        c = cls_det[j]
        for a in range(6):
            x[r, a] = 0.0
        for a in range(P.shape[1]):
            P[r, a] = 0.0
        for a in range(3):
            x[r, a] = pos[j, a]
            for b in range(a, 3):
                P[r, tri(a, b)] = 0.5 * (R_pos[j, a, b] + R_pos[j, b, a])
        if has_vel:
            for a in range(3):
                x[r, 3 + a] = vel[j, a]
                for b in range(a, 3):
                    P[r, tri(3 + a, 3 + b)] = 0.5 * (R_vel[j, a, b] + R_vel[j, b, a])
        else:
            s = init_vel_sigma[c]
            P[r, tri(3, 3)] = s * s
            P[r, tri(4, 4)] = s * s
            P[r, tri(5, 5)] = (0.2 * s) * (0.2 * s)
        t_s[r] = t[j]
        t0_s[r] = t[j]
        status[r] = TENTATIVE
        hist[r] = 1
        nscan[r] = 1
        misses[r] = 0
        hits[r] = 1
        cls[r] = c


@njit
def confirm_new(slots, status, cls, confirm_m):
    """Confirm at birth the new tracks whose class needs a single hit (M = 1)."""
    n = 0
    for k in range(slots.shape[0]):
        r = slots[k]
        if confirm_m[cls[r]] <= 1:
            status[r] = CONFIRMED
            n += 1
    return n


@njit
def free_slots(
    slots, id_, x, P, t_s, t0_s, status, cls, hist, nscan, misses, hits, ident_words, sensors,
    kinds, imm_slot, imm_used,
):  # fmt: skip
    """Every per-slot field of `slots` zeroed (identity as its three uint64 words), imm_slot -1
    and the slots' IMM side-table rows returned (`TrackTable.free`)."""
    for k in range(slots.shape[0]):
        r = slots[k]
        if imm_slot[r] >= 0:
            imm_used[imm_slot[r]] = False
        id_[r] = 0
        for a in range(6):
            x[r, a] = 0.0
        for a in range(P.shape[1]):
            P[r, a] = 0.0
        t_s[r] = 0.0
        t0_s[r] = 0.0
        status[r] = 0
        cls[r] = 0
        hist[r] = 0
        nscan[r] = 0
        misses[r] = 0
        hits[r] = 0
        for a in range(3):
            ident_words[r, a] = 0
        sensors[r] = 0
        kinds[r] = 0
        imm_slot[r] = -1
