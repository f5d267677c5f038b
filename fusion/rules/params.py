"""The rules' parameters and their defaults, and which rules each kind of site runs.

This module owns the names a GeoJSON site may use in its `rules` property and the values a
rule falls back to. fusion.sites validates site files against it; each rule reads its
parameters from `Site.rules[<rule>]`, already merged with these defaults.
"""

from __future__ import annotations

RULES = (
    "incursion",
    "approach",
    "line_crossing",
    "loiter",
    "dark_target",
    "fire_event",
    "sensor_outage",
)

# Per-rule parameters, with units in the names. Every key a site file may set is here.
RULE_DEFAULTS: dict[str, dict[str, float]] = {
    # inside the site or its buffer; the cue holds until exit_margin_m beyond the buffer
    "incursion": {"exit_margin_m": 100.0},
    # closest point of approach of the straight-line prediction within horizon_s comes inside
    # the buffer, allowing k_sigma cross-track standard deviations (capped at max_slack_m)
    "approach": {
        "horizon_s": 120.0,
        "k_sigma": 2.0,
        "max_slack_m": 500.0,
        "min_speed_mps": 1.0,
        "exit_margin_m": 100.0,
    },
    # a side is believed once the track is farther than max(hysteresis_m, k_sigma * sigma)
    # from the line on confirm_scans consecutive scans; sides are tracked within band_m
    "line_crossing": {
        "hysteresis_m": 150.0,
        "k_sigma": 2.0,
        "confirm_scans": 3.0,
        "band_m": 10000.0,
    },
    # continuously inside the site or its buffer for dwell_s (gaps up to grace_s forgiven)
    "loiter": {"dwell_s": 600.0, "grace_s": 30.0, "exit_margin_m": 100.0},
    # a confirmed track with at least min_hits updates and no cooperative identity in a zone
    # that requires one
    "dark_target": {"min_hits": 3.0, "exit_margin_m": 100.0},
    # a located event within range_m of the site (of the line, on its far side); events within
    # cluster_m and cluster_s of an open fire cue join it
    "fire_event": {"range_m": 5000.0, "cluster_m": 1000.0, "cluster_s": 120.0},
    # a sensor covering the site silent for timeout_s, or reported lost/down
    "sensor_outage": {"timeout_s": 30.0},
}

AREA_RULES = frozenset(
    {"incursion", "approach", "loiter", "dark_target", "fire_event", "sensor_outage"}
)
LINE_RULES = frozenset({"line_crossing", "fire_event", "sensor_outage"})

_PROTECTED = ("incursion", "approach", "loiter", "fire_event", "sensor_outage")

# kind -> (geometry family, default buffer_m, requires identity, rules on by default,
#          kind-specific parameter defaults)
KINDS: dict[str, tuple[str, float, bool, tuple[str, ...], dict[str, dict[str, float]]]] = {
    "power_plant": ("area", 2000.0, False, _PROTECTED, {}),
    "port": ("area", 2000.0, False, _PROTECTED, {}),
    "bridge": ("area", 1000.0, False, _PROTECTED, {}),
    "depot": ("area", 1500.0, False, _PROTECTED, {}),
    "site": ("area", 1000.0, False, _PROTECTED, {}),
    # zones where every vessel or aircraft must show a cooperative identity
    "corridor": ("area", 0.0, True, ("dark_target", "loiter", "sensor_outage"), {}),
    "exclusion_zone": ("area", 0.0, True, ("incursion", "dark_target", "sensor_outage"), {}),
    "line_of_contact": (
        "line",
        0.0,
        False,
        ("line_crossing", "fire_event", "sensor_outage"),
        {"fire_event": {"range_m": 10000.0}},
    ),
}

# How much a rule adds to a site's priority (1..5) when grading a cue's severity.
SEVERITY_BONUS = {
    "incursion": 1,
    "approach": 0,
    "line_crossing": 2,
    "loiter": 0,
    "dark_target": 0,
    "fire_event": 2,
    "sensor_outage": -1,
}
SEVERITY_NAMES = ("info", "low", "medium", "high", "critical")
