"""Recorded sensor CSVs as the decoders read them: the header, then each row's fields.

This module owns the framing common to the CSV decoders (sensors/adsb.py, sensors/ais.py):
blank lines before the header are skipped, the header is parsed as CSV (a UTF-8 byte order
mark is dropped), and the data rows are split on commas; blank data rows are counted as
"empty" in the decoder's stats. What the columns mean is the decoders' business.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, MutableMapping


def read_header(it: Iterator[tuple[float, bytes]]) -> list[str] | None:
    """The header of a CSV from its stamped lines (the first non-blank one, consumed from
    `it`); None when the input has no non-blank line."""
    for _t, raw in it:
        if raw.strip():
            return next(csv.reader(io.StringIO(raw.decode("utf-8-sig", "replace"))))
    return None


def row_fields(
    it: Iterator[tuple[float, bytes]], stats: MutableMapping[str, int]
) -> Iterator[list[str]]:
    """The comma-split fields of the rows left in `it`; blank rows are counted in
    `stats["empty"]` and skipped."""
    for _t, raw in it:
        if not raw.strip():
            stats["empty"] += 1
            continue
        yield raw.decode("ascii", "replace").split(",")
