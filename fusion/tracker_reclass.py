"""Air <-> ground class changes of tracks from the class of their reports.

A track's class is set by its first classified report. ADS-B labels on-ground reports
CLS_GROUND (tight R) and airborne ones CLS_AIR, so a landing aircraft would keep the air
class, its IMM and its large process noise while it taxis and parks: its gate grows between
re-sent positions and takes the reports of aircraft parked next to it. This module moves an
updated track to the class of the report that updated it, between air and ground only: to
ground the IMM side-table row is returned (the track is then a plain CV track of the ground
noise), to air a fresh IMM starts from the current state (every mode = the track).
"""

import numpy as np

from fusion.messages import CLS_AIR, CLS_GROUND
from fusion.tracks import TrackTable


def reclass_air_ground(
    tab: TrackTable, rows: np.ndarray, report_cls: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Set the class of the updated tracks `rows` to `report_cls` where one is air and the
    other ground. Returns (to_ground, to_air) slots; the caller starts the IMM of to_air."""
    track_cls = tab.cls[rows]
    down = (track_cls == CLS_AIR) & (report_cls == CLS_GROUND)
    up = (track_cls == CLS_GROUND) & (report_cls == CLS_AIR)
    to_ground, to_air = rows[down], rows[up]
    if to_ground.shape[0]:
        held = to_ground[tab.imm_slot[to_ground] >= 0]
        # The side-table row goes back to the pool, as when a track is freed.
        tab.imm_used[tab.imm_slot[held]] = False
        tab.imm_slot[held] = -1
        tab.cls[to_ground] = CLS_GROUND
    if to_air.shape[0]:
        tab.cls[to_air] = CLS_AIR
    return to_ground, to_air
