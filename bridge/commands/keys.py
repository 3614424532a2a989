"""``emoface keys``: make a CURVE certificate pair for authenticated ZeroMQ (docs/security.md)."""

from __future__ import annotations

import argparse
import sys

from bridge.commands.options import HelpFormatter

EPILOG = """\
a service reachable from other machines:
  emoface keys keys/ --name server          keys/server.key (public) + server.key_secret
  emoface keys keys/ --name game            the same for each client (game, editor)
  mkdir clients && cp keys/game.key clients/
  emoface serve --bind tcp://*:5556 --zmq tcp://*:5555 \\
      --secret-key keys/server.key_secret --authorized-keys clients/
  ServiceClient("tcp://HOST:5556", server_key="keys/server.key",
                client_key="keys/game.key_secret")
Keep *.key_secret files private; hand out only the .key files.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``keys`` subcommand."""
    p = subparsers.add_parser(
        "keys",
        help="make a CURVE certificate pair (NAME.key, NAME.key_secret) for ZeroMQ authentication",
        description="Write a new CURVE key pair: NAME.key (public, give it to the other side) "
        "and NAME.key_secret (keep it private).",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument("folder", help="where to write the two files (created if missing)")
    p.add_argument("--name", default="emoface", help="file name of the pair")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the pair; refuse to overwrite an existing one."""
    import os
    from pathlib import Path

    import zmq.auth

    folder = Path(args.folder)
    public, secret = folder / f"{args.name}.key", folder / f"{args.name}.key_secret"
    if public.exists() or secret.exists():
        raise ValueError(f"{public}: a key pair of that name exists; choose another --name")
    folder.mkdir(parents=True, exist_ok=True)
    zmq.auth.create_certificates(str(folder), args.name)
    os.chmod(secret, 0o600)
    print(f"emoface keys: public {public} (share it), secret {secret} (keep it)", file=sys.stderr)
    return 0
