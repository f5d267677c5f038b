"""Scoring the picture and the cues: GOSPA, track-to-truth, cue scoring, stripped identities.

This module owns the measures by which the tracker and the rules are judged; it reads arrays
(truth, sampled tracks, cue bodies, per-detection assignments) and never runs the tracker.

- `gospa`: the generalised OSPA distance between two point sets (alpha = 2), with its
  localisation / missed / false decomposition in the same p-th power units as Stone Soup's
  `GOSPAMetric`.
- `score_tracks`: over time, assigns tracks to truth (keeping last step's pairs while they stay
  within the threshold, then an optimal assignment for the rest) and reports completeness,
  spuriousness, identity switches, fragmentation, position and velocity errors, GOSPA over time.
- `score_cues`: matches opened cues to scripted breaches: recall, false cues per target-hour,
  latency from the breach to the cue.
- `score_identities`: for real recordings, the cooperative identities stripped before tracking
  are the truth: association purity, identity switches per object-hour, fragmentation,
  completeness.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from fusion.picture import TrackPicture

# --------------------------------------------------------------------------- GOSPA


@dataclass(frozen=True)
class Gospa:
    """GOSPA at one instant. `distance` = (localisation + missed + false) ** (1/p); the three
    components are sums in the p-th power (missed and false are c^p/2 per point)."""

    distance: float
    localisation: float
    missed: float
    false: float
    n_assigned: int


def gospa(X: np.ndarray, Y: np.ndarray, c: float = 100.0, p: float = 1.0) -> Gospa:
    """GOSPA (alpha = 2) between estimates X (m, d) and truth Y (n, d), Euclidean base
    distance cut off at `c` (m)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    dim = X.shape[-1] if X.ndim == 2 else (Y.shape[-1] if Y.ndim == 2 else 1)
    X, Y = X.reshape(-1, dim), Y.reshape(-1, dim)
    half = c**p / 2.0
    m, n = len(X), len(Y)
    if m == 0 or n == 0:
        false, missed = half * m, half * n
        return Gospa((false + missed) ** (1.0 / p), 0.0, missed, false, 0)
    d = np.sqrt(((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1))  # (m, n)
    # Assigning a pair costs min(d, c)^p instead of the c^p of leaving both unassigned.
    cost = np.minimum(d, c) ** p - c**p
    rows, cols = linear_sum_assignment(cost)
    ok = d[rows, cols] < c
    k = int(ok.sum())
    loc = float((d[rows[ok], cols[ok]] ** p).sum())
    missed = half * (n - k)
    false = half * (m - k)
    return Gospa((loc + missed + false) ** (1.0 / p), loc, missed, false, k)


# --------------------------------------------------------------------------- tracks vs truth


def picture_states(picture: TrackPicture, t_s: float | None = None) -> dict[str, np.ndarray]:
    """The picture's tracks as flat arrays, positions extrapolated at constant velocity from
    each track's last update to `t_s` (default the picture's time)."""
    t = picture.t_s if t_s is None else t_s
    x = np.asarray(picture.x, dtype=np.float64)
    dt = (t - np.asarray(picture.t_upd_s, dtype=np.float64))[:, None]
    pos = x[:, :3] + x[:, 3:6] * dt
    sig = np.sqrt(np.clip(np.trace(picture.P[:, :3, :3], axis1=1, axis2=2), 0.0, None))
    return {
        "t_s": np.full(len(picture), t, dtype=np.float64),
        "id": np.asarray(picture.id, dtype=np.int64),
        "pos": pos,
        "vel": x[:, 3:6].copy(),
        "sigma_m": sig,
        "status": np.asarray(picture.status, dtype=np.uint8),
        "ident": np.asarray(picture.ident, dtype="S24"),
        "cls": np.asarray(picture.cls, dtype=np.uint8),
    }


def stack_states(states: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenates `picture_states` of several instants into one flat table."""
    keys = ("t_s", "id", "pos", "vel", "sigma_m", "status", "ident", "cls")
    if not states:
        return {
            "t_s": np.zeros(0),
            "id": np.zeros(0, np.int64),
            "pos": np.zeros((0, 3)),
            "vel": np.zeros((0, 3)),
            "sigma_m": np.zeros(0),
            "status": np.zeros(0, np.uint8),
            "ident": np.zeros(0, "S24"),
            "cls": np.zeros(0, np.uint8),
        }
    return {k: np.concatenate([s[k] for s in states]) for k in keys}


@dataclass
class TrackScore:
    """Track-to-truth scores over a run. Rates are fractions of object-instants."""

    n_times: int
    n_truth: int
    n_tracks: int
    completeness: float  # truth instants with an assigned track / truth instants
    spuriousness: float  # track instants with no truth / track instants
    id_switches: int  # a truth's assigned track id changes
    fragmentations: int  # a truth's assignment resumes after a gap
    pos_rmse_m: float
    vel_rmse_mps: float
    gospa_mean: float
    gospa_c_m: float
    gospa_p: float
    target_hours: float
    times: np.ndarray = field(repr=False)  # (T,) epoch s
    gospa_t: np.ndarray = field(repr=False)  # (T,) GOSPA distance at each instant
    # (truth id, time) -> track id, for mapping cues to truth
    assignment: dict[tuple[int, float], int] = field(repr=False, default_factory=dict)

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("times", "gospa_t", "assignment"):
            d.pop(k)
        return d


def _groups(t: np.ndarray, times: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(t, kind="stable")
    ts = t[order]
    lo = np.searchsorted(ts, times - 1e-6, side="left")
    hi = np.searchsorted(ts, times + 1e-6, side="right")
    return [order[a:b] for a, b in zip(lo, hi, strict=True)]


def score_tracks(
    truth: dict[str, np.ndarray],
    tracks: dict[str, np.ndarray],
    *,
    assoc_m: float = 250.0,
    gospa_c_m: float = 250.0,
    gospa_p: float = 1.0,
    horizontal: bool = False,
) -> TrackScore:
    """Scores sampled tracks against sampled truth. Both are flat tables with `t_s`, `id`,
    `pos` (n, 3) and `vel` (n, 3) in the same frame, sampled at the same instants (the
    instants are truth's). A track and a truth are paired when within `assoc_m`; a pair of
    the previous instant is kept while it stays within `assoc_m`, so a crossing does not swap
    identities by itself. `horizontal` measures distances in east/north only."""
    times = np.unique(truth["t_s"])
    tg = _groups(np.asarray(truth["t_s"]), times)
    kg = _groups(np.asarray(tracks["t_s"]), times)
    dims = slice(0, 2) if horizontal else slice(0, 3)
    prev: dict[int, int] = {}  # truth id -> track id
    last_track: dict[int, int] = {}  # truth id -> the last track ever assigned to it
    n_truth_inst = n_track_inst = n_assigned = 0
    switches = frags = 0
    pos_se, vel_se = [], []
    gospa_t = np.zeros(len(times))
    assignment: dict[tuple[int, float], int] = {}
    for k, t in enumerate(times):
        ti, ki = tg[k], kg[k]
        tid = truth["id"][ti]
        kid = tracks["id"][ki]
        tp = truth["pos"][ti][:, dims]
        kp = tracks["pos"][ki][:, dims]
        gospa_t[k] = gospa(kp, tp, c=gospa_c_m, p=gospa_p).distance
        n_truth_inst += len(ti)
        n_track_inst += len(ki)
        if len(ti) == 0 or len(ki) == 0:
            prev = {}
            continue
        d = np.sqrt(((tp[:, None, :] - kp[None, :, :]) ** 2).sum(-1))  # (n_truth, n_track)
        pairs: dict[int, int] = {}
        used_t, used_k = set(), set()
        kindex = {int(v): j for j, v in enumerate(kid)}
        for i, a in enumerate(tid):
            j = kindex.get(prev.get(int(a), -1))
            if j is not None and d[i, j] < assoc_m and j not in used_k:
                pairs[i] = j
                used_t.add(i)
                used_k.add(j)
        free_t = [i for i in range(len(ti)) if i not in used_t]
        free_k = [j for j in range(len(ki)) if j not in used_k]
        if free_t and free_k:
            sub = d[np.ix_(free_t, free_k)]
            r, c = linear_sum_assignment(np.where(sub < assoc_m, sub, 1e12))
            for a, b in zip(r, c, strict=True):
                if sub[a, b] < assoc_m:
                    pairs[free_t[a]] = free_k[b]
        new_prev: dict[int, int] = {}
        for i, j in pairs.items():
            a, b = int(tid[i]), int(kid[j])
            new_prev[a] = b
            assignment[(a, float(t))] = b
            if a in last_track:
                if last_track[a] != b:
                    switches += 1
                if a not in prev:
                    frags += 1
            last_track[a] = b
            pos_se.append(float(((truth["pos"][ti[i]] - tracks["pos"][ki[j]]) ** 2).sum()))
            vel_se.append(float(((truth["vel"][ti[i]] - tracks["vel"][ki[j]]) ** 2).sum()))
        n_assigned += len(pairs)
        prev = new_prev
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    return TrackScore(
        n_times=len(times),
        n_truth=int(len(np.unique(truth["id"]))),
        n_tracks=int(len(np.unique(tracks["id"]))),
        completeness=n_assigned / n_truth_inst if n_truth_inst else 1.0,
        spuriousness=(n_track_inst - n_assigned) / n_track_inst if n_track_inst else 0.0,
        id_switches=switches,
        fragmentations=frags,
        pos_rmse_m=float(np.sqrt(np.mean(pos_se))) if pos_se else float("nan"),
        vel_rmse_mps=float(np.sqrt(np.mean(vel_se))) if vel_se else float("nan"),
        gospa_mean=float(gospa_t.mean()) if len(times) else 0.0,
        gospa_c_m=gospa_c_m,
        gospa_p=gospa_p,
        target_hours=n_truth_inst * dt / 3600.0,
        times=times,
        gospa_t=gospa_t,
        assignment=assignment,
    )


# --------------------------------------------------------------------------- cues vs breaches


@dataclass
class CueScore:
    n_breaches: int
    n_detected: int
    recall: float
    n_cues: int  # distinct cue ids opened
    n_false: int
    n_duplicate: int  # further cues about an already cued breach
    false_per_target_hour: float
    latency_s: list[float]  # per detected breach, in breach order
    latency_median_s: float
    latency_max_s: float
    missed: list[str]
    false: list[dict]  # the false cues' (id, rule, site, track, t_s)
    matches: dict[str, str]  # breach name -> first matching cue id

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def opened_cues(cue_bodies: Iterable[dict]) -> list[dict]:
    """The first event of each cue id (its opening), in order of appearance."""
    seen: dict[str, dict] = {}
    for b in cue_bodies:
        cid = str(b.get("id"))
        if cid not in seen:
            seen[cid] = b
    return list(seen.values())


def score_cues(
    cue_bodies: Iterable[dict],
    breaches: Sequence[Any],
    *,
    target_hours: float,
    t0_s: float = 0.0,
    track_to_truth: Any = None,
    early_s: float = 10.0,
    window_s: float = 120.0,
) -> CueScore:
    """Matches opened cues to breaches (objects with `name`, `rule`, `site`, `t_s` in scenario
    seconds and `target`). A cue matches a breach of the same rule and site opened between
    `early_s` before and `window_s` after it; with `track_to_truth(track_id, t_epoch) -> truth
    id | None` it must also be about the breach's target (event breaches have none). The first
    matching cue is the hit and gives the latency; other matches, and later cues about the same
    object for the same (rule, site) once it was cued, are duplicates; cues matching no breach
    are false."""
    cues = sorted(opened_cues(cue_bodies), key=lambda b: (float(b["t_s"]), str(b["id"])))
    matches: dict[str, str] = {}
    latency: dict[str, float] = {}
    false, dup = [], 0
    for b in cues:
        t_rel = float(b["t_s"]) - t0_s
        hit = None
        who = None
        if track_to_truth is not None and b.get("track") is not None:
            who = track_to_truth(int(b["track"]), float(b["t_s"]))
        for br in breaches:
            if br.rule != b.get("rule") or br.site != b.get("site"):
                continue
            if who is not None and br.target is not None and who != br.target:
                continue
            # A later cue about the same object for a breach already cued (its track was
            # re-created, say) repeats that breach: a duplicate, however late.
            same_object = who is not None and who == br.target and br.name in matches
            if not (br.t_s - early_s <= t_rel <= br.t_s + window_s) and not (
                same_object and t_rel >= br.t_s
            ):
                continue
            hit = br
            if br.name not in matches:
                break
        if hit is None:
            false.append({k: b.get(k) for k in ("id", "rule", "site", "track", "t_s", "text")})
        elif hit.name in matches:
            dup += 1
        else:
            matches[hit.name] = str(b["id"])
            latency[hit.name] = t_rel - hit.t_s
    lat = [latency[br.name] for br in breaches if br.name in latency]
    n = len(breaches)
    return CueScore(
        n_breaches=n,
        n_detected=len(matches),
        recall=len(matches) / n if n else 1.0,
        n_cues=len(cues),
        n_false=len(false),
        n_duplicate=dup,
        false_per_target_hour=len(false) / target_hours if target_hours > 0 else float("nan"),
        latency_s=lat,
        latency_median_s=float(np.median(lat)) if lat else float("nan"),
        latency_max_s=float(np.max(lat)) if lat else float("nan"),
        missed=[br.name for br in breaches if br.name not in matches],
        false=false,
        matches=matches,
    )


# --------------------------------------------------------------------------- stripped identities


@dataclass
class IdentityScore:
    """Scores against cooperative identities stripped before tracking."""

    n_detections: int
    n_objects: int
    n_tracks: int
    purity: float  # detections on a track that carry its majority identity / assigned ones
    completeness: float  # detections assigned to a confirmed track / all detections
    id_switches: int  # an object's detections move from one track to another
    fragmentations: int  # an object's assignment resumes on a track after unassigned reports
    object_hours: float
    switches_per_object_hour: float
    tracks_per_object: float

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def score_identities(t_s: np.ndarray, ident: np.ndarray, track: np.ndarray) -> IdentityScore:
    """`t_s (n,)` detection times, `ident (n,)` the stripped identity of each detection,
    `track (n,)` the confirmed track it updated (-1: none). Objects are identities."""
    t = np.asarray(t_s, dtype=np.float64)
    ident = np.asarray(ident)
    track = np.asarray(track, dtype=np.int64)
    n = len(t)
    assigned = track >= 0
    # Purity: for each track, the share of its detections from its majority identity.
    _, obj = np.unique(ident, return_inverse=True)
    pure = 0
    if assigned.any():
        pairs = np.stack([track[assigned], obj[assigned]], axis=1)
        uniq, counts = np.unique(pairs, axis=0, return_counts=True)
        best: dict[int, int] = {}
        for (trk, _o), cnt in zip(uniq, counts, strict=True):
            best[int(trk)] = max(best.get(int(trk), 0), int(cnt))
        pure = sum(best.values())
    switches = frags = 0
    hours = 0.0
    tracks_per = []
    order = np.lexsort((t, obj))
    bounds = np.flatnonzero(np.diff(obj[order])) + 1
    for grp in np.split(order, bounds):
        if len(grp) == 0:
            continue
        hours += (t[grp[-1]] - t[grp[0]]) / 3600.0
        seq = track[grp]
        cur, gap = -1, False
        seen = set()
        for k in seq:
            if k < 0:
                gap = cur >= 0
                continue
            seen.add(int(k))
            if cur >= 0 and k != cur:
                switches += 1
            elif cur >= 0 and gap:
                frags += 1
            cur, gap = int(k), False
        tracks_per.append(len(seen))
    n_assigned = int(assigned.sum())
    return IdentityScore(
        n_detections=n,
        n_objects=int(obj.max() + 1) if n else 0,
        n_tracks=int(len(np.unique(track[assigned]))),
        purity=pure / n_assigned if n_assigned else float("nan"),
        completeness=n_assigned / n if n else float("nan"),
        id_switches=switches,
        fragmentations=frags,
        object_hours=hours,
        switches_per_object_hour=switches / hours if hours > 0 else float("nan"),
        tracks_per_object=float(np.mean(tracks_per)) if tracks_per else float("nan"),
    )
