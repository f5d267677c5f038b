"""`sensors convert KIND INPUT --out FEED`: a native recording into a feed file.

Kinds: ais (NMEA log, or decoded AIS CSV), sbs (SBS-1 capture), opensky (state-vector JSON(.gz)
or CSV), asterix (pcap or raw data blocks), acoustic (JSON lines). Measurements keep their
measurement times; they are sorted by time (OpenSky files list aircraft one after another),
batched by measurement time (`--window-s`, `--batch-max`) exactly as a live adapter batches
by wall clock, and each batch is recorded with the measurement time at which it was closed as
its receipt time (never before any of its measurements, never decreasing), so `fusion replay`
and `sensors replay` pace it as it happened.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from fusion import protocol
from fusion.commandline import parse_llh
from fusion.feed import FeedWriter
from sensors import sources
from sensors.batching import Batcher, Measurement

KINDS = ("ais", "sbs", "opensky", "asterix", "acoustic")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="turn a native recording (NMEA, SBS, OpenSky, ASTERIX, acoustic) into a feed file",
    )
    p.add_argument("kind", choices=KINDS, help="input format")
    p.add_argument("input", type=Path, help="recording to read")
    p.add_argument("--out", type=Path, required=True, help="feed file to write")
    p.add_argument("--sensor", help="sensor id (default: KIND.INPUT-STEM)")
    p.add_argument("--site", help="sensor site LAT,LON,ALT_M (ASTERIX radar position)")
    p.add_argument("--date", help="YYYY-MM-DD for ASTERIX raw files (time of day only)")
    p.add_argument("--batch-max", type=int, default=256, help="detections per batch (256)")
    p.add_argument(
        "--window-s", type=float, default=1.0, help="measurement-time span of a batch (1.0 s)"
    )
    p.set_defaults(func=main)


def measurements(kind: str, path: Path, *, site=None, date=None) -> tuple[Iterator, dict]:
    """(measurements, decoder stats) of a recording of `kind`."""
    if kind == "ais":
        from sensors.ais import AisDecoder, decode_csv, decode_lines, first_clock_s, is_ais_csv

        with sources.open_maybe_gzip(path) as f:
            head = f.read(64)
        if is_ais_csv(head):
            dec = AisDecoder()
            return decode_csv(sources.file_lines(path), dec), dec.stats
        dec = AisDecoder(clock_s=first_clock_s(sources.file_lines(path)))
        return decode_lines(sources.file_lines(path), dec), dec.stats
    if kind == "sbs":
        from sensors.adsb import SbsDecoder, decode_sbs

        dec = SbsDecoder()
        return decode_sbs(sources.file_lines(path), dec), dec.stats
    if kind == "opensky":
        from sensors.node import opensky_measurements

        stats: dict[str, int] = {}
        return opensky_measurements(str(path), stats), stats
    if kind == "asterix":
        from sensors.asterix import AsterixDecoder, decode_datagrams, raw_file_datagrams

        dec = AsterixDecoder(default_site=site, date=date)
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic in sources.PCAP_MAGICS:
            return decode_datagrams(sources.pcap_udp(path), dec), dec.stats
        return decode_datagrams(raw_file_datagrams(str(path)), dec), dec.stats
    if kind == "acoustic":
        from sensors.acoustic import AcousticDecoder, decode_events

        dec = AcousticDecoder()
        return decode_events(sources.file_lines(path), dec), dec.stats
    raise ValueError(f"unknown kind {kind!r}")


def convert(
    kind: str,
    path: Path,
    out: Path,
    *,
    sensor: str,
    site=None,
    date: str | None = None,
    batch_max: int = 256,
    window_s: float = 1.0,
) -> dict:
    """Writes the feed; returns counts (batches, detections, and the decoder's outcomes)."""
    ms, stats = measurements(kind, path, site=site, date=date)
    rows: list[Measurement] = sorted(ms, key=lambda m: m.t_s)
    batcher = Batcher(sensor, batch_max=batch_max, max_wait_s=window_s, seq_start=1)
    n_batches = n_det = 0
    with FeedWriter(out) as w:

        def write(dets, flush_t_s: float | None) -> None:
            nonlocal n_batches, n_det
            for d in dets:
                recv_t = float(d.t.max()) if flush_t_s is None else flush_t_s
                w.write(protocol.encode(d), recv_t)
                n_batches += 1
                n_det += len(d)

        for m in rows:
            write(batcher.due(m.t_s), m.t_s)
            write(batcher.add(m, m.t_s), m.t_s)
        last_t = rows[-1].t_s if rows else None
        write(batcher.flush(), last_t)
    return {"batches": n_batches, "detections": n_det, **stats}


def main(args: argparse.Namespace) -> int:
    site = None
    if args.site:
        try:
            site = parse_llh(args.site)
        except ValueError:
            print("sensors convert: --site wants LAT,LON,ALT_M", file=sys.stderr)
            return 2
    if args.kind == "asterix" and site is None:
        print("sensors convert: asterix needs --site (the radar position)", file=sys.stderr)
        return 2
    sensor = args.sensor or f"{args.kind}.{args.input.name.split('.')[0]}"
    try:
        counts = convert(
            args.kind,
            args.input,
            args.out,
            sensor=sensor,
            site=site,
            date=args.date,
            batch_max=args.batch_max,
            window_s=args.window_s,
        )
    except (OSError, ValueError) as e:
        print(f"sensors convert: {e}", file=sys.stderr)
        return 1
    outcomes = ", ".join(f"{k} {v}" for k, v in counts.items() if v and k not in ("batches",))
    print(f"wrote {args.out}: {counts['batches']} batches; {outcomes}")
    return 0
