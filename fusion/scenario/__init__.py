"""Seeded, deterministic scenarios: a theatre, moving objects with ground truth, sensors,
events and scripted breaches. `build_demo` makes the demo scenario; `sensors.sim` observes it.
"""

from fusion.scenario.demo import T0_S, build_demo
from fusion.scenario.model import Breach, PointEvent, Scenario, SensorSpec, Target
from fusion.scenario.motion import Trajectory
from fusion.scenario.theatre import DEMO_SITES, Theatre, load_theatre

__all__ = [
    "DEMO_SITES",
    "T0_S",
    "Breach",
    "PointEvent",
    "Scenario",
    "SensorSpec",
    "Target",
    "Theatre",
    "Trajectory",
    "build_demo",
    "load_theatre",
]
