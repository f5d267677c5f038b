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
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
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
from fusion.rules.base import SENSOR_KIND_NAMES, Findings, ScanContext
from fusion.rules.params import RULES, SEVERITY_BONUS, SEVERITY_NAMES
from fusion.rules.text import track_text
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
    """Lifecycle settings. `close_after_s` overrides the per-rule defaults above."""

    update_interval_s: float = 5.0
    close_after_s: Mapping[str, float] = field(default_factory=dict)

    @staticmethod
    def from_dict(d: Mapping[str, Any] | None) -> CueConfig:
        d = dict(d or {})
        unknown = set(d) - {"update_interval_s", "close_after_s"}
        if unknown:
            raise ValueError(f"unknown cue settings: {', '.join(sorted(unknown))}")
        close = dict(d.get("close_after_s") or {})
        bad = set(close) - set(RULES)
        if bad:
            raise ValueError(f"close_after_s for unknown rules: {', '.join(sorted(bad))}")
        return CueConfig(float(d.get("update_interval_s", 5.0)), close)

    def close_after(self, rule: str) -> float:
        return float(self.close_after_s.get(rule, CLOSE_AFTER_S[rule]))


def cue_id(rule: str, site_id: str, subject: Any, opened_t_s: float) -> str:
    """Stable id of a cue: the same rule, site, subject and opening time give the same id."""
    text = f"{rule}|{site_id}|{subject!r}|{opened_t_s!r}"
    return "cue-" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


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
    scan: int  # last scan that saw the condition
    src: tuple[Findings, int, ScanContext] | None = None  # where its latest data lives
    last_body: dict[str, Any] | None = None  # restored cues before their first sighting


class CueBook:
    """Open cues and their lifecycle. `step` is called once per scan with all findings."""

    def __init__(self, sites: SiteSet, config: CueConfig | None = None) -> None:
        self.sites = sites
        self.config = config or CueConfig()
        self.open: dict[tuple[str, int, Any], _Cue] = {}
        self._scan = 0

    def step(self, findings: list[Findings], ctx: ScanContext) -> list[dict[str, Any]]:
        self._scan += 1
        now = ctx.now_s
        emit: list[tuple[str, _Cue]] = []
        for F in findings:
            enter = F.enter.tolist()
            sites = F.site.tolist()
            for k, subject in enumerate(F.subject):
                key = (F.rule, sites[k], subject)
                cue = self.open.get(key)
                if cue is None:
                    if not enter[k]:
                        continue
                    site_id = self.sites.sites[sites[k]].id
                    cue = _Cue(cue_id(F.rule, site_id, subject, now), F.rule, sites[k],
                               subject, now, now, now, self._scan)  # fmt: skip
                    self.open[key] = cue
                    emit.append(("open", cue))
                elif now - cue.last_emit_t_s >= self.config.update_interval_s:
                    emit.append(("update", cue))
                    cue.last_emit_t_s = now
                cue.last_seen_t_s = now
                cue.scan = self._scan
                cue.src = (F, k, ctx)
        for key, cue in list(self.open.items()):
            if cue.scan != self._scan and now - cue.last_seen_t_s >= self.config.close_after(
                cue.rule
            ):
                emit.append(("close", cue))
                del self.open[key]
        emit.sort(key=lambda e: _order(e[1], e[0]))
        return self._bodies(emit, ctx)

    def restore(self, bodies: list[dict[str, Any]]) -> int:
        """Take over cues left open by a previous run (their latest stored bodies), so that
        they continue under the same id instead of opening again. Returns how many."""
        n = 0
        for b in bodies:
            site = self.sites.by_id.get(b.get("site"))
            if site is None or b.get("rule") not in RULES or b.get("state") == "close":
                continue
            subject = (b.get("evidence") or {}).get("subject", b.get("track"))
            if isinstance(subject, list):
                continue
            t = float(b["t_s"])
            key = (b["rule"], site.index, subject)
            self.open[key] = _Cue(b["id"], b["rule"], site.index, subject,
                                  float(b.get("opened_t_s", t)), t, t, self._scan,
                                  last_body=dict(b))  # fmt: skip
            n += 1
        return n

    # -- bodies -------------------------------------------------------------------------------

    def _bodies(self, emit: list[tuple[str, _Cue]], ctx: ScanContext) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        enu_rows: list[tuple[int, np.ndarray]] = []
        for state, cue in emit:
            body = self._body(state, cue, ctx, enu_rows, len(out))
            out.append(body)
        if enu_rows:
            llh = self.sites.frame.to_geodetic(np.array([p for _, p in enu_rows]))
            for (n, _), g in zip(enu_rows, llh, strict=True):
                out[n]["pos"] = [
                    round(float(g[0]), 7),
                    round(float(g[1]), 7),
                    round(float(g[2]), 1),
                ]
        return out

    def _body(self, state, cue: _Cue, ctx: ScanContext, enu_rows, n) -> dict[str, Any]:
        site = self.sites.sites[cue.site]
        if cue.src is None:  # restored and never seen since: close from the stored body
            body = dict(cue.last_body or {})
            evidence = dict(body.get("evidence") or {})
            evidence["reason"] = "condition not seen since restart"
            pos, vel, sigma, conf = (
                body.get("pos"),
                body.get("vel"),
                body.get("sigma_m"),
                (body.get("confidence", 0.5)),
            )
        else:
            F, k, src_ctx = cue.src
            if F.info is not None:
                info = F.info[k]
                evidence = dict(info["evidence"])
                pos, vel, sigma = info["pos_llh"], info["vel"], info["sigma_m"]
                conf = float(info["confidence"])
            else:
                evidence, pos_enu, vel, sigma, conf = _track_evidence(F, k, src_ctx)
                enu_rows.append((n, pos_enu))
                pos = None
            evidence["subject"] = cue.subject
            if state == "close":
                evidence["reason"] = _close_reason(cue, ctx)
        who = evidence.pop("who", None)
        text = SENTENCES[cue.rule](state, site, {**evidence, "who": who})
        return {
            "id": cue.id,
            "seq": None,
            "state": state,
            "rule": cue.rule,
            "site": site.id,
            "site_name": site.name,
            "track": cue.subject if isinstance(cue.subject, int) else None,
            "t_s": float(ctx.now_s),
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


def _close_reason(cue: _Cue, ctx: ScanContext) -> str:
    if isinstance(cue.subject, int) and ctx.index_of(np.array([cue.subject]))[0] < 0:
        return "track no longer in the picture"
    return "condition ended"


def _track_evidence(F: Findings, k: int, ctx: ScanContext):
    i = int(F.i[k])
    row = int(ctx.rows[i])
    pic = ctx.picture
    x = pic.x[row]
    dt = max(ctx.now_s - float(pic.t_upd_s[row]), 0.0)
    pos_enu = np.array([ctx.xy[i, 0], ctx.xy[i, 1], x[2] + x[5] * dt])
    vel = [round(float(ctx.v[i, 0]), 2), round(float(ctx.v[i, 1]), 2), round(float(x[5]), 2)]
    sigma = math.sqrt(max(float(np.linalg.eigvalsh(ctx.Pxy[i])[-1]), 0.0))
    ident = pic.ident[row].decode("ascii", "replace").rstrip("\x00")
    cls = int(pic.cls[row])
    n_sensors = int(pic.n_sensors[row])
    kinds = int(pic.sensor_kinds[row])
    speed = float(np.hypot(ctx.v[i, 0], ctx.v[i, 1]))
    quality = float(pic.quality[row])
    conf = track_confidence(
        np.array([quality]), np.array([n_sensors]), np.array([kinds]), np.array([bool(ident)])
    )[0]
    if F.conf is not None:
        conf *= float(F.conf[k])
    evidence: dict[str, Any] = {
        "who": track_text(int(pic.id[row]), cls, ident, speed, n_sensors, kinds),
        "track": int(pic.id[row]),
        "class": CLASS_NAMES[cls] if cls < len(CLASS_NAMES) else "unknown",
        "ident": ident or None,
        "speed_mps": round(speed, 2),
        "quality": round(quality, 3),
        "n_sensors": n_sensors,
        "sensor_kinds": [name for bit, name in SENSOR_KIND_NAMES if kinds & bit],
        "hits": int(pic.hits[row]),
        "t_update_s": float(pic.t_upd_s[row]),
    }
    for name, arr in F.metrics.items():
        v = arr[k]
        if isinstance(v, np.bool_ | bool):
            evidence[name] = bool(v)
        elif np.isfinite(v):
            evidence[name] = round(float(v), 1)
    return evidence, pos_enu, vel, sigma, conf


_STATE_RANK = {"close": 0, "open": 1, "update": 2}


def _order(cue: _Cue, state: str):
    subj = cue.subject
    skey = (0, subj, "") if isinstance(subj, int) else (1, 0, str(subj))
    return (RULES.index(cue.rule), cue.site, skey, _STATE_RANK[state])
