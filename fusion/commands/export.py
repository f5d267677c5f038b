"""`fusion export --format geojson`: current tracks, open cues and sites as one GeoJSON file.

From the running service's query socket (default), or from a replay's output directory
(`--replay DIR`). See fusion.export for the feature layout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fusion.commands.cot import add_client_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export current tracks, open cues and sites (GeoJSON)",
        description="Tracks, open cues and sites as a GeoJSON FeatureCollection.",
    )
    add_client_args(p)
    p.add_argument("--format", choices=("geojson",), default="geojson", help="output format")
    p.add_argument("--replay", type=Path, help="read a replay output directory, not the service")
    p.add_argument("--sites", type=Path, help="site file (default: the replay's or the config's)")
    p.add_argument("--out", "-o", type=Path, help="output file (default: standard output)")
    p.add_argument("--no-ellipses", action="store_true", help="no track ellipse polygons")
    p.add_argument("--no-buffers", action="store_true", help="no site buffer polygons")
    p.add_argument("--indent", type=int, default=None, help="pretty-print with this indent")
    p.set_defaults(func=main)


def _config_sites(args: argparse.Namespace):
    from fusion.config import ConfigError, load_config

    try:
        return load_config(args.config, run_dir=args.run_dir)
    except ConfigError:
        return None


def main(args: argparse.Namespace) -> int:
    from fusion.export import dumps, to_geojson
    from fusion.sites import SiteError

    frame = None
    try:
        if args.replay:
            from fusion.replay_output import ReplayOutputError, read_replay_dir

            try:
                out = read_replay_dir(args.replay)
            except ReplayOutputError as exc:
                print(f"fusion export: {exc}", file=sys.stderr)
                return 2
            sites = args.sites or out.sites_path
            if sites is None:
                config = _config_sites(args)
                sites = config.theatre.sites if config else None
            tracks, cues = out.final_tracks(), out.cues
        else:
            from fusion.client import QueryError
            from fusion.commands.cot import open_client
            from fusion.config import ConfigError
            from fusion.geo import LocalFrame

            try:
                client, config = open_client(args)
                with client:
                    tracks, cues = client.tracks(), client.open_cues()
            except (ConfigError, QueryError) as exc:
                print(f"fusion export: {exc}", file=sys.stderr)
                return 1
            sites = args.sites or config.theatre.sites
            frame = LocalFrame(*config.theatre.origin)
        fc = to_geojson(
            tracks,
            cues,
            sites,
            frame=frame,
            ellipses=not args.no_ellipses,
            buffers=not args.no_buffers,
        )
    except SiteError as exc:
        print(f"fusion export: sites: {exc}", file=sys.stderr)
        return 2
    text = dumps(fc, indent=args.indent) + "\n"
    if args.out:
        args.out.write_text(text)
        n = {k: 0 for k in ("track", "cue", "site", "line")}
        for f in fc["features"]:
            layer = f["properties"].get("layer")
            if layer in n:
                n[layer] += 1
        print(
            f"fusion export: {args.out}: {n['track']} tracks, {n['cue']} open cues, "
            f"{n['site'] + n['line']} sites",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0
