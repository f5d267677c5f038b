"""Breach rules over the fused picture: one module per rule, `engine` runs them all.

Each rule module turns the picture (or events, or sensor states) at one scan into the
conditions that hold now; fusion.cues turns conditions into the open/update/close lifecycle.
Import the engine as `from fusion.rules.engine import RuleEngine` (kept out of this file so
that fusion.sites can import the parameters without a cycle).
"""

from fusion.rules.params import RULE_DEFAULTS, RULES

__all__ = ["RULES", "RULE_DEFAULTS"]
