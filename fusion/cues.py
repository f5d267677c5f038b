"""The cue lifecycle: findings of the rules become cues that open, update and close.

This module owns what a cue is on the wire (its body) and how it lives:

- one open cue per (rule, site, subject), the subject being a track id, an event incident or
  a sensor; a new cue opens only when its rule's opening condition holds (`enter`);
- while the rule's (looser, hysteresis) holding condition goes on, the cue is kept and an
  `update` is emitted at most every `update_interval_s`;
- once the condition has been absent for the rule's `close_after_s` (a hold time), the cue
  closes; a condition that flickers within the hold time never closes and reopens a cue;
- the id is stable over the cue's life and the same for the same input (a hash of rule, site,
  subject and opening time), so replays give the same ids.

Body fields: id, seq (None here; fusion.store assigns it), state, rule, site, site_name,
track (id or None), t_s, opened_t_s, severity, confidence, pos [lat_deg, lon_deg, alt_m],
vel [e, n, u] m/s, sigma_m, evidence, text, topic (`cue.<rule>.<site_id>`).
It does not evaluate rules (fusion.rules) nor store or publish cues.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from fusion.messages import CLASS_NAMES
from fusion.rules import (
    approach,
    dark_target,
    fire_event,
    incursion,
    line_crossing,
    loiter,
    sensor_outage,
)
from fusion.rules.base import SENSOR_KIND_NAMES, Findings, PairMemory, ScanContext
from fusion.rules.params import RULES, SEVERITY_BONUS, SEVERITY_NAMES
from fusion.rules.text import sensors_text, track_head
from fusion.sites import SiteSet

__all__ = ["CueConfig", "CueBook", "cue_id", "severity_of", "track_confidence", "STATES"]

STATES = ("open", "update", "close")

SENTENCES = {
    "incursion": incursion.sentence,
    "approach": approach.sentence,
    "line_crossing": line_crossing.sentence,
    "loiter": loiter.sentence,
    "dark_target": dark_target.sentence,
    "fire_event": fire_event.sentence,
    "sensor_outage": sensor_outage.sentence,
}

# How long a rule's condition must be absent before its cue closes (s).
CLOSE_AFTER_S = {
    "incursion": 10.0,
    "approach": 10.0,
    "line_crossing": 30.0,
    "loiter": 30.0,  # as long as loiter's default grace_s, so a short gap neither closes it
    "dark_target": 15.0,
    "fire_event": 60.0,
    "sensor_outage": 5.0,
}


@dataclass(frozen=True)
class CueConfig:
    """Lifecycle settings. `close_after_s` overrides the per-rule defaults above.

    `max_updates_per_scan` bounds the track cue updates one scan emits (0: no bound): when
    more are due, those waiting longest go first and the rest follow on the next scans, so a
    burst of cues opened together does not make every fifth scan slow. Opens and closes are
    never deferred."""

    update_interval_s: float = 5.0
    close_after_s: Mapping[str, float] = field(default_factory=dict)
    max_updates_per_scan: int = 200

    @staticmethod
    def from_dict(d: Mapping[str, Any] | None) -> CueConfig:
        d = dict(d or {})
        unknown = set(d) - {"update_interval_s", "close_after_s", "max_updates_per_scan"}
        if unknown:
            raise ValueError(f"unknown cue settings: {', '.join(sorted(unknown))}")
        close = dict(d.get("close_after_s") or {})
        bad = set(close) - set(RULES)
        if bad:
            raise ValueError(f"close_after_s for unknown rules: {', '.join(sorted(bad))}")
        return CueConfig(
            float(d.get("update_interval_s", 5.0)),
            close,
            int(d.get("max_updates_per_scan", 200)),
        )

    def close_after(self, rule: str) -> float:
        return float(self.close_after_s.get(rule, CLOSE_AFTER_S[rule]))


def cue_id(rule: str, site_id: str, subject: Any, opened_t_s: float) -> str:
    """Stable id of a cue: the same rule, site, subject and opening time give the same id."""
    text = f"{rule}|{site_id}|{subject!r}|{opened_t_s!r}"
    return "cue-" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@lru_cache(maxsize=256)
def severity_of(priority: int, rule: str) -> str:
    """Site priority (1..5) raised or lowered by the rule's weight, as a name."""
    score = min(max(priority + SEVERITY_BONUS[rule], 1), len(SEVERITY_NAMES))
    return SEVERITY_NAMES[score - 1]


def track_confidence(
    quality: np.ndarray, n_sensors: np.ndarray, kinds_mask: np.ndarray, has_ident: np.ndarray
) -> np.ndarray:
    """Confidence in a track's evidence, in [0.05, 0.99]: track quality first, then more
    sensors, more than one kind of sensor, and a cooperative identity."""
    kinds = sum(((kinds_mask & bit) > 0).astype(np.int64) for bit, _ in SENSOR_KIND_NAMES)
    c = (
        0.35
        + 0.35 * np.clip(quality, 0.0, 1.0)
        + 0.1 * np.clip(n_sensors.astype(np.float64) - 1.0, 0.0, 2.0)
        + 0.05 * (kinds >= 2)
        + 0.05 * has_ident
    )
    return np.clip(c, 0.05, 0.99)


@dataclass(eq=False)
class _Cue:
    id: str
    rule: str
    site: int
    subject: Any
    opened_t_s: float
    last_seen_t_s: float
    last_emit_t_s: float
    scan: int  # last scan that saw the condition (cues of event and sensor rules)
    src: tuple[Findings, int, ScanContext] | None = None  # latest data (event/sensor rules)
    last_body: dict[str, Any] | None = None  # the latest body emitted (or restored)
    close_reason: str = "condition ended"


_ENDED = "condition ended"
_LOST = "track no longer in the picture"


class CueBook:
    """Open cues and their lifecycle. `step` is called once per scan with all findings.

    Cues about tracks (most of them) are indexed per rule by a (track, site) code in sorted
    arrays, so a scan touches its findings with array operations and spends Python time only
    on the cues it emits; cues about events and sensors are few and live in a dict.
    """

    def __init__(self, sites: SiteSet, config: CueConfig | None = None) -> None:
        self.sites = sites
        self.config = config or CueConfig()
        self.open: dict[tuple[str, int, Any], _Cue] = {}
        self._others: dict[tuple[str, int, Any], _Cue] = {}  # event and sensor cues
        self._index = {
            r: PairMemory({"last_seen": 0.0, "last_emit": 0.0, "scan": np.int64(0)}) for r in RULES
        }
        self._scan = 0
        self._fields: dict[str, list[tuple[str, str, str, str]]] = {}

    def step(self, findings: list[Findings], ctx: ScanContext) -> list[dict[str, Any]]:
        self._scan += 1
        now = ctx.now_s
        emit: list[tuple[str, _Cue]] = []
        batches: list[tuple[Findings, np.ndarray, list[str], list[_Cue]]] = []
        pending = []
        for F in findings:
            if F.info is None:
                if len(F):
                    pending.append(self._match_tracks(F, ctx))
            else:
                self._step_others(F, ctx, emit)
        self._budget_updates(pending)
        for match in pending:
            batch = self._commit_tracks(match, ctx)
            if batch is not None:
                batches.append(batch)
        for rule, index in self._index.items():
            if not len(index):
                continue
            gone = (index.cols["scan"] != self._scan) & (
                now - index.cols["last_seen"] >= self.config.close_after(rule)
            )
            if gone.any():
                tid, site = PairMemory.split(index.codes[gone])
                lost = (ctx.index_of(tid) < 0).tolist()
                for t, j, gone_track in zip(tid.tolist(), site.tolist(), lost, strict=True):
                    cue = self.open.pop((rule, j, t))
                    cue.close_reason = _LOST if gone_track else _ENDED
                    emit.append(("close", cue))
                index.keep(~gone)
        for key, cue in list(self._others.items()):
            if cue.scan != self._scan:
                if now - cue.last_seen_t_s >= self.config.close_after(cue.rule):
                    emit.append(("close", cue))
                    del self.open[key]
                    del self._others[key]
        bodies: list[dict[str, Any]] = []
        keys = _OrderKeys()
        if batches:
            bodies = _track_bodies(self, batches, ctx)
            cues = [cue for _, _, _, batch_cues in batches for cue in batch_cues]
            for cue, body in zip(cues, bodies, strict=True):
                cue.last_body = body
            for F, ks, states, _ in batches:
                keys.add_tracks(F.rule, F.site[ks], ctx.ids[F.i[ks]], states)
        for state, cue in emit:
            body = self._other_body(state, cue, ctx)
            cue.last_body = body
            bodies.append(body)
            keys.add(cue, state)
        return [bodies[k] for k in keys.order().tolist()]

    def _match_tracks(self, F: Findings, ctx: ScanContext):
        """One track rule's findings against its open cues (array operations): which are
        new, which are due an update. Marks the open ones as seen this scan."""
        index = self._index[F.rule]
        now = ctx.now_s
        tracks = ctx.ids[F.i]
        codes = PairMemory.code(tracks, F.site)
        found, slot = index.lookup(codes)
        new = ~found & F.enter
        seen = slot[found]
        due = np.zeros(len(codes), bool)
        last_emit = np.zeros(len(codes))
        last_emit[found] = index.cols["last_emit"][seen]
        due[found] = now - last_emit[found] >= self.config.update_interval_s
        index.cols["last_seen"][seen] = now
        index.cols["scan"][seen] = self._scan
        return [F, tracks, codes, slot, new, due, last_emit]

    def _budget_updates(self, pending) -> None:
        """Keep at most max_updates_per_scan due updates: the longest waiting first (ties by
        rule, then code: deterministic)."""
        cap = self.config.max_updates_per_scan
        if cap <= 0:
            return
        total = sum(int(m[5].sum()) for m in pending)
        if total <= cap:
            return
        waited = np.concatenate([m[6][m[5]] for m in pending])
        rule_no = np.concatenate([np.full(int(m[5].sum()), n) for n, m in enumerate(pending)])
        codes = np.concatenate([m[2][m[5]] for m in pending])
        order = np.lexsort((codes, rule_no, waited))
        keep = np.zeros(total, bool)
        keep[order[:cap]] = True
        start = 0
        for m in pending:
            k = np.flatnonzero(m[5])
            m[5][k[~keep[start : start + len(k)]]] = False
            start += len(k)

    def _commit_tracks(self, match, ctx: ScanContext):
        """Opens the new cues, stamps the updates, returns what to build bodies for."""
        F, tracks, codes, slot, new, due, _ = match
        index = self._index[F.rule]
        now = ctx.now_s
        index.cols["last_emit"][slot[due]] = now
        ks = np.flatnonzero(new | due)
        if len(ks) == 0:
            return None
        states, cues = [], []
        sites = F.site[ks].tolist()
        subjects = tracks[ks].tolist()
        is_new = new[ks].tolist()
        for j, t, fresh in zip(sites, subjects, is_new, strict=True):
            key = (F.rule, j, t)
            if fresh:
                cue = _Cue(cue_id(F.rule, self.sites.sites[j].id, t, now), F.rule, j, t,
                           now, now, now, self._scan)  # fmt: skip
                self.open[key] = cue
                states.append("open")
            else:
                cue = self.open[key]
                cue.last_emit_t_s = now
                states.append("update")
            cues.append(cue)
        n_new = int(new.sum())
        if n_new:
            index.put(codes[new], {"last_seen": np.full(n_new, now),
                                   "last_emit": np.full(n_new, now),
                                   "scan": np.full(n_new, self._scan, np.int64)})  # fmt: skip
        return F, ks, states, cues

    def _step_others(self, F: Findings, ctx: ScanContext, emit) -> None:
        now = ctx.now_s
        enter = F.enter.tolist()
        sites = F.site.tolist()
        for k, subject in enumerate(F.subject):
            key = (F.rule, sites[k], subject)
            cue = self.open.get(key)
            if cue is None:
                if not enter[k]:
                    continue
                site_id = self.sites.sites[sites[k]].id
                cue = _Cue(cue_id(F.rule, site_id, subject, now), F.rule, sites[k], subject,
                           now, now, now, self._scan)  # fmt: skip
                self.open[key] = cue
                self._others[key] = cue
                emit.append(("open", cue))
            elif now - cue.last_emit_t_s >= self.config.update_interval_s:
                emit.append(("update", cue))
                cue.last_emit_t_s = now
            cue.last_seen_t_s = now
            cue.scan = self._scan
            cue.src = (F, k, ctx)

    def restore(self, bodies: list[dict[str, Any]]) -> int:
        """Take over cues left open by a previous run (their latest stored bodies), so that
        they continue under the same id instead of opening again. Returns how many."""
        n = 0
        for b in bodies:
            site = self.sites.by_id.get(b.get("site"))
            if site is None or b.get("rule") not in RULES or b.get("state") == "close":
                continue
            subject = (b.get("evidence") or {}).get("subject", b.get("track"))
            if isinstance(subject, list) or subject is None:
                continue
            rule = b["rule"]
            t = float(b["t_s"])
            key = (rule, site.index, subject)
            self.open[key] = _Cue(b["id"], rule, site.index, subject,
                                  float(b.get("opened_t_s", t)), t, t, self._scan,
                                  last_body=dict(b))  # fmt: skip
            if rule in _EVENT_RULES:
                self._others[key] = self.open[key]
            else:
                code = PairMemory.code(np.array([int(subject)]), np.array([site.index]))
                self._index[rule].put(code, {"last_seen": np.array([t]),
                                             "last_emit": np.array([t]),
                                             "scan": np.array([self._scan], np.int64)})  # fmt: skip
            n += 1
        return n

    # -- bodies -------------------------------------------------------------------------------

    def _site_fields(self, rule: str) -> list[tuple[str, str, str, str]]:
        """Per site index: (id, name, severity, topic) of the rule's cues, built once."""
        fields = self._fields.get(rule)
        if fields is None:
            fields = [(s.id, s.name, severity_of(s.priority, rule), f"cue.{rule}.{s.id}")
                      for s in self.sites.sites]  # fmt: skip
            self._fields[rule] = fields
        return fields

    def _other_body(self, state: str, cue: _Cue, ctx: ScanContext) -> dict[str, Any]:
        """Bodies of event and sensor cues, and every close (from the cue's latest body)."""
        site = self.sites.sites[cue.site]
        if state == "close" or cue.src is None:
            body = dict(cue.last_body or {})
            evidence = dict(body.get("evidence") or {})
            evidence["subject"] = cue.subject
            evidence["reason"] = cue.close_reason
            evidence["last_seen_t_s"] = cue.last_seen_t_s
            if "track" in evidence and "who_text" not in evidence:
                evidence["who_text"] = f"Track {evidence['track']}"
            body.update(
                seq=None,
                state="close",
                t_s=float(ctx.now_s),
                evidence=evidence,
                text=SENTENCES[cue.rule]("close", site, evidence),
            )
            return body
        F, k, _ = cue.src
        info = F.info[k]
        evidence = {**info["evidence"], "subject": cue.subject}
        return _body(cue, state, site, ctx.now_s, info["pos_llh"], info["vel"],
                     info["sigma_m"], info["confidence"], evidence,
                     SENTENCES[cue.rule](state, site, evidence))  # fmt: skip


_EVENT_RULES = frozenset({"fire_event", "sensor_outage"})


def _body(cue, state, site, t_s, pos, vel, sigma, conf, evidence, text) -> dict[str, Any]:
    return {
        "id": cue.id,
        "seq": None,
        "state": state,
        "rule": cue.rule,
        "site": site.id,
        "site_name": site.name,
        "track": cue.subject if cue.rule not in _EVENT_RULES else None,
        "t_s": float(t_s),
        "opened_t_s": float(cue.opened_t_s),
        "severity": severity_of(site.priority, cue.rule),
        "confidence": round(float(conf), 3),
        "pos": pos,
        "vel": vel,
        "sigma_m": None if sigma is None else round(float(sigma), 1),
        "evidence": evidence,
        "text": text,
        "topic": f"cue.{cue.rule}.{site.id}",
    }


def _track_bodies(book: CueBook, batches, ctx: ScanContext) -> list[dict[str, Any]]:
    """Bodies of the open/update steps of the track rules' findings, one per cue of
    `batches` [(findings F, their selected rows ks, states, cues)], in that order.

    Everything numeric is computed with array operations over all the batches' cues at once
    and turned into Python lists; the loop per cue only fills two dicts and formats the
    sentence. The track's description is cached per track (fusion.rules.text.track_head) and
    the per-(rule, site) fields are computed once per site (`CueBook._site_fields`)."""
    i = np.concatenate([F.i[ks] for F, ks, _, _ in batches])
    rule_conf = np.concatenate(
        [F.conf[ks] if F.conf is not None else np.ones(len(ks)) for F, ks, _, _ in batches]
    )  # x * 1.0 == x exactly: a rule without its own factor leaves the confidence as it is
    rows = ctx.rows[i]
    pic = ctx.picture
    x = pic.x[rows]
    dt = np.maximum(ctx.now_s - pic.t_upd_s[rows], 0.0)
    xy = ctx.xy[i]
    enu = np.column_stack([xy, x[:, 2] + x[:, 5] * dt])
    llh = book.sites.frame.to_geodetic(enu)
    pos = np.column_stack([np.round(llh[:, :2], 7), np.round(llh[:, 2], 1)]).tolist()
    v = ctx.v[i]
    vel = np.round(np.column_stack([v, x[:, 5]]), 2).tolist()
    speed = np.hypot(v[:, 0], v[:, 1])
    P = ctx.Pxy[i]
    a, b, c = P[:, 0, 0], P[:, 0, 1], P[:, 1, 1]
    lam = 0.5 * (a + c) + np.sqrt(0.25 * (a - c) ** 2 + b * b)  # major axis variance
    sigma = np.round(np.sqrt(np.maximum(lam, 0.0)), 1).tolist()
    ident_raw = pic.ident[rows]
    quality = pic.quality[rows]
    n_sensors = pic.n_sensors[rows].astype(np.int64)
    kinds = pic.sensor_kinds[rows].astype(np.int64)
    conf = track_confidence(quality, n_sensors, kinds, ident_raw != b"") * rule_conf
    conf = np.round(conf, 3).tolist()
    ids = pic.id[rows].tolist()
    cls = pic.cls[rows].tolist()
    hits = pic.hits[rows].tolist()
    t_upd = pic.t_upd_s[rows].tolist()
    speed_l = speed.tolist()
    speed_r = np.round(speed, 2).tolist()
    quality_l = np.round(quality, 3).tolist()
    ns_l = n_sensors.tolist()
    kinds_l = kinds.tolist()
    idents = [s.decode("ascii", "replace") for s in ident_raw.tolist()]
    sensor_names = {m: [n for bit, n in SENSOR_KIND_NAMES if m & bit] for m in set(kinds_l)}
    cls_names = [CLASS_NAMES[c] if c < len(CLASS_NAMES) else "unknown" for c in cls]
    t_s = float(ctx.now_s)
    sites = book.sites.sites
    out = []
    m = 0  # position over all batches
    for F, ks, states, cues in batches:
        rule = F.rule  # one rule per batch: its sentence, topic and severity are shared
        sentence = SENTENCES[rule]
        site_fields = book._site_fields(rule)
        names, columns, finite = _metric_columns(F, ks)
        # per cue, its metric values in `names` order (when none is ever missing)
        rows_k = list(zip(*columns, strict=True)) if names else [()] * len(ks)
        for k, (state, cue) in enumerate(zip(states, cues, strict=True)):
            site = sites[cue.site]
            site_id, site_name, severity, topic = site_fields[cue.site]
            evidence: dict[str, Any] = {
                "track": ids[m],
                "class": cls_names[m],
                "ident": idents[m] or None,
                "speed_mps": speed_r[m],
                "quality": quality_l[m],
                "n_sensors": ns_l[m],
                "sensor_kinds": sensor_names[kinds_l[m]],
                "hits": hits[m],
                "t_update_s": t_upd[m],
            }
            if finite is None:  # every metric finite for every cue: no check per value
                evidence.update(zip(names, rows_k[k], strict=True))
            else:
                for name, vals, ok in zip(names, columns, finite, strict=True):
                    if ok is None or ok[k]:
                        evidence[name] = vals[k]
            evidence["subject"] = cue.subject
            evidence["who_text"] = (
                f"{track_head(ids[m], cls[m], idents[m])} "
                f"({speed_l[m]:.1f} m/s, {sensors_text(ns_l[m], kinds_l[m])})"
            )
            out.append(
                {
                    "id": cue.id,
                    "seq": None,
                    "state": state,
                    "rule": rule,
                    "site": site_id,
                    "site_name": site_name,
                    "track": cue.subject,
                    "t_s": t_s,
                    "opened_t_s": cue.opened_t_s,
                    "severity": severity,
                    "confidence": conf[m],
                    "pos": pos[m],
                    "vel": vel[m],
                    "sigma_m": sigma[m],
                    "evidence": evidence,
                    "text": sentence(state, site, evidence),
                    "topic": topic,
                }
            )
            m += 1
    return out


def _metric_columns(F: Findings, ks: np.ndarray):
    """The rule's metrics of findings ks as Python lists: (names, columns, finite), finite
    None when every value is finite, else per metric a list of flags (None: a bool metric,
    always reported). Non-finite values are left out of the evidence."""
    names, columns, flags = [], [], []
    any_missing = False
    for name, arr in F.metrics.items():
        vals = arr(ks) if callable(arr) else arr[ks]
        names.append(name)
        if vals.dtype == bool:
            columns.append(vals.tolist())
            flags.append(None)
            continue
        ok = np.isfinite(vals)
        if ok.all():
            columns.append(np.round(vals, 1).tolist())
            flags.append(None)
        else:
            any_missing = True
            columns.append(np.round(np.where(ok, vals, 0.0), 1).tolist())
            flags.append(ok.tolist())
    return names, columns, (flags if any_missing else None)


_STATE_RANK = {"close": 0, "open": 1, "update": 2}
_RULE_NO = {r: n for n, r in enumerate(RULES)}


class _OrderKeys:
    """The order of a scan's cue events: by rule, site, subject (track ids, in numeric order,
    before string subjects, in string order), then close, open, update; ties keep their
    order of arrival. Kept as arrays (the track cues' straight from the findings' arrays)
    and sorted with one stable lexsort instead of a key tuple per cue event."""

    def __init__(self) -> None:
        self.rule: list[np.ndarray] = []
        self.site: list[np.ndarray] = []
        self.subj: list[np.ndarray] = []  # track id; 0 for string subjects
        self.text: list[Any] = []  # None for track ids; the string subject otherwise
        self.rank: list[np.ndarray] = []

    def add_tracks(self, rule: str, site: np.ndarray, track_id: np.ndarray, states) -> None:
        n = len(states)
        self.rule.append(np.full(n, _RULE_NO[rule], np.int64))
        self.site.append(np.asarray(site, np.int64))
        self.subj.append(np.asarray(track_id, np.int64))
        self.text.extend([None] * n)
        self.rank.append(np.array([_STATE_RANK[st] for st in states], np.int64))

    def add(self, cue: _Cue, state: str) -> None:
        subj = cue.subject
        is_int = isinstance(subj, int)
        self.rule.append(np.array([_RULE_NO[cue.rule]], np.int64))
        self.site.append(np.array([cue.site], np.int64))
        self.subj.append(np.array([subj if is_int else 0], np.int64))
        self.text.append(None if is_int else str(subj))
        self.rank.append(np.array([_STATE_RANK[state]], np.int64))

    def order(self) -> np.ndarray:
        if not self.rule:
            return np.zeros(0, np.int64)
        strings = sorted({t for t in self.text if t is not None})
        rank_of = {t: k + 1 for k, t in enumerate(strings)}  # 0: a track id (kind 0)
        text_rank = np.array([0 if t is None else rank_of[t] for t in self.text], np.int64)
        kind = (text_rank > 0).astype(np.int64)
        cat = np.concatenate
        return np.lexsort(
            (cat(self.rank), text_rank, cat(self.subj), kind, cat(self.site), cat(self.rule))
        )
