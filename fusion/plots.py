"""Pictures of a run as PNG (matplotlib, Agg backend): the map, GOSPA over time, throughput.

This module owns the figures a person looks at instead of reading tables. It reads plain arrays
(track samples in ENU, truth, cue bodies) and a site file; it never runs the tracker.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CLASS_COLOURS = {0: "#7f7f7f", 1: "#1f77b4", 2: "#17becf", 3: "#8c564b"}
RULE_MARKERS = {
    "line_crossing": ("X", "#d62728"),
    "approach": ("^", "#ff7f0e"),
    "incursion": ("s", "#d62728"),
    "loiter": ("o", "#9467bd"),
    "dark_target": ("D", "#000000"),
    "fire_event": ("*", "#e41a1c"),
    "sensor_outage": ("P", "#7f7f7f"),
}


def _km(xy: np.ndarray) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64) / 1000.0


def plot_sites(ax: Any, sites_path: str | Path | None, origin: Sequence[float]) -> None:
    """Sites (filled), their buffers (dashed) and lines of contact, in ENU km."""
    if not sites_path:
        return
    from fusion.geo import LocalFrame
    from fusion.sites import load_sites

    ss = load_sites(sites_path, LocalFrame(*origin))
    for s in ss:
        g = s.geometry
        if s.is_line:
            c = _km(np.asarray(g.coords)[:, :2])
            ax.plot(c[:, 0], c[:, 1], color="#d62728", lw=2.0, zorder=3)
            ax.annotate(s.name, c[0], fontsize=7, color="#d62728")
            continue
        for part in getattr(g, "geoms", [g]):
            c = _km(np.asarray(part.exterior.coords))
            ax.fill(c[:, 0], c[:, 1], color="#2ca02c" if not s.requires_ident else "#aec7e8",
                    alpha=0.35, zorder=1)  # fmt: skip
        if s.buffer_m > 0:
            for part in getattr(g.buffer(s.buffer_m), "geoms", [g.buffer(s.buffer_m)]):
                c = _km(np.asarray(part.exterior.coords))
                ax.plot(c[:, 0], c[:, 1], color="#2ca02c", lw=0.8, ls="--", zorder=1)
        cx, cy = _km(np.asarray(g.centroid.coords[0]))
        ax.annotate(s.name, (cx, cy), fontsize=7, ha="center", zorder=4)


def plot_run(
    sites_path: str | Path | None,
    tracks: dict[str, np.ndarray],
    cues: list[dict],
    out_png: str | Path,
    *,
    truth: dict[str, np.ndarray] | None = None,
    title: str = "run map",
) -> Path:
    """The map of a run: sites, buffers, line of contact, truth (grey), tracks coloured by
    class, and where each cue opened (marker per rule)."""
    origin = tracks.get("origin", np.array([0.0, 0.0, 0.0]))
    fig, ax = plt.subplots(figsize=(10, 10), dpi=110)
    plot_sites(ax, sites_path, origin)
    if truth is not None and len(truth.get("t_s", ())):
        from fusion.evaluate_run import to_frame

        tpos = to_frame(truth["pos"], truth.get("origin", origin), origin)
        for tid in np.unique(truth["id"]):
            m = truth["id"] == tid
            c = _km(tpos[m])
            ax.plot(c[:, 0], c[:, 1], color="#bbbbbb", lw=3.0, zorder=2)
    if len(tracks.get("t_s", ())):
        for tid in np.unique(tracks["id"]):
            m = tracks["id"] == tid
            c = _km(tracks["pos"][m])
            colour = CLASS_COLOURS.get(int(tracks["cls"][m][-1]), "#7f7f7f")
            ax.plot(c[:, 0], c[:, 1], color=colour, lw=1.0, zorder=5)
            ax.plot(c[-1, 0], c[-1, 1], "o", ms=2.5, color=colour, zorder=5)
    _plot_cues(ax, cues, origin)
    ax.set_aspect("equal")
    ax.set_xlabel("east, km")
    ax.set_ylabel("north, km")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles = [
        plt.Line2D([], [], marker=m, color=c, ls="", label=r) for r, (m, c) in RULE_MARKERS.items()
    ]
    handles += [
        plt.Line2D([], [], color=CLASS_COLOURS[k], label=n)
        for k, n in ((1, "air track"), (2, "surface track"), (3, "ground track"), (0, "unknown"))
    ]
    ax.legend(handles=handles, loc="lower left", fontsize=7)
    out = Path(out_png)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out


def _plot_cues(ax: Any, cues: list[dict], origin: Sequence[float]) -> None:
    from fusion.geo import LocalFrame

    frame = LocalFrame(*origin)
    seen = set()
    for b in cues:
        if b.get("id") in seen or b.get("state") != "open":
            continue
        seen.add(b.get("id"))
        pos = b.get("pos")
        if not isinstance(pos, list | tuple) or len(pos) < 2 or pos[0] is None:
            continue
        llh = np.array([[pos[0], pos[1], pos[2] if len(pos) > 2 and pos[2] is not None else 0]])
        e, n = _km(frame.to_enu(llh)[0, :2])
        marker, colour = RULE_MARKERS.get(str(b.get("rule")), ("o", "#000000"))
        ax.plot(e, n, marker=marker, color=colour, ms=10, mec="white", zorder=6)


def plot_gospa(
    t_s: np.ndarray,
    gospa_m: np.ndarray,
    out_png: str | Path,
    *,
    peers: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    label: str = "this tracker",
    c_m: float | None = None,
) -> Path:
    """GOSPA over time, with the peers' curves when given ({name: (t_s, gospa_m)})."""
    fig, ax = plt.subplots(figsize=(9, 4), dpi=110)
    ax.plot(t_s, gospa_m, lw=1.2, label=f"{label} (mean {np.mean(gospa_m):.0f} m)")
    for name, (t, g) in (peers or {}).items():
        ax.plot(t, g, lw=1.0, label=f"{name} (mean {np.mean(g):.0f} m)")
    ax.set_xlabel("scenario time, s")
    ax.set_ylabel("GOSPA, m" + (f" (c = {c_m:g} m, p = 1)" if c_m else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = Path(out_png)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_throughput(
    series: dict[str, tuple[Sequence[float], Sequence[float]]], out_png: str | Path
) -> Path:
    """Throughput (detections/s) against target count, one line per tracker."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, (n, rate) in series.items():
        ax.plot(n, rate, "o-", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("targets")
    ax.set_ylabel("detections per second")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    out = Path(out_png)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out
