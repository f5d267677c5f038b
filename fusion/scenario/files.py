"""Scenario truth on disk: what `fusion scenario` writes and `fusion evaluate --truth` reads.

This module owns the truth directory layout:

    truth.npz       t_s (epoch s), id, pos (n, 3) ENU m, vel (n, 3) m/s, origin (3,)
    breaches.json   the expected cues: name, rule, site, t_s (scenario s), target
    scenario.json   name, seed, t0_s, duration_s, sites, targets (id, name, kind, ident)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from fusion.scenario.model import Breach, Scenario


def write_truth(scenario: Scenario, out_dir: str | Path, dt_s: float = 1.0) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tt = scenario.truth_table(dt_s)
    np.savez_compressed(out / "truth.npz", origin=np.asarray(scenario.origin), **tt)
    (out / "breaches.json").write_text(json.dumps([asdict(b) for b in scenario.breaches], indent=1))
    meta = {
        "name": scenario.name,
        "seed": scenario.seed,
        "t0_s": scenario.t0_s,
        "duration_s": scenario.duration_s,
        "sites": str(scenario.theatre.path) if scenario.theatre.path else None,
        "targets": [
            {"id": t.id, "name": t.name, "kind": t.kind, "ident": t.ident} for t in scenario.targets
        ],
        "sensors": [s.id for s in scenario.sensors],
    }
    (out / "scenario.json").write_text(json.dumps(meta, indent=1))
    return out


def read_truth(path: str | Path) -> tuple[dict[str, np.ndarray], list[Breach], dict[str, Any]]:
    """(truth table, breaches, scenario metadata) from a truth directory."""
    p = Path(path)
    if not (p / "truth.npz").is_file():
        raise FileNotFoundError(f"{p}: no truth.npz (write one with `fusion scenario`)")
    with np.load(p / "truth.npz") as z:
        truth = {k: z[k] for k in z.files}
    breaches = []
    if (p / "breaches.json").is_file():
        breaches = [Breach(**b) for b in json.loads((p / "breaches.json").read_text())]
    meta = json.loads((p / "scenario.json").read_text()) if (p / "scenario.json").is_file() else {}
    return truth, breaches, meta
