"""On-ground ADS-B reports without a usable velocity: the speed term of R from the
aircraft's displacement since its previous distinct position (sensors.adsb)."""

from __future__ import annotations

import math

import pytest

from sensors.adsb import (
    DISPLACEMENT_MAX_S,
    SIGMA_SURFACE_M,
    SURFACE_TIME_SIGMA_S,
    AdsbDecoder,
)

M_PER_DEG_LAT = 111_194.93  # 6,371 km sphere


def test_rolling_aircraft_without_velocity_gets_the_speed_term_from_its_displacement():
    dec = AdsbDecoder(plausibility=False)
    first = dec.measurement(1e9, "abc123", 49.0, 2.5, None, on_ground=True)
    assert first.r_diag[0] == pytest.approx(SIGMA_SURFACE_M**2)  # nothing to compare with
    # 40 m/s north: 80 m in 2 s.
    lat2 = 49.0 + 80.0 / M_PER_DEG_LAT
    roll = dec.measurement(1e9 + 2, "abc123", lat2, 2.5, None, on_ground=True)
    want = SIGMA_SURFACE_M**2 + (40.0 * SURFACE_TIME_SIGMA_S) ** 2
    assert roll.r_diag[0] == pytest.approx(want, rel=1e-3)
    assert roll.r_diag[1] == roll.r_diag[0]
    # The same position re-sent keeps that speed; a position long after gives none.
    again = dec.measurement(1e9 + 3, "abc123", lat2, 2.5, None, on_ground=True)
    assert again.r_diag[0] == roll.r_diag[0]
    late_lat = lat2 + 1.0 / M_PER_DEG_LAT
    late = dec.measurement(1e9 + 3 + DISPLACEMENT_MAX_S + 1, "abc123", late_lat, 2.5, None,
                           on_ground=True)  # fmt: skip
    assert late.r_diag[0] == pytest.approx(SIGMA_SURFACE_M**2)
    # Another aircraft does not inherit it.
    other = dec.measurement(1e9 + 2, "abc124", lat2, 2.5, None, on_ground=True)
    assert other.r_diag[0] == pytest.approx(SIGMA_SURFACE_M**2)
    assert math.isfinite(other.r_diag[2])
