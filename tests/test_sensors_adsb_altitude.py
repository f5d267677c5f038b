"""ADS-B altitude plausibility (sensors.adsb): an altitude further from the aircraft's last
plausible one than it can climb or descend since is dropped; a real climb is kept."""

from __future__ import annotations

from sensors.adsb import ALT_REF_MAX_AGE_S, AdsbDecoder


def _alts(dec: AdsbDecoder, icao: str, t_alt: list[tuple[float, float]]) -> list[float | None]:
    """The altitude each report comes out with (None: dropped); positions 100 m apart."""
    out = []
    for k, (t_s, alt_m) in enumerate(t_alt):
        m = dec.measurement(t_s, icao, 49.0, 2.5 + 0.0015 * k, alt_m)
        out.append(None if m is None else m.z[2])
    return out


def test_alternating_altitudes_keep_the_aircraft_s_own() -> None:
    dec = AdsbDecoder()
    # 950 m, with every other report 4 km higher at the same time and place
    reports = [(1000.0 + k, 950.0 if k % 2 == 0 else 4950.0) for k in range(10)]
    assert _alts(dec, "3944f0", reports) == [950.0 if k % 2 == 0 else None for k in range(10)]
    assert dec.stats["implausible"] == 5
    # another aircraft at 4,950 m is not judged by the first one's altitude
    assert _alts(dec, "39856d", [(1001.0, 4950.0)]) == [4950.0]


def test_a_steep_climb_and_a_reference_that_aged_out_are_kept() -> None:
    dec = AdsbDecoder()
    climb = [(1000.0 + k, 100.0 + 40.0 * k) for k in range(10)]  # 40 m/s: an extreme climb
    assert _alts(dec, "4ca75f", climb) == [a for _, a in climb]
    t_late = 1009.0 + ALT_REF_MAX_AGE_S + 1.0
    assert _alts(dec, "4ca75f", [(t_late, 11000.0)]) == [11000.0]  # the last one is too old
    assert dec.stats["implausible"] == 0
