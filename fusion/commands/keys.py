"""`fusion keys generate NAME --dir DIR`: a CURVE key pair in ZeroMQ's certificate format."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "keys", help="CURVE key pairs for the service, adapters and subscribers"
    )
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    g = sub.add_parser(
        "generate",
        help="write NAME.key (public) and NAME.key_secret (secret, mode 0600) into DIR",
    )
    g.add_argument("name", help="key name: the service's is `fusion` by default")
    g.add_argument("--dir", type=Path, default=Path("run/keys"), help="directory (run/keys)")
    g.set_defaults(func=generate)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def generate(args: argparse.Namespace) -> int:
    from fusion.security import generate_keys, load_keypair

    try:
        public, secret = generate_keys(args.name, args.dir)
    except (FileExistsError, ValueError, OSError) as exc:
        print(f"fusion keys generate: {exc}", file=sys.stderr)
        return 1
    print(f"public key {load_keypair(public).public.decode()}")
    print(f"wrote {public} and {secret}")
    return 0
