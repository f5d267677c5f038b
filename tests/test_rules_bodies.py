"""Cue bodies built in bulk (fusion.cues._track_bodies) against a simple reference: the same
bodies, field for field and bit for bit, built one rule batch at a time with the plain
per-cue formatting (uncached track description, severity and topic per cue)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import fusion.cues as cues_mod
from benchmarks import rules as bench
from fusion.cues import SENTENCES, severity_of, track_confidence
from fusion.geo import LocalFrame
from fusion.messages import CLASS_NAMES
from fusion.rules.base import SENSOR_KIND_NAMES
from fusion.rules.engine import RuleEngine
from fusion.sites import parse_sites
from tests.test_cues import _run_busy


def _distance_text(d_m: float) -> str:
    if d_m >= 1000.0:
        return f"{d_m / 1000.0:.1f}".rstrip("0").rstrip(".") + " km"
    return f"{d_m:.0f} m"


def _who(track_id, cls, ident, speed_mps, n_sensors, kinds_mask) -> str:
    cls_name = CLASS_NAMES[cls] if cls < len(CLASS_NAMES) else "unknown"
    noun = "track" if cls_name == "unknown" else f"{cls_name} track"
    head = f"{noun} {track_id}"
    head = head[0].upper() + head[1:] + f" [{ident}]" if ident else f"Unidentified {head}"
    kinds = [name for bit, name in SENSOR_KIND_NAMES if kinds_mask & bit]
    if not kinds:
        sensors = f"{n_sensors} sensor" + ("s" if n_sensors != 1 else "")
    elif len(kinds) == 1:
        sensors = f"{kinds[0]} x{n_sensors}"
    else:
        sensors = "+".join(kinds) + f", {n_sensors} sensors"
    return f"{head} ({speed_mps:.1f} m/s, {sensors})"


def _reference_batch(book, F, ks, states, cues, ctx) -> list[dict[str, Any]]:
    """One rule's bodies, each field computed in the obvious way."""
    i = F.i[ks]
    rows = ctx.rows[i]
    pic = ctx.picture
    x = pic.x[rows]
    dt = np.maximum(ctx.now_s - pic.t_upd_s[rows], 0.0)
    enu = np.column_stack([ctx.xy[i], x[:, 2] + x[:, 5] * dt])
    llh = book.sites.frame.to_geodetic(enu)
    v = ctx.v[i]
    speed = np.hypot(v[:, 0], v[:, 1])
    P = ctx.Pxy[i]
    a, b, c = P[:, 0, 0], P[:, 0, 1], P[:, 1, 1]
    sigma = np.sqrt(np.maximum(0.5 * (a + c) + np.sqrt(0.25 * (a - c) ** 2 + b * b), 0.0))
    conf = track_confidence(
        pic.quality[rows],
        pic.n_sensors[rows].astype(np.int64),
        pic.sensor_kinds[rows].astype(np.int64),
        pic.ident[rows] != b"",
    )
    if F.conf is not None:
        conf = conf * F.conf[ks]
    metrics = {n: (m(ks) if callable(m) else m[ks]) for n, m in F.metrics.items()}
    out = []
    for m, (state, cue) in enumerate(zip(states, cues, strict=True)):
        r = rows[m]
        site = book.sites.sites[cue.site]
        ident = pic.ident[r].decode("ascii", "replace")
        kinds = int(pic.sensor_kinds[r])
        cls = int(pic.cls[r])
        ev: dict[str, Any] = {
            "track": int(pic.id[r]),
            "class": CLASS_NAMES[cls] if cls < len(CLASS_NAMES) else "unknown",
            "ident": ident or None,
            "speed_mps": float(np.round(speed[m], 2)),
            "quality": float(np.round(pic.quality[r], 3)),
            "n_sensors": int(pic.n_sensors[r]),
            "sensor_kinds": [n for bit, n in SENSOR_KIND_NAMES if kinds & bit],
            "hits": int(pic.hits[r]),
            "t_update_s": float(pic.t_upd_s[r]),
        }
        for name, vals in metrics.items():
            if vals.dtype == bool:
                ev[name] = bool(vals[m])
            elif np.isfinite(vals[m]):
                ev[name] = float(np.round(vals[m], 1))
        ev["subject"] = cue.subject
        ev["who_text"] = _who(
            int(pic.id[r]), cls, ident, float(speed[m]), int(pic.n_sensors[r]), kinds
        )
        out.append({
            "id": cue.id, "seq": None, "state": state, "rule": F.rule, "site": site.id,
            "site_name": site.name, "track": cue.subject, "t_s": float(ctx.now_s),
            "opened_t_s": cue.opened_t_s, "severity": severity_of(site.priority, F.rule),
            "confidence": float(np.round(conf[m], 3)),
            "pos": [float(np.round(llh[m, 0], 7)), float(np.round(llh[m, 1], 7)),
                    float(np.round(llh[m, 2], 1))],
            "vel": [float(np.round(v[m, 0], 2)), float(np.round(v[m, 1], 2)),
                    float(np.round(x[m, 5], 2))],
            "sigma_m": float(np.round(sigma[m], 1)), "evidence": ev,
            "text": SENTENCES[F.rule](state, site, ev), "topic": f"cue.{F.rule}.{site.id}",
        })  # fmt: skip
    return out


def _reference(book, batches, ctx):
    out = []
    for F, ks, states, cues in batches:
        out.extend(_reference_batch(book, F, ks, states, cues, ctx))
    return out


def _stress(scans: int = 12) -> list[list[dict[str, Any]]]:
    """A small dense theatre of the rules benchmark, with varied track fields."""
    rng = np.random.default_rng(11)
    frame = LocalFrame(*bench.ORIGIN)
    saved = bench.HALF_M
    bench.HALF_M = 40_000.0
    try:
        sites = parse_sites(bench.theatre(60, rng, frame), frame)
        xy, v, air, ident = bench.tracks(1500, rng)
    finally:
        bench.HALF_M = saved
    eng = RuleEngine(sites, {"update_interval_s": 2.0, "max_updates_per_scan": 80})
    out, t_s = [], 1.764e9
    for scan in range(scans):
        pic = bench.picture(t_s, xy, v, air, ident)
        r = np.random.default_rng(scan)
        n = len(xy)
        pic.t_upd_s[:] = t_s - r.uniform(0, 3, n) * (r.random(n) < 0.3)
        pic.sensor_kinds[:] = r.integers(0, 8, n)
        pic.n_sensors[:] = r.integers(1, 5, n)
        pic.cls[:] = r.integers(0, 6, n)
        pic.hits[:] = r.integers(1, 40, n)
        pic.quality[:] = r.uniform(0, 1.2, n)
        pic.x[:, 2] = r.normal(0, 300, n)
        pic.x[:, 5] = r.normal(0, 3, n)
        out.append(eng.evaluate(pic, [], {}, t_s))
        xy = xy + v
        t_s += 1.0
    return out


@pytest.mark.parametrize("case", ["busy", "stress"])
def test_bulk_bodies_equal_the_reference(case, monkeypatch):
    def go():
        if case == "busy":
            return [b for _, b in _run_busy(2, t1=200.0)]
        return _stress()

    fast = go()
    monkeypatch.setattr(cues_mod, "_track_bodies", _reference)
    slow = go()
    n_track = sum(1 for b in (fast if case == "busy" else sum(fast, []))
                  if b["track"] is not None and b["state"] != "close")  # fmt: skip
    assert n_track > 50
    assert json.dumps(fast) == json.dumps(slow)
    assert fast == slow
