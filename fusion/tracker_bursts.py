"""Bursts: several reports of one object in one batch of state-vector reports, taken in turn.

This module owns one input rule of `fusion.tracker.Tracker.step`. A batch is assigned as one
scan: each track takes at most one detection, and a detection left over starts a new track.
That holds for a radar scan (one plot per target), not for position reports that come at each
object's own pace and are batched by time: an AIS vessel's report often arrives twice within
a second (two receivers, or two slots 0.4 s apart), and without identities the second report
of the pair, unassigned because its track already took the first, starts a duplicate track
that then shares the vessel's reports with the first one (on the Solent recording, 1 s
batches: identity switches 297 -> 203 with this rule).

`burst_parts` splits such a batch into parts processed one after the other, in time order,
so that no part holds two reports that could be one object: two reports are in conflict when
they are closer than `sep_m` plus the distance the faster of them covers, at its reported
speed, between their times. Each report goes to the first part holding nothing it conflicts
with (reports taken in time order), so the parts are the fewest a greedy colouring gives and
the result does not depend on the batch's row order beyond ties in time.

Only a batch whose sensor counts no misses is split: a miss counted per part would delete
tracks that the whole batch updates. Batches with identities are not split either (the
tracker keeps the latest report of each identity, and different identities never share a
track). The split is a pure function of the batch, so determinism is kept.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

import numpy as np
from scipy.spatial import cKDTree

from fusion.messages import KIND_POS, Detections

M_PER_DEG = 111_195.0  # metres per degree of latitude (mean Earth radius 6,371 km)


def burst_parts(batch: Detections, sep_m: float) -> list[np.ndarray] | None:
    """Index arrays of the parts `batch` must be processed in, in order, or None when the
    batch needs no split (no two of its reports conflict, or the rule does not apply: not a
    `pos` batch of state-vector reports without identities)."""
    n = len(batch)
    if sep_m <= 0 or n < 2 or batch.kind != KIND_POS or batch.ident is not None:
        return None
    if batch.vel is None:
        return None
    z = np.asarray(batch.z, dtype=np.float64)
    t = np.asarray(batch.t, dtype=np.float64)
    vel = np.asarray(batch.vel, dtype=np.float64)
    speed = np.hypot(vel[:, 0], vel[:, 1])
    lat0 = math.radians(float(np.median(z[:, 0])))
    en = np.stack([z[:, 1] * (M_PER_DEG * math.cos(lat0)), z[:, 0] * M_PER_DEG], axis=1)
    reach = sep_m + float(speed.max()) * float(t.max() - t.min())
    pairs = cKDTree(en).query_pairs(reach, output_type="ndarray")
    if pairs.shape[0] == 0:
        return None
    i, j = pairs[:, 0], pairs[:, 1]
    d = np.hypot(en[i, 0] - en[j, 0], en[i, 1] - en[j, 1])
    lim = sep_m + np.maximum(speed[i], speed[j]) * np.abs(t[i] - t[j])
    hit = d <= lim
    if not hit.any():
        return None
    i, j = i[hit], j[hit]
    # Greedy colouring in time order (ties in batch order): a report takes the first part
    # none of its earlier-placed conflicting reports is in.
    rank = np.empty(n, np.int64)
    order = np.argsort(t, kind="stable")
    rank[order] = np.arange(n)
    first = np.where(rank[i] < rank[j], i, j)
    second = np.where(rank[i] < rank[j], j, i)
    earlier: dict[int, list[int]] = {}
    for a, b in sorted(zip(second.tolist(), first.tolist(), strict=True)):
        earlier.setdefault(a, []).append(b)
    part_of = np.zeros(n, np.int64)
    for k in order.tolist():
        before = earlier.get(k)
        if before:
            taken = {int(part_of[b]) for b in before}
            c = 0
            while c in taken:
                c += 1
            part_of[k] = c
    n_parts = int(part_of.max()) + 1
    return [np.flatnonzero(part_of == c) for c in range(n_parts)]


def subset(batch: Detections, keep: np.ndarray) -> Detections:
    """The rows `keep` of a batch (every per-detection array cut alike)."""
    sub = replace(batch, t=np.asarray(batch.t)[keep], z=np.asarray(batch.z)[keep],
                  R=np.asarray(batch.R)[keep])  # fmt: skip
    for name in ("vel", "vel_R", "ident", "cls"):
        v = getattr(batch, name)
        if v is not None:
            setattr(sub, name, np.asarray(v)[keep])
    return sub


def combined(results: list) -> object:
    """One step result for the parts of a split batch: counts summed, deleted ids joined,
    the time of the last part (`fusion.tracker.StepResult`, passed in, not imported)."""
    out = replace(results[-1])
    for f in fields(out):
        if f.name in ("t_s", "events"):
            continue
        vals = [getattr(r, f.name) for r in results]
        if f.name == "deleted_ids":
            setattr(out, f.name, np.concatenate(vals))
        else:
            setattr(out, f.name, sum(vals))
    return out
