"""Re-acquisition: a young track started by an object that has just left its firm track's
gate continues that firm track (its id) instead of becoming a second track of the object.

This module owns one rule at the end of `fusion.tracker.Tracker.step` (after the deletions).
When a moving target's track lags behind it (an aircraft braking on a runway, accelerating
on its take-off roll, turning off a taxiway), its next report falls out of the gate and
starts a tentative track; the firm track then coasts without reports until it is deleted,
and the object has changed track (on the Paris ADS-B recording most identity switches were
of this kind, the report less than 15 s after the firm track's last update). The gate
cannot simply be wider: parked and taxiing aircraft stand tens of metres apart.

Here the evidence is the history of both tracks. A tentative track with at least
`TrackerConfig.reacquire_min_hits` updates (so it has a velocity of its own) is the
continuation of a firm (confirmed or coasting) track when:

- the firm track's class has `ClassParams.reacquire_q_h_m2s3` > 0, and the two classes are
  the same or are air and ground (a take-off: the new track's reports are airborne);
- the firm track moved at `TrackerConfig.reacquire_min_speed_mps` or more; or, with
  `TrackerConfig.reacquire_rest_starts`, it is at rest, the tentative track moves at that
  speed and no other firm track lies nearer to it (an aircraft leaving a stand or a holding
  point whose re-sent position stayed put while it started: its first fresh position lies
  100-500 m away; a parked neighbour that starts reporting does not move, so a parked
  aircraft's track is never handed to it);
- the firm track had no update since the tentative track's first one, and its last update
  is at most `TrackerConfig.reacquire_window_s` older than that first one;
- the tentative track's horizontal position lies within the chi-square gate
  `TrackerConfig.reacquire_gate2` (2 degrees of freedom) of the firm track's prediction to
  the tentative track's time, under the firm track's covariance with the manoeuvre noise
  `reacquire_q_h_m2s3` (instead of its class's) plus the tentative track's covariance;
  `TrackerConfig.reacquire_near_q_scale` times that noise when the tentative track moves
  and the firm track is the nearest firm track to it (the nearness is evidence of its own:
  a taxiing aircraft's reports jump 150-500 m within a few seconds).

Only tracks seen by sensors that count no misses take part (state-vector reports: ADS-B,
AIS; `fusion.tracker` passes its miss mask): a radar's tracks end by their misses, and
re-acquiring its coasting air tracks worsened the demo's GOSPA against Stone Soup (1,188 ->
1,243 m against 1,199 m).

Pairs are taken in order of their distance (ties by slot), each track in at most one pair.
The tentative track takes the firm track's id, first time and counts (it is confirmed; its
state is the newer one), and the firm track's slot is freed: the object keeps one id, and
its reports while the track was tentative (unscored) are not a change of track. Nothing is
reported deleted. The rule reads and writes the table only: deterministic.
"""

from __future__ import annotations

import numpy as np

from fusion.messages import CLS_AIR, CLS_GROUND
from fusion.tracker_config import TrackerConfig
from fusion.tracks import COASTING, CONFIRMED, TENTATIVE, TrackTable


def _compatible(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The same class, or air and ground (one aircraft on either side of a landing)."""
    airground_a = (a == CLS_AIR) | (a == CLS_GROUND)
    airground_b = (b == CLS_AIR) | (b == CLS_GROUND)
    return (a == b) | (airground_a & airground_b)


def _nearest_to_moving(
    tab: TrackTable,
    every_firm: np.ndarray,
    firm: np.ndarray,
    young: np.ndarray,
    cfg: TrackerConfig,
) -> np.ndarray:
    """(len(firm), len(young)) bool: the young track moves (`reacquire_min_speed_mps`) and
    this firm track is the nearest of every firm track to it (horizontally). Such a pair may
    join with the firm track at rest (a start; a neighbour that starts reporting in place
    does not move) and is tested with `reacquire_near_q_scale` times the manoeuvre noise."""
    if not cfg.reacquire_rest_starts:
        return np.zeros((firm.shape[0], young.shape[0]), dtype=np.bool_)
    y_moves = np.hypot(tab.x[young, 3], tab.x[young, 4]) >= cfg.reacquire_min_speed_mps
    d_all = np.hypot(
        tab.x[every_firm, 0][:, None] - tab.x[young, 0][None, :],
        tab.x[every_firm, 1][:, None] - tab.x[young, 1][None, :],
    )
    d_near = d_all.min(axis=0)
    d = np.hypot(
        tab.x[firm, 0][:, None] - tab.x[young, 0][None, :],
        tab.x[firm, 1][:, None] - tab.x[young, 1][None, :],
    )
    return y_moves[None, :] & (d <= d_near[None, :])


def reacquire(
    tab: TrackTable,
    p: dict[str, np.ndarray],
    cfg: TrackerConfig,
    miss_mask: np.uint64 | int = 0,
) -> np.ndarray:
    """Join tentative tracks to the firm tracks they continue (module docstring; the
    settings are `cfg.reacquire_*`); returns the slots freed (the firm tracks' former).
    `miss_mask`: the sensors that count misses (bits as in `tab.sensors`); a track any of
    them has seen is left out."""
    none = np.zeros(0, np.int64)
    if not p["reacquire_q_h_m2s3"].any():
        return none
    active = tab.active_slots()
    active = active[(tab.sensors[active] & np.uint64(miss_mask)) == 0]
    status = tab.status[active]
    young = active[(status == TENTATIVE) & (tab.hits[active] >= cfg.reacquire_min_hits)]
    if young.shape[0] == 0:
        return none
    every_firm = active[(status == CONFIRMED) | (status == COASTING)]
    q_man = p["reacquire_q_h_m2s3"][tab.cls[every_firm]]
    sel = q_man > 0.0
    firm, q_man = every_firm[sel], q_man[sel]
    if firm.shape[0] == 0:
        return none
    moving = np.hypot(tab.x[firm, 3], tab.x[firm, 4]) >= cfg.reacquire_min_speed_mps
    born = tab.t0_s[young]
    last = tab.t_s[firm]
    gap = born[None, :] - last[:, None]
    ok = (gap >= 0.0) & (gap <= cfg.reacquire_window_s)
    ok &= _compatible(tab.cls[firm][:, None], tab.cls[young][None, :])
    near = _nearest_to_moving(tab, every_firm, firm, young, cfg)
    ok &= moving[:, None] | near
    i_f, i_y = np.nonzero(ok)
    if i_f.shape[0] == 0:
        return none
    sf, sy = firm[i_f], young[i_y]
    Pf = tab.covariance(sf)
    Py = tab.covariance(sy)
    dt = tab.t_s[sy] - tab.t_s[sf]
    q = np.maximum(q_man[i_f], p["q_h_m2s3"][tab.cls[sf]])
    q = q * np.where(near[i_f, i_y], cfg.reacquire_near_q_scale, 1.0)
    # The firm track's horizontal position predicted to the young track's time (constant
    # velocity, white acceleration q), against the young track's position.
    S = (
        Pf[:, :2, :2]
        + dt[:, None, None] * (Pf[:, :2, 3:5] + Pf[:, 3:5, :2])
        + (dt * dt)[:, None, None] * Pf[:, 3:5, 3:5]
        + (q * dt**3 / 3.0)[:, None, None] * np.eye(2)
        + Py[:, :2, :2]
    )
    y = tab.x[sy, :2] - (tab.x[sf, :2] + dt[:, None] * tab.x[sf, 3:5])
    d2 = np.einsum("ki,ki->k", y, np.linalg.solve(S, y[:, :, None])[:, :, 0])
    inside = d2 <= cfg.reacquire_gate2
    sf, sy, d2 = sf[inside], sy[inside], d2[inside]
    used_f: set[int] = set()
    used_y: set[int] = set()
    freed: list[int] = []
    for k in np.lexsort((sf, sy, d2)).tolist():
        f, yg = int(sf[k]), int(sy[k])
        if f in used_f or yg in used_y:
            continue
        used_f.add(f)
        used_y.add(yg)
        tab.id[yg] = tab.id[f]
        tab.t0_s[yg] = tab.t0_s[f]
        tab.status[yg] = CONFIRMED
        tab.hits[yg] += tab.hits[f]
        tab.misses[yg] = 0
        tab.sensors[yg] |= tab.sensors[f]
        tab.kinds[yg] |= tab.kinds[f]
        if tab.ident[yg] == b"":
            tab.ident[yg] = tab.ident[f]
        freed.append(f)
    if not freed:
        return none
    out = np.asarray(sorted(freed), dtype=np.int64)
    tab.free(out)
    return out
